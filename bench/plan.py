"""Benchmark: plans against an applied estate of N task sequences on the embedded site.

Generates N task sequences of 20 steps, N deployments and 10 x N collection variables, applies them
to a fresh embedded site, then times a no-change dry run and a dry run with 1% of the manifests
edited (load, validate, read the site, plan), with peak memory, beside the time PyYAML's C loader
alone needs to parse the same files.

    python bench/plan.py            # N = 1,000 and 10,000
    python bench/plan.py 500        # other sizes
    python bench/plan.py --deployments 1000   # N deployments in one file vs one file each

The ``--deployments`` case plans N new deployments whose content is on no distribution point, so each
gets a content warning that names its file and line: written in one file, they must cost about what
they cost in separate files (every file is read and composed at most once per plan).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

from reconciler.apply.executor import apply_plan
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.source.loader import iter_manifest_files, load
from reconciler.state import StateStore
from reconciler.validate import validate

STEP = """\
      - name: Step {i}
        type: RunCommandLine
        condition: {{variable: {{name: OSDStep{i}, operator: notEquals, value: skip}}}}
        settings: {{commandLine: cmd.exe /c echo {n} {i}, successCodes: [0, 3010]}}
"""


def write_estate(root: Path, n: int, edited: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    for i in range(n):
        folder = root / f"group-{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        marker = " edited" if i in edited else ""
        steps = "".join(STEP.format(i=j, n=i) for j in range(17))
        variables = "".join(f"    - {{name: OSDVar{j}, value: value {j}{marker}}}\n" for j in range(10))
        (folder / f"ts-{i:05d}.yaml").write_text(f"""apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {{name: ts-{i:05d}}}
spec:
  name: Bench sequence {i:05d}
  description: Generated{marker}
  folder: Bench/Folder{i % 50}
  steps:
  - group: Prepare
    steps:
{steps}  - name: Restart
    type: Restart
    settings: {{target: HD, messageTimeout: 60}}
  - name: Apply image
    type: ApplyOperatingSystemImage
    settings: {{image: {{package: Windows 11 23H2 x64}}, index: 1}}
---
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {{name: ts-{i:05d}-pilot}}
spec:
  taskSequence: ts-{i:05d}
  collection: {{name: OSD Pilot}}
  schedule: {{rerun: IfFailed}}
---
apiVersion: configmgr.gitops.io/v1alpha1
kind: CollectionVariables
metadata: {{name: bench-{i:05d}}}
spec:
  collection: {{name: Bench collection {i:05d}}}
  variables:
{variables}""")


def parse_floor(root: Path) -> float:
    files = list(iter_manifest_files(root))
    start = time.perf_counter()
    for path in files:
        list(yaml.load_all(path.read_bytes(), Loader=yaml.CSafeLoader))
    return time.perf_counter() - start


def dry_run(root: Path, site: EmbeddedSite, state: StateStore) -> tuple[float, int]:
    start = time.perf_counter()
    desired = load(root)
    validate(desired)
    plan = make_plan(desired, site.read(), state)
    return time.perf_counter() - start, len(plan.actions)


def peak_of(root: Path, site: EmbeddedSite, state: StateStore) -> float:
    tracemalloc.start()
    dry_run(root, site, state)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


DEPLOYMENT = """\
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {{name: dep-{i:05d}}}
spec:
  taskSequence: ts-{i:05d}
  collection: {{name: OSD Pilot}}
  comment: Bench deployment {i:05d}
  schedule: {{rerun: IfFailed}}
"""


def write_deployments(root: Path, n: int, one_file: bool) -> None:
    """N small sequences, one file each, and N deployments of them: all in one file, or one file each."""
    sequences = root / "task-sequences"
    sequences.mkdir(parents=True)
    for i in range(n):
        steps = "".join(STEP.format(i=j, n=i) for j in range(3))
        (sequences / f"ts-{i:05d}.yaml").write_text(f"""apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {{name: ts-{i:05d}}}
spec:
  name: Bench sequence {i:05d}
  steps:
  - name: Apply image
    type: ApplyOperatingSystemImage
    settings: {{image: {{package: Windows 11 23H2 x64}}, index: 1}}
  - group: Prepare
    steps:
{steps}""")
    deployments = root / "deployments"
    deployments.mkdir()
    if one_file:
        (deployments / "all.yaml").write_text("---\n".join(DEPLOYMENT.format(i=i) for i in range(n)))
    else:
        for i in range(n):
            (deployments / f"dep-{i:05d}.yaml").write_text(DEPLOYMENT.format(i=i))


def measure_deployments(n: int) -> None:
    """Dry-run plan time of N deployments in one file against the same N in one file each."""
    figures = {}
    for one_file in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            write_deployments(work / "manifests", n, one_file)
            site = EmbeddedSite(work / "site.db")
            add_demo_inventory(site)
            state = StateStore(work / "state.db")
            start = time.perf_counter()
            desired = load(work / "manifests")
            validate(desired)
            plan = make_plan(desired, site.read(), state)
            first = time.perf_counter() - start
            warned = sum(1 for w in plan.warnings if w.ref.kind == "TaskSequenceDeployment")
            assert warned == n, f"expected a content warning per deployment, got {warned}"
            seconds = min(first, dry_run(work / "manifests", site, state)[0])
            peak = peak_of(work / "manifests", site, state)
            label = "one file" if one_file else "separate files"
            print(f"{n} deployments in {label:>14}: objects={2 * n:>6}  dry-run plan={seconds:6.2f}s  "
                  f"peak={peak:6.1f} MiB  ({warned} content warnings)", flush=True)
            figures[one_file] = seconds
            site.close()
            state.close()
    print(f"one file / separate files = {figures[True] / figures[False]:.2f}x (goal: at most 1.3x)")


def measure(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifests = work / "manifests"
        write_estate(manifests, n)
        site = EmbeddedSite(work / "site.db")
        add_demo_inventory(site)
        for i in range(n):
            site.add_collection(f"Bench collection {i:05d}", 10)
        state = StateStore(work / "state.db")
        start = time.perf_counter()
        result = apply_plan(make_plan(load(manifests), site.read(), state), site, state, manifests)
        applied = time.perf_counter() - start
        assert result.ok
        floor = min(parse_floor(manifests) for _ in range(2))
        no_change, actions = min(dry_run(manifests, site, state) for _ in range(2))
        assert actions == 0
        no_change_peak = peak_of(manifests, site, state)
        edited = set(range(0, n, 100))
        write_estate(manifests, n, edited)
        one_percent, actions = min(dry_run(manifests, site, state) for _ in range(2))
        print(f"N={n:>6}  objects={3 * n:>6}  apply(first)={applied:7.1f}s  "
              f"no-change plan={no_change:6.2f}s ({no_change / floor:4.2f}x floor)  "
              f"1% edited={one_percent:6.2f}s ({actions} actions)  C-parse floor={floor:6.2f}s  "
              f"peak={no_change_peak:6.1f} MiB")
        site.close()
        state.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if sys.argv[1:2] == ["--deployments"]:
        for size in [int(a) for a in sys.argv[2:]] or [1_000]:
            measure_deployments(size)
    else:
        for size in [int(a) for a in sys.argv[1:]] or [1_000, 10_000]:
            measure(size)
