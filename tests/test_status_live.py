"""`reconcile status` without a recent controller tick plans against the site and shows each object's real state."""

from __future__ import annotations

import json
import shutil
import time
from contextlib import closing
from pathlib import Path

import pytest

from reconciler.state import AuditEvent, StateStore
from reconciler.status import freshness
from tests.conftest import REPO, run_cli

SECRETS = {"OSD_LOCAL_ADMIN_PASSWORD": "Local-Admin-1", "OSD_DOMAIN_JOIN_PASSWORD": "Join-2",
           "OSD_FIRMWARE_ACCOUNT_PASSWORD": "Firmware-3", "OSD_CAPTURE_PASSWORD": "Capture-4",
           "OSD_LAB_PC_042_BITLOCKER_PIN": "424242", "NO_COLOR": "1"}
BIOS = "TaskSequence/module-bios-settings"


@pytest.fixture
def applied(tmp_path: Path) -> Path:
    """The example estate applied once from a folder by a one-shot apply; no controller ever ran."""
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    (tmp_path / "manifests" / "secrets").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("file-join\n")
    assert run_cli("site", "init", "--demo", cwd=tmp_path).returncode == 0
    result = run_cli("manifests", "--yes", cwd=tmp_path, env=SECRETS)
    assert result.returncode == 0, result
    return tmp_path


def status(work: Path, *args: str) -> dict:
    result = run_cli("status", "--output", "json", *args, cwd=work, env={"NO_COLOR": "1"})
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def store(work: Path) -> closing[StateStore]:
    return closing(StateStore(work / ".reconcile" / "state.db"))


def test_after_a_cli_apply_status_plans_live_and_sees_a_hand_change(applied: Path) -> None:
    first = status(applied)
    assert first["mode"] == "live" and first["objects"] and set(first["objects"].values()) == {"synced"}, first
    assert first["source"]["folder"] == str(applied / "manifests") and "last apply" in first["source"]["why"]
    assert first["why"] == "no controller has checked the site" and first["cached_age_seconds"] is None
    changed = run_cli("site", "disable", "Module - BIOS settings", cwd=applied)
    assert changed.returncode == 0, changed
    after = status(applied)
    assert after["objects"][BIOS] == "drifted"
    assert after["summary"]["drifted"] == 1
    text = run_cli("status", cwd=applied, env={"NO_COLOR": "1"}).stdout
    assert text.startswith("last tick: never\n")
    assert "objects: planned now against the site with " in text and "read-only, no lease" in text
    assert f"  drifted      {BIOS}\n" in text and "last applied: " in text and "(apply ap-" in text


def test_a_recent_controller_tick_is_shown_with_its_age_and_an_old_one_is_not_trusted(applied: Path) -> None:
    run_cli("site", "disable", "Module - BIOS settings", cwd=applied)
    with store(applied) as state:  # what a controller (interval 60 s) recorded just now: all synced
        now = time.time()
        state.put_status("controller", {"started_at": now - 5, "interval": 60, "holder": "h:1"})
        state.put_status("checked", {"at": now, "sha": None, "outcome": "ok"})
        state.put_status("objects", {BIOS: "synced"})
    cached = status(applied)
    assert cached["mode"] == "cached" and cached["objects"] == {BIOS: "synced"}
    assert 0 <= cached["cached_age_seconds"] < 60
    assert status(applied, "--live")["objects"][BIOS] == "drifted"
    with store(applied) as state:  # the same view, older than the one-shot apply made before it
        state.put_status("checked", {"at": time.time() - 3600, "sha": None, "outcome": "ok"})
    stale = status(applied)
    assert stale["mode"] == "live" and stale["objects"][BIOS] == "drifted"
    assert "came after the controller's last check" in stale["why"] and stale["cached_age_seconds"] >= 3600
    text = run_cli("status", cwd=applied, env={"NO_COLOR": "1"}).stdout
    assert "the controller's cached state is 60 min old" in text


def test_a_controller_check_older_than_twice_its_interval_or_ten_minutes_is_stale(tmp_path: Path) -> None:
    with closing(StateStore(tmp_path / "state.db")) as state:
        now = time.time()
        assert not freshness(state, now).fresh  # never checked
        state.put_status("checked", {"at": now - 100, "outcome": "ok"})
        state.put_status("controller", {"started_at": now - 200, "interval": 60})
        assert freshness(state, now - 100 + 119).fresh
        old = freshness(state, now + 30)
        assert not old.fresh and "older than twice the controller's 60 s interval" in old.reason
        state.put_status("controller", {"started_at": now - 200})  # interval unknown: 10 minutes
        assert freshness(state, now).fresh and not freshness(state, now - 100 + 601).fresh
        state.put_status("controller", {"started_at": now - 200, "interval": 60, "stopped_at": now - 50})
        stopped = freshness(state, now - 90)
        assert not stopped.fresh and "the controller stopped at" in stopped.reason


def test_an_object_whose_last_action_failed_is_failed_and_a_broken_reference_is_blocked(applied: Path) -> None:
    run_cli("site", "disable", "Module - BIOS settings", cwd=applied)
    with store(applied) as state:
        state.record_audit([AuditEvent(at=time.time(), event="action", actor="t", apply_id="ap-0000000000",
                                       object=BIOS, outcome="failed", detail={"verb": "EnableTaskSequence"})])
    assert status(applied)["objects"][BIOS] == "failed"
    deployments = applied / "manifests" / "deployments" / "lab.yaml"
    deployments.write_text(deployments.read_text().replace("OSD Lab", "No Such Collection"))
    objects = status(applied, "manifests")["objects"]
    assert "blocked" in objects.values()
