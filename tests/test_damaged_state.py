"""Damaged, emptied or deleted state stores and embedded sites: every command fails safe with one clear line.

The files are real: a state store and a site made by a real apply, then truncated, given a broken header,
scribbled over in the middle, emptied to 0 bytes or deleted. Commands run in-process through click (one
through the entry point, as the installed command runs), and each must exit 1 with an ``error:`` line naming
the file and what to do, print no traceback, and leave every file as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import git
import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.state import StateError, StateStore
from tests.conftest import run_cli

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
STEPS = [{"name": "Run", "type": "RunCommandLine",
          "settings": {"commandLine": "cmd /c echo", "package": {"package": "OSD Tools"}}}]


def estate() -> list[dict]:
    docs: list[dict] = []
    for i in range(3):
        docs.append({**HEAD, "kind": "TaskSequence", "metadata": {"name": f"ts-{i}"},
                     "spec": {"name": f"Damage test {i}", "steps": STEPS}})
        docs.append({**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": f"ts-{i}-lab"},
                     "spec": {"taskSequence": f"ts-{i}", "collection": {"name": "OSD Lab"}}})
    docs.append({**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab-vars"},
                 "spec": {"collection": {"name": "OSD Lab"}, "variables": [{"name": "OSDRing", "value": "lab"}]}})
    return docs


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"})


def checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so damage written to the file is what every reader sees."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with manifests (also committed to a Git repository) applied to a demo site."""
    root = tmp_path_factory.mktemp("applied")
    (root / "manifests").mkdir()
    (root / "manifests" / "estate.yaml").write_text(yaml.safe_dump_all(estate(), sort_keys=False))
    repo = git.Repo.init(root, initial_branch="main")
    repo.config_writer().set_value("user", "name", "t").release()
    repo.config_writer().set_value("user", "email", "t@example.com").release()
    repo.git.add("manifests")
    repo.index.commit("estate")
    with contextlib.chdir(root):
        result = invoke("manifests", "--yes")
        assert result.exit_code == 0, result.output
        assert invoke("manifests", "--dry-run", "--detailed-exitcode").exit_code == 0
    for name in ("site.db", "state.db"):
        checkpoint(root / ".reconcile" / name)
    return root


@pytest.fixture
def work(applied: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the applied folder, as the current folder."""
    copy = tmp_path / "work"
    shutil.copytree(applied, copy)
    with contextlib.chdir(copy):
        yield copy


def root_page(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    db.close()
    return int(page)


def truncate(path: Path, table: str) -> None:
    os.truncate(path, path.stat().st_size // 2)


def break_header(path: Path, table: str) -> None:
    with path.open("r+b") as raw:
        raw.write(b"this is no header")


def scribble_page(path: Path, table: str) -> None:
    """Overwrite a page in the middle of the file: the root page of a table every command reads."""
    page = root_page(path, table)
    with path.open("r+b") as raw:
        raw.seek(4096 * (page - 1))
        raw.write(b"\xff" * 4096)


DAMAGE: dict[str, Callable[[Path, str], None]] = {
    "truncated": truncate, "broken header": break_header, "scribbled page": scribble_page}


def fingerprints(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.db"))}


def assert_refused(result: Result, *words: str) -> None:
    """Exit 1, one ``error:`` line that says what is wrong and what to do, and no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "sqlite3" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


STATE_COMMANDS = {
    "dry run": ["manifests", "--dry-run"],
    "apply": ["manifests", "--yes"],
    "status": ["status"],
    "history": ["history"],
    "export": ["export", "--out", "exported"],
    "controller": ["controller", "--repo", ".", "--ref", "main", "--once", "--commit-poll", "0"],
    "backup": ["state", "backup", "copy.db"],
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", STATE_COMMANDS)
def test_a_damaged_state_store_is_one_clear_error_from_every_command(work: Path, damage: str, command: str) -> None:
    state = work / ".reconcile" / "state.db"
    DAMAGE[damage](state, "ownership")
    before = fingerprints(work / ".reconcile")
    assert_refused(invoke(*STATE_COMMANDS[command]), "state store .reconcile/state.db is damaged",
                   "Restore it from a backup", "reconcile state check --state .reconcile/state.db")
    assert fingerprints(work / ".reconcile") == before  # nothing changed, the site least of all
    assert not (work / "copy.db").exists() and not (work / "exported").exists()


SITE_COMMANDS = {
    "dry run": ["manifests", "--dry-run"],
    "status": ["status"],
    "site show": ["site", "show"],
    "site settings": ["site", "settings"],
    "vars": ["vars", "effective", "--computer", "LAB-PC-042", "manifests"],
    "export zip": ["export", "--zip", "ts.zip", "--name", "Damage test 0"],
    "backup": ["site", "backup", "copy.db"],
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", SITE_COMMANDS)
def test_a_damaged_embedded_site_is_one_clear_error_from_every_command(work: Path, damage: str, command: str) -> None:
    DAMAGE[damage](work / ".reconcile" / "site.db", "task_sequences")
    before = fingerprints(work / ".reconcile")
    assert_refused(invoke(*SITE_COMMANDS[command]), "embedded site .reconcile/site.db is damaged",
                   "Restore it from a backup", "reconcile site check --site .reconcile/site.db")
    assert fingerprints(work / ".reconcile") == before
    assert not (work / "copy.db").exists() and not (work / "ts.zip").exists()


def test_damage_found_by_a_later_query_is_the_same_clear_error(work: Path) -> None:
    """A store opened intact whose file is damaged afterwards (a controller runs for months)."""
    state = StateStore(work / ".reconcile" / "state.db")
    try:
        scribble_page(state.path, "ownership")
        # Another process commits: the open store drops its page cache and reads the damaged page next time.
        other = sqlite3.connect(state.path, isolation_level=None)
        other.execute("INSERT OR REPLACE INTO status VALUES ('probe', '1', 0)")
        other.close()
        with pytest.raises(StateError, match=r"state store .* is damaged: its pages are damaged"):
            state.owned()
    finally:
        state.close()


def test_a_damaged_state_store_through_the_entry_point_prints_one_line(work: Path) -> None:
    break_header(work / ".reconcile" / "state.db", "")
    result = run_cli("manifests", "--dry-run", cwd=work, env={"NO_COLOR": "1"})  # main(), as `reconcile` runs
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: state store .reconcile/state.db is "
                                                                       "damaged: it is not an SQLite database")
    assert "Traceback" not in result.stdout + result.stderr


# -- lost: deleted or 0 bytes --------------------------------------------------------------------------------------

LOST_COMMANDS = {
    "dry run": ["manifests", "--dry-run"],
    "apply": ["manifests", "--yes"],
    "status": ["status"],
    "history": ["history"],
    "controller": ["controller", "--repo", ".", "--ref", "main", "--once", "--commit-poll", "0"],
}


@pytest.mark.parametrize("how", ["deleted", "0 bytes"])
@pytest.mark.parametrize("command", LOST_COMMANDS)
def test_a_lost_state_store_beside_a_site_with_objects_is_an_error_not_a_new_empty_one(
        work: Path, how: str, command: str) -> None:
    state = work / ".reconcile" / "state.db"
    if how == "deleted":
        state.unlink()
    else:
        state.write_bytes(b"")
    before = fingerprints(work / ".reconcile")
    what = "does not exist" if how == "deleted" else "is empty (0 bytes)"
    assert_refused(invoke(*LOST_COMMANDS[command]), f"state store .reconcile/state.db {what}",
                   "3 task sequence(s), 3 deployment(s), 1 collection(s) with variables",
                   "records which objects this tool owns", "apply history", "secrets", "restore it from a backup",
                   "--new-state", "--adopt")
    assert fingerprints(work / ".reconcile") == before  # not created, not filled
    assert state.exists() == (how == "0 bytes")


def test_new_state_starts_over_and_the_objects_must_be_adopted_again(work: Path) -> None:
    (work / ".reconcile" / "state.db").unlink()
    result = invoke("manifests", "--dry-run", "--new-state")
    assert result.exit_code == 1 and "is not managed by this tool; rerun with --adopt" in result.output
    assert (work / ".reconcile" / "state.db").exists()
    adopted = invoke("manifests", "--yes", "--adopt")
    assert adopted.exit_code == 0, adopted.output
    assert invoke("manifests", "--dry-run", "--detailed-exitcode").exit_code == 0


def test_export_takes_a_site_over_again_without_the_state_store(work: Path) -> None:
    (work / ".reconcile" / "state.db").unlink()
    result = invoke("export", "--out", "exported")
    assert result.exit_code == 0, result.output
    assert "object(s) are now managed" in result.output
    assert invoke("exported", "--dry-run", "--detailed-exitcode").exit_code == 0


def test_commands_that_never_read_the_state_store_work_without_it_and_do_not_create_it(work: Path) -> None:
    state = work / ".reconcile" / "state.db"
    state.unlink()
    for args in (["site", "show"], ["site", "settings"], ["vars", "effective", "--computer", "LAB-PC-042", "manifests"],
                 ["export", "--zip", "ts.zip", "--name", "Damage test 0"]):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
    assert not state.exists()


def test_the_quickstart_needs_no_flag_on_a_new_machine(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "estate.yaml").write_text(yaml.safe_dump_all(estate(), sort_keys=False))
    with contextlib.chdir(tmp_path):
        result = invoke("manifests", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "created the embedded site" in result.output


def test_an_empty_state_store_beside_a_site_with_inventory_only_needs_no_flag(tmp_path: Path) -> None:
    with contextlib.chdir(tmp_path):
        assert invoke("site", "init", "--demo").exit_code == 0
        Path(".reconcile/state.db").write_bytes(b"")
        (tmp_path / "manifests").mkdir()
        (tmp_path / "manifests" / "estate.yaml").write_text(yaml.safe_dump_all(estate(), sort_keys=False))
        assert invoke("manifests", "--dry-run").exit_code == 0


# -- check and backup ------------------------------------------------------------------------------------------------


def test_state_check_reports_integrity_schema_and_what_the_store_holds(work: Path) -> None:
    result = invoke("state", "check")
    assert result.exit_code == 0, result.output
    assert "state store .reconcile/state.db: intact" in result.output
    assert "owned objects: 7 (CollectionVariables 1, TaskSequence 3, TaskSequenceDeployment 3)" in result.output
    assert "journal entries: " in result.output and "unfinished actions (pending): 0" in result.output
    assert "schema version: " in result.output


@pytest.mark.parametrize("damage", DAMAGE)
def test_state_check_says_what_is_wrong_and_exits_1(work: Path, damage: str) -> None:
    state = work / ".reconcile" / "state.db"
    DAMAGE[damage](state, "ownership")
    before = fingerprints(work / ".reconcile")
    result = invoke("state", "check")
    assert result.exit_code == 1 and "state store .reconcile/state.db: DAMAGED" in result.output
    assert "Restore it from a backup" in result.output and "Traceback" not in result.output
    assert fingerprints(work / ".reconcile") == before


@pytest.mark.parametrize("how", ["deleted", "0 bytes"])
def test_state_check_of_a_lost_store_exits_1_and_creates_nothing(work: Path, how: str) -> None:
    state = work / ".reconcile" / "state.db"
    state.unlink() if how == "deleted" else state.write_bytes(b"")
    result = invoke("state", "check")
    assert result.exit_code == 1
    assert ("does not exist" if how == "deleted" else "is empty (0 bytes)") in result.output
    assert state.exists() == (how == "0 bytes")


def test_site_check_reports_what_the_site_holds(work: Path) -> None:
    result = invoke("site", "check")
    assert result.exit_code == 0, result.output
    assert "task sequences: 3" in result.output and "deployments: 3" in result.output
    scribble_page(work / ".reconcile" / "site.db", "task_sequences")
    assert invoke("site", "check").exit_code == 1


def test_a_backup_restores_a_lost_state_store(work: Path) -> None:
    result = invoke("state", "backup", "state-backup.db")
    assert result.exit_code == 0, result.output
    assert not list(work.glob("*.partial")) and not (work / "state-backup.db-wal").exists()
    (work / ".reconcile" / "state.db").unlink()
    assert invoke("manifests", "--dry-run").exit_code == 1
    shutil.copy(work / "state-backup.db", work / ".reconcile" / "state.db")
    assert invoke("manifests", "--dry-run", "--detailed-exitcode").exit_code == 0  # owned again, nothing to do


def test_a_backup_never_overwrites_without_force(work: Path) -> None:
    (work / "taken.db").write_text("keep me")
    result = invoke("state", "backup", "taken.db")
    assert_refused(result, "taken.db already exists; pass --force to overwrite it")
    assert (work / "taken.db").read_text() == "keep me"
    assert invoke("state", "backup", "taken.db", "--force").exit_code == 0
    store = StateStore(work / "taken.db")
    assert len(store.owned()) == 7
    store.close()
    assert invoke("site", "backup", "site-copy.db").exit_code == 0
    assert invoke("site", "check", "--site", "site-copy.db").exit_code == 0


# A writer that commits one ownership row and one journal row per transaction, as fast as it can, until told
# to stop: any backup that is one snapshot holds as many of the one as of the other.
WRITER = """
import sqlite3, sys, time
from pathlib import Path
from reconciler.state import StateError, StateStore
store = StateStore(sys.argv[1])
store.close()
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode=WAL")
stop = Path(sys.argv[2])
n = 0
while not stop.exists():
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO ownership VALUES ('TaskSequence', ?, ?)", (f"w-{n}", f"PSW{n:05d}"))
    db.execute("INSERT INTO journal (plan_id, at, phase, action, object, detail) VALUES "
               "('writer', ?, 'intent', 'Write', ?, ?)", (time.time(), f"TaskSequence/w-{n}", "x" * 2000))
    db.execute("COMMIT")
    n += 1
    if n == 1:
        print("writing", flush=True)
print(n, flush=True)
"""


def test_a_backup_taken_while_another_process_writes_is_one_consistent_snapshot(tmp_path: Path) -> None:
    state, stop = tmp_path / "state.db", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(state), str(stop)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        copies = []
        for i in range(5):
            result = invoke("state", "backup", str(tmp_path / f"copy-{i}.db"), "--state", str(state))
            assert result.exit_code == 0, result.output
            copies.append(tmp_path / f"copy-{i}.db")
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and int(out.strip()) > 0
    counts = []
    for copy in copies:
        db = sqlite3.connect(copy)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        owned = db.execute("SELECT COUNT(*) FROM ownership").fetchone()[0]
        written = db.execute("SELECT COUNT(*) FROM journal WHERE plan_id = 'writer'").fetchone()[0]
        db.close()
        assert owned == written  # never half a transaction
        counts.append(owned)
    assert counts == sorted(counts) and counts[-1] > 0
