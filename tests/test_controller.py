"""The controller as a real process against a real Git repository and an embedded site.

The controller loop runs in its own process (signals, a second controller, the listener); one-shot commands
around it (site init, apply, status, a single --once tick) run in-process. Tests wait for states, never for a
time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import git
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore
from tests.conftest import REPO, run_cli, wait_until

ESTATE = REPO / "tests" / "data" / "estate"
ENV = {"OSD_TEST_LOCAL_ADMIN_PASSWORD": "controller-secret", "NO_COLOR": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo_dir = root / "repo"
        shutil.copytree(ESTATE, self.repo_dir / "manifests")
        shutil.rmtree(self.repo_dir / "manifests" / "secrets")
        self.repo = git.Repo.init(self.repo_dir, initial_branch="main")
        self.repo.config_writer().set_value("user", "name", "t").release()
        self.repo.config_writer().set_value("user", "email", "t@example.com").release()
        self.commit("estate")
        self.work = root / "work"
        (self.work / "manifests" / "secrets").mkdir(parents=True)
        (self.work / "manifests" / "secrets" / "join.txt").write_text("file-secret\n")
        made = run_cli("site", "init", "--demo", cwd=self.work)
        assert made.returncode == 0, made
        self.processes: list[subprocess.Popen[str]] = []
        self.output: dict[int, tuple[list[str], threading.Thread]] = {}

    def commit(self, message: str) -> str:
        self.repo.git.add(A=True)
        self.repo.index.commit(message)
        return self.repo.head.commit.hexsha

    def edit(self, file: str, old: str, new: str) -> None:
        path = self.repo_dir / "manifests" / file
        path.write_text(path.read_text().replace(old, new))

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "controller", "--repo", str(self.repo_dir), "--ref", "main",
             "--log-format", "json", *args], cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, **ENV})
        self.processes.append(process)
        self.read_output(process)
        return process

    def read_output(self, process: subprocess.Popen[str]) -> None:
        """Collect a process's output lines as they come, so a test can wait for an event while it runs."""
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.output[process.pid] = (lines, reader)

    def events(self, process: subprocess.Popen[str], event: str | None = None) -> list[dict]:
        """The JSON log events a controller printed so far (of one kind with ``event``)."""
        lines = list(self.output[process.pid][0])
        found = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in found if event is None or e.get("event") == event]

    def text(self, process: subprocess.Popen[str]) -> str:
        return "".join(self.output[process.pid][0])

    def finish(self, process: subprocess.Popen[str], timeout: float = 30) -> list[dict]:
        """Wait for a process to end (after a signal) and for all of its output; its JSON events."""
        process.wait(timeout=timeout)
        self.output[process.pid][1].join(timeout=timeout)
        return self.events(process)

    def site(self) -> EmbeddedSite:
        return EmbeddedSite(self.work / ".reconcile" / "site.db")

    def tick(self) -> dict:
        state = StateStore(self.work / ".reconcile" / "state.db")
        try:
            return state.get_status("tick") or {}
        finally:
            state.close()

    def bios(self) -> object:
        with self.site() as site:
            return next((t for t in site.read().task_sequences.values() if t.name == "Module - BIOS settings"), None)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.pid in self.output:
                self.output[process.pid][1].join(timeout=10)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    yield s
    s.stop_all()


def test_a_commit_is_applied_by_the_first_tick_that_sees_it_and_metrics_parse(setup: Setup) -> None:
    port = free_port()
    controller = setup.start("--interval", "3s", "--listen", f"127.0.0.1:{port}")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the first sync")
    assert setup.bios() is not None
    setup.edit("task-sequences.yaml", "type: Custom", "type: Custom\n  description: changed in Git")
    sha = setup.commit("describe the module")
    wait_until(lambda: getattr(setup.bios(), "description", "") == "changed in Git", 30, "the commit to be applied")
    wait_until(lambda: setup.tick().get("sha") == sha, 30, "status of the new commit")
    wait_until(lambda: any(e["sha"] == sha for e in setup.events(controller, "tick")), 30, "the tick's log line")
    first = next(e for e in setup.events(controller, "tick") if e["sha"] == sha)
    assert first["outcome"] == "ok" and first["applied"] == 1, first  # no tick saw the commit and left it
    base = f"http://127.0.0.1:{port}"
    assert urllib.request.urlopen(f"{base}/healthz").status == 200
    assert urllib.request.urlopen(f"{base}/readyz").status == 200
    status = json.loads(urllib.request.urlopen(f"{base}/status").read())
    assert status["objects"]["TaskSequence/bios-settings"] == "synced"
    text = urllib.request.urlopen(f"{base}/metrics").read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"reconcile_ticks", "reconcile_tick_duration_seconds", "reconcile_actions", "reconcile_drifted_objects",
            "reconcile_blocked_objects", "reconcile_last_success_timestamp_seconds"} <= set(families)
    assert any(s.value > 0 for s in families["reconcile_actions"].samples)


def test_a_live_change_is_reverted_with_self_heal(setup: Setup) -> None:
    setup.start("--interval", "2s")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the first sync")
    with setup.site() as site:
        bios = next(t for t in site.read().task_sequences.values() if t.name == "Module - BIOS settings")
        site.set_task_sequence_enabled(bios.id, True)  # the manifest says disabled
    wait_until(lambda: getattr(setup.bios(), "enabled", True) is False, 10, "the drift to be reverted")


def test_without_self_heal_drift_is_only_reported(setup: Setup) -> None:
    applied = run_cli("manifests", "--yes", "--repo", str(setup.repo_dir), "--ref", "main", cwd=setup.work, env=ENV)
    assert applied.returncode == 0, applied
    setup.start("--interval", "2s", "--no-self-heal")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the first tick")
    with setup.site() as site:
        bios = next(t for t in site.read().task_sequences.values() if t.name == "Module - BIOS settings")
        site.set_task_sequence_enabled(bios.id, True)
    wait_until(lambda: setup.tick().get("outcome") == "drift", 10, "the drift to be reported")
    status = json.loads(run_cli("status", "--output", "json", cwd=setup.work).stdout)
    assert status["objects"]["TaskSequence/bios-settings"] == "drifted"
    assert getattr(setup.bios(), "enabled", False) is True  # left as it is
    text = run_cli("status", cwd=setup.work).stdout
    assert text.startswith("last tick: drift at ") and "last checked: " in text
    assert "  drifted      TaskSequence/bios-settings" in text


def test_a_broken_manifest_leaves_the_site_as_it_was(setup: Setup) -> None:
    setup.start("--interval", "2s")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the first sync")
    setup.edit("task-sequences.yaml", "type: Custom", "type: Custom\n  description: never applied\n  colour: red")
    setup.commit("broken")
    wait_until(lambda: setup.tick().get("outcome") == "error", 10, "the error to be reported")
    assert "unknown field 'colour'" in setup.tick()["error"] and "main:manifests/task-sequences.yaml" in \
        setup.tick()["error"]
    assert getattr(setup.bios(), "description", None) == ""
    status = json.loads(run_cli("status", "--output", "json", cwd=setup.work).stdout)
    assert status["objects"] and set(status["objects"].values()) == {"blocked"}  # none is synced with the head
    first_check = status["checked"]["at"]
    wait_until(lambda: json.loads(run_cli("status", "--output", "json", cwd=setup.work).stdout)["checked"]["at"]
               > first_check, 30, "a later tick to be recorded")


def test_the_fix_for_a_broken_commit_is_applied_at_once_not_after_the_backoff(setup: Setup) -> None:
    # Commits are looked for every 0.3 s; the first backoff is at least 1 s: the fix must come by commit.
    process = setup.start("--interval", "60s", "--commit-poll", "0.3s")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the first sync")
    setup.edit("task-sequences.yaml", "type: Custom", "type: Custom\n  description: fixed\n  colour: red")
    setup.commit("broken")
    wait_until(lambda: setup.tick().get("outcome") == "error", 10, "the error to be reported")
    setup.edit("task-sequences.yaml", "\n  colour: red", "")
    setup.commit("fix")
    wait_until(lambda: getattr(setup.bios(), "description", "") == "fixed", 10, "the fix to be applied")
    process.send_signal(signal.SIGTERM)
    ticks = [e for e in setup.finish(process) if e.get("event") == "tick"]
    first_error = next(i for i, e in enumerate(ticks) if e["outcome"] == "error")
    recovery = next(e for e in ticks[first_error:] if e["outcome"] == "ok")
    assert recovery["trigger"] == "commit", ticks


def test_two_controllers_never_apply_together_and_a_standby_takes_over(setup: Setup) -> None:
    first = setup.start("--interval", "1s", "--lease-seconds", "2")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the first controller to sync")
    setup.edit("deployments.yaml", "rerun: Always", "rerun: Never")
    setup.commit("while the first runs")
    second = setup.start("--interval", "1s", "--lease-seconds", "2")
    wait_until(lambda: any(e["outcome"] == "standby" for e in setup.events(second, "tick")), 30,
               "the second controller to wait as a standby")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    def second_holds_the_lease() -> bool:
        state = StateStore(setup.work / ".reconcile" / "state.db")
        try:
            holder = state.lease_holder("PS1")
        finally:
            state.close()
        return holder is not None and holder.holder.endswith(f":{second.pid}")

    wait_until(second_holds_the_lease, 30, "the standby to take the lease of the killed controller")
    setup.edit("deployments.yaml", "rerun: Never", "rerun: IfSucceeded")
    sha = setup.commit("after the first died")
    wait_until(lambda: setup.tick().get("sha") == sha and setup.tick().get("outcome") == "ok", 30,
               "the standby to take over")
    second.send_signal(signal.SIGTERM)
    events = setup.finish(second)
    assert second.returncode == 0, setup.text(second)
    holders = {e.get("holder") for e in events if e.get("event") == "stop"}
    assert len(holders) == 1
    state = StateStore(setup.work / ".reconcile" / "state.db")
    journal = state.journal()
    state.close()
    open_plans: set[str] = set()
    for entry in journal:  # no two plans ever interleave their actions
        if entry.phase == "intent":
            open_plans.add(entry.plan_id)
            assert len(open_plans) <= 1 or entry.plan_id in open_plans
        elif entry.phase == "apply":
            open_plans.discard(entry.plan_id)


def test_one_shot_apply_respects_the_lease(setup: Setup) -> None:
    setup.start("--interval", "30s", "--lease-seconds", "60")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the controller to sync")
    setup.edit("deployments.yaml", "rerun: Always", "rerun: Never")
    setup.commit("change")
    result = run_cli("manifests", "--yes", "--repo", str(setup.repo_dir), "--ref", "main", cwd=setup.work, env=ENV)
    assert result.returncode == 1 and "is being reconciled by" in result.stderr


def test_sigterm_mid_apply_leaves_a_state_the_next_start_completes(setup: Setup) -> None:
    docs = [{"apiVersion": "configmgr.gitops.io/v1alpha1", "kind": "TaskSequence", "metadata": {"name": f"bulk-{i}"},
             "spec": {"name": f"Bulk {i}", "steps": [{"name": "Run", "type": "RunCommandLine",
                                                      "settings": {"commandLine": f"cmd /c echo {i}"}}]}}
            for i in range(400)]
    (setup.repo_dir / "manifests" / "bulk.yaml").write_text(yaml.safe_dump_all(docs))
    setup.commit("bulk")
    process = setup.start("--interval", "60s")
    wait_until(lambda: (setup.work / ".reconcile" / "state.db").exists() and _intents(setup) > 3, 30,
               "the apply to start")
    process.send_signal(signal.SIGTERM)
    setup.finish(process)
    assert process.returncode == 0, setup.text(process)
    with setup.site() as site:
        before = len(site.read().task_sequences)
    assert before < 402  # it stopped part-way
    final = run_cli("controller", "--repo", str(setup.repo_dir), "--once", cwd=setup.work, env=ENV)
    assert final.returncode == 0, final
    with setup.site() as site:
        names = [t.name for t in site.read().task_sequences.values()]
    assert len(names) == 402 and len(set(names)) == 402


def test_refresh_secrets_writes_a_rotated_secret_on_the_next_interval(setup: Setup) -> None:
    def site_holds(value: str) -> bool:  # the site keeps a masked value sealed: it can only be compared
        with setup.site() as site:
            return site.holds_secret(16777220, "OSDJoinSecret", value)  # LAB-PC-042's secret from secrets/join.txt

    setup.start("--interval", "1s", "--refresh-secrets")
    wait_until(lambda: setup.tick().get("outcome") == "ok" and site_holds("file-secret"), 30, "the first sync")
    (setup.work / "manifests" / "secrets" / "join.txt").write_text("file-rotated\n")  # no commit, no live change
    wait_until(lambda: site_holds("file-rotated"), 15, "the rotated secret to be written")
    assert setup.tick().get("outcome") == "ok"


SLOW_ACTION = """
import sys, time
from reconciler.controller.loop import Loop, LoopConfig
from reconciler.controller.metrics import Metrics

class SlowAction:  # a controller busy in one long action (a slow site call) that cannot be cut short
    stop_requested = False
    on_action = None

action = SlowAction()
loop = Loop(action, LoopConfig(), Metrics(), lambda event: None)
loop.install_signals()
print("busy", flush=True)
deadline = time.time() + 60
told = False
while time.time() < deadline:  # the action under way; a stop request is honoured only after it
    if action.stop_requested and not told:
        print("stop requested; still in the action", flush=True)
        told = True
    time.sleep(0.01)
sys.exit(0)
"""


def test_the_first_signal_waits_for_the_action_and_a_second_exits_at_once() -> None:
    process = subprocess.Popen([sys.executable, "-c", SLOW_ACTION], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "busy"
        process.send_signal(signal.SIGTERM)
        # The first signal is a request the action under way sees, not an exit.
        assert process.stdout.readline().strip() == "stop requested; still in the action"
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 130  # the second one exits at once, long before the action ends
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _intents(setup: Setup) -> int:
    state = StateStore(setup.work / ".reconcile" / "state.db")
    try:
        return sum(1 for e in state.journal() if e.phase == "intent")
    finally:
        state.close()


def test_watch_ticks_on_file_changes_in_the_working_copy(setup: Setup) -> None:
    setup.start("--interval", "120s", "--commit-poll", "0", "--watch")
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the first sync")
    setup.edit("task-sequences.yaml", "type: Custom", "type: Custom\n  description: seen by the watcher")
    setup.commit("a commit in the watched working copy")
    wait_until(lambda: getattr(setup.bios(), "description", "") == "seen by the watcher", 15,
               "the file change to trigger a tick")


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    import random

    from reconciler.controller.loop import LoopConfig, backoff, parse_duration

    config = LoopConfig(backoff_base=2, backoff_cap=60)
    rng = random.Random(7)
    delays = [backoff(n, config, rng) for n in range(1, 10)]
    assert 1 <= delays[0] <= 3 and delays[-1] <= 90  # 60 s cap, jitter 0.5x-1.5x
    assert delays[3] > delays[0]
    assert parse_duration("5m") == 300 and parse_duration("30s") == 30 and parse_duration("2") == 2


def test_an_unreachable_repository_is_reported_not_a_crash(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    assert run_cli("site", "init", "--demo", cwd=work).returncode == 0
    result = run_cli("controller", "--repo", str(tmp_path / "missing"), "--once", "--log-format", "json", cwd=work)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr  # --once: the tick failed
    tick = next(json.loads(line) for line in result.stdout.splitlines() if '"tick"' in line)
    assert tick["outcome"] == "error" and "is not a Git repository" in tick["error"]
