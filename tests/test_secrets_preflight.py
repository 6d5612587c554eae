"""Every secret a plan writes is read before anything is printed or applied, and every missing one is named at once.

The example repository's manifests name six secrets (five environment variables and a file): with none of them
provided, one run lists all six, each with the manifest file:line of the field that names it and what it expects.
"""

from __future__ import annotations

import json
import shutil
from contextlib import closing
from pathlib import Path

import git
import pytest

from reconciler.site import open_site
from reconciler.state import AuditQuery, StateStore
from tests.conftest import REPO, run_cli

SIX = {
    "OSD_LOCAL_ADMIN_PASSWORD": "Local-Admin-1",
    "OSD_DOMAIN_JOIN_PASSWORD": "Join-2",
    "OSD_FIRMWARE_ACCOUNT_PASSWORD": "Firmware-3",
    "OSD_CAPTURE_PASSWORD": "Capture-4",
    "OSD_LAB_PC_042_BITLOCKER_PIN": "424242",
}
FILE_SECRET = "secrets/osd-ref-01-join.txt"
NONE: dict[str, str | None] = {name: None for name in SIX} | {"NO_COLOR": "1", "RECONCILE_ACTOR": "preflight-tester"}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    shutil.rmtree(tmp_path / "manifests" / "secrets", ignore_errors=True)
    assert run_cli("site", "init", "--demo", cwd=tmp_path).returncode == 0
    return tmp_path


def _site_objects(work: Path) -> int:
    with open_site(work / ".reconcile" / "site.db", read_only=True) as site:
        live = site.read()
        return len(live.task_sequences) + len(live.deployments)


def _assert_all_six_listed(text: str, work: Path) -> None:
    assert "6 secret(s) the plan writes cannot be read; nothing was applied" in text, text
    for name in SIX:
        line = next(line for line in text.splitlines() if f"environment variable {name} is not set" in line)
        assert line.lstrip().startswith("manifests/") and ".yaml:" in line and ".valueFrom.env:" in line, line
        assert ", needed by " in line, line
    file_line = next(line for line in text.splitlines() if FILE_SECRET.split("/")[1] in line and "needed by" in line)
    assert "manifests/variables/computers.yaml:22:" in file_line and ".valueFrom.file:" in file_line, file_line
    assert f"expected at {work / 'manifests' / FILE_SECRET}" in file_line, file_line
    assert "one final line break is dropped" in file_line


def test_six_missing_secrets_are_listed_in_one_run_before_anything_is_printed_or_applied(work: Path) -> None:
    before = _site_objects(work)
    result = run_cli("manifests", "--yes", cwd=work, env=NONE)
    assert result.returncode == 1, result
    assert result.stdout == ""  # not even the plan: the run stops before it is printed
    _assert_all_six_listed(result.stderr, work)
    assert "Traceback" not in result.stderr
    assert _site_objects(work) == before
    with closing(StateStore(work / ".reconcile" / "state.db")) as state:
        (refused,) = state.audit_events(AuditQuery(events=("refused",)))
        assert refused.detail["reason"] == "secrets" and refused.actor.startswith("preflight-tester (RECONCILE_ACTOR")
        assert len({m["ref"] for m in refused.detail["missing"]}) == 6
        assert not state.applies()


def test_a_saved_plan_is_refused_the_same_way_before_it_is_printed(work: Path) -> None:
    saved = run_cli("plan", "manifests", "--out", "plan.json", cwd=work, env=NONE)
    assert saved.returncode == 0, saved  # a plan reads no secret
    result = run_cli("apply", "plan.json", "--yes", cwd=work, env=NONE)
    assert result.returncode == 1, result
    assert result.stdout == ""
    _assert_all_six_listed(result.stderr, work)
    assert _site_objects(work) == 0


def test_refresh_secrets_lists_every_secret_it_cannot_read(work: Path) -> None:
    (work / "manifests" / "secrets").mkdir()
    (work / "manifests" / FILE_SECRET).write_text("file-join-5\n")
    applied = run_cli("manifests", "--yes", cwd=work, env={**NONE, **SIX})
    assert applied.returncode == 0, applied
    two_gone = {**NONE, **SIX, "OSD_CAPTURE_PASSWORD": None, "OSD_LAB_PC_042_BITLOCKER_PIN": None}
    result = run_cli("plan", "manifests", "--refresh-secrets", cwd=work, env=two_gone)
    assert result.returncode == 1 and result.stdout == "", result
    assert "2 secret(s) --refresh-secrets reads cannot be read; nothing was planned" in result.stderr
    assert "OSD_CAPTURE_PASSWORD is not set" in result.stderr and "OSD_LAB_PC_042_BITLOCKER_PIN is not set" in \
        result.stderr
    for value in (*SIX.values(), "file-join-5"):
        assert value not in result.stderr


def test_a_controller_tick_lists_every_missing_secret_and_applies_nothing(work: Path) -> None:
    repo = git.Repo.init(work, initial_branch="main")
    repo.config_writer().set_value("user", "name", "t").release()
    repo.config_writer().set_value("user", "email", "t@example.com").release()
    repo.index.add([str(p.relative_to(work)) for p in (work / "manifests").rglob("*") if p.is_file()])
    repo.index.commit("estate")
    result = run_cli("controller", "--repo", str(work), "--ref", "main", "--once", "--commit-poll", "0",
                     "--log-format", "json", cwd=work, env=NONE)
    assert result.returncode == 1, result
    with closing(StateStore(work / ".reconcile" / "state.db")) as state:
        tick = state.get_status("tick")
    assert tick["outcome"] == "failed" and "6 secret(s) the plan writes cannot be read" in tick["error"], tick
    assert all(name in tick["error"] for name in SIX)
    assert _site_objects(work) == 0


def test_a_file_secret_loses_one_final_line_break_and_no_more(work: Path) -> None:
    (work / "manifests" / "secrets").mkdir()
    secret = work / "manifests" / FILE_SECRET
    secret.write_bytes(b"file-join-5\r\n")  # written on Windows: CRLF, dropped whole
    applied = run_cli("manifests", "--yes", "--target", "ComputerVariables/osd-ref-01", cwd=work, env={**NONE, **SIX})
    assert applied.returncode == 0, applied
    with open_site(work / ".reconcile" / "site.db", read_only=True) as site:
        (computer,) = site.read().computers_by_name("OSD-REF-01")
        assert site.holds_secret(computer.resource_id, "OSDJoinPassword", "file-join-5")
    secret.write_bytes(b"file-join-6\n\n")  # a second line break is a second (empty) line: refused
    again = run_cli("manifests", "--yes", "--refresh-secrets", "--target", "ComputerVariables/osd-ref-01", cwd=work,
                    env={**NONE, **SIX})
    assert again.returncode == 1 and "holds a line break (U+000A)" in again.stderr, again
    assert json.dumps("file-join-6") not in again.stderr + again.stdout
