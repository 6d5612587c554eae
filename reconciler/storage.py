"""What the SQLite-backed stores share: opening in WAL mode, transactions, in-place schema migration,
and telling a damaged file apart from a busy one.

A state store or an embedded site that is damaged (a broken header, a truncated file, a scribbled page),
busy or unusable must never reach a user as an sqlite traceback: every query of a connection made here
turns what SQLite says about its file into the store's own typed error, which names the file and what
to do: "file is not a database" and "database disk image is malformed" (``damaged``), "database is
locked" after the busy timeout (``busy``: a transient error, worth retrying), and a file that cannot be
opened or written (``unavailable``: permissions, a read-only file, a full disk).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26
#: Codes that say the file cannot be used as it is (until a person fixes permissions, space, the disk).
UNAVAILABLE = (SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN)
#: Seconds a connection waits for another writer before SQLite answers "database is locked".
BUSY_TIMEOUT = 30
HEADER = b"SQLite format 3\x00"
#: How long opening waits for another process that is creating the same file.
OPEN_WAIT = 30.0

#: Makes the store's own error from what is wrong with its file ("its pages are damaged ...").
Damaged = Callable[[str], Exception]


def damage(exc: BaseException) -> str | None:
    """What an sqlite error says about the file when it says the file is damaged; None for any other error."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.DatabaseError) or code is None:
        return None
    if code & 0xFF == SQLITE_NOTADB:
        return "it is not an SQLite database (its header is damaged or overwritten)"
    if code & 0xFF == SQLITE_CORRUPT:
        return "its pages are damaged (database disk image is malformed)"
    return None


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None or not isinstance(exc, sqlite3.DatabaseError) else code & 0xFF


def _busy(exc: BaseException) -> bool:
    return _code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)


def busy_detail(exc: BaseException) -> str:
    return f"another process held it locked for more than {BUSY_TIMEOUT} s ({exc})"


class _Connection(sqlite3.Connection):
    """A connection whose queries report a damaged, busy or unusable file as the store's typed errors."""

    damaged: Damaged | None = None
    busy: Damaged | None = None
    unavailable: Damaged | None = None

    def raise_if_damaged(self, exc: BaseException) -> None:
        detail = damage(exc)
        if detail is not None and self.damaged is not None:
            raise self.damaged(detail) from exc
        if self.busy is not None and _busy(exc):
            raise self.busy(busy_detail(exc)) from exc
        if self.unavailable is not None and _code(exc) in UNAVAILABLE:
            raise self.unavailable(str(exc)) from exc

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or _Cursor)

    # sqlite3's own Connection.execute() makes a plain cursor, whose rows would bypass the checks.
    def execute(self, *args: Any) -> Any:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> Any:
        return self.cursor().executemany(*args)


class _Cursor(sqlite3.Cursor):
    """Rows are read page by page as a cursor is iterated, so a damaged page can show up on any row."""

    def _raise_if_damaged(self, exc: BaseException) -> None:
        connection = self.connection
        if isinstance(connection, _Connection):
            connection.raise_if_damaged(exc)

    def execute(self, *args: Any) -> Any:
        try:
            return super().execute(*args)
        except sqlite3.DatabaseError as exc:
            self._raise_if_damaged(exc)
            raise

    def executemany(self, *args: Any) -> Any:
        try:
            return super().executemany(*args)
        except sqlite3.DatabaseError as exc:
            self._raise_if_damaged(exc)
            raise

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.DatabaseError as exc:
            self._raise_if_damaged(exc)
            raise

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            self._raise_if_damaged(exc)
            raise

    def fetchmany(self, *args: Any) -> list[Any]:
        try:
            return super().fetchmany(*args)
        except sqlite3.DatabaseError as exc:
            self._raise_if_damaged(exc)
            raise

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            self._raise_if_damaged(exc)
            raise


def _execute_retrying(db: sqlite3.Connection, sql: str, wait: float = OPEN_WAIT) -> list[Any]:
    """Run a statement that SQLite may refuse as busy without calling its busy handler.

    ``PRAGMA journal_mode=WAL`` on a file still in rollback mode reads the header, then upgrades to a
    write; SQLite does not wait for a lock it would have to upgrade to (that could deadlock), so while
    another process is creating the same file it answers "database is locked" at once, whatever the
    timeout. Retried with a growing pause, for at most ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def connect(path: Path, damaged: Damaged | None = None, *, check: bool = False, busy: Damaged | None = None,
            unavailable: Damaged | None = None) -> sqlite3.Connection:
    """Autocommit connection (transactions are explicit) in WAL mode, so readers never block writers.

    With ``damaged``, an error saying the file is damaged (at open or in any later query) is raised as
    the exception it makes; ``busy`` makes the error for a file another process kept locked past the
    busy timeout, ``unavailable`` the one for a file that cannot be opened or written. With ``check``, a
    file that already has content is scanned with ``PRAGMA quick_check`` first (about 30 ms for a state
    store of 10,000 objects, 55 ms for a 90 MB site), so a truncated file or a damaged page is refused
    before a run changes anything, not midway.
    """
    had_content = os.path.exists(path) and os.path.getsize(path) > 0
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, factory=_Connection)
    except sqlite3.Error as exc:
        if unavailable is not None:
            raise unavailable(f"it cannot be opened ({exc})") from exc
        raise
    db.damaged = damaged  # type: ignore[attr-defined]
    try:
        try:
            _execute_retrying(db, "PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        except sqlite3.OperationalError as exc:
            if busy is not None and _busy(exc):
                raise busy(busy_detail(exc)) from exc
            if unavailable is not None:
                raise unavailable(f"it cannot be opened ({exc})") from exc
            raise
        # Only now: the retries above must see SQLite's own "database is locked".
        db.busy, db.unavailable = busy, unavailable  # type: ignore[attr-defined]
        if check and had_content and damaged is not None:
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise damaged(f"its pages are damaged ({_short(problems[0])})")
    except BaseException:
        db.close()
        raise
    return db


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE: take the write lock up front, so two writers queue instead of failing midway."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        # The error that stopped the transaction is the one to report; on a damaged file the rollback
        # can fail too, and its error would only hide the first.
        with suppress(Exception):
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


# -- looking at a file without trusting it: `reconcile state check`, `site check`, backups ------------------


@dataclass(frozen=True, slots=True)
class FileCheck:
    """What a check of one store file found: problems (none when intact), its schema version and counts."""

    path: Path
    problems: tuple[str, ...]
    schema_version: int | None = None
    known_version: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    missing: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def check_file(path: Path, known_version: int,
               counts: Callable[[sqlite3.Connection], dict[str, int]]) -> FileCheck:
    """Check a store file read-only, whatever state it is in: a full ``PRAGMA integrity_check``, the
    schema version, and the counts ``counts`` reads. Nothing is created or changed, not even a missing file.
    """
    if not path.exists():
        return FileCheck(path, ("the file does not exist",), known_version=known_version, missing=True)
    if path.stat().st_size == 0:
        return FileCheck(path, ("the file is empty (0 bytes): everything it held is lost",),
                         known_version=known_version, missing=True)
    with path.open("rb") as raw:
        head = raw.read(len(HEADER))
    if head != HEADER:
        return FileCheck(path, (f"the file does not start with SQLite's header (its first {len(HEADER)} bytes "
                                "are damaged or overwritten)",), known_version=known_version)
    problems: list[str] = []
    version = None
    found: dict[str, int] = {}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return FileCheck(path, (f"cannot be opened: {exc}",), known_version=known_version)
    try:
        try:
            rows = [row[0] for row in db.execute("PRAGMA integrity_check(20)")]
            if rows != ["ok"]:
                problems.extend(_short(row) for row in rows)
        except sqlite3.DatabaseError as exc:
            problems.append(damage(exc) or str(exc))
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            found = counts(db)
        except sqlite3.DatabaseError as exc:
            if not problems:
                problems.append(damage(exc) or str(exc))
    finally:
        db.close()
    if version is not None and version > known_version:
        problems.append(f"schema version {version} is newer than this tool knows ({known_version}): upgrade the tool")
    return FileCheck(path, tuple(problems), version, known_version, found)


def backup_file(source: Path, target: Path, force: bool, damaged: Damaged, refused: Damaged) -> None:
    """Copy a store with SQLite's online backup API: a consistent snapshot even while another process writes.

    The copy is written beside ``target`` under a temporary name, checked, then renamed over it, so a
    failed or interrupted backup never leaves a half-written file where a good one is expected. Why no
    backup was written is raised as the exception ``refused`` makes (``damaged`` for a damaged store).
    """
    if not source.exists() or source.stat().st_size == 0:
        raise refused(f"{source} does not exist or is empty: there is nothing to back up")
    if target.exists() and not force:
        raise refused(f"{target} already exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise refused(f"folder {target.parent} does not exist")
    if target.resolve() == source.resolve():
        raise refused(f"{target} is the store itself; name another file")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    db = connect(source, damaged)
    try:
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            # One step (pages=-1): the whole copy is read in one read transaction, so it is one snapshot;
            # in WAL mode a writer goes on meanwhile.
            db.backup(copy)
            problems = [row[0] for row in copy.execute("PRAGMA quick_check(3)")]
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        except sqlite3.DatabaseError as exc:
            detail = damage(exc)
            if detail is None:
                raise
            problems = [detail]
        finally:
            copy.close()
        if problems != ["ok"]:
            raise damaged(f"its pages are damaged ({_short(problems[0])}); no backup was written")
        os.replace(partial, target)
    finally:
        db.close()
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            with suppress(FileNotFoundError):
                leftover.unlink()
