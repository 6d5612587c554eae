"""scope: in reconcile.yaml: what the manifests of a repository may touch; anything outside is blocked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.plan.scope import folder_allowed
from tests.conftest import REPO, CliRun, run_cli

SECRETS = {"OSD_LOCAL_ADMIN_PASSWORD": "x", "OSD_DOMAIN_JOIN_PASSWORD": "x", "OSD_FIRMWARE_ACCOUNT_PASSWORD": "x",
           "OSD_CAPTURE_PASSWORD": "x", "OSD_LAB_PC_042_BITLOCKER_PIN": "1234"}


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """The example manifests in a fresh folder, with the embedded demo site created beside them."""
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    (tmp_path / "manifests" / "secrets").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("secret\n")
    assert run_cli("site", "init", "--demo", cwd=tmp_path).returncode == 0
    return tmp_path


def reconcile(estate: Path, *args: str) -> CliRun:
    return run_cli(*args, cwd=estate, env=SECRETS)


def write_scope(estate: Path, text: str) -> Path:
    path = estate / "manifests" / "reconcile.yaml"
    path.write_text(text)
    return path


def test_without_scope_the_plan_and_site_check_say_everything_is_allowed(estate: Path) -> None:
    text = reconcile(estate, "plan")
    assert text.returncode == 0, text
    assert "Scope: no scope in reconcile.yaml" in text.stdout
    document = json.loads(reconcile(estate, "plan", "-o", "json").stdout)
    assert document["format_version"] == "1.3"
    assert document["scope"]["restricted"] is False and document["scope"]["collections"] is None
    assert "Scope: no scope in reconcile.yaml" in reconcile(estate, "plan", "-o", "markdown").stdout
    check = reconcile(estate, "site", "check")
    assert "scope: no scope in reconcile.yaml" in check.stdout, check
    checked = json.loads(reconcile(estate, "site", "check", "-o", "json").stdout)
    assert checked["scope"]["restricted"] is False


def test_a_deployment_to_a_collection_outside_the_scope_is_blocked_with_file_line_and_rule(estate: Path) -> None:
    config = write_scope(estate, "# OSD team\nscope:\n  collections: [OSD Pilot, {name: osd lab}, OSD Build and "
                                 "Capture]\n")
    result = reconcile(estate, "plan", "-o", "json")
    assert result.returncode == 1, result
    document = json.loads(result.stdout)
    blocked = {(b["kind"], b["name"]): b for b in document["blocked"]}
    production = blocked[("TaskSequenceDeployment", "windows-11-install-production")]
    assert production["rule"] == "scope-collections" and production["path"] == "spec.collection"
    assert production["file"].endswith("deployments/windows-11-install.yaml") and production["line"] == 33
    assert "manifests/reconcile.yaml:3: scope.collections" in production["message"]
    assert "'OSD Production Workstations'" in production["message"]
    assert ("TaskSequenceDeployment", "windows-11-upgrade-ring-1") in blocked
    # Names compare without case, as the console's do; allowed collections are not blocked.
    assert not [b for b in document["blocked"] if "OSD Lab" in b["message"] or "'OSD Pilot'" in b["message"]]
    assert document["scope"] == {"restricted": True, "file": str(config.relative_to(estate)), "folders": None,
                                 "collections": ["OSD Pilot", "osd lab", "OSD Build and Capture"],
                                 "distribution_points": None, "distribution_point_groups": None}
    # Nothing is applied while anything is outside the scope.
    applied = reconcile(estate, "--yes")
    assert applied.returncode == 1 and "nothing was applied" in applied.stderr, applied
    assert "deployments" not in reconcile(estate, "site", "show", "-o", "json").stdout.split('"deployments"')[1][:5]
    text = reconcile(estate, "plan").stdout
    assert "Scope: " in text and "collections OSD Pilot, osd lab, OSD Build and Capture" in text
    assert "windows-11-install.yaml:33" in text and "spec.collection" in text


def test_collections_in_scope_by_id_and_collection_variables_are_checked_too(estate: Path) -> None:
    show = json.loads(reconcile(estate, "site", "show", "-o", "json").stdout)
    pilot = next(c["id"] for c in show["collections"] if c["name"] == "OSD Pilot")
    write_scope(estate, f"scope:\n  collections: [{{id: {pilot}}}]\n")
    document = json.loads(reconcile(estate, "plan", "-o", "json").stdout)
    names = {(b["kind"], b["name"]) for b in document["blocked"] if b["rule"] == "scope-collections"}
    assert ("CollectionVariables", "osd-production-workstations") in names
    assert ("CollectionVariables", "osd-pilot") not in names
    assert ("TaskSequenceDeployment", "windows-11-install-pilot") not in names


def test_folders_allow_their_subfolders_and_block_the_rest(estate: Path) -> None:
    write_scope(estate, "scope:\n  folders: [osd\\production, OSD/Modules, OSD/Tools]\n")
    document = json.loads(reconcile(estate, "plan", "-o", "json").stdout)
    blocked = {b["name"]: b for b in document["blocked"] if b["rule"] == "scope-folders"}
    assert set(blocked) == {"windows-11-vhd", "windows-build-and-capture"}
    assert blocked["windows-11-vhd"]["path"] == "spec.folder" and blocked["windows-11-vhd"]["line"] == 12
    assert folder_allowed("OSD/Production/Pilot", ("OSD/Production",))
    assert not folder_allowed("OSD/ProductionOld", ("OSD/Production",))
    assert not folder_allowed(None, ("OSD",)) and folder_allowed(None, ("/",))


def test_content_may_go_only_to_the_dps_and_groups_in_scope(estate: Path) -> None:
    write_scope(estate, "scope:\n  distributionPointGroups: [HQ DPs]\n  distributionPoints: []\n")
    document = json.loads(reconcile(estate, "plan", "-o", "json").stdout)
    blocked = {(b["name"], b["path"]) for b in document["blocked"] if b["rule"].startswith("scope-")}
    # All DPs holds the branch DP; Branch DPs is not listed; DP01 and DP02 are members of HQ DPs.
    assert ("windows-11-install-content", "spec.distributionPointGroups[0]") in blocked
    assert ("user-state-migration-content", "spec.distributionPointGroups[1]") in blocked
    assert ("user-state-migration-content", "spec.distributionPointGroups[0]") not in blocked
    assert not any(name == "windows-11-upgrade-content" for name, _ in blocked)


def test_a_scope_entry_that_is_not_a_list_of_names_is_one_error_naming_file_and_line(estate: Path) -> None:
    config = write_scope(estate, "scope:\n  collections:\n    - {name: OSD Pilot, id: PS100001}\n")
    result = reconcile(estate, "plan")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {config.relative_to(estate)}:3: scope.collections[0]: "), result
    assert "Traceback" not in result.stderr
