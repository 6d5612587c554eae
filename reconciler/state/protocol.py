"""The state store protocol: everything the product asks of the store of ownership, history and leases.

SQLite implements it (:class:`~reconciler.state.sqlite.SQLiteStateStore`, the default), and PostgreSQL for
controllers on several hosts (:class:`~reconciler.state.postgres.PostgresStateStore`, keyed by site); one test
suite runs against both (tests/test_state_backends.py). What every implementation must guarantee:

- **No caching between calls.** Every read answers from the store as it is now: a second process (a
  controller) sees an adoption, an apply or an unlock made by another at once. A caller that wants one
  consistent view for a plan reads it once (:meth:`StateBackend.owned`, :meth:`StateBackend.applied`).
- **One transaction per mutation**, and writers queue rather than fail midway; the journal's intent is
  durable before the caller touches the site.
- **Typed errors.** :class:`~reconciler.state.errors.StateBusy` (transient) when another process held
  the store past its busy timeout; :class:`~reconciler.state.errors.StateError` when the store cannot
  be used as it is (damaged, newer schema, lost, cannot be opened), naming it and what to do.
- **Fencing.** A store that took a site's lease (:meth:`StateBackend.acquire_lease`) remembers the lease's
  fencing token; once the lease was granted to another writer, its writes of ownership, last-applied records
  and the journal raise :class:`~reconciler.state.errors.LeaseLost` and write nothing (status, audit events
  and pauses are not fenced: a standby and a person write those).
- **No secret in clear.** Secrets are kept only as keyed hashes (:meth:`StateBackend.secret_hash`), with
  the key kept elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from reconciler.state.records import Applied, AuditEvent, AuditQuery, JournalEntry, Lease, Pause, PendingIntent


class LeaseStore(Protocol):
    """The lease rows: one writer per site. Every change is atomic against another process doing the same."""

    def acquire(self, site: str, holder: str, ttl: float, kind: str) -> Lease | None:
        """Take the lease (or renew it for this holder); None while another holder's is in force."""
        ...

    def renew(self, site: str, lease_id: str, ttl: float) -> Lease | None:
        """Extend this very lease; None when it was unlocked or taken by another writer meanwhile."""
        ...

    def release(self, site: str, holder: str) -> None: ...

    def stored(self, site: str) -> Lease | None:
        """The lease as stored, in force or not."""
        ...

    def current(self, site: str) -> Lease | None:
        """The lease in force: None when there is none, it lapsed, or its holder died on this host."""
        ...

    def break_lease(self, site: str, lease_id: str) -> Lease | None: ...

    def close(self) -> None: ...


class StateBackend(Protocol):
    """Ownership, last-applied fingerprints, the write-ahead journal, the lease and the controller's status."""

    @property
    def location(self) -> str:
        """Where the store is, as a person names it in a message: a file path or a database URL."""
        ...

    @property
    def salt(self) -> bytes:
        """The store's salt for fingerprints of live records (a sequence's fingerprint must not test guesses)."""
        ...

    def close(self) -> None: ...

    def secret_hash(self, value: str, key: bytes) -> str:
        """A keyed hash of a secret (HMAC-SHA256): tells that it changed, and reveals nothing without the key."""
        ...

    # -- ownership -------------------------------------------------------------------------------

    def owned(self) -> dict[tuple[str, str], str]:
        """Every owned object: (kind, metadata.name) → live ID."""
        ...

    def owned_id(self, kind: str, name: str) -> str | None: ...

    def is_owned(self, kind: str, live_id: str | None) -> bool:
        """Whether any object of ``kind`` owns this live ID."""
        ...

    def owner_of(self, kind: str, live_id: str) -> str | None:
        """The metadata.name that owns this live ID, if any."""
        ...

    def own(self, kind: str, name: str, live_id: str) -> None: ...

    def disown(self, kind: str, name: str) -> None:
        """Forget an object: its ownership and its last-applied record."""
        ...

    # -- last applied ----------------------------------------------------------------------------

    def applied(self) -> dict[tuple[str, str], Applied]: ...

    def record_applied(self, kind: str, name: str, desired_fp: str, live_fp: str,
                       secret_hashes: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None: ...

    # -- journal: intent before the site is touched, outcome after ------------------------------

    def intent(self, plan_id: str, action: str, obj: str, detail: dict[str, Any] | None = None, *,
               apply_id: str | None = None) -> int:
        """Journal what is about to be done to ``obj`` and mark it pending until its outcome is recorded.

        ``apply_id`` (every journal entry of an apply carries it) tells two applies of the same plan apart.
        """
        ...

    def created(self, plan_id: str, action: str, obj: str, made: str, *, apply_id: str | None = None) -> None:
        """Journal the ID the site just returned for a creation, before anything else is recorded."""
        ...

    def outcome(self, plan_id: str, action: str, obj: str, outcome: str, error: str | None = None,
                detail: dict[str, Any] | None = None, *, apply_id: str | None = None) -> None:
        """Journal how an action ended; any outcome but ``skipped`` ends its pending intent."""
        ...

    def settle(self, obj: str, intent_plan: str, by_plan: str, note: str) -> bool:
        """Resolve the unfinished intent of ``intent_plan`` that a later plan found nothing left to do for."""
        ...

    def pending(self) -> set[str]: ...

    def pending_intents(self) -> dict[str, PendingIntent]: ...

    def pending_intent(self, obj: str) -> PendingIntent | None: ...

    def audit(self, plan_id: str, obj: str, detail: dict[str, Any], *, apply_id: str | None = None) -> None:
        """A high-risk deployment applied (who, when, collection size): journaled beside its action and added to
        the audit trail as a ``high-risk`` event with ``detail["who"]`` as its actor."""
        ...

    def record_apply(self, plan_id: str, provenance: dict[str, Any], planned: dict[str, int],
                     outcome: dict[str, int], *, apply_id: str | None = None, actor: str | None = None,
                     detail: dict[str, Any] | None = None) -> str:
        """The provenance of an apply (ref, commit), what was planned and what happened; returns its apply ID.

        ``apply_id`` is the one its journal entries carry (a new one when None); ``actor`` who applied (default
        :func:`~reconciler.state.records.who`); ``detail`` more keys of the record (``saved_plan``,
        ``rollback_of``, ``location``, ``options``). The outcome is ``ok`` unless an action failed or was skipped.
        """
        ...

    def applies(self, limit: int = 50) -> list[JournalEntry]:
        """Apply records, newest first."""
        ...

    def apply_record(self, apply_id: str) -> JournalEntry | None:
        """The apply record with this apply ID, or None."""
        ...

    # -- audit trail: who did what, and what was refused -------------------------------------------

    def record_audit(self, events: Iterable[AuditEvent]) -> None:
        """Append audit events in one transaction (an apply's ``apply`` event and its ``action`` events together).

        Append-only: nothing in the product updates or deletes an audit event.
        """
        ...

    def audit_events(self, query: AuditQuery | None = None) -> list[AuditEvent]:
        """Audit events matching ``query``, oldest first; with ``query.limit`` the newest that many.

        ``query.object`` matches events about that object and the ``apply`` events of the applies that touched it.
        """
        ...

    # -- pause: controllers that tick and report but apply nothing ---------------------------------

    def pause(self, site: str, actor: str, reason: str = "") -> Pause:
        """Pause the controllers of ``site`` (one row per site: a second pause replaces the first)."""
        ...

    def resume(self, site: str) -> Pause | None:
        """Lift the pause of ``site``; the pause lifted, or None when there was none."""
        ...

    def paused(self, site: str) -> Pause | None:
        """The pause of ``site`` in force, or None. Read on every tick, never cached."""
        ...

    def journal(self, plan_id: str | None = None) -> list[JournalEntry]: ...

    # -- lease: one writer per site --------------------------------------------------------------

    @property
    def leases(self) -> LeaseStore:
        """The lease rows, for the calling thread."""
        ...

    def open_leases(self) -> LeaseStore:
        """The lease rows on a connection of their own, for a thread that renews a lease in the background."""
        ...

    def acquire_lease(self, site: str, holder: str, ttl: float, kind: str = "writer") -> Lease | None: ...

    def release_lease(self, site: str, holder: str) -> None: ...

    def lease_holder(self, site: str) -> Lease | None: ...

    def lease(self, site: str) -> Lease | None: ...

    def break_lease(self, site: str, lease_id: str) -> Lease | None: ...

    # -- status: what the controller last saw ----------------------------------------------------

    def put_status(self, key: str, value: Any) -> None: ...

    def get_status(self, key: str) -> Any: ...
