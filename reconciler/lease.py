"""Holding a site's lease for as long as a writer works: one writer per site, and none held by the dead.

A writer (a one-shot apply, a controller) takes the lease before it reads the site for a plan it will
apply, so two writers never plan against the same site at once, and renews it from a background
thread while it works: at a confirmation prompt, during a long action, while content is awaited. A
writer that dies, on any host, stops renewing, and its lease lapses after one TTL (30 s by default);
`reconcile unlock LEASE_ID` frees it at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from reconciler.errors import ReconcilerError
from reconciler.state import Lease, LeaseStore, StateBackend

log = logging.getLogger("reconciler.lease")

#: Seconds a lease lasts without renewal, for one-shot applies and controllers alike.
DEFAULT_LEASE_SECONDS = 30.0


def holder_id() -> str:
    """``host:pid``: which process writes, in words a person can check on that host."""
    return f"{socket.gethostname()}:{os.getpid()}"


def held_by(lease: Lease | None) -> str:
    """Who holds the lease and how to get it back: the text of every refusal and standby message."""
    if lease is None:
        return "another writer"
    return (f"{lease.describe()} (lease ID {lease.lease_id}); wait for it to finish, or, if that process is dead, "
            f"run 'reconcile unlock {lease.lease_id}'")


class LeaseHeld(ReconcilerError):
    """Another writer holds the site's lease: nothing was read from the site or planned."""

    def __init__(self, site: str, lease: Lease | None) -> None:
        self.site = site
        self.lease = lease
        super().__init__(f"site {site} is being reconciled by {held_by(lease)}")


class LeaseKeeper:
    """One writer's hold on a site's lease, renewed in the background until released.

    The calling thread takes (or renews) the lease with :meth:`acquire`; a daemon thread then renews
    that very lease, by ID, every third of its TTL. A writer notes the ID it planned under and asks
    :meth:`check` before each action: when the lease was unlocked, or lapsed and was taken (even if it was
    taken back since, with a new ID), the plan may be stale and the writer stops.
    """

    def __init__(self, state: StateBackend, site: str, kind: str, ttl: float, holder: str | None = None) -> None:
        self.state = state
        self.site = site
        self.kind = kind
        self.ttl = ttl
        self.holder = holder or holder_id()
        self.lease: Lease | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, lease_id: str) -> bool:
        """Renew the lease with this ID now, from the calling thread; False when it was lost or replaced.

        Asked before each write: the background renewals may not have run yet after the process was
        suspended (a stopped job, a sleeping laptop) for longer than the lease, so only the store can tell.
        """
        renewed = self.state.leases.renew(self.site, lease_id, self.ttl)
        with self._lock:
            if self.lease is not None and self.lease.lease_id == lease_id:
                self.lease = renewed
        return renewed is not None

    def acquire(self) -> Lease | None:
        """Take or renew the lease from the calling thread; None while another writer holds it."""
        lease = self.state.acquire_lease(self.site, self.holder, self.ttl, self.kind)
        with self._lock:
            self.lease = lease
        if lease is not None and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._renew, name="lease-renewal", daemon=True)
            self._thread.start()
        return lease

    def take(self) -> Lease:
        """Take the lease or raise :class:`LeaseHeld` naming its holder."""
        lease = self.acquire()
        if lease is None:
            raise LeaseHeld(self.site, self.state.lease_holder(self.site))
        return lease

    def _renew(self) -> None:
        try:
            table: LeaseStore = self.state.open_leases()
        except Exception as exc:  # the writer's own check before each action still renews; between them it may lapse
            log.warning("cannot renew the lease of site %s in the background: %s", self.site, _said(exc),
                        exc_info=not isinstance(exc, ReconcilerError))
            return
        try:
            while not self._stop.wait(self.ttl / 3):
                with self._lock:
                    held = self.lease
                if held is None:
                    continue
                try:
                    renewed = table.renew(self.site, held.lease_id, self.ttl)
                except Exception as exc:  # a busy or unreachable store: try again; the lease lapses if it stays so
                    log.warning("renewing lease %s of site %s failed: %s", held.lease_id, self.site, _said(exc),
                                exc_info=not isinstance(exc, ReconcilerError))
                    continue
                with self._lock:
                    if self.lease is None or self.lease.lease_id != held.lease_id:
                        continue  # the calling thread took a new lease meanwhile
                    if renewed is None:
                        log.warning("lease %s of site %s was unlocked or taken by another writer",
                                    held.lease_id, self.site)
                        self.lease = None
                    else:
                        self.lease = renewed
        finally:
            table.close()

    def stop(self) -> None:
        """Stop renewing (the lease stays until it lapses or is released)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        """Stop renewing and give the lease up, so the next writer need not wait for it to lapse."""
        self.stop()
        with self._lock:
            held, self.lease = self.lease, None
        if held is not None:
            self.state.release_lease(self.site, self.holder)


def _said(exc: Exception) -> str:
    """An error as a log line tells it: the message of one the tool raised (a busy or damaged store, whose
    traceback would only alarm), the type and message of anything else (whose traceback follows)."""
    return str(exc) if isinstance(exc, ReconcilerError) else f"{type(exc).__name__}: {exc}"


class UnlockRefused(ReconcilerError):
    """`reconcile unlock` released nothing: a wrong ID, no lease, or no confirmation."""


def _quoted(value: str, limit: int = 24) -> str:
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value)} characters)"


def unlock(state: StateBackend, site: str, lease_id: str, confirm: Callable[[str], bool]) -> Lease:
    """Break the site's lease LEASE_ID after ``confirm`` agreed to what it is told about the holder.

    The ID must be the current lease's: a lease taken since the person looked is never broken. A lease
    that already lapsed is removed too (it holds nothing, but a person asked for it by its ID).
    """
    lease = state.lease(site)
    if lease is None:
        raise UnlockRefused(f"site {site} has no lease; nothing to unlock")
    if lease.lease_id != lease_id:
        raise UnlockRefused(f"{_quoted(lease_id)} is not the lease of site {site}: its lease is {lease.lease_id}, "
                            f"held by {lease.describe()}; nothing was unlocked")
    now = time.time()
    state_of = (f"expires in {lease.expires - now:.0f} s unless renewed" if lease.expires > now
                else f"lapsed {now - lease.expires:.0f} s ago")
    alive = " (that process is not running)" if state.lease_holder(site) is None and lease.expires > now else ""
    if not confirm(f"lease {lease.lease_id} of site {site} is held by {lease.describe(now)}{alive}; it {state_of}"):
        raise UnlockRefused("nothing unlocked")
    broken = state.break_lease(site, lease_id)
    if broken is None:
        raise UnlockRefused(f"the lease of site {site} changed while you confirmed; nothing was unlocked: run "
                            "'reconcile status' and try again")
    log.info("lease %s of site %s (%s) was unlocked", lease_id, site, lease.holder)
    return broken
