"""Benchmark: `reconcile validate` on generated estates against the C YAML loader's parse floor.

Generates N task sequences of 20 steps with a deployment and a variable set each, then prints
files, documents, seconds and peak memory for the full validation (load, per-document models, set
rules) and, beside it, the time PyYAML's C loader alone needs to parse the same files.

    python bench/validate.py            # N = 1,000 and 10,000
    python bench/validate.py 500 2000   # other sizes
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

from reconciler.source.loader import iter_manifest_files, load
from reconciler.validate import has_errors, validate

STEP = """\
    - name: Step {i}
      type: RunCommandLine
      condition: {{variable: {{name: OSDStep{i}, operator: notEquals, value: skip}}}}
      settings: {{commandLine: cmd.exe /c echo {i}, successCodes: [0, 3010]}}
"""


def task_sequence(n: int) -> str:
    steps = "".join(STEP.format(i=i) for i in range(16))
    return f"""apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {{name: ts-{n:05d}}}
spec:
  name: Task sequence {n}
  type: Custom
  folder: Bench/Folder{n % 50}
  steps:
  - group: Prepare
    steps:
{steps.replace(chr(10) + "    ", chr(10) + "      ").replace("    - name", "      - name", 1)}  - name: Restart
    type: Restart
    settings: {{target: HD, messageTimeout: 60}}
  - name: Apply image
    type: ApplyOperatingSystemImage
    settings: {{image: {{id: PS1{n % 4096:04X}0}}, index: 1}}
  - name: Set variable
    type: SetVariable
    settings: {{variableName: OSDDone, value: "true"}}
"""


def deployment(n: int) -> str:
    return f"""apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {{name: ts-{n:05d}-pilot}}
spec:
  taskSequence: ts-{n:05d}
  collection: {{name: Pilot {n % 100}}}
  purpose: Available
  schedule: {{availableAt: 2026-12-01T08:00:00Z, utc: true, rerun: IfFailed}}
---
apiVersion: configmgr.gitops.io/v1alpha1
kind: CollectionVariables
metadata: {{name: ts-{n:05d}-vars}}
spec:
  collection: {{name: Bench collection {n}}}
  priority: {1 + n % 9}
  variables:
{"".join(f"    - {{name: OSDVar{j}, value: value {j}}}{chr(10)}" for j in range(10))}"""


def generate(root: Path, n: int) -> None:
    for i in range(n):
        folder = root / f"group-{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"ts-{i:05d}.yaml").write_text(task_sequence(i))
        (folder / f"ts-{i:05d}-deploy.yaml").write_text(deployment(i))


def parse_floor(root: Path) -> float:
    files = list(iter_manifest_files(root))
    start = time.perf_counter()
    for path in files:
        list(yaml.load_all(path.read_bytes(), Loader=yaml.CSafeLoader))
    return time.perf_counter() - start


def measure(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, n)
        parse_floor(root)  # warm the page cache for both measurements
        floor = min(parse_floor(root) for _ in range(2))
        seconds = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            state = load(root)
            findings = validate(state)
            seconds = min(seconds, time.perf_counter() - start)
        # Peak memory in a separate run: tracing allocations slows Python code down several times.
        tracemalloc.start()
        validate(load(root))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert not has_errors(findings), [f.render() for f in findings[:5]]
        print(f"N={n:>6}  files={state.files:>6}  documents={state.documents:>6}  objects={len(state.objects):>6}  "
              f"validate={seconds:7.2f}s  C-parse floor={floor:7.2f}s  ratio={seconds / floor:4.2f}x  "
              f"peak={peak / 2**20:7.1f} MiB")


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 10_000]
    for size in sizes:
        measure(size)
