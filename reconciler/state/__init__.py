"""The state store: what this tool owns, what it last applied, a journal of every action, and the lease.

The site never returns masked values, so the store keeps keyed hashes of the secrets it wrote (never
the secrets, never the key). The journal is write-ahead: an action's intent is recorded before the
site is touched and its outcome after, so a run that was killed can be finished by the next one.

The product depends on :class:`StateBackend` (the protocol); :func:`open_state` picks the
implementation from what ``--state`` names: a SQLite file, or a PostgreSQL database shared by the
controllers of several hosts (:mod:`reconciler.state.postgres`). ``StateStore(path)`` is the SQLite store.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.state.errors import LeaseLost, StateBusy, StateError, StateMissing, StateUnreachable
from reconciler.state.leases import LeaseTable
from reconciler.state.postgres import is_postgres_url
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


def is_state_url(target: object) -> bool:
    """Whether ``--state`` names a database (``postgresql://…``) rather than a SQLite file."""
    return is_postgres_url(target)


def open_state(target: str | os.PathLike[str], *, site: str | None = None, password: str | None = None,
               create: bool = True) -> StateBackend:
    """The state store ``target`` names: a SQLite file (created when missing), or a ``postgresql://`` URL.

    A database is shared by sites, so it needs ``site`` (the key of this site's rows); ``password`` is read
    by the caller from the environment or a file, never from the URL. ``create`` False refuses a site that
    the database holds nothing for (:class:`StateError`), as a missing state file is refused.
    """
    if is_postgres_url(target):
        try:
            from reconciler.state.postgres import PostgresStateStore
        except ImportError as exc:  # psycopg is a dependency; a broken install says what is missing
            raise StateError(f"a PostgreSQL state store needs psycopg 3 and psycopg_pool ({exc}); "
                             "pip install 'psycopg[binary]' psycopg_pool") from None
        store = PostgresStateStore(str(target), site or "", password, create=create)
        if store.new and not create:
            store.close()
            raise StateMissing(store.location, site or "")
        return store
    return SQLiteStateStore(Path(target))


__all__ = [
    "LEASE_KINDS",
    "MIGRATIONS",
    "Applied",
    "AuditEvent",
    "AuditQuery",
    "JournalEntry",
    "Lease",
    "LeaseLost",
    "LeaseStore",
    "LeaseTable",
    "Pause",
    "PendingIntent",
    "SQLiteStateStore",
    "StateBackend",
    "StateBusy",
    "StateError",
    "StateMissing",
    "StateStore",
    "StateUnreachable",
    "backup_state",
    "check_state",
    "damaged_message",
    "default_state_path",
    "is_state_url",
    "new_apply_id",
    "open_state",
    "who",
]
