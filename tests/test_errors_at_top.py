"""No traceback reaches a person: errors the tool raises are one ``error:`` line (exit 1); a bug is one line
naming the file that holds its trace (exit 70).

A bug is made by replacing a renderer or the validator with one that raises, the only way to have a bug on
purpose; everything else (the site, the state store, click) is real.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import reconciler.cli.manifests
import reconciler.render.site
from reconciler.cli import cli
from reconciler.state import MIGRATIONS

INTERNAL = re.compile(r"^error: internal error \(KeyError\): 'boom \(no such key\)'; the full trace is in (\S+)$")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"})  # standalone mode, as `reconcile` runs


def _boom(*args: object, **kwargs: object) -> None:
    raise KeyError("boom (no such key)")


def assert_one_internal_line(result: Result) -> Path:
    assert result.exit_code == 70, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith("created the embedded site")]
    assert len(lines) == 1, result.stderr
    match = INTERNAL.match(lines[-1])
    assert match, lines[-1]
    trace = Path(match.group(1))
    text = trace.read_text()
    assert text.startswith("reconcile ") and "Traceback (most recent call last)" in text
    assert "KeyError: 'boom (no such key)'" in text and "_boom" in text
    assert stat.S_IMODE(trace.stat().st_mode) == 0o600  # the trace is its owner's only
    return trace


def test_a_bug_in_a_command_is_one_line_and_the_trace_goes_to_the_workspace_logs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconciler.render.site, "render", _boom)
    with contextlib.chdir(tmp_path):
        result = invoke("site", "show")  # creates .reconcile/site.db on first use, then fails to render
        trace = assert_one_internal_line(result)
    assert trace.parent.resolve() == (tmp_path / ".reconcile" / "logs").resolve()


def test_without_a_workspace_the_trace_goes_to_the_system_temp_folder(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(reconciler.cli.manifests, "validate", _boom)
    (tmp_path / "manifests").mkdir()
    with contextlib.chdir(tmp_path):
        trace = assert_one_internal_line(invoke("validate", "manifests"))
    assert trace.parent.resolve() == temp.resolve() and not (tmp_path / ".reconcile").exists()


def test_a_trace_that_cannot_be_written_follows_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no" / "such" / "folder"))
    (tmp_path / "no").write_text("a file where a folder should be")
    monkeypatch.setattr(reconciler.cli.manifests, "validate", _boom)
    (tmp_path / "manifests").mkdir()
    with contextlib.chdir(tmp_path):
        result = invoke("validate", "manifests")
    assert result.exit_code == 70
    assert result.stderr.startswith("error: internal error (KeyError): 'boom (no such key)'; the trace could not be "
                                    "written to a file")
    assert "Traceback (most recent call last)" in result.stderr


def test_a_long_message_of_a_bug_is_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise ValueError("x" * 10_000 + "\nsecond line")

    monkeypatch.setattr(reconciler.cli.manifests, "validate", boom)
    (tmp_path / "manifests").mkdir()
    (tmp_path / ".reconcile").mkdir()
    with contextlib.chdir(tmp_path):
        result = invoke("validate", "manifests")
    assert result.exit_code == 70 and len(result.stderr.splitlines()) == 1
    assert "… (10,012 characters)" in result.stderr and len(result.stderr) < 400 + len(str(tmp_path))


STATE_COMMANDS = {
    "dry run": ["--dry-run"],
    "status": ["status"],
    "history": ["history"],
    "unlock": ["unlock", "0123456789ab", "--yes"],
    "export": ["export", "--out", "exported"],
}


@pytest.fixture(scope="module")
def newer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo site and a state store written by a newer version of the tool (schema 99)."""
    root = tmp_path_factory.mktemp("newer")
    (root / "manifests").mkdir()
    with contextlib.chdir(root):
        assert invoke("--dry-run").exit_code == 0
        assert invoke("status").exit_code == 0  # the state store exists
    db = sqlite3.connect(root / ".reconcile" / "state.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    return root


@pytest.mark.parametrize("command", STATE_COMMANDS)
def test_a_newer_state_store_is_one_error_line_from_every_command(newer: Path, command: str) -> None:
    with contextlib.chdir(newer):
        result = invoke(*STATE_COMMANDS[command])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"error: .reconcile/state.db has state schema version 99; this tool knows up to {len(MIGRATIONS)}: upgrade the "
        "tool"]


def test_a_site_that_does_not_exist_is_an_error_line_not_a_usage_error(tmp_path: Path) -> None:
    """Exit 1, never click's 2, which --detailed-exitcode reads as "changes present"."""
    (tmp_path / "manifests").mkdir()
    with contextlib.chdir(tmp_path):
        result = invoke("--dry-run", "--site", "missing.db", "--detailed-exitcode")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: site missing.db does not exist; create it with 'reconcile site init --site missing.db'"]


BUGGY_MAIN = """
import reconciler.cli, reconciler.render.site
def boom(*args, **kwargs):
    raise KeyError("boom (no such key)")
reconciler.render.site.render = boom
reconciler.cli.main()
"""


def test_a_bug_in_a_real_process_prints_one_line_and_exits_70(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", BUGGY_MAIN, "site", "show"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 70, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("created the embedded site")]
    assert len(lines) == 1 and INTERNAL.match(lines[0]), result.stderr
    trace = Path(INTERNAL.match(lines[0]).group(1))  # type: ignore[union-attr]
    assert trace.parent.resolve() == (tmp_path / ".reconcile" / "logs").resolve() and "KeyError" in trace.read_text()
