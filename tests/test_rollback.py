"""Apply IDs, `reconcile rollback`, `reconcile controller pause|resume` and `reconcile audit`, against real Git
repositories and an embedded site; the controller's paused tick runs in-process (--once)."""

from __future__ import annotations

import json
import shutil
import time
from contextlib import closing
from pathlib import Path

import git
import pytest
from prometheus_client import generate_latest

from reconciler.controller.metrics import Metrics
from reconciler.controller.tick import TickResult
from reconciler.site import open_site
from reconciler.state import AuditQuery, StateStore
from tests.conftest import REPO, CliRun, run_cli

ESTATE = REPO / "tests" / "data" / "estate"
ENV = {"OSD_TEST_LOCAL_ADMIN_PASSWORD": "rollback-secret", "NO_COLOR": "1", "RECONCILE_ACTOR": None,
       "GITHUB_ACTOR": "octocat"}
BIOS = "Module - BIOS settings"


class World:
    def __init__(self, root: Path) -> None:
        self.repo_dir = root / "repo"
        shutil.copytree(ESTATE, self.repo_dir / "manifests")
        shutil.rmtree(self.repo_dir / "manifests" / "secrets")
        self.repo = git.Repo.init(self.repo_dir, initial_branch="main")
        self.repo.config_writer().set_value("user", "name", "t").release()
        self.repo.config_writer().set_value("user", "email", "t@example.com").release()
        self.work = root / "work"
        (self.work / "manifests" / "secrets").mkdir(parents=True)
        (self.work / "manifests" / "secrets" / "join.txt").write_text("file-secret\n")
        assert run_cli("site", "init", "--demo", cwd=self.work).returncode == 0

    def commit(self, description: str | None = None) -> str:
        if description is not None:
            path = self.repo_dir / "manifests" / "task-sequences.yaml"
            text = path.read_text()
            marker = "type: Custom\n"
            head, _, tail = text.partition(marker)
            tail = "\n".join(line for line in tail.split("\n") if not line.startswith("  description: "))
            path.write_text(f"{head}{marker}  description: {description}\n{tail}")
        self.repo.git.add(A=True)
        self.repo.index.commit(description or "estate")
        return self.repo.head.commit.hexsha

    def cli(self, *args: str, env: dict | None = None) -> CliRun:
        return run_cli(*args, cwd=self.work, env={**ENV, **(env or {})})

    def apply(self) -> str:
        result = self.cli("manifests", "--yes", "--repo", str(self.repo_dir), "--ref", "main")
        assert result.returncode == 0, result
        return self.history()[0]["apply_id"]

    def history(self) -> list[dict]:
        result = self.cli("history", "--output", "json")
        assert result.returncode == 0, result
        return json.loads(result.stdout)["applies"]

    def description(self) -> str:
        with open_site(self.work / ".reconcile" / "site.db", read_only=True) as site:
            return next(t.description for t in site.read().task_sequences.values() if t.name == BIOS)

    def state(self) -> closing[StateStore]:
        return closing(StateStore(self.work / ".reconcile" / "state.db"))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_every_apply_has_its_own_id_and_a_rollback_writes_back_what_an_apply_wrote(world: World) -> None:
    world.commit("first")
    first = world.apply()
    world.commit("second")
    second = world.apply()
    assert world.description() == "second"
    assert first != second and first.startswith("ap-") and second.startswith("ap-")
    history = world.history()
    assert [h["apply_id"] for h in history[:2]] == [second, first]
    assert all(h["plan_id"] and h["plan_id"] != h["apply_id"] for h in history)
    with world.state() as state:  # the journal's entries carry the apply ID of the run that wrote them
        assert {e.apply_id for e in state.journal() if e.phase in ("intent", "outcome")} >= {first, second}
    text = world.cli("history").stdout
    assert second in text.splitlines()[0] and first in text

    refused = world.cli("rollback", first)  # no terminal to confirm on
    assert refused.returncode == 1 and world.description() == "second"
    rolled = world.cli("rollback", first, "--yes")
    assert rolled.returncode == 0, rolled
    assert f"rolling back to apply {first}: the manifests of commit " in rolled.stderr
    assert 'description: "second" → "first"' in rolled.stdout
    assert world.description() == "first"
    latest = world.history()[0]
    assert latest["rollback_of"] == first and latest["apply_id"] not in (first, second)
    again = world.cli("rollback", first, "--yes")  # converged: nothing left to do
    assert again.returncode == 0 and world.description() == "first"

    audit = json.loads(world.cli("audit", "--output", "json", "--object", "TaskSequence/bios-settings").stdout)
    applies = [e for e in audit["events"] if e["event"] == "apply"]
    actions = [e for e in audit["events"] if e["event"] == "action"]
    assert {a["apply_id"] for a in applies} >= {first, second, latest["apply_id"]}
    assert all(a["actor"].startswith("octocat (GITHUB_ACTOR") for a in applies)
    rollback = next(a for a in applies if a["apply_id"] == latest["apply_id"])
    assert rollback["detail"]["rollback_of"] == first and rollback["detail"]["plan_digest"].startswith(
        rollback["plan_id"]) and rollback["detail"]["provenance"]["sha"]
    change = next(a for a in actions if a["apply_id"] == latest["apply_id"])
    assert {"path": "description", "before": "second", "after": "first"} in change["detail"]["changes"]


def test_a_folder_apply_without_a_commit_is_refused_with_the_reason(world: World) -> None:
    shutil.copytree(world.repo_dir / "manifests", world.work / "manifests", dirs_exist_ok=True)
    result = world.cli("manifests", "--yes")
    assert result.returncode == 0, result
    apply_id = world.history()[0]["apply_id"]
    refused = world.cli("rollback", apply_id, "--yes")
    assert refused.returncode == 1
    assert f"apply {apply_id} was made from the folder manifests, which is not a Git commit" in refused.stderr
    unknown = world.cli("rollback", "ap-nosuchapply", "--yes")
    assert unknown.returncode == 1 and "there is no apply 'ap-nosuchapply'" in unknown.stderr
    with world.state() as state:
        reasons = [e.detail["reason"] for e in state.audit_events(AuditQuery(events=("refused",)))]
    assert reasons == ["rollback", "rollback"]


def test_a_self_healing_controller_refuses_a_rollback_until_it_is_paused(world: World) -> None:
    world.commit("first")
    first = world.apply()
    world.commit("second")
    world.apply()
    with world.state() as state:  # a controller on another host follows main, with self-heal, and holds the lease
        state.put_status("controller", {"started_at": time.time(), "interval": 60, "self_heal": True,
                                        "repo": str(world.repo_dir), "ref": "main", "path": "manifests"})
        state.put_status("checked", {"at": time.time(), "outcome": "ok"})
        lease = state.acquire_lease("PS1", "controller-host.example.org:77", 3600, "controller")
        assert lease is not None
    refused = world.cli("rollback", first, "--yes")
    assert refused.returncode == 1
    assert "a controller with self-heal follows main of " in refused.stderr
    assert "its next tick would apply the branch again and revert this rollback" in refused.stderr
    assert "reconcile controller pause" in refused.stderr and world.description() == "second"

    paused = world.cli("controller", "pause", "--reason", "rollback of CHG-1", "--actor", "jane")
    assert paused.returncode == 0, paused
    status = json.loads(world.cli("status", "--output", "json").stdout)
    assert status["paused"]["by"].startswith("jane (--actor") and status["paused"]["reason"] == "rollback of CHG-1"
    assert "controller: PAUSED by jane" in world.cli("status").stdout
    with world.state() as state:  # what the paused controller's next tick does: it lets go of the lease
        state.release_lease("PS1", "controller-host.example.org:77")
    rolled = world.cli("rollback", first, "--yes")
    assert rolled.returncode == 0, rolled
    assert world.description() == "first"
    resumed = world.cli("controller", "resume")
    assert resumed.returncode == 0 and "resumed the controllers of site PS1 (paused by jane" in resumed.stdout
    text = world.cli("audit", "--since", "1h").stdout
    assert "pause of the controllers of site PS1 by jane (--actor" in text and ": rollback of CHG-1" in text
    assert "resume of the controllers of site PS1 by octocat (GITHUB_ACTOR" in text
    assert "refused (rollback) by octocat" in text and "rollback of apply " + first in text


def test_a_paused_controller_ticks_reports_drift_and_applies_nothing(world: World) -> None:
    world.commit("first")
    world.apply()
    world.commit("second")  # the branch moved: a running controller would apply it
    assert world.cli("controller", "pause", "--reason", "freeze").returncode == 0
    tick = world.cli("controller", "--repo", str(world.repo_dir), "--ref", "main", "--once", "--commit-poll", "0",
                     "--log-format", "json")
    assert tick.returncode == 0, tick
    assert world.description() == "first"
    with world.state() as state:
        recorded = state.get_status("tick")
        assert state.lease_holder("PS1") is None
    assert recorded["outcome"] in ("ok", "drift") and recorded["paused"]["reason"] == "freeze", recorded
    assert json.loads(world.cli("status", "--output", "json").stdout)["objects"]["TaskSequence/bios-settings"] == \
        "out of sync"
    assert world.cli("controller", "resume").returncode == 0
    again = world.cli("controller", "--repo", str(world.repo_dir), "--ref", "main", "--once", "--commit-poll", "0")
    assert again.returncode == 0, again
    assert world.description() == "second"


def test_the_paused_gauge_and_status_say_when_the_controller_is_paused() -> None:
    metrics = Metrics()
    metrics.tick(TickResult("drift", paused={"site": "PS1", "by": "jane", "at": 1.0, "reason": "freeze"}))
    text = generate_latest(metrics.registry).decode()
    assert "reconcile_paused 1.0" in text
    assert metrics.last["paused"]["by"] == "jane"
    metrics.tick(TickResult("ok"))
    assert "reconcile_paused 0.0" in generate_latest(metrics.registry).decode() and metrics.last["paused"] is None


def test_the_actor_is_named_and_never_a_silent_unknown_at_host() -> None:
    from reconciler.actor import resolve_actor

    assert str(resolve_actor("Jane Admin", {})).startswith("Jane Admin (--actor")
    assert resolve_actor(None, {"RECONCILE_ACTOR": "ops", "GITHUB_ACTOR": "x"}).via == "RECONCILE_ACTOR"
    assert resolve_actor(None, {"BUILD_REQUESTEDFOR": "Jane Doe"}).name == "Jane Doe"
    assert resolve_actor(None, {"GITLAB_USER_LOGIN": "jdoe"}).via == "GITLAB_USER_LOGIN"
    assert resolve_actor(None, {"USER": "svc"}).via == "OS user"
    assert str(resolve_actor(None, {})) == "unknown (no actor given)"


def test_audit_since_and_object_are_checked_and_old_entries_are_kept(world: World) -> None:
    bad = world.cli("audit", "--since", "last tuesday")
    assert bad.returncode == 1 and "is neither a date" in bad.stderr and "Traceback" not in bad.stderr
    wrong = world.cli("audit", "--object", "bios-settings")
    assert wrong.returncode == 1 and "is not KIND/NAME" in wrong.stderr
    world.commit("first")
    world.apply()
    future = world.cli("audit", "--since", "2999-01-01", "--output", "json")
    assert json.loads(future.stdout)["events"] == []
    assert "apply ap-" in world.cli("audit", "--since", "2020-01-01T00:00Z").stdout


def test_a_blocked_plan_and_a_held_lease_are_recorded_as_refused_attempts(world: World) -> None:
    shutil.copytree(world.repo_dir / "manifests", world.work / "manifests", dirs_exist_ok=True)
    deployments = world.work / "manifests" / "deployments.yaml"
    deployments.write_text(deployments.read_text().replace("OSD Lab", "No Such Collection"))
    blocked = world.cli("manifests", "--yes")
    assert blocked.returncode == 1 and "nothing was applied" in blocked.stderr
    with world.state() as state:
        lease = state.acquire_lease("PS1", "other-host.example.org:9", 3600, "apply")
        assert lease is not None
    held = world.cli("manifests", "--yes", "--actor", "sam")
    assert held.returncode == 1 and "being reconciled by" in held.stderr
    audit = json.loads(world.cli("audit", "--output", "json").stdout)["events"]
    refused = [(e["detail"]["reason"], e["actor"].split(" (")[0]) for e in audit if e["event"] == "refused"]
    assert refused == [("blocked", "octocat"), ("lease", "sam")]
    first = next(e for e in audit if e["event"] == "refused")
    assert first["detail"]["blocked"][0]["object"].startswith("TaskSequenceDeployment/")
    text = world.cli("audit").stdout
    assert "refused (blocked) by octocat (GITHUB_ACTOR" in text and "refused (lease) by sam (--actor" in text
