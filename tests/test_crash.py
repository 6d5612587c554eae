"""Killing an apply at random points (kill -9) and running again always converges, with no duplicates.

The applies are real processes (a kill -9 is the point); each is killed at a random point of its progress
through the journal, so every kill lands in the middle of real work. The final checks run in-process."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from reconciler.site.embedded import EmbeddedSite
from reconciler.state import StateStore
from tests.conftest import run_cli, wait_until

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
#: Enough work (a sequence and a deployment each, about 150 journal rows) that every one of the ten kills
#: below lands in the middle of an apply rather than after the estate converged.
SEQUENCES = 24


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


class Journal:
    """How far the applies got: rows of the journal (intents, creations, outcomes), read without writing.

    An apply writes its rows within milliseconds of each other, so one read-only connection is kept and
    asked every millisecond: a kill then lands a few rows after the chosen point.
    """

    def __init__(self, work: Path) -> None:
        self.path = work / ".reconcile" / "state.db"
        self.db: sqlite3.Connection | None = None

    def rows(self) -> int:
        if self.db is None:
            if not self.path.exists():
                return 0
            self.db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            return self.db.execute("SELECT count(*) FROM journal").fetchone()[0]
        except sqlite3.OperationalError:  # the first run is still creating the store
            return 0

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def holds_the_lease(work: Path, pid: int) -> bool:
    if not (work / ".reconcile" / "state.db").exists():
        return False
    state = StateStore(work / ".reconcile" / "state.db")
    try:
        lease = state.lease_holder("PS1")
    finally:
        state.close()
    return lease is not None and lease.pid == str(pid)


def kill_9_after(work: Path, journal: Journal, process: subprocess.Popen[bytes], progress: int) -> bool:
    """Kill ``process`` once it holds the lease (``progress`` 0) or wrote ``progress`` more journal rows;
    False when it finished first."""
    before = journal.rows()
    try:
        wait_until(lambda: process.poll() is not None or (
            holds_the_lease(work, process.pid) if progress == 0 else journal.rows() >= before + progress),
            120, "the apply to make progress", every=0.001)
        if process.poll() is not None:
            return False
        process.send_signal(signal.SIGKILL)
        return True
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def test_kill_9_mid_apply_then_rerun_converges_without_duplicates(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    (tmp_path / "manifests").mkdir()
    estate(tmp_path / "manifests", SEQUENCES)
    assert run_cli("site", "init", "--demo", cwd=tmp_path).returncode == 0
    killed = 0
    journal = Journal(tmp_path)
    try:
        for _ in range(10):
            # Kill as soon as the lease is taken (0), or after this run wrote 1 to 10 more journal rows: an
            # intent, the ID of what the site just created, or an outcome.
            killed += kill_9_after(tmp_path, journal, run(tmp_path), rng.randint(0, 10))
    finally:
        journal.close()
    assert killed >= 5, "the kills should interrupt applies"
    final = run_cli("manifests", "--yes", cwd=tmp_path, env={"NO_COLOR": "1"})  # the run that finishes the work
    assert final.returncode == 0, final
    check = run_cli("manifests", "--dry-run", "--detailed-exitcode", cwd=tmp_path, env={"NO_COLOR": "1"})
    assert check.returncode == 0, check
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        live = site.read()
    names = Counter(t.name for t in live.task_sequences.values())
    assert len(names) == SEQUENCES and set(names.values()) == {1}
    targets = Counter((d.package_id, d.collection_id) for d in live.deployments.values())
    assert len(targets) == SEQUENCES and set(targets.values()) == {1}
    state = StateStore(tmp_path / ".reconcile" / "state.db")
    owned = state.owned()
    pending = state.pending()
    journal = state.journal()
    state.close()
    assert {owned[("TaskSequence", f"ts-{i:02d}")] for i in range(SEQUENCES)} == set(live.task_sequences)
    # Recovery finished every interrupted intent: nothing pending, and each intent has an outcome in the journal.
    assert pending == set()
    intents = Counter((e.plan_id, e.object) for e in journal if e.phase == "intent")
    ended = Counter((e.plan_id, e.object) for e in journal if e.phase == "outcome")
    assert not [key for key, count in intents.items() if ended[key] < count]
