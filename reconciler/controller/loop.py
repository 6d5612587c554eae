"""The controller loop: when to tick, backing off after failures, one writer per site, clean stops.

Ticks come from the interval, from a new commit on the ref (polled cheaply), and with ``--watch``
from file changes in a local working copy (debounced: a burst of saves is one tick). A failed tick
backs off exponentially with jitter up to a cap, then the interval resumes after a success; a tick
that failed on a :class:`~reconciler.errors.TransientError` (a busy site or state store, a timeout)
waits at least as long as the error asked (``retry_after``), and a transient error outside a tick
(renewing the lease, writing status) is retried, never a crash. The loop decides by the error's type,
never by its message. A
second controller for the same site waits as a standby until the lease of the first expires (a
standby is alive but not ready, and ``--once`` as a standby exits 1).
SIGTERM or SIGINT finish the action under way, write status and exit; a second signal exits at once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.controller.metrics import Metrics
from reconciler.controller.tick import Controller, TickResult, change_fields
from reconciler.errors import TransientError

log = logging.getLogger("reconciler.controller")


@dataclass
class LoopConfig:
    interval: float = 300.0
    poll: float = 2.0  # seconds between checks of the ref for a new commit; 0: no polling
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    watch: Path | None = None
    once: bool = False


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``5m``, ``1h`` → seconds."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def backoff(failures: int, config: LoopConfig, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: doubling, with jitter, up to the cap; at least
    ``retry_after`` (what a transient error asked for, itself capped)."""
    delay = min(config.backoff_cap, config.backoff_base * (2 ** max(failures - 1, 0)))
    delay *= rng.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, min(retry_after, config.backoff_cap))
    return delay


class Loop:
    def __init__(self, controller: Controller, config: LoopConfig, metrics: Metrics,
                 emit: Callable[[dict[str, Any]], None]) -> None:
        self.controller = controller
        self.config = config
        self.metrics = metrics
        self.emit = emit
        self.wake = threading.Event()
        self.signals = 0
        self.rng = random.Random()
        self._started: dict[str, Any] = {}
        controller.on_action = self._on_action

    def _on_action(self, item: Any) -> None:
        self.metrics.action(item.action.verb.value, item.outcome)
        self.emit({"event": "action", "object": str(item.action.ref), "verb": item.action.verb.value,
                   "reason": item.action.reason.value, "fields": ",".join(change_fields(item.action)),
                   "outcome": item.outcome, "message": item.message})

    def install_signals(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.signals += 1
            if self.signals > 1:
                os._exit(130)  # second signal: stop now; the journal lets the next start finish
            self.controller.stop_requested = True
            self.wake.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def start_watch(self) -> Any:
        if self.config.watch is None:
            return None
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        loop = self

        class Debounced(FileSystemEventHandler):
            timer: threading.Timer | None = None

            def on_any_event(self, event: Any) -> None:
                if "/.git/" in str(event.src_path) or "/.reconcile/" in str(event.src_path):
                    return
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = threading.Timer(1.0, loop.wake.set)
                self.timer.daemon = True
                self.timer.start()

        observer = Observer()
        observer.schedule(Debounced(), str(self.config.watch), recursive=True)
        observer.daemon = True
        observer.start()
        return observer

    def record(self, result: TickResult, trigger: str) -> None:
        self.metrics.tick(result)
        # The tick's line names what it changed (or, without self-heal, found): objects and their fields.
        changed = "; ".join(f"{key} {detail}" for key, detail in sorted(result.details.items()))
        self.emit({"event": "tick", "trigger": trigger, **result.to_json(),
                   **({"changed": changed} if changed else {}),
                   **({"transient": True} if result.transient else {})})

    def _tick(self, force: bool) -> TickResult:
        """One tick; a transient error it lets out (writing its status to a busy store) is a failed tick."""
        try:
            return self.controller.tick(force=force)
        except TransientError as exc:
            log.warning("tick: %s", exc)
            return TickResult("error", self.controller.last_sha, error=str(exc), transient=True,
                              retry_after=exc.retry_after)

    def _has_lease(self) -> bool | None:
        """Renew the lease between ticks; None when the store was too busy to tell (the next tick asks again)."""
        try:
            return self.controller.has_lease()
        except TransientError as exc:
            log.warning("renewing the lease between ticks: %s", exc)
            return None

    def run(self) -> int:
        observer = self.start_watch()
        # What `reconcile status` needs to tell a recent tick from a stale one, and which branch it follows.
        config = self.controller.config
        self._started = {"started_at": time.time(), "holder": self.controller.holder, "interval": self.config.interval,
                         "repo": str(Path(config.repo).resolve()) if Path(config.repo).exists() else config.repo,
                         "ref": config.ref, "path": config.path, "self_heal": config.self_heal}
        try:
            self.controller.state.put_status("controller", self._started)
        except TransientError as exc:  # status says less until the next start: not worth failing to start
            log.warning("starting: %s", exc)
        code = 0
        failures = 0
        next_tick = 0.0
        trigger = "start"
        renewed = time.monotonic()
        lease = self.controller.config.lease_seconds
        try:
            while not self.controller.stop_requested:
                now = time.monotonic()
                if self.controller.config.self_heal and self.controller.paused is None and now - renewed >= lease / 3:
                    # The writer keeps its lease alive between ticks, however long the interval.
                    renewed = now
                    if self.controller.last_outcome != "standby" and self._has_lease() is False:
                        next_tick = 0.0  # someone else writes now: become a standby at once
                if now >= next_tick or self.wake.is_set():
                    if self.wake.is_set() and trigger != "start":
                        trigger = "watch"
                    self.wake.clear()
                    # Nothing in Git or on the site shows a rotated secret: with --refresh-secrets the
                    # interval tick plans in full to read them.
                    result = self._tick(force=trigger == "interval" and self.controller.config.refresh_secrets)
                    self.record(result, trigger)
                    if result.outcome in ("error", "failed"):
                        failures += 1
                        delay = backoff(failures, self.config, self.rng,
                                        result.retry_after if result.transient else None)
                    else:
                        failures = 0
                        delay = self.config.interval
                    if result.outcome == "standby":
                        delay = min(self.config.interval, self.controller.config.lease_seconds / 2)
                    next_tick = time.monotonic() + delay
                    trigger = "interval"
                    if self.config.once:
                        # A standby reconciled nothing: a job or script running one tick must not read that as done.
                        code = 1 if result.outcome in ("error", "failed", "blocked", "standby") else 0
                        break
                    continue
                self.wake.wait(min(self.config.poll or 1.0, max(next_tick - now, 0.05)))
                if self.controller.stop_requested:
                    break
                # A new commit ends a backoff too: it is most often the fix for what failed.
                if self.config.poll and not self.wake.is_set() and self.controller.last_outcome != "standby" \
                        and self._new_commit():
                    trigger = "commit"
                    next_tick = 0.0
        finally:
            if observer is not None:
                observer.stop()
            try:
                self.controller.state.put_status("controller", {**self._started, "stopped_at": time.time(),
                                                                "holder": self.controller.holder})
            except TransientError as exc:  # the status still says the last tick
                log.warning("stopping: %s", exc)
            try:
                self.controller.release()
            except TransientError as exc:  # not released: the lease lapses on its own
                log.warning("stopping: %s", exc)
            self.emit({"event": "stop", "holder": self.controller.holder})
        return code

    def _new_commit(self) -> bool:
        try:
            return self.controller.resolve() != self.controller.last_sha
        except Exception:  # unreachable repository: the next tick reports it
            return False


def json_emitter(stream: Any) -> Callable[[dict[str, Any]], None]:
    def emit(event: dict[str, Any]) -> None:
        stream.write(json.dumps({"ts": time.time(), **event}, default=str) + "\n")
        stream.flush()

    return emit


def text_emitter(stream: Any) -> Callable[[dict[str, Any]], None]:
    def emit(event: dict[str, Any]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        kind = event.pop("event")
        stream.write(f"{stamp} {kind} " + " ".join(f"{k}={v}" for k, v in event.items() if v not in (None, ""))
                     + "\n")
        stream.flush()

    return emit
