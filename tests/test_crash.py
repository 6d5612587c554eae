"""Killing an apply at random points (kill -9) and running again always converges, with no duplicates."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}


def estate(folder: Path, n: int) -> None:
    docs = []
    for i in range(n):
        docs.append({**HEAD, "kind": "TaskSequence", "metadata": {"name": f"ts-{i:02d}"},
                     "spec": {"name": f"Crash test {i:02d}", "steps": [
                         {"name": "Run", "type": "RunCommandLine",
                          "settings": {"commandLine": f"cmd /c echo {i}", "package": {"package": "OSD Tools"}}}]}})
        docs.append({**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": f"ts-{i:02d}-lab"},
                     "spec": {"taskSequence": f"ts-{i:02d}", "collection": {"name": "OSD Lab"}}})
    docs.append({**HEAD, "kind": "ContentDistribution", "metadata": {"name": "ts-00-content"},
                 "spec": {"taskSequence": "ts-00", "distributionPointGroups": ["All DPs"]}})
    (folder / "estate.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))


def run(work: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "reconciler", "manifests", "--yes", *args], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env={**os.environ, "NO_COLOR": "1"})


def test_kill_9_mid_apply_then_rerun_converges_without_duplicates(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    (tmp_path / "manifests").mkdir()
    estate(tmp_path / "manifests", 12)
    # Time one full apply so the kills land across all of it.
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "manifests").mkdir()
    estate(probe / "manifests", 12)
    start = time.monotonic()
    assert run(probe).wait(timeout=120) == 0
    full = time.monotonic() - start
    subprocess.run([sys.executable, "-m", "reconciler", "site", "init", "--demo"], cwd=tmp_path, check=True,
                   capture_output=True)
    killed = 0
    for _ in range(20):
        process = run(tmp_path)
        time.sleep(rng.uniform(0.0, full))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=60)
    assert killed >= 5, "the kills should interrupt applies"
    final = run(tmp_path)
    assert final.wait(timeout=120) == 0
    check = subprocess.run([sys.executable, "-m", "reconciler", "manifests", "--dry-run", "--detailed-exitcode"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        live = site.read()
    names = Counter(t.name for t in live.task_sequences.values())
    assert len(names) == 12 and set(names.values()) == {1}
    targets = Counter((d.package_id, d.collection_id) for d in live.deployments.values())
    assert len(targets) == 12 and set(targets.values()) == {1}
    state = StateStore(tmp_path / ".reconcile" / "state.db")
    owned = state.owned()
    pending = state.pending()
    journal = state.journal()
    state.close()
    assert {owned[("TaskSequence", f"ts-{i:02d}")] for i in range(12)} == set(live.task_sequences)
    # Recovery finished every interrupted intent: nothing pending, and each intent has an outcome in the journal.
    assert pending == set()
    intents = Counter((e.plan_id, e.object) for e in journal if e.phase == "intent")
    ended = Counter((e.plan_id, e.object) for e in journal if e.phase == "outcome")
    assert not [key for key, count in intents.items() if ended[key] < count]
