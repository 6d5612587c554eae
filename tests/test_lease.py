"""One writer per site: the lease is taken before the site is read, renewed while a writer runs, and
never held by the dead for long (`reconcile unlock`). Racing writers are real processes; a command that
only meets a lease another writer holds (or left) runs in-process."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reconciler.apply.executor import apply_plan
from reconciler.cli import cli
from reconciler.plan.actions import Verb
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import ContentState
from reconciler.source.loader import load
from reconciler.state import Lease, StateStore
from tests.conftest import CliRun, run_cli, wait_until
from tests.test_controller import ENV, Setup, free_port

FOREIGN = "build-07.example.org:4242"  # a writer on another host: its process cannot be looked up from here
HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
STEPS = [{"name": "Run", "type": "RunCommandLine", "settings": {"commandLine": "cmd /c echo"}}]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    yield s
    s.stop_all()


def state_of(setup: Setup) -> StateStore:
    return StateStore(setup.work / ".reconcile" / "state.db")


def lease_of(setup: Setup) -> Lease | None:
    state = state_of(setup)
    try:
        return state.lease_holder("PS1")
    finally:
        state.close()


def history(setup: Setup) -> tuple[int, int]:
    """How many applies were recorded, and how many high-risk audit entries were written."""
    state = state_of(setup)
    try:
        journal = state.journal()
    finally:
        state.close()
    return sum(e.phase == "apply" for e in journal), sum(e.phase == "audit" for e in journal)


def apply_options(setup: Setup, *extra: str) -> list[str]:
    return ["manifests", "--repo", str(setup.repo_dir), "--ref", "main", *extra]


def apply_args(setup: Setup, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *apply_options(setup, *extra)]


def run_apply(setup: Setup, *extra: str) -> CliRun:
    """A one-shot apply, in-process: the writer it meets (or follows) is another process or a lease row."""
    return run_cli(*apply_options(setup, "--yes", *extra), cwd=setup.work, env=ENV)


def foreign_lease(setup: Setup, ttl: float, kind: str = "apply") -> Lease:
    """The lease row a writer on another host leaves: a foreign host name and an expiry in the future."""
    state = state_of(setup)
    try:
        lease = state.acquire_lease("PS1", FOREIGN, ttl, kind)
    finally:
        state.close()
    assert lease is not None
    return lease


class Prompted:
    """A one-shot apply on a terminal (a pseudo-terminal), stopped at "Apply these changes?"."""

    def __init__(self, setup: Setup, *extra: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(apply_args(setup, *extra), cwd=setup.work, stdin=slave,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **ENV})
        os.close(slave)
        setup.processes.append(self.process)

    def answer(self, text: str) -> tuple[str, str]:
        os.write(self.master, text.encode() + b"\n")
        out, err = self.process.communicate(timeout=60)
        os.close(self.master)
        return out, err


def held_by_pid(setup: Setup, pid: int) -> bool:
    lease = lease_of(setup)
    return lease is not None and lease.pid == str(pid)


def test_a_second_apply_refuses_before_planning_while_the_first_waits_at_its_prompt(setup: Setup) -> None:
    first = Prompted(setup, "--lease-seconds", "1")
    wait_until(lambda: held_by_pid(setup, first.process.pid), 30, "the first apply to take the lease")
    taken = lease_of(setup)
    assert taken is not None and taken.kind == "apply" and taken.host == socket.gethostname()
    # At the prompt for longer than its 1 s lease: renewed, never lapsed.
    wait_until(lambda: (lease := lease_of(setup)) is not None and lease.renewed > taken.taken + 2.5, 30,
               "the lease to be renewed past three lifetimes")
    second = run_apply(setup)
    assert second.returncode == 1
    assert "Plan " not in second.stdout and "already exists" not in second.stderr  # refused before planning
    assert (f"refusing to apply: site PS1 is being reconciled by a one-shot apply (pid {first.process.pid} on "
            f"{socket.gethostname()}) since ") in second.stderr
    assert f"(lease ID {taken.lease_id}); wait for it to finish, or, if that process is dead, run " \
           f"'reconcile unlock {taken.lease_id}'" in second.stderr
    out, err = first.answer("y")
    assert first.process.returncode == 0, err
    assert "Apply complete: 10 applied, 0 failed, 0 skipped." in out + err
    assert history(setup) == (1, 1)
    assert lease_of(setup) is None  # released at the end


def test_two_applies_started_together_apply_once(setup: Setup) -> None:
    processes = [subprocess.Popen(apply_args(setup, "--yes"), cwd=setup.work, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV},
                                  stdin=subprocess.DEVNULL) for _ in range(2)]
    setup.processes.extend(processes)
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    applied = [r for r in results if "Apply complete" in r[1] + r[2]]
    assert len(applied) == 1 and applied[0][0] == 0, results
    (other,) = [r for r in results if r not in applied]
    # Refused at once while the first held the lease, or (started after it ended) nothing left to do.
    assert (other[0] == 1 and "is being reconciled by a one-shot apply" in other[2]) or \
        (other[0] == 0 and "No changes" in other[1]), other
    assert history(setup) == (1, 1)
    state = state_of(setup)
    try:
        outcomes = [e for e in state.journal() if e.phase == "outcome"]
    finally:
        state.close()
    assert len(outcomes) == 10  # no second run of a stale plan (no-op "applied" actions)


def test_an_apply_racing_a_controller_never_plans_beside_it(setup: Setup) -> None:
    controller = setup.start("--interval", "30s", "--lease-seconds", "2")
    apply = subprocess.Popen(apply_args(setup, "--yes"), cwd=setup.work, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV}, stdin=subprocess.DEVNULL)
    setup.processes.append(apply)
    out, err = apply.communicate(timeout=120)
    assert "already exists" not in out + err and "not managed" not in out + err
    assert (apply.returncode == 1 and f"is being reconciled by a controller (pid {controller.pid} on " in err) or \
        (apply.returncode == 0 and "Apply complete: 10 applied" in out + err), (out, err)
    wait_until(lambda: setup.tick().get("outcome") == "ok", 30, "the controller to find the site in sync")
    with setup.site() as site:
        names = [t.name for t in site.read().task_sequences.values()]
        deployments = len(site.read().deployments)
    assert sorted(names).count("Windows 11 - Install") == 1 and deployments == 2
    assert history(setup) == (1, 1)
    # While the controller writes, a one-shot apply is refused before it reads the site.
    refused = run_apply(setup)
    lease = lease_of(setup)
    assert refused.returncode == 1 and lease is not None and lease.kind == "controller"
    assert f"a controller (pid {controller.pid} on {socket.gethostname()})" in refused.stderr
    assert f"run 'reconcile unlock {lease.lease_id}'" in refused.stderr and "Plan " not in refused.stdout


def test_a_stalled_apply_loses_its_lease_after_the_ttl_and_does_not_apply_its_stale_plan(setup: Setup) -> None:
    first = Prompted(setup, "--lease-seconds", "1")
    wait_until(lambda: held_by_pid(setup, first.process.pid), 30, "the first apply to take the lease")
    first.process.send_signal(signal.SIGSTOP)  # alive but not renewing (a hung host, a suspended laptop)
    try:
        wait_until(lambda: lease_of(setup) is None, 10, "the stalled apply's lease to lapse")
        second = run_apply(setup)
        assert second.returncode == 0 and "Apply complete: 10 applied" in second.stdout + second.stderr
    finally:
        first.process.send_signal(signal.SIGCONT)
    _, err = first.answer("y")
    assert first.process.returncode == 1
    assert "was lost while this plan waited" in err and "nothing was applied: plan again" in err
    assert history(setup) == (1, 1)


def test_a_lease_of_a_writer_on_another_host_blocks_until_it_lapses(setup: Setup) -> None:
    lease = foreign_lease(setup, ttl=2)
    refused = run_apply(setup)
    assert refused.returncode == 1 and "Plan " not in refused.stdout
    assert "a one-shot apply (pid 4242 on build-07.example.org)" in refused.stderr
    assert f"lease ID {lease.lease_id}" in refused.stderr and f"reconcile unlock {lease.lease_id}" in refused.stderr
    wait_until(lambda: lease_of(setup) is None, 10, "the foreign lease to lapse without renewal")
    applied = run_apply(setup)
    assert applied.returncode == 0 and "Apply complete: 10 applied" in applied.stdout + applied.stderr


def test_a_long_action_keeps_the_lease_and_an_unlocked_apply_stops_before_its_next_action(setup: Setup) -> None:
    assert run_apply(setup).returncode == 0
    with setup.site() as site:
        for dp in site.read().distribution_points:  # the image is still being copied: a deployment waits for it
            site.set_content_state("PS100008", dp, ContentState.INSTALL_PENDING)
    (setup.repo_dir / "manifests" / "more.yaml").write_text(yaml.safe_dump_all([
        {**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": f"win11-{name}"},
         "spec": {"taskSequence": "win11-install", "collection": {"name": collection}, "purpose": "Available"}}
        for name, collection in (("a-capture", "OSD Build and Capture"), ("b-ring-1", "OSD Upgrade Ring 1"))]))
    setup.commit("two more deployments")
    apply = subprocess.Popen(apply_args(setup, "--yes", "--wait-for-content", "--content-timeout", "60",
                                        "--lease-seconds", "1"), cwd=setup.work, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV}, stdin=subprocess.DEVNULL)
    setup.processes.append(apply)

    def waiting_in_the_action() -> bool:
        state = state_of(setup)
        try:
            lease, pending = state.lease_holder("PS1"), state.pending()
        finally:
            state.close()
        return lease is not None and "TaskSequenceDeployment/win11-a-capture" in pending \
            and lease.renewed > lease.taken + 2.5

    wait_until(waiting_in_the_action, 30, "the apply to renew its 1 s lease while it waits for content")
    lease = lease_of(setup)
    assert lease is not None and lease.pid == str(apply.pid)
    unlocked = run_cli("unlock", lease.lease_id, "--yes", cwd=setup.work)
    assert unlocked.returncode == 0 and f"a one-shot apply (pid {apply.pid} on " in unlocked.stdout
    with setup.site() as site:
        for dp in site.read().distribution_points:
            site.set_content_state("PS100008", dp, ContentState.INSTALLED)
    _, err = apply.communicate(timeout=60)
    assert apply.returncode == 1
    assert "stopped: the lease of site PS1 was lost mid-apply (unlocked, or it lapsed); 1 action(s) were not run: " \
           "plan again" in err
    with setup.site() as site:
        assert len(site.read().deployments) == 3  # the action under way finished; the next one never started


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        add_demo_inventory(site)
    return tmp_path


def take(path: Path, holder: str, ttl: float, kind: str) -> Lease:
    state = StateStore(path / ".reconcile" / "state.db")
    try:
        lease = state.acquire_lease("PS1", holder, ttl, kind)
    finally:
        state.close()
    assert lease is not None
    return lease


def test_unlock_frees_a_dead_writers_lease_only_by_its_id(workdir: Path) -> None:
    lease = take(workdir, FOREIGN, 3600, "apply")  # the hour a one-shot apply used to hold
    runner = CliRunner()
    wrong = runner.invoke(cli, ["unlock", "0123456789ab", "--yes"])
    assert wrong.exit_code == 1
    assert f"'0123456789ab' is not the lease of site PS1: its lease is {lease.lease_id}, held by a one-shot apply " \
           "(pid 4242 on build-07.example.org)" in wrong.output and "nothing was unlocked" in wrong.output
    long = runner.invoke(cli, ["unlock", "x" * 5000, "--yes"])
    assert long.exit_code == 1 and "(5000 characters)" in long.output and len(long.output) < 600
    unconfirmed = runner.invoke(cli, ["unlock", lease.lease_id])  # no terminal to confirm on
    assert unconfirmed.exit_code == 1 and "pass --yes to unlock" in unconfirmed.output
    status = runner.invoke(cli, ["status"])
    assert "writer: a one-shot apply (pid 4242 on build-07.example.org) since " in status.output
    assert f"lease ID {lease.lease_id}" in status.output
    document = json.loads(runner.invoke(cli, ["status", "--output", "json"]).output)
    assert document["lease"]["id"] == lease.lease_id and document["lease"]["kind"] == "apply"
    freed = runner.invoke(cli, ["unlock", lease.lease_id, "--yes"])
    assert freed.exit_code == 0, freed.output
    assert f"lease {lease.lease_id} of site PS1 is held by a one-shot apply (pid 4242 on build-07.example.org) " \
           "since " in freed.output and "s ago" in freed.output
    assert f"released lease {lease.lease_id} of site PS1" in freed.output
    state = StateStore(workdir / ".reconcile" / "state.db")
    try:
        assert state.lease("PS1") is None
        assert state.acquire_lease("PS1", "another-host:1", 30, "apply") is not None  # free at once
    finally:
        state.close()
    nothing = runner.invoke(cli, ["unlock", lease.lease_id, "--yes"])
    assert nothing.exit_code == 1 and lease.lease_id in nothing.output and "not the lease" in nothing.output


def test_a_lease_renewed_by_its_holder_keeps_its_id_and_a_lapsed_one_gets_a_new_one(workdir: Path) -> None:
    state = StateStore(workdir / ".reconcile" / "state.db")
    try:
        first = state.acquire_lease("PS1", FOREIGN, 30, "controller")
        renewed = state.acquire_lease("PS1", FOREIGN, 30, "controller")
        assert first is not None and renewed is not None and renewed.lease_id == first.lease_id
        assert state.acquire_lease("PS1", "other.example.org:1", 30, "apply") is None
        assert state.leases.renew("PS1", "not-this-one", 30) is None  # a holder renews only its own lease
        assert state.break_lease("PS1", first.lease_id) == renewed
        assert state.leases.renew("PS1", first.lease_id, 30) is None  # unlocked: the holder learns it lost it
        again = state.acquire_lease("PS1", FOREIGN, 30, "controller")
        assert again is not None and again.lease_id != first.lease_id
    finally:
        state.close()


def test_a_standby_once_exits_1_and_names_the_holder(setup: Setup) -> None:
    lease = foreign_lease(setup, ttl=60, kind="controller")
    result = run_cli("controller", "--repo", str(setup.repo_dir), "--once", "--log-format", "json", cwd=setup.work,
                     env=ENV)
    assert result.returncode == 1, result.stdout + result.stderr
    tick = next(json.loads(line) for line in result.stdout.splitlines() if '"tick"' in line)
    assert tick["outcome"] == "standby"
    assert "a controller (pid 4242 on build-07.example.org)" in tick["error"]
    assert f"reconcile unlock {lease.lease_id}" in tick["error"]
    with setup.site() as site:
        assert not site.read().task_sequences  # a standby writes nothing


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""  # not listening yet


def test_a_standby_is_alive_but_not_ready(setup: Setup) -> None:
    writer_port, standby_port = free_port(), free_port()
    writer = setup.start("--interval", "30s", "--lease-seconds", "5", "--listen", f"127.0.0.1:{writer_port}")
    wait_until(lambda: readyz(writer_port)[0] == 200, 30, "the writer to be ready")
    assert readyz(writer_port) == (200, "ready\n")
    setup.start("--interval", "30s", "--lease-seconds", "5", "--listen", f"127.0.0.1:{standby_port}")
    wait_until(lambda: readyz(standby_port)[0] == 503 and "standby" in readyz(standby_port)[1], 30,
               "the standby to answer not ready")
    code, body = readyz(standby_port)
    assert code == 503
    lease = lease_of(setup)
    assert lease is not None and lease.pid == str(writer.pid)
    assert body.startswith(f"not ready (standby: the lease is held by a controller (pid {writer.pid} on ")
    assert f"lease ID {lease.lease_id}" in body
    assert urllib.request.urlopen(f"http://127.0.0.1:{standby_port}/healthz", timeout=5).status == 200
    assert readyz(writer_port)[0] == 200


def test_a_creation_refuses_an_object_that_appeared_on_the_site_after_the_plan(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "estate.yaml").write_text(yaml.safe_dump_all([
        {**HEAD, "kind": "TaskSequence", "metadata": {"name": "tools"}, "spec": {"name": "Tools", "steps": STEPS}},
        {**HEAD, "kind": "TaskSequence", "metadata": {"name": "other"}, "spec": {"name": "Other", "steps": STEPS}},
        {**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": "lab"},
         "spec": {"taskSequence": "other", "collection": {"name": "OSD Lab"}}}]))
    with EmbeddedSite(tmp_path / "site.db") as site:
        add_demo_inventory(site)
        state = StateStore(tmp_path / "state.db")
        try:
            plan = make_plan(load(manifests), site.read(), state)
            create = next(a for a in plan.actions if a.ref.name == "tools")
            # Between the plan and its apply, someone makes an object of the same name (a console, a script).
            foreign = site.create_task_sequence(create.write.record)
            result = apply_plan(plan, site, state, manifests)
            (failed,) = result.of("failed")
            assert failed.action.ref.name == "tools"
            assert failed.message == (f"a task sequence named 'Tools' ({foreign}) appeared on the site after this "
                                      "plan was made and is not managed by this tool; it was left as it is: the site "
                                      "changed since the plan, plan again")
            assert state.owned_id("TaskSequence", "tools") is None  # not taken over
            assert {r.action.ref.name for r in result.of("applied")} == {"other", "lab"}  # independent work goes on

            # The same for a deployment: one made by hand after the plan is left alone.
            (manifests / "more.yaml").write_text(yaml.safe_dump(
                {**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": "pilot"},
                 "spec": {"taskSequence": "other", "collection": {"name": "OSD Pilot"}}}))
            plan = make_plan(load(manifests), site.read(), state, targets=("TaskSequenceDeployment/pilot",))
            (create,) = [a for a in plan.actions if a.verb is Verb.CREATE_DEPLOYMENT]
            by_hand = site.create_deployment(create.write.record)
            result = apply_plan(plan, site, state, manifests)
            (failed,) = result.of("failed")
            assert "appeared on the site after this plan was made" in failed.message and by_hand in failed.message
            assert state.owned_id("TaskSequenceDeployment", "pilot") is None
        finally:
            state.close()


def test_unlock_names_how_long_ago_a_lease_was_renewed(workdir: Path) -> None:
    lease = take(workdir, FOREIGN, 60, "controller")
    assert lease.describe(now=lease.renewed + 42).endswith(", renewed 42 s ago")
    assert lease.describe().startswith("a controller (pid 4242 on build-07.example.org) since ")
