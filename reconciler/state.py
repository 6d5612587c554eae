"""The state store: what this tool owns, what it last applied, and a journal of every action.

SQLite, beside the embedded site by default. The site never returns masked values, so the store
keeps salted hashes of the secrets it wrote (never the secrets). The journal is write-ahead: an
action's intent is recorded before the site is touched and its outcome after, so a run that was
killed can be finished by the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.storage import connect, migrate, transaction

MIGRATIONS = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE ownership (kind TEXT NOT NULL, name TEXT NOT NULL, live_id TEXT NOT NULL,
        PRIMARY KEY (kind, name));
    CREATE INDEX ownership_live ON ownership (live_id);
    CREATE TABLE applied (kind TEXT NOT NULL, name TEXT NOT NULL, desired_fp TEXT NOT NULL,
        live_fp TEXT NOT NULL, secrets TEXT NOT NULL DEFAULT '{}', extra TEXT NOT NULL DEFAULT '{}',
        applied_at REAL NOT NULL, PRIMARY KEY (kind, name));
    CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, plan_id TEXT NOT NULL, at REAL NOT NULL,
        phase TEXT NOT NULL, action TEXT NOT NULL, object TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}',
        outcome TEXT, error TEXT);
    CREATE INDEX journal_plan ON journal (plan_id);
    CREATE TABLE lease (site TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL NOT NULL);
    """,
    # 2: what the controller last saw, for `reconcile status` and /status
    """
    CREATE TABLE status (key TEXT PRIMARY KEY, value TEXT NOT NULL, at REAL NOT NULL);
    """,
    # 3: objects whose last journaled action has an intent and no outcome (a run was killed mid-action)
    """
    CREATE TABLE pending (object TEXT PRIMARY KEY, plan_id TEXT NOT NULL, action TEXT NOT NULL, at REAL NOT NULL);
    """,
]


class StateError(ReconcilerError):
    """The state store cannot be used (newer schema, corrupt file)."""


@dataclass(frozen=True, slots=True)
class Applied:
    desired_fp: str
    live_fp: str
    secrets: dict[str, str]
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    plan_id: str
    at: float
    phase: str
    action: str
    object: str
    detail: dict[str, Any]
    outcome: str | None
    error: str | None


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


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(self.path)
        self._migrate()
        self._salt = self._ensure_salt()
        self._owned: dict[tuple[str, str], str] | None = None
        self._owned_ids: set[tuple[str, str]] = set()

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        migrate(self._db, MIGRATIONS, lambda version: StateError(
            f"{self.path} has state schema version {version}; this tool knows up to {len(MIGRATIONS)}: "
            "upgrade the tool"))

    def _tx(self) -> Any:
        return transaction(self._db)

    def _ensure_salt(self) -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        salt = secrets.token_bytes(16)
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (salt.hex(),))
        row = self._db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
        return bytes.fromhex(row[0])

    @property
    def salt(self) -> bytes:
        return self._salt

    def secret_hash(self, value: str) -> str:
        """A salted hash: detects that a secret changed without keeping anything that reveals it."""
        return hashlib.sha256(self._salt + value.encode("utf-8")).hexdigest()

    # -- ownership -----------------------------------------------------------------------------

    def _ownership(self) -> dict[tuple[str, str], str]:
        if self._owned is None:
            self._owned = {(k, n): i for k, n, i in self._db.execute("SELECT kind, name, live_id FROM ownership")}
            self._owned_ids = {(k, i) for (k, _), i in self._owned.items()}
        return self._owned

    def owned(self) -> dict[tuple[str, str], str]:
        """A copy of the ownership map: kind and metadata.name → live ID."""
        return dict(self._ownership())

    def owned_id(self, kind: str, name: str) -> str | None:
        return self._ownership().get((kind, name))

    def is_owned(self, kind: str, live_id: str | None) -> bool:
        self._ownership()
        return (kind, live_id) in self._owned_ids

    def owner_of(self, kind: str, live_id: str) -> str | None:
        row = self._db.execute("SELECT name FROM ownership WHERE kind = ? AND live_id = ?", (kind, live_id)).fetchone()
        return row[0] if row else None

    def own(self, kind: str, name: str, live_id: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO ownership VALUES (?, ?, ?)", (kind, name, live_id))
        if self._owned is not None:
            if self._owned.get((kind, name), live_id) != live_id:
                self._owned = None  # an object now owns another live ID (a replace): rebuild on next use
            else:
                self._owned[(kind, name)] = live_id
                self._owned_ids.add((kind, live_id))

    def disown(self, kind: str, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM ownership WHERE kind = ? AND name = ?", (kind, name))
            db.execute("DELETE FROM applied WHERE kind = ? AND name = ?", (kind, name))
        self._owned = None  # rebuilt on next use; deletions are rare

    # -- last applied --------------------------------------------------------------------------

    def applied(self) -> dict[tuple[str, str], Applied]:
        return {
            (k, n): Applied(d, lf, json.loads(s), json.loads(e))
            for k, n, d, lf, s, e in self._db.execute(
                "SELECT kind, name, desired_fp, live_fp, secrets, extra FROM applied")
        }

    def record_applied(self, kind: str, name: str, desired_fp: str, live_fp: str,
                       secret_hashes: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO applied VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (kind, name, desired_fp, live_fp, json.dumps(secret_hashes or {}, sort_keys=True),
                        json.dumps(extra or {}, sort_keys=True), time.time()))

    # -- journal -------------------------------------------------------------------------------

    def intent(self, plan_id: str, action: str, obj: str, detail: dict[str, Any] | None = None) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (plan_id, now, "intent", action, obj, json.dumps(detail or {}, sort_keys=True)))
            db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?)", (obj, plan_id, action, now))
            return int(cur.lastrowid or 0)

    def pending(self) -> set[str]:
        """Objects (``Kind/name``) an interrupted run may have changed without recording it.

        A create killed between the site's write and the ownership record leaves a live object this
        tool made but does not own; the next plan takes such an object over instead of calling it foreign.
        """
        return {r[0] for r in self._db.execute("SELECT object FROM pending")}

    def outcome(self, plan_id: str, action: str, obj: str, outcome: str, error: str | None = None,
                detail: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, outcome, error) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (plan_id, time.time(), "outcome", action, obj, json.dumps(detail or {}, sort_keys=True),
                        outcome, error))
            db.execute("DELETE FROM pending WHERE object = ?", (obj,))

    def audit(self, plan_id: str, obj: str, detail: dict[str, Any]) -> None:
        """An audit record (who, when, what) for actions an organisation must be able to trace."""
        with self._tx() as db:
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (plan_id, time.time(), "audit", "HighRiskDeployment", obj, json.dumps(detail, sort_keys=True)))

    def record_apply(self, plan_id: str, provenance: dict[str, Any], planned: dict[str, int],
                     outcome: dict[str, int]) -> None:
        """Provenance of an apply: the ref and commit it came from, what was planned, what happened."""
        detail = {"provenance": provenance, "planned": planned, "outcome": outcome, "who": who()}
        with self._tx() as db:
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, outcome) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (plan_id, time.time(), "apply", "Apply", provenance.get("source") or "", json.dumps(
                           detail, sort_keys=True), "ok" if not outcome.get("failed") and not outcome.get("skipped")
                        else "failed"))

    def applies(self, limit: int = 50) -> list[JournalEntry]:
        rows = self._db.execute(
            "SELECT seq, plan_id, at, phase, action, object, detail, outcome, error FROM journal "
            "WHERE phase = 'apply' ORDER BY seq DESC LIMIT ?", (limit,))
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8]) for r in rows]

    # -- lease: one writer per site ----------------------------------------------------------------

    def acquire_lease(self, site: str, holder: str, ttl: float) -> bool:
        """Take or renew the site's lease; False while another holder's lease has not expired."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT holder, expires FROM lease WHERE site = ?", (site,)).fetchone()
            if row is not None and row[0] != holder and row[1] > now and not _holder_gone(row[0]):
                return False
            db.execute("INSERT OR REPLACE INTO lease VALUES (?, ?, ?)", (site, holder, now + ttl))
        return True

    def release_lease(self, site: str, holder: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM lease WHERE site = ? AND holder = ?", (site, holder))

    def lease_holder(self, site: str) -> tuple[str, float] | None:
        row = self._db.execute("SELECT holder, expires FROM lease WHERE site = ?", (site,)).fetchone()
        return (row[0], row[1]) if row and row[1] > time.time() and not _holder_gone(row[0]) else None

    # -- status --------------------------------------------------------------------------------

    def put_status(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?)", (key, json.dumps(value, default=str),
                                                                        time.time()))

    def get_status(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM status WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def journal(self, plan_id: str | None = None) -> list[JournalEntry]:
        query = "SELECT seq, plan_id, at, phase, action, object, detail, outcome, error FROM journal"
        rows = (self._db.execute(query + " WHERE plan_id = ? ORDER BY seq", (plan_id,)) if plan_id
                else self._db.execute(query + " ORDER BY seq"))
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8]) for r in rows]


def default_state_path(site_path: Path) -> Path:
    return site_path.with_name("state.db") if site_path.name != "state.db" else site_path.with_name("state2.db")


def who() -> str:
    try:
        user = os.getlogin()
    except OSError:
        user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{os.uname().nodename}" if hasattr(os, "uname") else user
