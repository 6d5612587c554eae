"""Benchmark: controllers on one PostgreSQL state store against the SQLite store.

Three figures, each against a throwaway PostgreSQL server on 127.0.0.1 (the one the tests start):

1. Takeover after kill -9: two controller processes follow one repository; the writer is killed and a commit
   made at once; the time until the standby holds the lease, and until it has applied that commit. Each
   controller runs in a UTS namespace of its own (another host name) when this runs as root, so the standby
   cannot see that the writer's process is gone and must wait for its lease to lapse, as on another host.
   Goal: applied within lease + one interval.
2. Idle ticks (no new commit, no live change) with each store, in-process (the median of 300).
   Goal: ≤ 10 ms with PostgreSQL.
3. A no-change plan of N objects (a forced full tick: read the site, plan, nothing to apply) with each store,
   after one sync whose state is copied into the database (same site, same salt). Goal: PostgreSQL within
   1.2x of SQLite in the same run.

    python bench/ha.py            # N = 10,000
    python bench/ha.py 1000       # a quicker run
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import git

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.controller.tick import Controller, ControllerConfig
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore
from reconciler.state.postgres import PostgresStateStore
from tests.postgres_fixture import PostgresServer, postgres_server

TEMPLATE = """apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {{name: ts-{i:05d}}}
spec:
  name: HA bench {i:05d}
  description: {description}
  steps:
  - {{name: Run, type: RunCommandLine, settings: {{commandLine: cmd /c echo {i}}}}}
---
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {{name: ts-{i:05d}-lab}}
spec: {{taskSequence: ts-{i:05d}, collection: {{name: OSD Lab}}}}
"""

LEASE, INTERVAL = 6.0, 2.0


def make_repo(root: Path, objects: int) -> git.Repo:
    (root / "manifests").mkdir(parents=True)
    for i in range(objects // 2):
        (root / "manifests" / f"ts-{i:05d}.yaml").write_text(TEMPLATE.format(i=i, description="first"))
    repo = git.Repo.init(root, initial_branch="main")
    repo.config_writer().set_value("user", "name", "bench").release()
    repo.config_writer().set_value("user", "email", "bench@example.com").release()
    repo.git.add(A=True)
    repo.index.commit("estate")
    return repo


def commit_change(repo: git.Repo, root: Path, description: str) -> str:
    (root / "manifests" / "ts-00000.yaml").write_text(TEMPLATE.format(i=0, description=description))
    repo.git.add(A=True)
    repo.index.commit(description)
    return repo.head.commit.hexsha


def wait(predicate: object, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise TimeoutError
        time.sleep(0.02)
    return time.monotonic()


def takeover(server: PostgresServer, work: Path, rounds: int = 3) -> None:
    root = work / "takeover-repo"
    repo = make_repo(root, 10)
    site_file = work / "takeover-site" / "site.db"
    site_file.parent.mkdir()
    EmbeddedSite(site_file).close()
    with EmbeddedSite(site_file) as site:
        add_demo_inventory(site)
    url = server.create_database()
    separate_hosts = os.geteuid() == 0 and shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--uts", "true"], capture_output=True).returncode == 0
    store = PostgresStateStore(url, "PS1", server.password)

    def start(host: str) -> subprocess.Popen[bytes]:
        folder = work / host
        (folder / "manifests").mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "reconciler", "controller", "--repo", str(root), "--site", str(site_file),
                   "--state", url, "--interval", f"{INTERVAL:g}s", "--lease-seconds", f"{LEASE:g}",
                   "--commit-poll", "0.2s", "--new-state"]
        if separate_hosts:
            command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *command]
        return subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, **server.env(), "NO_COLOR": "1"})

    def synced(sha: str) -> bool:
        tick = store.get_status("tick") or {}
        return tick.get("sha") == sha and tick.get("outcome") == "ok"

    processes = {"host-a": start("host-a")}
    taken, applied = [], []
    try:
        sha = repo.head.commit.hexsha
        wait(lambda: synced(sha), 120)
        processes["host-b"] = start("host-b")
        for n in range(rounds):
            lease = store.lease_holder("PS1")
            assert lease is not None
            writer_host = lease.host
            writer = next(p for host, p in processes.items() if lease.holder.endswith(f":{p.pid}")
                          and (not separate_hosts or host == writer_host))
            time.sleep(1.0)  # let the standby settle into its standby ticks
            killed = time.monotonic()
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
            sha = commit_change(repo, root, f"takeover {n}")
            holder = lease.holder
            taken.append(wait(lambda: (store.lease_holder("PS1") or lease).holder != holder, 120) - killed)  # noqa: B023
            applied.append(wait(lambda: synced(sha), 120) - killed)  # noqa: B023
            dead = next(host for host, p in processes.items() if p is writer)
            processes[dead] = start(dead)  # the host comes back, as a standby
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
        store.close()
    where = "separate host names (UTS namespaces)" if separate_hosts else "one host name (a dead pid is seen at once)"
    print(f"takeover after kill -9, lease {LEASE:g} s, interval {INTERVAL:g} s, {where}, {rounds} rounds:")
    print(f"  lease taken by the standby: median {statistics.median(taken):.1f} s, max {max(taken):.1f} s")
    print(f"  next commit applied:        median {statistics.median(applied):.1f} s, max {max(applied):.1f} s "
          f"(goal ≤ lease + interval = {LEASE + INTERVAL:g} s)")


def copy_state(sqlite: StateStore, target: PostgresStateStore, server: PostgresServer) -> None:
    """The SQLite store's ownership, last-applied records and salt, into the database (same site, same plan)."""
    import psycopg

    with psycopg.connect(target.url, password=server.password) as db, db.cursor() as cur:
        cur.execute("UPDATE reconcile_sites SET salt = %s WHERE site = 'PS1'", (sqlite.salt.hex(),))
        cur.executemany("INSERT INTO reconcile_ownership VALUES ('PS1', %s, %s, %s)",
                        [(k, n, i) for (k, n), i in sqlite.owned().items()])
        raw = sqlite._db.execute("SELECT kind, name, desired_fp, live_fp, secrets, extra, applied_at FROM applied")
        cur.executemany("INSERT INTO reconcile_applied VALUES ('PS1', %s, %s, %s, %s, %s, %s, %s)", list(raw))
    with psycopg.connect(target.url, password=server.password, autocommit=True) as db:
        db.execute("VACUUM ANALYZE")  # as autovacuum would soon: not in the middle of the measurements


def idle_and_plan(server: PostgresServer, work: Path, objects: int) -> None:
    root = work / "plan-repo"
    make_repo(root, objects)
    site = EmbeddedSite(work / "plan-site.db")
    add_demo_inventory(site)
    sqlite = StateStore(work / "plan-state.db")
    url = server.create_database()
    pg = PostgresStateStore(url, "PS1", server.password)
    config = ControllerConfig(repo=str(root), cache_dir=work / "cache", secrets_base=root / "manifests")
    start = time.perf_counter()
    first = Controller(config, site, sqlite)
    assert first.tick(force=True).outcome == "ok"
    first.release()
    first.close()
    sync = time.perf_counter() - start
    copy_state(sqlite, pg, server)
    pg.close()
    pg = PostgresStateStore(url, "PS1", server.password)  # the store reads its salt when opened
    results: dict[str, tuple[float, float]] = {}
    for name, store in (("SQLite", sqlite), ("PostgreSQL", pg)):
        controller = Controller(config, site, store)
        full = []
        for _ in range(5):
            start = time.perf_counter()
            tick = controller.tick(force=True)
            full.append(time.perf_counter() - start)
            assert tick.outcome == "ok" and tick.actions == 0, tick
        idles = []
        for _ in range(300):
            start = time.perf_counter()
            assert controller.tick().outcome == "skipped"
            idles.append(time.perf_counter() - start)
        idle = statistics.median(idles)
        results[name] = (idle, min(full))
        controller.release()
        controller.close()
    print(f"N = {objects:,} objects (first sync with SQLite {sync:.0f} s, its state copied into PostgreSQL):")
    for name, (idle, full) in results.items():
        print(f"  {name:<10}  idle tick (median) {idle * 1000:5.1f} ms   no-change plan (forced full tick, best of "
              f"5) {full:6.2f} s")
    ratio = results["PostgreSQL"][1] / results["SQLite"][1]
    print(f"  PostgreSQL / SQLite no-change plan: {ratio:.2f}x (goal ≤ 1.2x); idle tick overhead "
          f"{(results['PostgreSQL'][0] - results['SQLite'][0]) * 1000:+.1f} ms (goal: PostgreSQL idle tick ≤ 10 ms)")
    site.close()
    sqlite.close()
    pg.close()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    work = Path(tempfile.mkdtemp(prefix="reconcile-ha-bench-"))
    try:
        with postgres_server() as server:
            takeover(server, work)
            idle_and_plan(server, work, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
