"""Benchmark: the controller's idle ticks and the time from a commit to the change being applied.

For N objects (N/2 task sequences and their N/2 deployments) in a Git repository, after a first
sync: idle ticks per second (no new commit, no live change), a forced full tick (read everything,
plan) for comparison, and the time from a one-object commit to its apply by the next tick (add the
loop's commit poll, 2 s by default, for the wall-clock latency of a running controller).

    python bench/controller.py          # N = 1,000 and 10,000
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import git

from reconciler.controller.tick import Controller, ControllerConfig
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore

TEMPLATE = """apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {{name: ts-{i:05d}}}
spec:
  name: Controller bench {i:05d}
  description: {description}
  steps:
  - {{name: Run, type: RunCommandLine, settings: {{commandLine: cmd /c echo {i}}}}}
  - {{name: Restart, type: Restart, settings: {{target: HD}}}}
---
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {{name: ts-{i:05d}-lab}}
spec: {{taskSequence: ts-{i:05d}, collection: {{name: OSD Lab}}}}
"""


def measure(objects: int) -> None:
    work = Path(tempfile.mkdtemp())
    try:
        root = work / "repo"
        (root / "manifests").mkdir(parents=True)
        for i in range(objects // 2):
            (root / "manifests" / f"ts-{i:05d}.yaml").write_text(TEMPLATE.format(i=i, description="first"))
        repo = git.Repo.init(root, initial_branch="main")
        repo.config_writer().set_value("user", "name", "bench").release()
        repo.config_writer().set_value("user", "email", "bench@example.com").release()
        repo.git.add(A=True)
        repo.index.commit("estate")
        site = EmbeddedSite(work / "site.db")
        add_demo_inventory(site)
        state = StateStore(work / "state.db")
        controller = Controller(ControllerConfig(repo=str(root), cache_dir=work / "cache",
                                                 secrets_base=root / "manifests"), site, state)
        start = time.perf_counter()
        first = controller.tick(force=True)
        sync = time.perf_counter() - start
        assert first.outcome == "ok", first.error
        start = time.perf_counter()
        full = controller.tick(force=True)
        full_seconds = time.perf_counter() - start
        assert full.outcome == "ok" and full.actions == 0
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3:
            assert controller.tick().outcome == "skipped"
            count += 1
        idle = (time.perf_counter() - start) / count
        (root / "manifests" / "ts-00000.yaml").write_text(TEMPLATE.format(i=0, description="second"))
        repo.git.add(A=True)
        repo.index.commit("one object")
        start = time.perf_counter()
        change = controller.tick()
        to_applied = time.perf_counter() - start
        assert change.outcome == "ok" and change.applied == 1, change
        print(f"objects={objects:>6}  first sync={sync:6.1f}s  idle ticks={1 / idle:7.1f}/s ({idle * 1000:6.1f} ms)  "
              f"full no-change tick={full_seconds:6.2f}s  idle/full={100 * idle / full_seconds:5.2f}%  "
              f"commit→applied={to_applied:5.2f}s (+ up to 2 s commit poll)")
        controller.close()
        site.close()
        state.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [1_000, 10_000]:
        measure(n)
