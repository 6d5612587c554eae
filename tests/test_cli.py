"""The command line: `python -m reconciler` in its own process once, every other command in-process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import REPO, CliRun, corpus_xml_files, run_cli


def run(*args: str, cwd: Path | None = None) -> CliRun:
    return run_cli(*args, cwd=cwd)


def test_python_m_reconciler_runs_the_command_line(reconcile_cmd: list[str]) -> None:
    result = subprocess.run([*reconcile_cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "validate" in result.stdout and "convert" in result.stdout


def test_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "validate" in result.stdout and "convert" in result.stdout


def test_example_repository_is_valid() -> None:
    result = run("validate", str(REPO / "manifests"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": valid;" in result.stdout


def test_invalid_manifest_exits_1_with_json_findings(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: configmgr.gitops.io/v1alpha1\nkind: TaskSequence\nmetadata: {name: x}\n"
        "spec: {name: X, enabledd: true}\n")
    result = run("validate", str(tmp_path), "--output", "json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)  # only JSON on stdout
    finding = doc["findings"][0]
    assert finding["line"] == 4 and finding["path"] == "spec.enabledd"
    assert "did you mean 'enabled'" in finding["message"]


def test_convert_to_yaml_and_back(tmp_path: Path) -> None:
    source = next(p for p in corpus_xml_files() if "Build_and_Capture" in p.name)
    result = run("convert", str(source), "--name", "build-and-capture")
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / "ts.yaml"
    manifest.write_text(result.stdout)
    assert run("validate", str(manifest)).returncode == 0
    back = run("convert", "--to", "xml", str(manifest))
    assert back.returncode == 0, back.stderr
    from reconciler.tsxml.compare import canonical_sequence

    assert canonical_sequence(back.stdout) == canonical_sequence(source.read_bytes())


def test_convert_refuses_malformed_xml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<sequence version='3.10'><group name='x'>")
    result = run("convert", str(bad))
    assert result.returncode == 1
    assert "malformed XML" in result.stderr and result.stdout == ""


def test_convert_refuses_entity_expansion(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
                    '<sequence version="3.10"><step name="&b;"/></sequence>')
    result = run("convert", str(bomb))
    assert result.returncode == 1 and "refused unsafe XML" in result.stderr


def test_a_plan_of_invalid_manifests_still_tells_json_and_markdown_readers_why(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "bad.yaml").write_text(
        "apiVersion: configmgr.gitops.io/v1alpha1\nkind: TaskSequence\nmetadata: {name: x}\n"
        "spec: {name: X, enabledd: true}\n")
    as_json = run("manifests", "--dry-run", "--output", "json", cwd=tmp_path)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["findings"][0]["path"] == "spec.enabledd"
    as_markdown = run("manifests", "--dry-run", "--output", "markdown", cwd=tmp_path)
    assert as_markdown.returncode == 1
    assert as_markdown.stdout.startswith("<!-- configmgr-ts-reconciler:plan -->")  # replaces the last PR comment
    assert "`manifests/bad.yaml:4:" in as_markdown.stdout and "enabledd" in as_markdown.stdout
    assert "bad.yaml:4" in as_markdown.stderr  # diagnostics stay on stderr


def test_an_in_process_run_leaves_the_test_process_as_it_was(tmp_path: Path) -> None:
    """What run_cli promises every test that calls the CLI in-process: a command's process-wide changes end
    with it (the controller installs signal handlers, main() configures logging and edits sys.argv)."""
    import logging
    import os
    import signal
    import sys

    root = logging.getLogger()
    before = (os.getcwd(), list(sys.argv), list(root.handlers), root.level, dict(os.environ),
              signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    result = run_cli("controller", "--repo", str(tmp_path / "missing"), "--once", "--log-level", "debug",
                     cwd=tmp_path, env={"RECONCILE_TEST_ONLY": "1", "HOME": None})
    assert result.returncode == 1, result  # --once: the tick failed on the missing repository
    assert " DEBUG " in result.stderr and "is not a Git repository" in result.stdout  # --log-level reached main()
    assert (tmp_path / ".reconcile" / "site.db").exists()  # it ran in its folder
    after = (os.getcwd(), list(sys.argv), list(root.handlers), root.level, dict(os.environ),
             signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    assert after == before
