"""Controllers on several hosts sharing one PostgreSQL state store: one writer, standbys that take over, fencing.

Each controller is a real process (kill -9, SIGSTOP and SIGCONT are the point) with a folder of its own, as a
host has; they follow one local Git repository and reconcile one embedded site file (the "ConfigMgr site" they
share). The PostgreSQL server is real, on 127.0.0.1 (tests/postgres_fixture.py). Tests wait for states, never
for a time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
import yaml

from reconciler.site.embedded import EmbeddedSite
from reconciler.state.postgres import PostgresStateStore
from tests.conftest import run_cli, wait_until
from tests.postgres_fixture import PostgresServer, session_server, wait_for_server

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
SITE = "PS1"


def estate(names: list[str], description: str = "") -> str:
    docs = []
    for name in names:
        docs.append({**HEAD, "kind": "TaskSequence", "metadata": {"name": name},
                     "spec": {"name": f"HA {name}", "description": description, "steps": [
                         {"name": "Run", "type": "RunCommandLine",
                          "settings": {"commandLine": f"cmd /c echo {name}", "package": {"package": "OSD Tools"}}}]}})
        docs.append({**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": f"{name}-lab"},
                     "spec": {"taskSequence": name, "collection": {"name": "OSD Lab"}}})
    return yaml.safe_dump_all(docs, sort_keys=False)


class Cluster:
    """A Git repository, a site, a PostgreSQL database, and controller processes, each in a host folder of its own."""

    def __init__(self, root: Path, server: PostgresServer, lease: float = 2.0) -> None:
        self.root = root
        self.server = server
        self.lease = lease
        self.url = server.create_database()
        self.env = {**os.environ, "NO_COLOR": "1", **server.env()}
        self.repo_dir = root / "repo"
        (self.repo_dir / "manifests").mkdir(parents=True)
        self.repo = git.Repo.init(self.repo_dir, initial_branch="main")
        self.repo.config_writer().set_value("user", "name", "t").release()
        self.repo.config_writer().set_value("user", "email", "t@example.com").release()
        self.site_file = root / "site" / "site.db"
        made = run_cli("site", "init", "--demo", "--site", str(self.site_file))
        assert made.returncode == 0, made
        self.processes: list[subprocess.Popen[str]] = []
        self.output: dict[int, tuple[list[str], threading.Thread]] = {}
        self._store: PostgresStateStore | None = None

    # -- the repository --------------------------------------------------------------------------

    def commit(self, names: list[str], description: str = "") -> str:
        (self.repo_dir / "manifests" / "estate.yaml").write_text(estate(names, description))
        self.repo.git.add(A=True)
        self.repo.index.commit(f"{len(names)} sequences {description}")
        return self.repo.head.commit.hexsha

    # -- controllers -----------------------------------------------------------------------------

    def start(self, host: str, *args: str) -> subprocess.Popen[str]:
        folder = self.root / host
        (folder / "manifests").mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "controller", "--repo", str(self.repo_dir), "--ref", "main",
             "--site", str(self.site_file), "--state", self.url, "--interval", "1s", "--commit-poll", "0.1s",
             "--lease-seconds", str(self.lease), "--log-format", "json", *args],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
            stdin=subprocess.DEVNULL)
        self.processes.append(process)
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.output[process.pid] = (lines, reader)
        return process

    def events(self, process: subprocess.Popen[str], event: str | None = None) -> list[dict]:
        found = [json.loads(line) for line in list(self.output[process.pid][0]) if line.startswith("{")]
        return [e for e in found if event is None or e.get("event") == event]

    def text(self, process: subprocess.Popen[str]) -> str:
        return "".join(self.output[process.pid][0])[-6000:]

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
            process.wait(timeout=30)
        if self._store is not None:
            self._store.close()

    # -- what the store and the site say ---------------------------------------------------------------

    @property
    def store(self) -> PostgresStateStore:
        if self._store is None:
            self._store = PostgresStateStore(self.url, SITE, self.server.password)
        return self._store

    def writer(self) -> int | None:
        """The pid of the controller that holds the lease now."""
        lease = self.store.lease_holder(SITE)
        return int(lease.pid) if lease is not None else None

    def synced(self, sha: str) -> bool:
        tick = self.store.get_status("tick") or {}
        return tick.get("sha") == sha and tick.get("outcome") == "ok"

    def journal_rows(self) -> int:
        import psycopg

        with psycopg.connect(self.url, password=self.server.password, autocommit=True) as db:
            return int(db.execute("SELECT count(*) FROM reconcile_journal").fetchone()[0])

    def check_converged(self, names: list[str]) -> None:
        """Zero duplicates, every intent has an outcome, nothing pending, and the plan is empty."""
        with EmbeddedSite(self.site_file) as site:
            live = site.read()
        counted = Counter(t.name for t in live.task_sequences.values() if t.name.startswith("HA "))
        assert counted == Counter({f"HA {name}": 1 for name in names}), counted
        targets = Counter((d.package_id, d.collection_id) for d in live.deployments.values())
        assert set(targets.values()) == {1} and len(targets) == len(names), targets
        owned = self.store.owned()
        assert {owned[("TaskSequence", name)] for name in names} == {
            i for i, t in live.task_sequences.items() if t.name.startswith("HA ")}
        assert self.store.pending() == set()
        journal = self.store.journal()
        intents = Counter((e.plan_id, e.object) for e in journal if e.phase == "intent")
        ended = Counter((e.plan_id, e.object) for e in journal if e.phase == "outcome")
        assert not [key for key, count in intents.items() if ended[key] < count], "an intent has no outcome"
        (self.root / "check" / "manifests").mkdir(parents=True, exist_ok=True)
        plan = run_cli("plan", "--repo", str(self.repo_dir), "--ref", "main", "--site", str(self.site_file),
                       "--state", self.url, "--detailed-exitcode", cwd=self.root / "check", env=self.server.env())
        assert plan.returncode == 0, plan


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path, session_server())
    try:
        yield made
    finally:
        made.stop_all()


@pytest.mark.parametrize("controllers", [2, 3])
def test_one_writer_and_after_kill_9_a_standby_applies_the_next_commit(cluster: Cluster, controllers: int) -> None:
    names = [f"ts-{i}" for i in range(3)]
    first = cluster.commit(names)
    processes = [cluster.start(f"host-{i}") for i in range(controllers)]
    wait_until(lambda: cluster.synced(first), 60, "the writer to apply the first commit")
    writer = cluster.writer()
    standbys = [p for p in processes if p.pid != writer]
    assert len(standbys) == controllers - 1
    wait_until(lambda: all(any(e["outcome"] == "standby" for e in cluster.events(p, "tick")) for p in standbys), 30,
               "every other controller to wait as a standby")
    for process in standbys:  # a standby applied nothing, and keeps its tick apart from the writer's status
        assert not [e for e in cluster.events(process, "action")], cluster.text(process)
        assert (cluster.store.get_status(f"standby:{cluster.store.lease(SITE).host}:{process.pid}") or {})  # type: ignore[union-attr]
    assert (cluster.store.get_status("tick") or {}).get("holder", "").endswith(f":{writer}")
    os.kill(writer, signal.SIGKILL)  # type: ignore[arg-type]
    names.append("ts-after-kill")
    second = cluster.commit(names)
    wait_until(lambda: cluster.synced(second), 60, "a standby to take over and apply the next commit")
    new_writer = cluster.writer()
    assert new_writer in {p.pid for p in standbys}
    holders = {e.get("holder") for p in standbys for e in cluster.events(p, "tick") if e.get("outcome") == "ok"}
    assert len(holders) <= 1
    cluster.check_converged(names)


def test_twenty_kills_at_random_points_of_an_apply_lose_nothing_and_duplicate_nothing(cluster: Cluster) -> None:
    rng = random.Random(20261129)
    names = [f"ts-{i:02d}" for i in range(4)]
    sha = cluster.commit(names)
    live = [cluster.start("host-a"), cluster.start("host-b")]
    wait_until(lambda: cluster.synced(sha), 60, "the first sync")
    killed = 0
    for round_ in range(20):
        # each round creates two sequences (and their deployments) and changes every other one: kills land in
        # creations as well as updates
        names += [f"ts-r{round_:02d}-a", f"ts-r{round_:02d}-b"]
        before = cluster.journal_rows()
        sha = cluster.commit(names, description=f"round {round_}")
        point = rng.randint(1, 12)
        wait_until(lambda: cluster.journal_rows() >= before + point or cluster.synced(sha), 60,  # noqa: B023
                   "the apply to make progress", every=0.002)
        writer = cluster.writer()
        victim = next((p for p in live if p.pid == writer), None)
        if victim is not None and not cluster.synced(sha):
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            live.remove(victim)
            live.append(cluster.start(f"host-{round_}"))  # the host comes back as a standby
            killed += 1
    assert killed >= 10, "the kills should interrupt applies"
    wait_until(lambda: cluster.synced(sha), 120, "the surviving controllers to finish the work")
    cluster.check_converged(names)


def test_a_writer_paused_past_its_lease_has_its_next_journal_write_refused(cluster: Cluster) -> None:
    """SIGSTOP the writer just before a journal write, let the standby take over and apply, SIGCONT it."""
    import psycopg

    names = ["ts-0"]
    first = cluster.commit(names)
    writer_process = cluster.start("host-a")
    wait_until(lambda: cluster.synced(first), 60, "the writer to apply the first commit")
    standby = cluster.start("host-b")
    wait_until(lambda: any(e["outcome"] == "standby" for e in cluster.events(standby, "tick")), 30,
               "the second controller to wait as a standby")
    old_token = cluster.store.lease(SITE).token  # type: ignore[union-attr]
    # Hold the journal so the writer's next intent waits inside its write (after its lease check), then pause it
    # there: it wakes up with a journal write to finish, the point fencing is about.
    with psycopg.connect(cluster.url, password=cluster.server.password, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE reconcile_journal IN SHARE MODE")
        names.append("ts-created-while-paused")
        second = cluster.commit(names)

        def writer_waits_on_the_journal() -> bool:
            return blocker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s AND wait_event_type = 'Lock'",
                (f"%:{writer_process.pid}",)).fetchone()[0] > 0

        wait_until(writer_waits_on_the_journal, 60, "the writer to wait inside its journal write")
        os.kill(writer_process.pid, signal.SIGSTOP)
        blocker.execute("COMMIT")
    try:
        wait_until(lambda: cluster.writer() == standby.pid and cluster.synced(second), 60,
                   "the standby to take the lapsed lease and apply the commit")
        new_token = cluster.store.lease(SITE).token  # type: ignore[union-attr]
        assert new_token > old_token
        rows_before = len(cluster.store.journal())
    finally:
        os.kill(writer_process.pid, signal.SIGCONT)

    def refused() -> list[dict]:
        return [e for e in cluster.events(writer_process, "tick")
                if e["outcome"] == "standby" and "refused its write" in (e.get("error") or "")]

    wait_until(refused, 60, "the old writer to report its refused write and become a standby")
    assert f"this writer's lease (fencing token {old_token}) was lost" in refused()[0]["error"]
    assert f"with token {new_token}" in refused()[0]["error"]
    assert writer_process.poll() is None  # a standby now, not a crash
    wait_until(lambda: cluster.synced(second), 30, "the site to stay synced")
    journal = cluster.store.journal()
    assert len(journal) >= rows_before
    import psycopg as pg

    with pg.connect(cluster.url, password=cluster.server.password, autocommit=True) as db:
        late = db.execute("SELECT count(*) FROM reconcile_journal WHERE token = %s AND seq > (SELECT min(seq) FROM "
                          "reconcile_journal WHERE token = %s)", (old_token, new_token)).fetchone()[0]
    assert late == 0, "the old writer wrote to the journal after the takeover"
    cluster.check_converged(names)


def test_postgresql_restarted_during_a_tick_is_retried_and_nothing_is_lost(cluster: Cluster) -> None:
    names = [f"ts-{i:02d}" for i in range(4)]
    first = cluster.commit(names)
    process = cluster.start("host-a")
    wait_until(lambda: cluster.synced(first), 60, "the first sync")
    names += [f"ts-new-{i:02d}" for i in range(8)]
    before = cluster.journal_rows()
    second = cluster.commit(names, description="while the database restarts")
    wait_until(lambda: cluster.journal_rows() >= before + 4, 60, "the apply to start", every=0.002)
    cluster.server.restart()  # the controller's connections all drop in the middle of its apply
    wait_for_server(cluster.server)
    wait_until(lambda: cluster.synced(second), 90, "the controller to recover and finish the apply")
    assert process.poll() is None, cluster.text(process)
    # the drop was seen and retried (a transient failure), not missed
    logged = "".join(cluster.output[process.pid][0])
    assert "trying again" in logged or any(e.get("transient") for e in cluster.events(process, "tick"))
    cluster.check_converged(names)
