"""Sending notices without ever holding up a tick: a bounded queue and one background thread.

A tick hands its notices over and goes on (:meth:`Notifier.notify` never waits: a full queue drops the
notice and says so in the log). The sender tries each target a bounded number of times, backing off between
attempts (longer when the receiver asked with Retry-After, within a cap), and gives up on a target that
refused for good (a 4xx). A receiver that hangs costs the sender one timeout per attempt, never a tick. The
log names a target by its redacted description, never its URL, which may be the credential itself.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.notify.notice import Notice
from reconciler.notify.targets import SendFailed, Target

log = logging.getLogger("reconciler.notify")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    first_delay: float = 1.0
    max_delay: float = 30.0


class Notifier:
    """The controller's notifier: ``notify`` queues, a daemon thread sends. ``close`` drains within a deadline."""

    def __init__(self, targets: Sequence[Target], retry: RetryPolicy | None = None, capacity: int = 100,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.targets = tuple(targets)
        self.retry = retry or RetryPolicy()
        self.queue: queue.Queue[Notice | None] = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread = threading.Thread(target=self._run, name="reconcile-notify", daemon=True)
        if self.targets:
            self._thread.start()

    def notify(self, notice: Notice) -> None:
        """Queue a notice; never blocks (a full queue drops it, with a warning)."""
        if not self.targets:
            return
        try:
            self.queue.put_nowait(notice)
        except queue.Full:
            self.dropped += 1
            log.warning("notifications: the queue is full (%d waiting); dropped %s", self.queue.maxsize,
                        notice.title)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for at most ``timeout`` seconds, then stop (the thread is a daemon either way)."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._stop.set()

    def _run(self) -> None:
        while True:
            notice = self.queue.get()
            if notice is None:
                return
            for target in self.targets:
                self._deliver(target, notice)

    def _deliver(self, target: Target, notice: Notice) -> None:
        delay = self.retry.first_delay
        for attempt in range(1, self.retry.attempts + 1):
            try:
                target.send(notice)
            except SendFailed as exc:
                if not exc.retry or attempt == self.retry.attempts:
                    self.failed += 1
                    log.warning("notifications: %s: gave up after %d attempt(s): %s", target.describe(), attempt,
                                exc)
                    return
                wait = min(self.retry.max_delay, max(delay, exc.after or 0.0))
                log.info("notifications: %s: attempt %d failed (%s); retrying in %.1f s", target.describe(),
                         attempt, exc, wait)
                self._sleep(wait)
                delay *= 2
                continue
            except Exception as exc:  # a bug in a target must not end the sender; the log says which
                self.failed += 1
                log.warning("notifications: %s: %s", target.describe(), type(exc).__name__)
                return
            self.sent += 1
            return
