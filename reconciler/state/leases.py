"""The lease table: one writer per site, taken and renewed under SQLite's write lock."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import time
from dataclasses import replace

from reconciler.state.records import Lease
from reconciler.storage import transaction


def _holder_gone(holder: str) -> bool:
    """Whether a lease holder (``host:pid``) is a process of this host that no longer runs.

    A writer killed with ``kill -9`` cannot release its lease; waiting out its expiry (an hour for a
    one-shot apply) would lock the site for nothing. A holder on another host is trusted until expiry.
    """
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


#: The same test for the PostgreSQL store's leases.
holder_gone = _holder_gone


def lost(token: int, held: int | None, granted: int | None) -> bool:
    """Whether a writer whose lease had fencing token ``token`` lost it to another writer.

    ``held`` is the token of the site's lease row (None when there is none), ``granted`` the last token the
    site's lease was given with. A lease that lapsed, or was unlocked, with nobody taking it since is not lost:
    no other writer wrote, so the writer's next check of its lease (before each action) decides.
    """
    if held is not None:
        return held != token
    return granted is not None and granted > token

_LEASE_COLUMNS = "site, lease_id, holder, kind, taken, renewed, expires, token"


class LeaseTable:
    """The lease rows of a state store, on one SQLite connection.

    Every change runs under the write lock (BEGIN IMMEDIATE), so two processes that try to take a free
    lease at the same moment cannot both get it. A writer renews its lease from a background thread
    while its main thread works on the store; a connection belongs to the thread that opened it, so the
    renewals use one of their own (:meth:`SQLiteStateStore.open_leases`).
    """

    def __init__(self, db: sqlite3.Connection, owned: bool = False) -> None:
        self._db = db
        self._owned = owned

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def _row(self, db: sqlite3.Connection, site: str) -> Lease | None:
        row = db.execute(f"SELECT {_LEASE_COLUMNS} FROM lease WHERE site = ?", (site,)).fetchone()
        return Lease(*row) if row else None

    def _write(self, db: sqlite3.Connection, lease: Lease) -> None:
        db.execute(f"INSERT OR REPLACE INTO lease ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (lease.site, lease.lease_id, lease.holder, lease.kind, lease.taken, lease.renewed, lease.expires,
                    lease.token))

    @staticmethod
    def granted(db: sqlite3.Connection, site: str) -> int | None:
        """The last fencing token the site's lease was given with (kept when the lease is released)."""
        row = db.execute("SELECT value FROM meta WHERE key = ?", (f"lease_token:{site}",)).fetchone()
        return int(row[0]) if row else None

    def _next_token(self, db: sqlite3.Connection, site: str) -> int:
        """The fencing token of a new grant: one more than any given before for the site."""
        highest = db.execute("SELECT COALESCE(MAX(token), 0) FROM lease WHERE site = ?", (site,)).fetchone()[0]
        token = max(self.granted(db, site) or 0, int(highest)) + 1
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"lease_token:{site}", str(token)))
        return token

    def acquire(self, site: str, holder: str, ttl: float, kind: str) -> Lease | None:
        """Take the lease, or renew it when this holder has it; None while another holder's is in force.

        A lease that lapsed (its holder stopped renewing for a whole TTL) is taken anew, with a new ID and the
        next fencing token.
        """
        now = time.time()
        with transaction(self._db) as db:
            current = self._row(db, site)
            if current is not None and current.expires > now:
                if current.holder == holder:
                    lease = replace(current, kind=kind, renewed=now, expires=now + ttl)
                    self._write(db, lease)
                    return lease
                if not _holder_gone(current.holder):
                    return None
            lease = Lease(site, secrets.token_hex(6), holder, kind, now, now, now + ttl, self._next_token(db, site))
            self._write(db, lease)
        return lease

    def renew(self, site: str, lease_id: str, ttl: float) -> Lease | None:
        """Extend this very lease; None when it was unlocked or taken by another writer meanwhile.

        A holder renews by ID, not by name, so one that lost its lease learns it and stops writing
        instead of quietly taking the site back.
        """
        now = time.time()
        with transaction(self._db) as db:
            current = self._row(db, site)
            if current is None or current.lease_id != lease_id:
                return None
            lease = replace(current, renewed=now, expires=now + ttl)
            self._write(db, lease)
        return lease

    def release(self, site: str, holder: str) -> None:
        with transaction(self._db) as db:
            db.execute("DELETE FROM lease WHERE site = ? AND holder = ?", (site, holder))

    def stored(self, site: str) -> Lease | None:
        return self._row(self._db, site)

    def current(self, site: str) -> Lease | None:
        lease = self._row(self._db, site)
        if lease is None or lease.expires <= time.time() or _holder_gone(lease.holder):
            return None
        return lease

    def break_lease(self, site: str, lease_id: str) -> Lease | None:
        with transaction(self._db) as db:
            current = self._row(db, site)
            if current is None or current.lease_id != lease_id:
                return None
            db.execute("DELETE FROM lease WHERE site = ? AND lease_id = ?", (site, lease_id))
        return current

