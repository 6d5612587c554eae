"""Console changes on the embedded site: each shows in the next plan as drift, and applying reverts it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, CliRun, run_cli
from tests.test_scope import SECRETS


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example manifests applied to a demo site, once for the module (each test copies it)."""
    root = tmp_path_factory.mktemp("applied")
    shutil.copytree(REPO / "manifests", root / "manifests")
    (root / "manifests" / "secrets").mkdir(exist_ok=True)
    (root / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("secret\n")
    result = run_cli("--yes", cwd=root, env=SECRETS)
    assert result.returncode == 0, result
    return root


@pytest.fixture
def estate(applied: Path, tmp_path: Path) -> Path:
    shutil.copytree(applied, tmp_path / "estate", symlinks=True)
    return tmp_path / "estate"


def reconcile(estate: Path, *args: str) -> CliRun:
    return run_cli(*args, cwd=estate, env=SECRETS)


def drift(estate: Path) -> dict[str, dict]:
    document = json.loads(reconcile(estate, "plan", "-o", "json").stdout)
    return {f"{a['kind']}/{a['name']}": a for a in document["actions"]}


def reverted(estate: Path) -> None:
    assert reconcile(estate, "--yes").returncode == 0
    assert drift(estate) == {}


def site_ids(estate: Path) -> dict:
    return json.loads(reconcile(estate, "site", "show", "-o", "json").stdout)


def test_disabling_a_task_sequence_in_the_console_is_drift_that_apply_reverts(estate: Path) -> None:
    made = reconcile(estate, "site", "disable", "Windows 11 23H2 - Install")
    assert made.returncode == 0 and "disabled task sequence 'Windows 11 23H2 - Install'" in made.stdout, made
    actions = drift(estate)
    action = actions["TaskSequence/windows-11-install"]
    assert action["verb"] == "EnableTaskSequence" and action["reason"] == "drift"
    reverted(estate)


def test_editing_a_task_sequence_its_description_and_a_step_command_line_is_drift(estate: Path) -> None:
    made = reconcile(estate, "site", "edit-ts", "Windows 11 23H2 - Install", "--description", "hand edit",
                     "--step", "Copy OSD tools", "--command-line", "xcopy . C:\\Temp /e")
    assert made.returncode == 0, made
    action = drift(estate)["TaskSequence/windows-11-install"]
    assert action["reason"] == "drift"
    paths = {c["path"] for c in action["changes"]} | {f["path"] for s in action["step_changes"] for f in s["fields"]}
    assert "description" in paths and "settings.commandLine" in paths, action
    text = reconcile(estate, "plan").stdout
    assert 'xcopy . C:\\\\Temp /e' in text or "xcopy . C:\\Temp /e" in text
    reverted(estate)


def test_renaming_a_task_sequence_in_the_console_is_drift(estate: Path) -> None:
    assert reconcile(estate, "site", "edit-ts", "Windows 11 23H2 - Install", "--name", "Renamed").returncode == 0
    action = drift(estate)["TaskSequence/windows-11-install"]
    assert action["reason"] == "drift" and any(c["path"] == "name" for c in action["changes"])
    reverted(estate)


def test_changing_a_deployment_schedule_in_the_console_is_drift(estate: Path) -> None:
    show = site_ids(estate)
    pilot = next(d["id"] for d in show["deployments"] if d["name"].endswith("_OSD Pilot"))
    made = reconcile(estate, "site", "edit-deployment", pilot, "--at", "2026-12-06T20:00", "--weekly", "sunday")
    assert made.returncode == 0 and "weekly on Sunday" in made.stdout, made
    action = drift(estate)["TaskSequenceDeployment/windows-11-install-pilot"]
    assert action["reason"] == "drift" and any(c["path"].startswith("schedule") for c in action["changes"])
    assert "weekly on Sunday" in reconcile(estate, "plan").stdout
    reverted(estate)


def test_a_hand_added_collection_variable_is_drift_and_the_plan_says_the_manifest_owns_the_set(estate: Path) -> None:
    made = reconcile(estate, "site", "set-variable", "OSD Pilot", "OSDHandAdded", "yes")
    assert made.returncode == 0 and "added variable OSDHandAdded" in made.stdout, made
    action = drift(estate)["CollectionVariables/osd-pilot"]
    assert action["reason"] == "drift"
    text = reconcile(estate, "plan").stdout
    assert "OSDHandAdded" in text and "owns the collection's whole variable set" in text, text
    # Changing a managed variable's value is drift too; the masked one is kept untouched by the edit.
    assert reconcile(estate, "site", "set-variable", "OSD Pilot", "OSDRing", "canary").returncode == 0
    assert "OSDRing" in reconcile(estate, "plan").stdout
    reverted(estate)


def test_failing_a_dps_content_is_drift_that_apply_redistributes_and_heal_ends_it(estate: Path) -> None:
    made = reconcile(estate, "site", "fail-content", "OSD Tools", "dp01.corp.contoso.com")
    assert made.returncode == 0 and "failed" in made.stdout, made
    actions = drift(estate)
    assert any(a["verb"] == "RedistributeContent" for a in actions.values()), actions
    assert reconcile(estate, "site", "heal-content", "OSD Tools", "DP01.corp.contoso.com").returncode == 0
    assert drift(estate) == {}


def test_console_changes_name_what_is_missing_in_one_line(estate: Path) -> None:
    missing = reconcile(estate, "site", "disable", "No such sequence")
    assert missing.returncode == 1 and missing.stderr.startswith("error: site PS1 has no task sequence"), missing
    assert "Traceback" not in missing.stderr
    wrong = reconcile(estate, "site", "edit-ts", "Windows 11 23H2 - Install", "--step", "Record build date",
                      "--command-line", "x")
    assert wrong.returncode == 1 and "only Run Command Line steps" in wrong.stderr, wrong
