"""The SQLite stores opened by several processes at once: the first open creates, the others wait and agree."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore
from reconciler.storage import check_file, connect, migrate

OPENERS = 6

# Each process gets ready (imports done), says so, and waits for the word to go; then it opens the store
# and prints what it sees.
OPEN_AT = """
import sys
from pathlib import Path
kind, path = sys.argv[1], Path(sys.argv[2])
if kind == "state":
    from reconciler.state import StateStore
else:
    from reconciler.site.embedded import EmbeddedSite
print("ready", flush=True)
sys.stdin.readline()
if kind == "state":
    store = StateStore(path)
    print(store.salt.hex())
else:
    site = EmbeddedSite(path)
    print(site.site_code, len(site.read().collections))
"""


def open_together(kind: str, path: Path) -> list[str]:
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_AT, kind, str(path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(OPENERS)]
    try:
        for process in processes:  # every interpreter has started and imported the stores
            assert process.stdout is not None and process.stdout.readline() == "ready\n", process.stderr
        for process in processes:  # then all of them open the same new file at once
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            results.append(out.strip())
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.mark.parametrize("kind", ["state", "site"])
def test_processes_opening_a_new_store_at_once_all_succeed_and_agree(tmp_path: Path, kind: str) -> None:
    seen = open_together(kind, tmp_path / f"{kind}.db")
    assert len(set(seen)) == 1, seen  # one salt, or one site with one set of built-in collections
    if kind == "site":
        with EmbeddedSite(tmp_path / "site.db") as site:
            ids = [c.id for c in site.read().collections.values()]
        assert len(ids) == len(set(ids)) and "SMS00001" in ids
    else:
        store = StateStore(tmp_path / "state.db")
        assert store.salt.hex() == seen[0]  # the salt every opener used is the one kept
        store.close()


def test_migration_reads_the_version_under_the_write_lock(tmp_path: Path) -> None:
    """A store migrated by another connection after this one looked is not migrated twice."""
    steps = ["CREATE TABLE one (x)", "CREATE TABLE two (x)"]
    first, second = connect(tmp_path / "db"), connect(tmp_path / "db")
    migrate(first, steps, RuntimeError)
    migrate(second, steps, RuntimeError)  # sees version 2 and does nothing
    assert second.execute("PRAGMA user_version").fetchone()[0] == 2
    with pytest.raises(RuntimeError):
        migrate(second, steps[:1], RuntimeError)  # a store newer than the tool is refused
    tables = {r[0] for r in first.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"one", "two"}
    first.close()
    second.close()
    assert sqlite3.connect(tmp_path / "db").execute("PRAGMA user_version").fetchone()[0] == 2


def test_opening_a_file_another_connection_is_creating_waits_instead_of_failing(tmp_path: Path) -> None:
    """``PRAGMA journal_mode=WAL`` is refused at once, whatever the timeout, while another connection holds
    the write lock of a file still in rollback mode (as while another process creates the store)."""
    path = tmp_path / "new.db"
    creator = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    creator.execute("CREATE TABLE t (x)")
    creator.execute("BEGIN IMMEDIATE")
    opened: list[str | BaseException] = []

    def open_it() -> None:
        try:
            db = connect(path)
            opened.append(db.execute("PRAGMA journal_mode").fetchone()[0])
            db.close()
        except BaseException as exc:  # the test reports it
            opened.append(exc)

    opener = threading.Thread(target=open_it, daemon=True)
    try:
        opener.start()
        opener.join(timeout=0.3)  # the scenario: the creator holds the lock for a while
        assert opener.is_alive() and not opened, opened  # still waiting for the creator: it did not fail
    finally:
        creator.execute("COMMIT")
    opener.join(timeout=30)
    creator.close()
    assert opened == ["wal"]


class Damaged(Exception):
    """The store's own error, as StateError and SiteError are."""


def make_store(path: Path, rows: int = 400) -> None:
    db = connect(path)
    db.execute("CREATE TABLE big (n INTEGER PRIMARY KEY, payload TEXT)")
    db.executemany("INSERT INTO big VALUES (?, ?)", [(n, "x" * 500) for n in range(rows)])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def test_a_damaged_page_met_while_reading_rows_is_the_stores_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    make_store(path)
    pages = path.stat().st_size // 4096
    with path.open("r+b") as raw:  # a leaf in the middle of the table, read only as the rows are iterated
        raw.seek(4096 * (pages // 2))
        raw.write(b"\xff" * 4096)
    db = connect(path, Damaged)
    rows = db.execute("SELECT n FROM big")
    with pytest.raises(Damaged, match="its pages are damaged"):
        for _ in rows:
            pass
    with pytest.raises(Damaged):
        db.execute("SELECT count(*), sum(length(payload)) FROM big").fetchall()
    db.close()
    with pytest.raises(Damaged, match="its pages are damaged"):
        connect(path, Damaged, check=True)  # the check at open finds it before any query


def test_a_file_that_is_not_a_database_is_the_stores_error_at_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    make_store(path)
    with path.open("r+b") as raw:
        raw.write(b"not an sqlite file at all")
    with pytest.raises(Damaged, match="it is not an SQLite database"):
        connect(path, Damaged)
    other = tmp_path / "other.db"
    other.write_bytes(b"plain text, long enough to be read as a header by SQLite" * 100)
    with pytest.raises(Damaged, match="it is not an SQLite database"):
        connect(other, Damaged, check=True)


def test_a_truncated_file_is_found_by_the_check_at_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    make_store(path)
    os.truncate(path, path.stat().st_size // 3)
    with pytest.raises(Damaged):
        connect(path, Damaged, check=True)
    report = check_file(path, 0, lambda db: {})
    assert not report.ok and report.problems


def test_a_file_check_never_creates_or_changes_a_file(tmp_path: Path) -> None:
    missing = check_file(tmp_path / "none.db", 3, lambda db: {})
    assert missing.missing and not missing.ok and not (tmp_path / "none.db").exists()
    path = tmp_path / "store.db"
    make_store(path)
    before = path.read_bytes()
    report = check_file(path, 0, lambda db: {"rows": db.execute("SELECT COUNT(*) FROM big").fetchone()[0]})
    assert report.ok and report.counts == {"rows": 400} and report.schema_version == 0
    assert path.read_bytes() == before
    wal = tmp_path / "store.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
