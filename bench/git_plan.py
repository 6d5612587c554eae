"""Benchmark: plans from a Git repository, cold and warm, against an applied embedded site.

Builds a repository of N task sequences (20 steps each) and their deployments with a history of
commits, applies it, then times (load from the commit's tree, validate, read the site, plan):

- a cold plan: empty parse cache;
- a warm plan with no change: every file comes from the parse cache (keyed by Git blob ID);
- a plan after a one-file commit: one file is parsed again.

Target: the plan after a one-file commit takes at most 10% of the cold plan.

    python bench/git_plan.py            # N = 10,000
    python bench/git_plan.py 1000
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import git

from reconciler.apply.executor import apply_plan
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.source.cache import ParseCache
from reconciler.source.git import GitRepository, load_revision
from reconciler.state import StateStore
from reconciler.validate import validate

STEP = """\
      - name: Step {i}
        type: RunCommandLine
        condition: {{variable: {{name: OSDStep{i}, operator: notEquals, value: skip}}}}
        settings: {{commandLine: cmd.exe /c echo {n} {i}, successCodes: [0, 3010]}}
"""


def write(root: Path, i: int, marker: str = "") -> None:
    folder = root / "manifests" / f"group-{i // 500:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    steps = "".join(STEP.format(i=j, n=i) for j in range(18))
    (folder / f"ts-{i:05d}.yaml").write_text(f"""apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {{name: ts-{i:05d}}}
spec:
  name: Bench sequence {i:05d}
  description: Generated{marker}
  steps:
  - group: Prepare
    steps:
{steps}  - name: Apply image
    type: ApplyOperatingSystemImage
    settings: {{image: {{package: Windows 11 23H2 x64}}, index: 1}}
---
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {{name: ts-{i:05d}-lab}}
spec:
  taskSequence: ts-{i:05d}
  collection: {{name: OSD Lab}}
""")


def timed_plan(repo: GitRepository, cache: ParseCache, site: EmbeddedSite, state: StateStore) -> tuple[float, int, int]:
    start = time.perf_counter()
    desired = load_revision(repo, repo.resolve("main"), "manifests", cache)
    validate(desired)
    plan = make_plan(desired, site.read(), state)
    return time.perf_counter() - start, desired.parsed, len(plan.actions)


def measure(n: int) -> None:
    work = Path(tempfile.mkdtemp())
    try:
        root = work / "repo"
        repo = git.Repo.init(root, initial_branch="main")
        repo.config_writer().set_value("user", "name", "bench").release()
        repo.config_writer().set_value("user", "email", "bench@example.com").release()
        for i in range(n):
            write(root, i)
        repo.git.add(A=True)
        repo.index.commit("estate")
        for c in range(3):  # a little history
            write(root, c, f" (rev {c})")
            repo.git.add(A=True)
            repo.index.commit(f"change {c}")
        source = GitRepository(str(root), work / "cache")
        site = EmbeddedSite(work / "site.db")
        add_demo_inventory(site)
        state = StateStore(work / "state.db")
        start = time.perf_counter()
        desired = load_revision(source, source.resolve("main"), "manifests")
        applied = apply_plan(make_plan(desired, site.read(), state), site, state, root / "manifests")
        apply_seconds = time.perf_counter() - start
        assert applied.ok
        cache = ParseCache(work / "cache" / "parse-cache.db")
        cold, cold_parsed, actions = timed_plan(source, cache, site, state)
        assert actions == 0
        warm, warm_parsed, _ = timed_plan(source, cache, site, state)
        write(root, n // 2, " (one-file commit)")
        repo.git.add(A=True)
        repo.index.commit("one file")
        one, one_parsed, one_actions = timed_plan(source, cache, site, state)
        print(f"N={n:>6}  files={2 * 0 + n:>6}  apply(first)={apply_seconds:6.1f}s  cold plan={cold:6.2f}s "
              f"(parsed {cold_parsed})  warm no-change={warm:6.2f}s (parsed {warm_parsed})  "
              f"after one-file commit={one:6.2f}s (parsed {one_parsed}, {one_actions} action(s))  "
              f"one-file/cold={100 * one / cold:4.1f}%")
        cache.close()
        site.close()
        state.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for size in [int(a) for a in sys.argv[1:]] or [10_000]:
        measure(size)
