"""The SQLite stores opened by several processes at once: the first open creates, the others wait and agree."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore
from reconciler.storage import connect, migrate

OPENERS = 6

# Each process waits for the same moment, then opens the store and prints what it sees.
OPEN_AT = """
import sys, time
from pathlib import Path
start, kind, path = float(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
if kind == "state":
    from reconciler.state import StateStore
    store = StateStore(path)
    print(store.salt.hex())
else:
    from reconciler.site.embedded import EmbeddedSite
    site = EmbeddedSite(path)
    print(site.site_code, len(site.read().collections))
"""


def open_together(kind: str, path: Path) -> list[str]:
    start = time.time() + 1.5  # after every interpreter has started
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_AT, str(start), kind, str(path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(OPENERS)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(out.strip())
    return results


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
