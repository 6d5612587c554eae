"""The PostgreSQL state store: the same :class:`~reconciler.state.protocol.StateBackend`, shared by controllers
on several hosts (``--state postgresql://user@host:5432/db``).

One database serves many sites: every row is keyed by the site it belongs to, so controllers of several
hierarchies share one server without seeing each other's objects. What differs from the SQLite store:

- **The lease runs on the database's clock**, not the hosts': a writer whose host clock is wrong cannot keep a
  lease past its time, and a standby on another host takes over exactly when the database says it lapsed.
- **A fencing token.** Each grant of a site's lease gets a number greater than every earlier one. A store
  that took the lease remembers its token, and every write of ownership, last-applied records and the
  journal checks, in its own transaction, that the token is still the lease's (under a shared lock that a
  takeover must wait for). A writer paused past its lease (SIGSTOP, a VM frozen, a network cut) that wakes up
  after a standby took over therefore fails its next journal write, which precedes every site write, with
  :class:`~reconciler.state.errors.LeaseLost`, and writes nothing.
- **Transient failures are retried**: a dropped connection, a server restart, a serialization failure or a
  deadlock is retried with growing pauses for up to ``retry_seconds`` before the call raises
  :class:`~reconciler.state.errors.StateUnreachable` (transient: the controller backs off and tries again).

Isolation: every call is one transaction at READ COMMITTED. Lease changes serialize on a transaction-level
advisory lock per site (takers queue instead of failing on a serialization conflict); fenced writes hold the
same lock shared, so a takeover commits either before a write (which then sees the new token and fails) or
after it (and then reads what it wrote). The journal's pending row of an object is locked (FOR UPDATE) while an
intent replaces it. A session left idle inside a transaction (its process paused mid-call) is ended by the
server after a few seconds, so a paused writer never holds those locks past its lease.

The password is never in the URL: ``RECONCILE_STATE_PASSWORD``, ``state.password.valueFrom`` in
``reconcile.yaml``, or libpq's own ``PGPASSFILE`` (``~/.pgpass``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from reconciler.state.errors import LeaseLost, StateError, StateUnreachable
from reconciler.state.leases import holder_gone, lost
from reconciler.state.records import (
    Applied,
    AuditEvent,
    AuditQuery,
    JournalEntry,
    Lease,
    Pause,
    PendingIntent,
    new_apply_id,
    who,
)
from reconciler.storage import FileCheck

log = logging.getLogger("reconciler.state")

T = TypeVar("T")

#: The URL schemes that name a PostgreSQL store.
SCHEMES = ("postgresql://", "postgres://")

#: Seconds a session may stay idle inside a transaction before the server ends it (a paused process).
IDLE_IN_TRANSACTION_SECONDS = 5
#: Seconds a call retries a dropped connection or a conflict before it raises StateUnreachable.
RETRY_SECONDS = 30.0
#: Seconds to wait for the server when connecting.
CONNECT_SECONDS = 10

#: The database's clock, in seconds since the epoch (as the SQLite store's time.time()).
_NOW = "extract(epoch from clock_timestamp())::float8"
#: The key of the advisory lock that serializes a site's lease changes.
_LEASE_LOCK = "hashtextextended('reconcile-lease:' || %s, 0)"
_LEASE_COLUMNS = "site, lease_id, holder, kind, taken, renewed, expires, token"
_JOURNAL_COLUMNS = "seq, plan_id, at, phase, action, object, detail, outcome, error, apply_id"
_AUDIT_FIELDS = "at, event, actor, apply_id, plan_id, object, outcome, detail"
_AUDIT_COLUMNS = f"seq, {_AUDIT_FIELDS}"

#: The schema, one migration per version; every row but the version's is keyed by site.
MIGRATIONS = [
    """
    CREATE TABLE reconcile_sites (site TEXT PRIMARY KEY, salt TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);
    CREATE TABLE reconcile_ownership (site TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        live_id TEXT NOT NULL, PRIMARY KEY (site, kind, name));
    CREATE INDEX reconcile_ownership_live ON reconcile_ownership (site, kind, live_id);
    CREATE TABLE reconcile_applied (site TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        desired_fp TEXT NOT NULL, live_fp TEXT NOT NULL, secrets TEXT NOT NULL DEFAULT '{}',
        extra TEXT NOT NULL DEFAULT '{}', applied_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (site, kind, name));
    CREATE TABLE reconcile_journal (seq BIGSERIAL PRIMARY KEY, site TEXT NOT NULL, plan_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL, phase TEXT NOT NULL, action TEXT NOT NULL, object TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}', outcome TEXT, error TEXT, token BIGINT);
    CREATE INDEX reconcile_journal_plan ON reconcile_journal (site, plan_id);
    CREATE INDEX reconcile_journal_phase ON reconcile_journal (site, phase, seq);
    CREATE TABLE reconcile_pending (site TEXT NOT NULL, object TEXT NOT NULL, plan_id TEXT NOT NULL,
        action TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, detail TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (site, object));
    CREATE TABLE reconcile_lease (site TEXT PRIMARY KEY, lease_id TEXT NOT NULL, holder TEXT NOT NULL,
        kind TEXT NOT NULL, taken DOUBLE PRECISION NOT NULL, renewed DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL, token BIGINT NOT NULL);
    CREATE SEQUENCE reconcile_lease_token;
    CREATE TABLE reconcile_lease_grants (site TEXT PRIMARY KEY, token BIGINT NOT NULL);
    CREATE TABLE reconcile_status (site TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL, PRIMARY KEY (site, key));
    """,
    # 2: every apply has an ID of its own, on its journal entries too; the audit trail (who applied what, from
    # which commit and plan, refused attempts, pauses); a paused controller
    """
    ALTER TABLE reconcile_journal ADD COLUMN apply_id TEXT;
    CREATE INDEX reconcile_journal_apply ON reconcile_journal (site, apply_id);
    CREATE TABLE reconcile_audit (seq BIGSERIAL PRIMARY KEY, site TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
        event TEXT NOT NULL, actor TEXT NOT NULL, apply_id TEXT, plan_id TEXT, object TEXT, outcome TEXT,
        detail TEXT NOT NULL DEFAULT '{}');
    CREATE INDEX reconcile_audit_at ON reconcile_audit (site, at);
    CREATE INDEX reconcile_audit_object ON reconcile_audit (site, object, at);
    CREATE INDEX reconcile_audit_apply ON reconcile_audit (site, apply_id);
    CREATE TABLE reconcile_pause (site TEXT PRIMARY KEY, actor TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL DEFAULT '');
    """,
]


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.lower().startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL as a message may show it: no password, no query (it may carry ``password=`` or a key file)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        return f"{parts.scheme}://{user}{host}{parts.path}"
    except ValueError:
        return url.split("://", 1)[0] + "://…"


def check_url(url: str) -> None:
    """A URL may not carry a password: it would be seen in ``ps``, shell history and unit files."""
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
    except ValueError as exc:
        raise StateError(f"--state {redact(url)}: not a PostgreSQL URL ({exc}); write "
                         "postgresql://USER@HOST:5432/DATABASE") from None
    if parts.password is not None or "password" in query:
        raise StateError(f"the state store URL {redact(url)} holds a password; a URL is seen by every process "
                         "listing and in shell history: set RECONCILE_STATE_PASSWORD, or state.password.valueFrom in "
                         "reconcile.yaml, or use a PGPASSFILE (~/.pgpass), and drop it from the URL")
    if not parts.path.strip("/"):
        raise StateError(f"the state store URL {redact(url)} names no database; write "
                         "postgresql://USER@HOST:5432/DATABASE")


def _said(exc: BaseException) -> str:
    """What psycopg said, on one line (libpq's messages span lines and never hold the password)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "…"


class PostgresStateStore:
    """The state of one site in a PostgreSQL database, through a small connection pool.

    Thread-safe: the controller's loop, its lease renewal thread and its status listener share one store.
    """

    def __init__(self, url: str, site: str, password: str | None = None, *, create: bool = True,
                 retry_seconds: float = RETRY_SECONDS, application: str | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        check_url(url)
        if not site:
            raise StateError("a PostgreSQL state store is keyed by site, and no site was named")
        self.url = url
        self.site = site
        self.retry_seconds = retry_seconds
        self._psycopg = psycopg
        self._fences: dict[str, int] = {}
        self._fence_lock = threading.Lock()
        # pg_stat_activity names the process (host:pid, as the lease does): an operator sees which controller it is
        application = application or f"reconcile {socket.gethostname()}:{os.getpid()}"
        self._kwargs: dict[str, Any] = {"autocommit": True, "application_name": application[:63],
                                        "connect_timeout": CONNECT_SECONDS}
        if password:
            self._kwargs["password"] = password
        # One plain connection first: a wrong address, user or password is one clear error, not a pool timeout.
        try:
            with psycopg.connect(url, **self._kwargs) as db:
                self._configure(db)
                self._migrate(db)
                self.new = self._register(db, create)
                row = db.execute("SELECT salt FROM reconcile_sites WHERE site = %s", (site,)).fetchone()
        except StateError:
            raise
        except psycopg.Error as exc:
            raise StateUnreachable(f"state store {self.location} cannot be used: {_said(exc)}; check the URL, that "
                                   "the server runs and lets this host in (pg_hba.conf), and the password "
                                   "(RECONCILE_STATE_PASSWORD or state.password.valueFrom)") from None
        self._salt = bytes.fromhex(row[0]) if row else b""
        self._pool = ConnectionPool(url, min_size=1, max_size=4, kwargs=self._kwargs, configure=self._configure,
                                    open=True, timeout=CONNECT_SECONDS, name=f"reconcile-state-{site}")

    # -- connection, schema, retries -----------------------------------------------------------------

    @property
    def location(self) -> str:
        return redact(self.url)

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

    @staticmethod
    def _configure(db: Any) -> None:
        # A paused process must not keep the locks of a half-done call past its lease (see the module's text).
        db.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_SECONDS}s'")

    def _migrate(self, db: Any) -> None:
        """Create or upgrade the schema, once, under a lock: controllers starting together do it one at a time."""
        version = self._version(db)
        if version == len(MIGRATIONS):
            return
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('reconcile-schema', 0))")
            db.execute("CREATE TABLE IF NOT EXISTS reconcile_schema (id INTEGER PRIMARY KEY CHECK (id = 1), "
                       "version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM reconcile_schema").fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise self._newer(version)
            for number in range(version, len(MIGRATIONS)):
                db.execute(MIGRATIONS[number])
            db.execute("INSERT INTO reconcile_schema VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET version = "
                       "EXCLUDED.version", (len(MIGRATIONS),))

    def _version(self, db: Any) -> int | None:
        try:
            row = db.execute("SELECT version FROM reconcile_schema").fetchone()
        except self._psycopg.errors.UndefinedTable:
            return None
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise self._newer(version)
        return version

    def _newer(self, version: int) -> StateError:
        return StateError(f"state store {self.location} has state schema version {version}; this tool knows up to "
                          f"{len(MIGRATIONS)}: upgrade the tool (every controller sharing the database)")

    def _register(self, db: Any, create: bool) -> bool:
        """Whether this site is new to the database; its row (and salt) is made only when ``create``."""
        if db.execute("SELECT 1 FROM reconcile_sites WHERE site = %s", (self.site,)).fetchone():
            return False
        if create:
            db.execute(f"INSERT INTO reconcile_sites VALUES (%s, %s, {_NOW}) ON CONFLICT (site) DO NOTHING",
                       (self.site, secrets.token_bytes(16).hex()))
        return True

    @contextmanager
    def _cursor(self, wait: float) -> Iterator[Any]:
        with self._pool.connection(timeout=wait) as db, db.transaction(), db.cursor() as cur:
            yield cur

    def _call(self, work: Callable[[Any], T], fence: str | None = None) -> T:
        """Run ``work`` in one transaction, retrying transient failures with growing, jittered pauses.

        ``fence``: the site whose lease this store must still hold (see :meth:`_check_fence`); None for reads,
        status and the lease's own rows.
        """
        from psycopg_pool import PoolTimeout

        psycopg = self._psycopg
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                wait = max(0.1, min(CONNECT_SECONDS, self.retry_seconds - (time.monotonic() - start)))
                with self._cursor(wait) as cur:
                    if fence is not None:
                        self._check_fence(cur, fence)
                    return work(cur)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                # A dropped connection, a server restarting, a serialization failure or deadlock, a session
                # ended while idle in a transaction: nothing was committed, so the whole call runs again.
                attempt += 1
                delay = min(2.0, 0.05 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
                if time.monotonic() - start + delay > self.retry_seconds:
                    raise StateUnreachable(f"state store {self.location} cannot be reached: {_said(exc)} (tried "
                                           f"{attempt} times in {time.monotonic() - start:.0f} s)",
                                           retry_after=5.0) from None
                if attempt == 1:
                    log.warning("state store %s: %s; trying again", self.location, _said(exc))
                if not isinstance(exc, PoolTimeout):
                    self._pool.check()  # drop the other connections the same restart broke
                time.sleep(delay)
            except psycopg.Error as exc:
                raise StateError(f"state store {self.location}: {_said(exc)}") from None

    def _fence_of(self, site: str) -> int | None:
        with self._fence_lock:
            return self._fences.get(site)

    def _check_fence(self, cur: Any, site: str) -> None:
        """Refuse the write when this store took the site's lease and its token is no longer the lease's.

        The shared advisory lock is held until the write commits: a standby taking the lease waits for it.
        """
        token = self._fence_of(site)
        if token is None:
            return
        held, holder, granted = cur.execute(
            f"SELECT l.token, l.holder, g.token FROM pg_advisory_xact_lock_shared({_LEASE_LOCK}) AS locked "
            "LEFT JOIN reconcile_lease l ON l.site = %s LEFT JOIN reconcile_lease_grants g ON g.site = %s",
            (site, site, site)).fetchone()
        if lost(token, held, granted):
            raise LeaseLost(site, token, holder, held)

    @property
    def salt(self) -> bytes:
        if not self._salt:
            raise StateError(f"state store {self.location} holds no state for site {self.site}")
        return self._salt

    def secret_hash(self, value: str, key: bytes) -> str:
        """A keyed hash (HMAC-SHA256): tells that a secret changed, and reveals nothing without the key."""
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def _fenced(self, work: Callable[[Any], T]) -> T:
        return self._call(work, fence=self.site)

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._call(lambda cur: cur.execute(sql, params).fetchall())

    # -- ownership -----------------------------------------------------------------------------------

    def owned(self) -> dict[tuple[str, str], str]:
        rows = self._read("SELECT kind, name, live_id FROM reconcile_ownership WHERE site = %s", (self.site,))
        return {(k, n): i for k, n, i in rows}

    def owned_id(self, kind: str, name: str) -> str | None:
        rows = self._read("SELECT live_id FROM reconcile_ownership WHERE site = %s AND kind = %s AND name = %s",
                          (self.site, kind, name))
        return rows[0][0] if rows else None

    def is_owned(self, kind: str, live_id: str | None) -> bool:
        if live_id is None:
            return False
        return bool(self._read("SELECT 1 FROM reconcile_ownership WHERE site = %s AND kind = %s AND live_id = %s "
                               "LIMIT 1", (self.site, kind, live_id)))

    def owner_of(self, kind: str, live_id: str) -> str | None:
        rows = self._read("SELECT name FROM reconcile_ownership WHERE site = %s AND kind = %s AND live_id = %s "
                          "ORDER BY name LIMIT 1", (self.site, kind, live_id))
        return rows[0][0] if rows else None

    def own(self, kind: str, name: str, live_id: str) -> None:
        self._fenced(lambda cur: cur.execute(
            "INSERT INTO reconcile_ownership VALUES (%s, %s, %s, %s) ON CONFLICT (site, kind, name) DO UPDATE "
            "SET live_id = EXCLUDED.live_id", (self.site, kind, name, live_id)))

    def disown(self, kind: str, name: str) -> None:
        def work(cur: Any) -> None:
            cur.execute("DELETE FROM reconcile_ownership WHERE site = %s AND kind = %s AND name = %s",
                        (self.site, kind, name))
            cur.execute("DELETE FROM reconcile_applied WHERE site = %s AND kind = %s AND name = %s",
                        (self.site, kind, name))
        self._fenced(work)

    # -- last applied --------------------------------------------------------------------------------

    def applied(self) -> dict[tuple[str, str], Applied]:
        rows = self._read("SELECT kind, name, desired_fp, live_fp, secrets, extra FROM reconcile_applied "
                          "WHERE site = %s", (self.site,))
        return {(k, n): Applied(d, lf, json.loads(s), json.loads(e)) for k, n, d, lf, s, e in rows}

    def record_applied(self, kind: str, name: str, desired_fp: str, live_fp: str,
                       secret_hashes: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        self._fenced(lambda cur: cur.execute(
            f"INSERT INTO reconcile_applied VALUES (%s, %s, %s, %s, %s, %s, %s, {_NOW}) "
            "ON CONFLICT (site, kind, name) DO UPDATE SET desired_fp = EXCLUDED.desired_fp, live_fp = "
            "EXCLUDED.live_fp, secrets = EXCLUDED.secrets, extra = EXCLUDED.extra, applied_at = EXCLUDED.applied_at",
            (self.site, kind, name, desired_fp, live_fp, json.dumps(secret_hashes or {}, sort_keys=True),
             json.dumps(extra or {}, sort_keys=True))))

    # -- journal -------------------------------------------------------------------------------------

    def _journal(self, cur: Any, plan_id: str, phase: str, action: str, obj: str, detail: dict[str, Any],
                 outcome: str | None = None, error: str | None = None,
                 apply_id: str | None = None) -> tuple[int, float]:
        """One journal row, stamped with the database's time and the writer's fencing token."""
        row = cur.execute(
            "INSERT INTO reconcile_journal (site, plan_id, at, phase, action, object, detail, outcome, error, token, "
            f"apply_id) VALUES (%s, %s, {_NOW}, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq, at",
            (self.site, plan_id, phase, action, obj, json.dumps(detail, sort_keys=True, default=str), outcome, error,
             self._fence_of(self.site), apply_id)).fetchone()
        return int(row[0]), float(row[1])

    def intent(self, plan_id: str, action: str, obj: str, detail: dict[str, Any] | None = None, *,
               apply_id: str | None = None) -> int:
        """Journal what is about to be done to ``obj`` and mark it pending (as the SQLite store does)."""
        detail = detail or {}

        def work(cur: Any) -> int:
            seq, now = self._journal(cur, plan_id, "intent", action, obj, detail, apply_id=apply_id)
            recognise = {k: detail[k] for k in ("match", "existing") if k in detail}
            row = cur.execute("SELECT detail, plan_id, action FROM reconcile_pending WHERE site = %s AND object = %s "
                              "FOR UPDATE", (self.site, obj)).fetchone()
            earlier = json.loads(row[0]) if row else {}
            if earlier.get("match") is not None and recognise.get("match") in (None, earlier["match"]):
                recognise = earlier
            if row is not None:  # an interrupted run's intent gets its outcome too (see SQLiteStateStore.intent)
                self._journal(cur, row[1], "outcome", row[2], obj, {"superseded_by": plan_id}, "superseded")
            cur.execute("INSERT INTO reconcile_pending VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (site, object) "
                        "DO UPDATE SET plan_id = EXCLUDED.plan_id, action = EXCLUDED.action, at = EXCLUDED.at, "
                        "detail = EXCLUDED.detail",
                        (self.site, obj, plan_id, action, now, json.dumps(recognise, sort_keys=True)))
            return seq
        return self._fenced(work)

    def created(self, plan_id: str, action: str, obj: str, made: str, *, apply_id: str | None = None) -> None:
        def work(cur: Any) -> None:
            self._journal(cur, plan_id, "created", action, obj, {"live_id": made}, apply_id=apply_id)
            row = cur.execute("SELECT detail FROM reconcile_pending WHERE site = %s AND object = %s FOR UPDATE",
                              (self.site, obj)).fetchone()
            if row is not None:
                cur.execute("UPDATE reconcile_pending SET detail = %s WHERE site = %s AND object = %s",
                            (json.dumps({**json.loads(row[0]), "created": made}, sort_keys=True), self.site, obj))
        self._fenced(work)

    def outcome(self, plan_id: str, action: str, obj: str, outcome: str, error: str | None = None,
                detail: dict[str, Any] | None = None, *, apply_id: str | None = None) -> None:
        def work(cur: Any) -> None:
            self._journal(cur, plan_id, "outcome", action, obj, detail or {}, outcome, error, apply_id)
            if outcome != "skipped":
                cur.execute("DELETE FROM reconcile_pending WHERE site = %s AND object = %s", (self.site, obj))
        self._fenced(work)

    def settle(self, obj: str, intent_plan: str, by_plan: str, note: str) -> bool:
        def work(cur: Any) -> bool:
            row = cur.execute("SELECT plan_id, action FROM reconcile_pending WHERE site = %s AND object = %s "
                              "FOR UPDATE", (self.site, obj)).fetchone()
            if row is None or row[0] != intent_plan:
                return False
            self._journal(cur, intent_plan, "outcome", row[1], obj, {"resolved_by": by_plan, "note": note},
                          "resolved")
            cur.execute("DELETE FROM reconcile_pending WHERE site = %s AND object = %s", (self.site, obj))
            return True
        return self._fenced(work)

    def pending(self) -> set[str]:
        return {r[0] for r in self._read("SELECT object FROM reconcile_pending WHERE site = %s", (self.site,))}

    def pending_intents(self) -> dict[str, PendingIntent]:
        rows = self._read("SELECT object, plan_id, action, at, detail FROM reconcile_pending WHERE site = %s",
                          (self.site,))
        return {r[0]: PendingIntent.from_row(*r) for r in rows}

    def pending_intent(self, obj: str) -> PendingIntent | None:
        rows = self._read("SELECT object, plan_id, action, at, detail FROM reconcile_pending WHERE site = %s AND "
                          "object = %s", (self.site, obj))
        return PendingIntent.from_row(*rows[0]) if rows else None

    def audit(self, plan_id: str, obj: str, detail: dict[str, Any], *, apply_id: str | None = None) -> None:
        """A high-risk deployment applied: journaled beside its action and added to the audit trail."""
        def work(cur: Any) -> None:
            _, now = self._journal(cur, plan_id, "audit", "HighRiskDeployment", obj, detail, apply_id=apply_id)
            cur.execute(f"INSERT INTO reconcile_audit ({_AUDIT_FIELDS}, site) VALUES (%s, %s, %s, %s, %s, %s, "
                        "%s, %s, %s)", (now, "high-risk", str(detail.get("who") or who()), apply_id, plan_id, obj,
                                        "applied", json.dumps(detail, sort_keys=True, default=str), self.site))
        self._fenced(work)

    def record_apply(self, plan_id: str, provenance: dict[str, Any], planned: dict[str, int],
                     outcome: dict[str, int], *, apply_id: str | None = None, actor: str | None = None,
                     detail: dict[str, Any] | None = None) -> str:
        apply_id = apply_id or new_apply_id()
        record = {**(detail or {}), "provenance": provenance, "planned": planned, "outcome": outcome,
                  "who": actor or who()}
        ended = "ok" if not outcome.get("failed") and not outcome.get("skipped") else "failed"
        self._fenced(lambda cur: self._journal(cur, plan_id, "apply", "Apply", provenance.get("source") or "",
                                               record, ended, apply_id=apply_id))
        return apply_id

    def apply_record(self, apply_id: str) -> JournalEntry | None:
        rows = self._read(f"SELECT {_JOURNAL_COLUMNS} FROM reconcile_journal WHERE site = %s AND phase = 'apply' "
                          "AND apply_id = %s ORDER BY seq LIMIT 1", (self.site, apply_id))
        return self._entries(rows)[0] if rows else None

    def _entries(self, rows: list[Any]) -> list[JournalEntry]:
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9]) for r in rows]

    # -- audit trail ---------------------------------------------------------------------------------

    def record_audit(self, events: Iterable[AuditEvent]) -> None:
        """Append audit events in one transaction. Not fenced: a refused attempt holds no lease."""
        rows = [(self.site, e.at, e.event, e.actor, e.apply_id, e.plan_id, e.object, e.outcome,
                 json.dumps(e.detail, sort_keys=True, default=str)) for e in events]
        if rows:
            self._call(lambda cur: cur.executemany(
                f"INSERT INTO reconcile_audit (site, {_AUDIT_FIELDS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                "%s)", rows))

    def audit_events(self, query: AuditQuery | None = None) -> list[AuditEvent]:
        query = query or AuditQuery()
        where = ["site = %s"]
        args: list[Any] = [self.site]
        if query.since is not None:
            where.append("at >= %s")
            args.append(query.since)
        if query.events:
            where.append("event = ANY(%s)")
            args.append(list(query.events))
        if query.apply_id is not None:
            where.append("apply_id = %s")
            args.append(query.apply_id)
        if query.object is not None:
            where.append("(object = %s OR (event = 'apply' AND apply_id IN (SELECT apply_id FROM reconcile_audit "
                         "WHERE site = %s AND object = %s AND apply_id IS NOT NULL)))")
            args.extend([query.object, self.site, query.object])
        sql = f"SELECT {_AUDIT_COLUMNS} FROM reconcile_audit WHERE {' AND '.join(where)} ORDER BY at DESC, seq DESC"
        if query.limit is not None:
            sql += " LIMIT %s"
            args.append(query.limit)
        rows = self._read(sql, tuple(args))
        return [AuditEvent(at=r[1], event=r[2], actor=r[3], apply_id=r[4], plan_id=r[5], object=r[6], outcome=r[7],
                           detail=json.loads(r[8]), seq=int(r[0])) for r in reversed(rows)]

    # -- pause: controllers that tick and report but apply nothing -----------------------------------

    def pause(self, site: str, actor: str, reason: str = "") -> Pause:
        row = self._call(lambda cur: cur.execute(
            f"INSERT INTO reconcile_pause VALUES (%s, %s, {_NOW}, %s) ON CONFLICT (site) DO UPDATE SET "
            "actor = EXCLUDED.actor, at = EXCLUDED.at, reason = EXCLUDED.reason RETURNING site, actor, at, reason",
            (site, actor, reason)).fetchone())
        return Pause(*row)

    def resume(self, site: str) -> Pause | None:
        rows = self._call(lambda cur: cur.execute(
            "DELETE FROM reconcile_pause WHERE site = %s RETURNING site, actor, at, reason", (site,)).fetchall())
        return Pause(*rows[0]) if rows else None

    def paused(self, site: str) -> Pause | None:
        rows = self._read("SELECT site, actor, at, reason FROM reconcile_pause WHERE site = %s", (site,))
        return Pause(*rows[0]) if rows else None

    def applies(self, limit: int = 50) -> list[JournalEntry]:
        return self._entries(self._read(f"SELECT {_JOURNAL_COLUMNS} FROM reconcile_journal WHERE site = %s AND "
                                        "phase = 'apply' ORDER BY seq DESC LIMIT %s", (self.site, limit)))

    def journal(self, plan_id: str | None = None) -> list[JournalEntry]:
        if plan_id:
            return self._entries(self._read(f"SELECT {_JOURNAL_COLUMNS} FROM reconcile_journal WHERE site = %s AND "
                                            "plan_id = %s ORDER BY seq", (self.site, plan_id)))
        return self._entries(self._read(f"SELECT {_JOURNAL_COLUMNS} FROM reconcile_journal WHERE site = %s "
                                        "ORDER BY seq", (self.site,)))

    # -- lease: one writer per site, on the database's clock ------------------------------------------

    @property
    def leases(self) -> PostgresLeaseTable:
        return PostgresLeaseTable(self)

    def open_leases(self) -> PostgresLeaseTable:
        """The pool is shared by threads: the renewal thread's table is the same kind of object."""
        return PostgresLeaseTable(self)

    def acquire_lease(self, site: str, holder: str, ttl: float, kind: str = "writer") -> Lease | None:
        """Take or renew the site's lease; this store's writes are then fenced by its token."""
        lease = self.leases.acquire(site, holder, ttl, kind)
        with self._fence_lock:
            if lease is not None:
                self._fences[site] = lease.token
        return lease

    def release_lease(self, site: str, holder: str) -> None:
        self.leases.release(site, holder)
        with self._fence_lock:
            self._fences.pop(site, None)

    def lease_holder(self, site: str) -> Lease | None:
        return self.leases.current(site)

    def lease(self, site: str) -> Lease | None:
        return self.leases.stored(site)

    def break_lease(self, site: str, lease_id: str) -> Lease | None:
        return self.leases.break_lease(site, lease_id)

    # -- status --------------------------------------------------------------------------------------

    def put_status(self, key: str, value: Any) -> None:
        self._call(lambda cur: cur.execute(
            f"INSERT INTO reconcile_status VALUES (%s, %s, %s, {_NOW}) ON CONFLICT (site, key) DO UPDATE SET "
            "value = EXCLUDED.value, at = EXCLUDED.at", (self.site, key, json.dumps(value, default=str))))

    def get_status(self, key: str) -> Any:
        rows = self._read("SELECT value FROM reconcile_status WHERE site = %s AND key = %s", (self.site, key))
        return json.loads(rows[0][0]) if rows else None

    # -- what `reconcile state check` shows ------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """What the store holds for this site: owned objects by kind, journal entries, unfinished actions."""
        def work(cur: Any) -> dict[str, int]:
            counts = {f"owned:{kind}": int(number) for kind, number in cur.execute(
                "SELECT kind, COUNT(*) FROM reconcile_ownership WHERE site = %s GROUP BY kind ORDER BY kind",
                (self.site,))}
            for table, key in (("reconcile_journal", "journal entries"),
                               ("reconcile_pending", "unfinished actions (pending)")):
                counts[key] = int(cur.execute(f"SELECT COUNT(*) FROM {table} WHERE site = %s",
                                              (self.site,)).fetchone()[0])
            return counts
        return self._call(work)


class PostgresLeaseTable:
    """The lease rows, changed under the site's advisory lock and timed by the database's clock."""

    def __init__(self, store: PostgresStateStore) -> None:
        self._store = store

    def close(self) -> None:
        """The connections belong to the store's pool."""

    @staticmethod
    def _row(cur: Any, site: str) -> Lease | None:
        row = cur.execute(f"SELECT {_LEASE_COLUMNS} FROM reconcile_lease WHERE site = %s", (site,)).fetchone()
        return Lease(*row) if row else None

    @staticmethod
    def _lock(cur: Any, site: str) -> float:
        """Take the site's lease lock for this transaction; the database's time, once it is held."""
        cur.execute(f"SELECT pg_advisory_xact_lock({_LEASE_LOCK})", (site,))
        return float(cur.execute(f"SELECT {_NOW}").fetchone()[0])

    @staticmethod
    def _write(cur: Any, lease: Lease) -> None:
        cur.execute(f"INSERT INTO reconcile_lease ({_LEASE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (site) DO UPDATE SET lease_id = EXCLUDED.lease_id, holder = EXCLUDED.holder, "
                    "kind = EXCLUDED.kind, taken = EXCLUDED.taken, renewed = EXCLUDED.renewed, "
                    "expires = EXCLUDED.expires, token = EXCLUDED.token",
                    (lease.site, lease.lease_id, lease.holder, lease.kind, lease.taken, lease.renewed,
                     lease.expires, lease.token))

    def acquire(self, site: str, holder: str, ttl: float, kind: str) -> Lease | None:
        """Take the lease, or renew it when this holder has it; None while another holder's is in force.

        A lease taken anew gets a new ID and the next fencing token.
        """
        def work(cur: Any) -> Lease | None:
            now = self._lock(cur, site)
            current = self._row(cur, site)
            if current is not None and current.expires > now:
                if current.holder == holder:
                    lease = Lease(site, current.lease_id, holder, kind, current.taken, now, now + ttl, current.token)
                    self._write(cur, lease)
                    return lease
                if not holder_gone(current.holder):
                    return None
            token = int(cur.execute("SELECT nextval('reconcile_lease_token')").fetchone()[0])
            cur.execute("INSERT INTO reconcile_lease_grants VALUES (%s, %s) ON CONFLICT (site) DO UPDATE SET token = "
                        "EXCLUDED.token", (site, token))
            lease = Lease(site, secrets.token_hex(6), holder, kind, now, now, now + ttl, token)
            self._write(cur, lease)
            return lease
        return self._store._call(work)

    def renew(self, site: str, lease_id: str, ttl: float) -> Lease | None:
        """Extend this very lease (by ID); None when it was unlocked or taken by another writer meanwhile."""
        def work(cur: Any) -> Lease | None:
            now = self._lock(cur, site)
            current = self._row(cur, site)
            if current is None or current.lease_id != lease_id:
                return None
            cur.execute("UPDATE reconcile_lease SET renewed = %s, expires = %s WHERE site = %s",
                        (now, now + ttl, site))
            return Lease(site, current.lease_id, current.holder, current.kind, current.taken, now, now + ttl,
                         current.token)
        return self._store._call(work)

    def release(self, site: str, holder: str) -> None:
        def work(cur: Any) -> None:
            self._lock(cur, site)
            cur.execute("DELETE FROM reconcile_lease WHERE site = %s AND holder = %s", (site, holder))
        self._store._call(work)

    def stored(self, site: str) -> Lease | None:
        return self._store._call(lambda cur: self._row(cur, site))

    def current(self, site: str) -> Lease | None:
        def work(cur: Any) -> tuple[Lease | None, float]:
            return self._row(cur, site), float(cur.execute(f"SELECT {_NOW}").fetchone()[0])
        lease, now = self._store._call(work)
        if lease is None or lease.expires <= now or holder_gone(lease.holder):
            return None
        return lease

    def break_lease(self, site: str, lease_id: str) -> Lease | None:
        def work(cur: Any) -> Lease | None:
            self._lock(cur, site)
            current = self._row(cur, site)
            if current is None or current.lease_id != lease_id:
                return None
            cur.execute("DELETE FROM reconcile_lease WHERE site = %s AND lease_id = %s", (site, lease_id))
            return current
        return self._store._call(work)


def check_database(url: str, password: str | None) -> FileCheck:
    """``reconcile state check`` of a database store, read-only: its schema version and, per site, what it holds."""
    import psycopg

    check_url(url)
    where = redact(url)
    try:
        with psycopg.connect(url, password=password, autocommit=True, connect_timeout=CONNECT_SECONDS) as db:
            try:
                row = db.execute("SELECT version FROM reconcile_schema").fetchone()
            except psycopg.errors.UndefinedTable:
                return FileCheck(where, ("the database holds no state store (no reconcile_schema table)",),  # type: ignore[arg-type]
                                 known_version=len(MIGRATIONS), missing=True)
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                return FileCheck(where, (f"its schema version {version} is newer than this tool knows "  # type: ignore[arg-type]
                                         f"({len(MIGRATIONS)}): upgrade the tool",), version, len(MIGRATIONS))
            counts: dict[str, int] = {}
            for site, kind, number in db.execute("SELECT site, kind, COUNT(*) FROM reconcile_ownership "
                                                 "GROUP BY site, kind ORDER BY site, kind"):
                counts[f"{site} owned:{kind}"] = int(number)
            for table, key in (("reconcile_journal", "journal entries"),
                               ("reconcile_pending", "unfinished actions (pending)")):
                for site, number in db.execute(f"SELECT site, COUNT(*) FROM {table} GROUP BY site ORDER BY site"):
                    counts[f"{site} {key}"] = int(number)
    except psycopg.Error as exc:
        return FileCheck(where, (f"cannot be read: {_said(exc)}",), known_version=len(MIGRATIONS))  # type: ignore[arg-type]
    return FileCheck(where, (), version, len(MIGRATIONS), counts)  # type: ignore[arg-type]
