"""`reconcile` end to end: real SQLite site, real files; the CLI runs in-process, and the README quickstart's
apply once through the installed `reconcile` console script in its own process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import ContentState, TaskSequenceRecord
from reconciler.state import StateStore
from tests.conftest import REPO, CliRun, run_cli

ESTATE = REPO / "tests" / "data" / "estate"
SECRETS = {"OSD_TEST_LOCAL_ADMIN_PASSWORD": "env-secret-value-789"}
PLAN_SCHEMA = json.loads((REPO / "crds" / "plan.schema.json").read_text())


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copytree(ESTATE, tmp_path / "manifests")
    return tmp_path


def reconcile(work: Path, *args: str, env: dict[str, str] | None = None) -> CliRun:
    return run_cli(*args, cwd=work, env={**SECRETS, **(env or {}), "NO_COLOR": "1"})


def plan_json(work: Path, *args: str) -> dict:
    result = reconcile(work, "manifests", "--dry-run", "--output", "json", *args)
    assert result.returncode in (0, 1, 2), result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, PLAN_SCHEMA)
    assert (result.returncode == 1) == bool(document["blocked"])
    return document


def test_first_apply_creates_everything_then_nothing_is_left(work: Path) -> None:
    first = reconcile(work, "manifests", "--dry-run", "--detailed-exitcode")
    assert first.returncode == 2, first.stdout + first.stderr
    assert "created the embedded site" in first.stderr
    assert "Plan: 6 to create, 0 to modify, 4 to distribute, 0 to redistribute, 0 to delete." in first.stdout
    creations = [line for line in first.stdout.splitlines() if line.startswith("  + ")]
    assert len(creations) == 6 + 4 and not [line for line in first.stdout.splitlines() if line.startswith("  ~ ")]
    applied = reconcile(work, "manifests", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "0 failed, 0 skipped" in applied.stdout
    again = reconcile(work, "manifests", "--dry-run", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout
    assert "No changes" in again.stdout
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        live = site.read()
    names = sorted(t.name for t in live.task_sequences.values())
    assert names == ["Module - BIOS settings", "Windows 11 - Install"]
    assert len(live.deployments) == 2


def test_apply_refuses_without_a_terminal_or_yes(work: Path) -> None:
    result = reconcile(work, "manifests")
    assert result.returncode == 1
    assert "pass --yes" in result.stderr
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        assert not site.read().task_sequences


def test_editing_a_manifest_yields_exactly_that_modify(work: Path) -> None:
    assert reconcile(work, "manifests", "--yes").returncode == 0
    path = work / "manifests" / "task-sequences.yaml"
    path.write_text(path.read_text().replace("xcopy . C:\\Tools /e", "xcopy . D:\\Tools /e"))
    plan = plan_json(work)
    assert [(a["verb"], a["name"], a["reason"]) for a in plan["actions"]] == [
        ("UpdateTaskSequence", "win11-install", "changed")]
    assert plan["actions"][0]["changes"] == []  # no property changed: one step did
    [step] = plan["actions"][0]["step_changes"]
    assert step["op"] == "changed" and step["path"] == ["Install Operating System", "Copy tools"], step
    [change] = step["fields"]
    assert change["path"] == "settings.commandLine"
    assert change["before"] == "xcopy . C:\\Tools /e" and change["after"] == "xcopy . D:\\Tools /e"
    assert reconcile(work, "manifests", "--yes").returncode == 0
    assert plan_json(work)["actions"] == []


def test_a_console_edit_is_drift_and_is_reverted(work: Path) -> None:
    assert reconcile(work, "manifests", "--yes").returncode == 0
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        state = StateStore(work / ".reconcile" / "state.db")
        ts_id = state.owned()[("TaskSequence", "win11-install")]
        state.close()
        from dataclasses import replace

        live = site.get_task_sequence(ts_id)
        assert live is not None
        site.update_task_sequence(ts_id, replace(live, description="edited in the console"))
    plan = plan_json(work)
    assert [(a["verb"], a["reason"]) for a in plan["actions"]] == [("UpdateTaskSequence", "drift")]
    assert plan["actions"][0]["changes"][0] == {"path": "description", "before": "edited in the console",
                                                "after": "", "sensitive": False}
    assert reconcile(work, "manifests", "--yes").returncode == 0
    assert plan_json(work)["actions"] == []


def test_failed_content_is_redistributed(work: Path) -> None:
    assert reconcile(work, "manifests", "--yes").returncode == 0
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        image = next(p.id for p in site.read().packages.values() if p.name == "Windows 11 23H2 x64")
        site.set_content_state(image, "DP02.corp.contoso.com", ContentState.INSTALL_FAILED)
        tools = next(p.id for p in site.read().packages.values() if p.name == "OSD Tools")
        site.update_package_source(tools)
    plan = plan_json(work)
    verbs = sorted((a["verb"], a["live_id"]) for a in plan["actions"])
    assert verbs == sorted([("RedistributeContent", image), ("RedistributeContent", tools)])
    assert plan["summary"]["redistribute"] == 2
    text = reconcile(work, "manifests", "--dry-run").stdout
    assert "⇅ ContentDistribution/win11-install-content" in text
    assert reconcile(work, "manifests", "--yes").returncode == 0
    assert plan_json(work)["actions"] == []


def test_enabling_a_disabled_sequence_is_an_enable_action(work: Path) -> None:
    create = next(a for a in plan_json(work)["actions"] if a["name"] == "bios-settings")
    assert {"path": "enabled", "before": None, "after": False} in [
        {k: c[k] for k in ("path", "before", "after")} for c in create["changes"]]  # created disabled, and says so
    assert reconcile(work, "manifests", "--yes").returncode == 0
    path = work / "manifests" / "task-sequences.yaml"
    path.write_text(path.read_text().replace("  enabled: false\n", "  enabled: true\n"))
    plan = plan_json(work)
    assert [(a["verb"], a["name"]) for a in plan["actions"]] == [("EnableTaskSequence", "bios-settings")]
    assert reconcile(work, "manifests", "--yes").returncode == 0
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        assert all(t.enabled for t in site.read().task_sequences.values())


def test_missing_collection_is_blocked_with_file_and_line(work: Path) -> None:
    path = work / "manifests" / "deployments.yaml"
    path.write_text(path.read_text().replace("{name: OSD Lab}", "{name: OSD Lab 2}"))
    result = reconcile(work, "manifests", "--yes")
    assert result.returncode == 1
    assert "deployments.yaml:19:3" in result.stdout and "no collection named 'OSD Lab 2'" in result.stdout
    assert "nothing was applied" in result.stderr
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        assert not site.read().task_sequences
    plan = plan_json(work)
    assert plan["blocked"][0]["line"] == 19 and plan["blocked"][0]["path"] == "spec.collection"


def test_secrets_never_reach_any_output(work: Path) -> None:
    outputs = [reconcile(work, "manifests", "--dry-run", "--output", fmt) for fmt in ("text", "json", "markdown")]
    outputs.append(reconcile(work, "manifests", "--yes", "--output", "json"))
    outputs.append(reconcile(work, "site", "show"))
    outputs.append(reconcile(work, "site", "show", "--output", "json"))
    blobs = [o.stdout + o.stderr for o in outputs]
    blobs += [p.read_bytes().decode("latin-1") for p in (work / ".reconcile").iterdir() if p.name.startswith("state")]
    for secret in (*SECRETS.values(), "file-secret-value-123"):
        for blob in blobs:
            assert secret not in blob
    assert "(sensitive)" in outputs[0].stdout


def test_orphans_are_kept_unless_pruned(work: Path) -> None:
    assert reconcile(work, "manifests", "--yes").returncode == 0
    path = work / "manifests" / "deployments.yaml"
    path.write_text(path.read_text().split("---")[0])
    plan = plan_json(work)
    assert plan["actions"] == []
    assert plan["orphans"] == [{"kind": "TaskSequenceDeployment", "name": "bios-settings-lab"}]
    guarded = plan_json(work, "--prune")
    blocked = guarded["blocked"][0]
    assert blocked["rule"] == "max-delete" and "--max-delete 15 or higher" in blocked["message"]
    pruned = plan_json(work, "--prune", "--max-delete", "20")
    assert [(a["verb"], a["reason"]) for a in pruned["actions"]] == [("DeleteDeployment", "orphan")]
    assert reconcile(work, "manifests", "--yes", "--prune", "--max-delete", "20").returncode == 0
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        assert len(site.read().deployments) == 1


def test_unmanaged_objects_need_adopt(work: Path) -> None:
    reconcile(work, "site", "init", "--demo")
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        site.create_task_sequence(TaskSequenceRecord(id=None, name="Module - BIOS settings",
                                                     sequence='<sequence version="3.10" />'))
    # No state store beside a site with objects: lost, or a first run; --new-state says which.
    refused = reconcile(work, "manifests", "--dry-run")
    assert refused.returncode == 1 and "--new-state" in refused.stderr
    blocked = {b["name"]: b for b in plan_json(work, "--new-state")["blocked"]}
    assert blocked["bios-settings"]["rule"] == "unowned" and "--adopt" in blocked["bios-settings"]["message"]
    assert blocked["bios-settings-lab"]["rule"] == "dependency"
    adopted = plan_json(work, "--adopt")
    assert ("Adopt", "bios-settings") in [(a["verb"], a["name"]) for a in adopted["actions"]]
    assert reconcile(work, "manifests", "--yes", "--adopt").returncode == 0
    with EmbeddedSite(work / ".reconcile" / "site.db") as site:
        assert len([t for t in site.read().task_sequences.values() if t.name == "Module - BIOS settings"]) == 1
    assert plan_json(work)["actions"] == []


def test_target_limits_the_plan(work: Path) -> None:
    plan = plan_json(work, "--target", "TaskSequence/bios-settings")
    assert {(a["kind"], a["name"]) for a in plan["actions"]} == {("TaskSequence", "bios-settings")}
    assert plan_json(work, "--target", "tasksequence/bios-settings")["actions"] == plan["actions"]


def test_a_target_that_matches_nothing_is_an_error(work: Path) -> None:
    result = reconcile(work, "manifests", "--dry-run", "--target", "TaskSequence/bios-setings")
    assert result.returncode == 1 and "matches no manifest" in result.stderr
    assert "did you mean 'TaskSequence/bios-settings'" in result.stderr


def test_a_targeted_deployment_waits_for_its_untargeted_new_sequence(work: Path) -> None:
    plan = plan_json(work, "--target", "TaskSequenceDeployment/bios-settings-lab")
    assert plan["actions"] == []
    (blocked,) = plan["blocked"]
    assert blocked["rule"] == "dependency" and "add --target TaskSequence/bios-settings" in blocked["message"]


def test_markdown_plan_has_marker_and_summary(work: Path) -> None:
    result = reconcile(work, "manifests", "--dry-run", "--output", "markdown")
    assert result.stdout.startswith("<!-- configmgr-ts-reconciler:plan -->")
    assert "| create | modify |" in result.stdout and "<details>" in result.stdout


EXAMPLE_SECRETS = {"OSD_LOCAL_ADMIN_PASSWORD": "example-admin-secret", "OSD_LAB_PC_042_BITLOCKER_PIN": "918273",
                   "OSD_DOMAIN_JOIN_PASSWORD": "example-join-secret", "OSD_FIRMWARE_ACCOUNT_PASSWORD": "fw-secret-1",
                   "OSD_CAPTURE_PASSWORD": "capture-secret-2"}


def test_the_example_repository_applies_and_converges(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    (tmp_path / "manifests" / "secrets").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("example-file-secret\n")
    first = reconcile(tmp_path, "--dry-run", "--detailed-exitcode")  # the README quickstart's main job
    assert first.returncode == 2, first.stdout + first.stderr
    # The installed console script, in its own process: what a person types after reading the README.
    script = shutil.which("reconcile", path=str(Path(sys.executable).parent)) or shutil.which("reconcile")
    assert script, "the reconcile console script is installed beside the interpreter"
    applied = subprocess.run([script, "--yes"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env={**os.environ, **SECRETS, **EXAMPLE_SECRETS, "NO_COLOR": "1"},
                             stdin=subprocess.DEVNULL)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = reconcile(tmp_path, "--dry-run", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        live = site.read()
    assert len(live.task_sequences) == 6 and len(live.deployments) == 6
    assert {t.ts_type for t in live.task_sequences.values()} == {
        "InstallOperatingSystem", "UpgradeOperatingSystem", "CaptureOperatingSystem", "CaptureRestoreUserState",
        "VirtualHardDisk", "Custom"}
    shown = reconcile(tmp_path, "site", "show").stdout
    for secret in (*EXAMPLE_SECRETS.values(), "example-file-secret"):
        assert secret not in applied.stdout + applied.stderr + shown
