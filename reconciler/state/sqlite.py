"""The SQLite state store: the default implementation of :class:`~reconciler.state.protocol.StateBackend`.

One file, beside the embedded site by default, in WAL mode: readers never block the writer, and every
call reads the file as it is now. Nothing is cached between calls, so a controller sees an adoption or
an apply made by another process at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.state.errors import LeaseLost, StateBusy, StateError
from reconciler.state.leases import LeaseTable, lost
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
from reconciler.storage import FileCheck, backup_file, check_file, connect, migrate, transaction

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
    # 4: a lease has an ID (`reconcile unlock LEASE_ID`), says what holds it (a one-shot apply, a controller)
    # and since when; a lease of an older version gets an ID so that it can be unlocked too
    """
    ALTER TABLE lease ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE lease ADD COLUMN kind TEXT NOT NULL DEFAULT 'writer';
    ALTER TABLE lease ADD COLUMN taken REAL NOT NULL DEFAULT 0;
    ALTER TABLE lease ADD COLUMN renewed REAL NOT NULL DEFAULT 0;
    UPDATE lease SET lease_id = lower(hex(randomblob(6))) WHERE lease_id = '';
    """,
    # 5: what lets a later run recognise the object an interrupted intent created (its console name or target,
    # the live objects that already had it when the intent was written, the ID the site returned)
    """
    ALTER TABLE pending ADD COLUMN detail TEXT NOT NULL DEFAULT '{}';
    """,
    # 6: every apply has an ID of its own (a plan's ID repeats when the same plan is applied again), on its
    # journal entries too; the audit trail (who applied what, from which commit and plan, refused attempts,
    # pauses), started with the applies and high-risk entries the journal already held; a paused controller
    """
    ALTER TABLE journal ADD COLUMN apply_id TEXT;
    CREATE INDEX journal_apply ON journal (apply_id);
    UPDATE journal SET apply_id = 'ap-' || lower(hex(randomblob(5))) WHERE phase = 'apply';
    CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, event TEXT NOT NULL,
        actor TEXT NOT NULL, apply_id TEXT, plan_id TEXT, object TEXT, outcome TEXT,
        detail TEXT NOT NULL DEFAULT '{}');
    CREATE INDEX audit_at ON audit (at);
    CREATE INDEX audit_object ON audit (object, at);
    CREATE INDEX audit_apply ON audit (apply_id);
    INSERT INTO audit (at, event, actor, apply_id, plan_id, object, outcome, detail)
        SELECT at, CASE phase WHEN 'apply' THEN 'apply' ELSE 'high-risk' END,
               COALESCE(json_extract(detail, '$.who'), 'unknown (recorded before actors were kept)'),
               apply_id, plan_id, CASE phase WHEN 'apply' THEN NULL ELSE object END, COALESCE(outcome, 'applied'),
               detail
        FROM journal WHERE phase IN ('apply', 'audit') ORDER BY seq;
    CREATE TABLE pause (site TEXT PRIMARY KEY, actor TEXT NOT NULL, at REAL NOT NULL,
        reason TEXT NOT NULL DEFAULT '')
    """,
    # 7: the lease's fencing token: it grows with every new grant, and a writer whose token is no longer the
    # lease's has its writes refused (meta 'lease_token' holds the last one given)
    """
    ALTER TABLE lease ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
    """,
]


def damaged_message(path: Path, detail: str) -> str:
    return (f"state store {path} is damaged: {detail}. Restore it from a backup (copy the backup over it while "
            f"no reconcile runs), or run 'reconcile state check --state {path}' to see what is wrong")




class SQLiteStateStore:
    """The state store in one SQLite file: ownership, last applied, journal, pending intents, lease, status.

    Every mutation is one transaction (BEGIN IMMEDIATE, so two writers queue rather than fail midway).
    A file another process keeps locked past the busy timeout raises :class:`StateBusy` (transient); a
    damaged, newer or unusable file raises :class:`StateError` naming it and what to do.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fences: dict[str, int] = {}
        self._fence_lock = threading.Lock()
        self._db = connect(self.path, self._damaged, check=True, busy=self._busy, unavailable=self._unavailable)
        try:
            self._migrate()
            self._salt = self._ensure_salt()
            self._drop_unkeyed_hashes()
        except BaseException:
            self._db.close()
            raise

    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self._db.close()

    def _damaged(self, detail: str) -> StateError:
        return StateError(damaged_message(self.path, detail))

    def _busy(self, detail: str) -> StateError:
        return StateBusy(f"state store {self.path} is busy: {detail}; try again when the other writer is done")

    def _unavailable(self, detail: str) -> StateError:
        return StateError(f"state store {self.path} cannot be used: {detail}; check that this user can read and "
                          "write it and its folder")

    def _migrate(self) -> None:
        migrate(self._db, MIGRATIONS, lambda version: StateError(
            f"{self.path} has state schema version {version}; this tool knows up to {len(MIGRATIONS)}: "
            "upgrade the tool"))

    def _tx(self) -> Any:
        return transaction(self._db)

    @contextmanager
    def _fenced(self) -> Iterator[sqlite3.Connection]:
        """A write of ownership, last-applied records or the journal: refused (:class:`LeaseLost`) when this store
        took a site's lease and its fencing token is no longer the lease's, checked under the write lock."""
        with self._tx() as db:
            with self._fence_lock:
                fences = dict(self._fences)
            for site, token in fences.items():
                row = db.execute("SELECT token, holder FROM lease WHERE site = ?", (site,)).fetchone()
                if lost(token, row[0] if row else None, LeaseTable.granted(db, site)):
                    raise LeaseLost(site, token, row[1] if row else None, row[0] if row else None)
            yield db

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

    def secret_hash(self, value: str, key: bytes) -> str:
        """A keyed hash (HMAC-SHA256): tells that a secret changed, and reveals nothing without the key.

        The key is kept outside this store (``reconciler.secrets.hash_key``): a salted hash with its salt
        beside it gave a 6-digit PIN back by brute force in under a second.
        """
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def _drop_unkeyed_hashes(self) -> None:
        """Once per store: forget the salted SHA-256 hashes of secrets that earlier versions kept.

        The references stay, so a normal plan (which never reads a secret) sees no change; the next
        ``--refresh-secrets`` writes each secret once and records keyed hashes. A sequence's live fingerprint
        was taken over the sequence holding its passwords, so it is dropped too: the next plan compares that
        sequence field by field instead. Freed pages are overwritten, so the old hashes leave the file.
        """
        if self._db.execute("SELECT 1 FROM meta WHERE key = 'secret_hashes'").fetchone():
            return
        self._db.execute("PRAGMA secure_delete = ON")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM meta WHERE key = 'secret_hashes'").fetchone():
                return  # another process got there first
            rows = db.execute("SELECT kind, name, secrets FROM applied WHERE secrets != '{}'").fetchall()
            for kind, name, stored in rows:
                kept = {key: value if key.startswith("@") else ({**value, "hash": ""} if isinstance(value, dict)
                                                                else "")
                        for key, value in json.loads(stored).items()}
                db.execute("UPDATE applied SET secrets = ?, live_fp = CASE WHEN kind = 'TaskSequence' THEN '' "
                           "ELSE live_fp END WHERE kind = ? AND name = ?", (json.dumps(kept, sort_keys=True), kind,
                                                                           name))
            db.execute("INSERT INTO meta VALUES ('secret_hashes', 'hmac-sha256')")
        if rows:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- ownership: read from the file on every call, never cached ------------------------------------

    def owned(self) -> dict[tuple[str, str], str]:
        """The ownership map: kind and metadata.name → live ID (one query; a plan reads it once)."""
        return {(k, n): i for k, n, i in self._db.execute("SELECT kind, name, live_id FROM ownership")}

    def owned_id(self, kind: str, name: str) -> str | None:
        row = self._db.execute("SELECT live_id FROM ownership WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        return row[0] if row else None

    def is_owned(self, kind: str, live_id: str | None) -> bool:
        if live_id is None:
            return False
        return self._db.execute("SELECT 1 FROM ownership WHERE kind = ? AND live_id = ?",
                                (kind, live_id)).fetchone() is not None

    def owner_of(self, kind: str, live_id: str) -> str | None:
        row = self._db.execute("SELECT name FROM ownership WHERE kind = ? AND live_id = ?", (kind, live_id)).fetchone()
        return row[0] if row else None

    def own(self, kind: str, name: str, live_id: str) -> None:
        with self._fenced() as db:
            db.execute("INSERT OR REPLACE INTO ownership VALUES (?, ?, ?)", (kind, name, live_id))

    def disown(self, kind: str, name: str) -> None:
        with self._fenced() as db:
            db.execute("DELETE FROM ownership WHERE kind = ? AND name = ?", (kind, name))
            db.execute("DELETE FROM applied WHERE kind = ? AND name = ?", (kind, name))

    # -- last applied --------------------------------------------------------------------------

    def applied(self) -> dict[tuple[str, str], Applied]:
        return {
            (k, n): Applied(d, lf, json.loads(s), json.loads(e))
            for k, n, d, lf, s, e in self._db.execute(
                "SELECT kind, name, desired_fp, live_fp, secrets, extra FROM applied")
        }

    def record_applied(self, kind: str, name: str, desired_fp: str, live_fp: str,
                       secret_hashes: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        with self._fenced() as db:
            db.execute("INSERT OR REPLACE INTO applied VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (kind, name, desired_fp, live_fp, json.dumps(secret_hashes or {}, sort_keys=True),
                        json.dumps(extra or {}, sort_keys=True), time.time()))

    # -- journal -------------------------------------------------------------------------------

    def intent(self, plan_id: str, action: str, obj: str, detail: dict[str, Any] | None = None, *,
               apply_id: str | None = None) -> int:
        """Journal what is about to be done to ``obj`` and mark it pending until its outcome is recorded.

        ``detail["match"]`` and ``detail["existing"]`` (a creation's console name or target, and the live
        objects that already had it) let a later run recognise what this action created if it is killed
        before recording it. An earlier intent on the same object that never finished (its run was killed)
        is recorded as superseded, and keeps what it knew: only it knows what existed before anything was made.
        """
        now = time.time()
        detail = detail or {}
        recognise = {k: detail[k] for k in ("match", "existing") if k in detail}
        with self._fenced() as db:
            cur = db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, apply_id) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (plan_id, now, "intent", action, obj, json.dumps(detail, sort_keys=True), apply_id))
            row = db.execute("SELECT detail, plan_id, action FROM pending WHERE object = ?", (obj,)).fetchone()
            earlier = json.loads(row[0]) if row else {}
            if earlier.get("match") is not None and recognise.get("match") in (None, earlier["match"]):
                recognise = earlier
            # The interrupted run's intent gets its outcome too, also when it ran the very same plan (a plan's ID
            # is the digest of its content, so a rerun after a kill has the same ID): within one run an object's
            # intent always has its outcome before the next intent, so a pending row here is always left over.
            if row is not None:
                db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, outcome) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (row[1], now, "outcome", row[2], obj,
                                                            json.dumps({"superseded_by": plan_id}), "superseded"))
            db.execute("INSERT OR REPLACE INTO pending (object, plan_id, action, at, detail) VALUES (?, ?, ?, ?, ?)",
                       (obj, plan_id, action, now, json.dumps(recognise, sort_keys=True)))
            return int(cur.lastrowid or 0)

    def pending(self) -> set[str]:
        """Objects (``Kind/name``) whose last journaled action has an intent and no outcome."""
        return {r[0] for r in self._db.execute("SELECT object FROM pending")}

    def pending_intents(self) -> dict[str, PendingIntent]:
        """The unfinished intents by object: what a run killed mid-action may have changed without recording it."""
        return {r[0]: PendingIntent.from_row(*r) for r in self._db.execute(
            "SELECT object, plan_id, action, at, detail FROM pending")}

    def pending_intent(self, obj: str) -> PendingIntent | None:
        row = self._db.execute("SELECT object, plan_id, action, at, detail FROM pending WHERE object = ?",
                               (obj,)).fetchone()
        return PendingIntent.from_row(*row) if row else None

    def created(self, plan_id: str, action: str, obj: str, made: str, *, apply_id: str | None = None) -> None:
        """Journal what the site just created (its ID) before anything else is recorded.

        A run killed after this point leaves an intent that names its object exactly, so the next run takes
        over that object and no other.
        """
        with self._fenced() as db:
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, apply_id) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (plan_id, time.time(), "created", action, obj, json.dumps({"live_id": made}), apply_id))
            row = db.execute("SELECT detail FROM pending WHERE object = ?", (obj,)).fetchone()
            if row is not None:
                db.execute("UPDATE pending SET detail = ? WHERE object = ?",
                           (json.dumps({**json.loads(row[0]), "created": made}, sort_keys=True), obj))

    def outcome(self, plan_id: str, action: str, obj: str, outcome: str, error: str | None = None,
                detail: dict[str, Any] | None = None, *, apply_id: str | None = None) -> None:
        """Journal how an action ended. A skipped action never ran: an earlier unfinished intent stays pending."""
        with self._fenced() as db:
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, outcome, error, apply_id) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (plan_id, time.time(), "outcome", action, obj, json.dumps(detail or {}, sort_keys=True),
                        outcome, error, apply_id))
            if outcome != "skipped":
                db.execute("DELETE FROM pending WHERE object = ?", (obj,))

    def settle(self, obj: str, intent_plan: str, by_plan: str, note: str) -> bool:
        """Resolve an unfinished intent that a later plan superseded (it found nothing left to do there).

        The outcome goes to the journal under the interrupted plan's ID, beside its intent. Only the intent
        that plan saw is resolved: one written since (another run took the object up again) is left alone.
        """
        with self._fenced() as db:
            row = db.execute("SELECT plan_id, action FROM pending WHERE object = ?", (obj,)).fetchone()
            if row is None or row[0] != intent_plan:
                return False
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, outcome) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (intent_plan, time.time(), "outcome", row[1], obj,
                        json.dumps({"resolved_by": by_plan, "note": note}, sort_keys=True), "resolved"))
            db.execute("DELETE FROM pending WHERE object = ?", (obj,))
        return True

    def audit(self, plan_id: str, obj: str, detail: dict[str, Any], *, apply_id: str | None = None) -> None:
        """An audit record (who, when, what) for actions an organisation must be able to trace.

        The high-risk deployment's entry is kept in the journal beside its action and in the audit trail
        (:meth:`audit_events`), where ``reconcile audit`` reads it.
        """
        now = time.time()
        with self._fenced() as db:
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, apply_id) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (plan_id, now, "audit", "HighRiskDeployment", obj, json.dumps(detail, sort_keys=True),
                        apply_id))
            db.execute("INSERT INTO audit (at, event, actor, apply_id, plan_id, object, outcome, detail) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (now, "high-risk", str(detail.get("who") or who()), apply_id, plan_id, obj, "applied",
                        json.dumps(detail, sort_keys=True, default=str)))

    def record_apply(self, plan_id: str, provenance: dict[str, Any], planned: dict[str, int],
                     outcome: dict[str, int], *, apply_id: str | None = None, actor: str | None = None,
                     detail: dict[str, Any] | None = None) -> str:
        """Provenance of an apply: the ref and commit it came from, what was planned, what happened; its apply ID.

        ``detail`` adds what else the apply is known by (the saved plan it came from, the apply it rolled
        back); ``actor`` is who applied (default: :func:`who`).
        """
        apply_id = apply_id or new_apply_id()
        record = {**(detail or {}), "provenance": provenance, "planned": planned, "outcome": outcome,
                  "who": actor or who()}
        with self._fenced() as db:
            db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail, outcome, apply_id) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (plan_id, time.time(), "apply", "Apply", provenance.get("source") or "", json.dumps(
                           record, sort_keys=True, default=str),
                        "ok" if not outcome.get("failed") and not outcome.get("skipped") else "failed", apply_id))
        return apply_id

    def applies(self, limit: int = 50) -> list[JournalEntry]:
        rows = self._db.execute(
            f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE phase = 'apply' ORDER BY seq DESC LIMIT ?", (limit,))
        return [_journal_entry(r) for r in rows]

    def apply_record(self, apply_id: str) -> JournalEntry | None:
        """The record of one apply by its apply ID (what ``reconcile rollback`` starts from)."""
        row = self._db.execute(f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE phase = 'apply' AND apply_id = ?",
                               (apply_id,)).fetchone()
        return _journal_entry(row) if row else None

    # -- audit trail -----------------------------------------------------------------------------

    def record_audit(self, events: Iterable[AuditEvent]) -> None:
        """Append audit events, all in one transaction (an apply's header and its actions land together)."""
        rows = [(e.at, e.event, e.actor, e.apply_id, e.plan_id, e.object, e.outcome,
                 json.dumps(e.detail, sort_keys=True, default=str)) for e in events]
        if not rows:
            return
        with self._tx() as db:
            db.executemany("INSERT INTO audit (at, event, actor, apply_id, plan_id, object, outcome, detail) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def audit_events(self, query: AuditQuery | None = None) -> list[AuditEvent]:
        """Audit events, oldest first (with ``limit``: the newest ``limit`` of them, still oldest first)."""
        query = query or AuditQuery()
        where: list[str] = []
        args: list[Any] = []
        if query.since is not None:
            where.append("at >= ?")
            args.append(query.since)
        if query.events:
            where.append(f"event IN ({', '.join('?' for _ in query.events)})")
            args.extend(query.events)
        if query.apply_id is not None:
            where.append("apply_id = ?")
            args.append(query.apply_id)
        if query.object is not None:
            # the object's own events, and the headers of the applies that touched it
            where.append("(object = ? OR (event = 'apply' AND apply_id IN "
                         "(SELECT apply_id FROM audit WHERE object = ? AND apply_id IS NOT NULL)))")
            args.extend([query.object, query.object])
        sql = "SELECT seq, at, event, actor, apply_id, plan_id, object, outcome, detail FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at DESC, seq DESC"
        if query.limit is not None:
            sql += " LIMIT ?"
            args.append(query.limit)
        rows = self._db.execute(sql, args).fetchall()
        return [AuditEvent(at=r[1], event=r[2], actor=r[3], apply_id=r[4], plan_id=r[5], object=r[6], outcome=r[7],
                           detail=json.loads(r[8]), seq=r[0]) for r in reversed(rows)]

    # -- pause: a controller that applies nothing until resumed ------------------------------------

    def pause(self, site: str, actor: str, reason: str = "") -> Pause:
        """Pause the controllers of ``site`` (they tick and report, and apply nothing); kept until resumed."""
        pause = Pause(site, actor, time.time(), reason)
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO pause (site, actor, at, reason) VALUES (?, ?, ?, ?)",
                       (site, actor, pause.at, reason))
        return pause

    def resume(self, site: str) -> Pause | None:
        """Lift the pause of ``site``; the pause that was lifted, or None when it was not paused."""
        with self._tx() as db:
            row = db.execute("SELECT site, actor, at, reason FROM pause WHERE site = ?", (site,)).fetchone()
            db.execute("DELETE FROM pause WHERE site = ?", (site,))
        return Pause(*row) if row else None

    def paused(self, site: str) -> Pause | None:
        """The pause of ``site`` in force, or None."""
        row = self._db.execute("SELECT site, actor, at, reason FROM pause WHERE site = ?", (site,)).fetchone()
        return Pause(*row) if row else None

    # -- lease: one writer per site ----------------------------------------------------------------

    @property
    def leases(self) -> LeaseTable:
        return LeaseTable(self._db)

    def open_leases(self) -> LeaseTable:
        """The lease table on a connection of its own, for a thread that renews a lease in the background."""
        return LeaseTable(connect(self.path, self._damaged, busy=self._busy, unavailable=self._unavailable),
                          owned=True)

    def acquire_lease(self, site: str, holder: str, ttl: float, kind: str = "writer") -> Lease | None:
        """Take or renew the site's lease; None while another holder's lease has not expired.

        From then on this store's writes are fenced by the lease's token (see :meth:`_fenced`).
        """
        lease = self.leases.acquire(site, holder, ttl, kind)
        if lease is not None:
            with self._fence_lock:
                self._fences[site] = lease.token
        return lease

    def release_lease(self, site: str, holder: str) -> None:
        self.leases.release(site, holder)
        with self._fence_lock:
            self._fences.pop(site, None)

    def lease_holder(self, site: str) -> Lease | None:
        """The lease in force: None when there is none, it expired, or its holder died on this host."""
        return self.leases.current(site)

    def lease(self, site: str) -> Lease | None:
        """The site's lease row as stored, in force or not (what `reconcile unlock` looks at)."""
        return self.leases.stored(site)

    def break_lease(self, site: str, lease_id: str) -> Lease | None:
        """Remove the lease with this ID (`reconcile unlock`); None when the site's lease has another ID."""
        return self.leases.break_lease(site, lease_id)

    # -- status --------------------------------------------------------------------------------

    def put_status(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?)", (key, json.dumps(value, default=str),
                                                                        time.time()))

    def get_status(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM status WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def journal(self, plan_id: str | None = None) -> list[JournalEntry]:
        query = f"SELECT {_JOURNAL_COLUMNS} FROM journal"
        rows = (self._db.execute(query + " WHERE plan_id = ? ORDER BY seq", (plan_id,)) if plan_id
                else self._db.execute(query + " ORDER BY seq"))
        return [_journal_entry(r) for r in rows]


_JOURNAL_COLUMNS = "seq, plan_id, at, phase, action, object, detail, outcome, error, apply_id"


def _journal_entry(row: Any) -> JournalEntry:
    return JournalEntry(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7], row[8], row[9])


def _state_counts(db: sqlite3.Connection) -> dict[str, int]:
    """What a state store holds: owned objects by kind (``owned:Kind``), journal entries, unfinished actions."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts: dict[str, int] = {}
    if "ownership" in tables:
        for kind, number in db.execute("SELECT kind, COUNT(*) FROM ownership GROUP BY kind ORDER BY kind"):
            counts[f"owned:{kind}"] = number
    for table, key in (("journal", "journal entries"), ("pending", "unfinished actions (pending)")):
        if table in tables:
            counts[key] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return counts


def check_state(path: Path | str, password: str | None = None) -> FileCheck:
    """``reconcile state check``: integrity, schema version and what the store holds, read-only.

    Works on a damaged, truncated or missing file (which it reports, and never creates); a ``postgresql://`` URL
    is checked as a database (``password`` its password).
    """
    from reconciler.state.postgres import check_database, is_postgres_url

    if is_postgres_url(path):
        return check_database(str(path), password)
    return check_file(Path(path), len(MIGRATIONS), _state_counts)


def backup_state(path: Path | str, target: Path, force: bool = False) -> None:
    """``reconcile state backup``: a consistent copy, safe while a controller writes (SQLite's backup API)."""
    from reconciler.state.postgres import is_postgres_url, redact

    if is_postgres_url(path):
        raise StateError(f"state store {redact(str(path))} is a database: back it up with the database's own tools, "
                         "for example pg_dump --table 'reconcile_*' --format custom (a copy of every site it holds)")
    path = Path(path)
    backup_file(path, target, force, lambda detail: StateError(damaged_message(path, detail)), StateError)


def default_state_path(site_path: Path) -> Path:
    return site_path.with_name("state.db") if site_path.name != "state.db" else site_path.with_name("state2.db")


#: The name every caller constructs the default store by (``StateStore(path)``).
StateStore = SQLiteStateStore


