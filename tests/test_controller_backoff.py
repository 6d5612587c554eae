"""The controller backs off on transient errors by their type: a busy store is a failed tick to retry, never a crash.

The busy store is real: a second SQLite connection holds the write lock past a short busy timeout.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import storage
from reconciler.controller.loop import Loop, LoopConfig, backoff
from reconciler.controller.metrics import Metrics
from reconciler.controller.tick import Controller, ControllerConfig
from reconciler.site import create_site, open_site
from reconciler.state import StateStore


def test_backoff_waits_at_least_what_a_transient_error_asked_for_within_the_cap() -> None:
    config = LoopConfig(backoff_base=2, backoff_cap=60)
    rng = random.Random(7)
    assert all(backoff(1, config, rng, retry_after=30) >= 30 for _ in range(20))
    assert all(backoff(1, config, rng, retry_after=3600) <= 60 * 1.5 for _ in range(20))
    assert all(backoff(1, config, rng) <= 3 for _ in range(20))  # without it: the first step of the doubling


@pytest.fixture
def busy_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Loop]:
    """A controller whose state store another process keeps locked (its lock is released at the end)."""
    monkeypatch.setattr(storage, "BUSY_TIMEOUT", 0.2)
    create_site(tmp_path / "site.db", demo=True).close()
    site, state = open_site(tmp_path / "site.db"), StateStore(tmp_path / "state.db")
    controller = Controller(ControllerConfig(repo=str(tmp_path / "repo"), cache_dir=tmp_path, lease_seconds=30),
                            site, state)
    events: list[dict[str, Any]] = []
    loop = Loop(controller, LoopConfig(once=True, poll=0), Metrics(), events.append)
    loop.events = events  # type: ignore[attr-defined]
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield loop
    finally:
        other.execute("ROLLBACK")
        other.close()
        controller.close()
        site.close()
        state.close()


def test_a_tick_on_a_busy_state_store_fails_as_transient_and_the_loop_does_not_crash(busy_state: Loop) -> None:
    code = busy_state.run()
    assert code == 1  # --once: the tick did not reconcile
    ticks = [e for e in busy_state.events if e["event"] == "tick"]  # type: ignore[attr-defined]
    assert len(ticks) == 1 and ticks[0]["outcome"] == "error" and ticks[0]["transient"] is True
    assert "state store" in ticks[0]["error"] and "is busy" in ticks[0]["error"]
    assert busy_state.events[-1]["event"] == "stop"  # type: ignore[attr-defined]


def test_renewing_the_lease_between_ticks_on_a_busy_store_waits_for_the_next_tick(busy_state: Loop) -> None:
    assert busy_state._has_lease() is None  # could not tell: neither a crash nor "become a standby"
