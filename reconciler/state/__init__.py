"""The state store: what this tool owns, what it last applied, a journal of every action, and the lease.

The site never returns masked values, so the store keeps keyed hashes of the secrets it wrote (never
the secrets, never the key). The journal is write-ahead: an action's intent is recorded before the
site is touched and its outcome after, so a run that was killed can be finished by the next one.

The product depends on :class:`StateBackend` (the protocol); :func:`open_state` picks the
implementation from what ``--state`` names. ``StateStore(path)`` is the SQLite store.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.state.errors import StateBusy, StateError
from reconciler.state.leases import LeaseTable
from reconciler.state.protocol import LeaseStore, StateBackend
from reconciler.state.records import (
    LEASE_KINDS,
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
from reconciler.state.sqlite import (
    MIGRATIONS,
    SQLiteStateStore,
    StateStore,
    backup_state,
    check_state,
    damaged_message,
    default_state_path,
)

_URL_SCHEMES = ("postgresql://", "postgres://")


def open_state(target: str | os.PathLike[str]) -> StateBackend:
    """The state store ``target`` names: a SQLite file today (created when missing); a ``postgresql://`` URL
    raises :class:`StateError` until that store exists (it is added here)."""
    if isinstance(target, str) and target.lower().startswith(_URL_SCHEMES):
        raise StateError("a PostgreSQL state store is not supported yet; name a state file (--state PATH)")
    return SQLiteStateStore(Path(target))


__all__ = [
    "LEASE_KINDS",
    "MIGRATIONS",
    "Applied",
    "AuditEvent",
    "AuditQuery",
    "JournalEntry",
    "Lease",
    "LeaseStore",
    "LeaseTable",
    "Pause",
    "PendingIntent",
    "SQLiteStateStore",
    "StateBackend",
    "StateBusy",
    "StateError",
    "StateStore",
    "backup_state",
    "check_state",
    "damaged_message",
    "default_state_path",
    "new_apply_id",
    "open_state",
    "who",
]
