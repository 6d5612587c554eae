"""What the SQLite-backed stores share: opening in WAL mode, transactions, in-place schema migration."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """Autocommit connection (transactions are explicit) in WAL mode, so readers never block writers."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE: take the write lock up front, so two writers queue instead of failing midway."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection, migrations: list[str], too_new: Callable[[int], Exception]) -> None:
    """Bring the schema (``PRAGMA user_version``) up to date, one transaction per step.

    The version is read under the write lock: two processes opening a new store at once (a controller and
    ``reconcile status``) would otherwise both see version 0 and the second would fail on existing tables.
    ``executescript()`` would commit on its own, so statements run one by one inside the transaction.
    """
    if db.execute("PRAGMA user_version").fetchone()[0] == len(migrations):
        return  # the usual case: no write lock, so a reader never waits behind a busy writer
    while True:
        with transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(migrations):
                raise too_new(version)
            if version == len(migrations):
                return
            for statement in migrations[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
