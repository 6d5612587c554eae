"""Making the web view's snapshots: one worker thread with its own read-only connections, away from requests.

The worker reads what a page shows and nothing more: the manifests (a folder, a Git ref, or the commit the
controller last reconciled), the site (read-only), and the state store; it plans as ``reconcile plan`` does,
without the lease, and never writes to the site. A request only reads the latest :class:`Snapshot`.

When to make a new one, cheapest question first, every ``poll`` seconds:

- the state store's status (a controller's tick, the writer's lease, pause): a new tick re-plans, the rest
  only refreshes the header;
- the manifests (a file of the folder changed, the ref or the controller's commit moved): re-plan;
- every ``refresh`` seconds, the site (``changed_since_read``: one cheap query on an embedded site, the list
  requests of a no-change plan on the AdminService): re-plan when someone wrote to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from reconciler.config import Config
from reconciler.errors import ReconcilerError
from reconciler.pipeline import Pass, PlanOptions, Stage
from reconciler.site import Site
from reconciler.site.records import LiveState
from reconciler.source.cache import ParseCache
from reconciler.source.folder import MANIFEST_SUFFIXES
from reconciler.source.git import GitRepository, Revision, load_revision
from reconciler.source.loader import DesiredState
from reconciler.source.select import Provenance, load_folder
from reconciler.state import Lease, StateBackend
from reconciler.web.estate import Meta, Snapshot, build_rows, counts_of
from reconciler.web.history import DEFAULT_WINDOW, read_history
from reconciler.workspace import Workspace

log = logging.getLogger("reconciler.web")

#: Seconds between two looks at the manifests for a change (a commit, a saved file).
MARKER_EVERY = 2.0


class DesiredSource(Protocol):
    """Where the manifests the view plans come from. Used from the worker thread only."""

    def load(self) -> tuple[DesiredState, Provenance]: ...

    def marker(self) -> object:
        """Cheap: a value that changes when :meth:`load` would read other manifests."""
        ...

    def close(self) -> None: ...


class FolderSource:
    """The manifests of a folder, as ``reconcile plan PATH`` reads them."""

    def __init__(self, path: Path, max_file_bytes: int) -> None:
        self.path = path
        self.max_file_bytes = max_file_bytes

    def load(self) -> tuple[DesiredState, Provenance]:
        return load_folder(self.path, max_file_bytes=self.max_file_bytes)

    def marker(self) -> object:
        """A digest of every manifest file's path, size and modification time (a stat per file, no read)."""
        digest = hashlib.sha256()
        if self.path.is_file():
            stat = self.path.stat()
            return (stat.st_mtime_ns, stat.st_size)
        for folder, dirs, files in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(MANIFEST_SUFFIXES):
                    with contextlib.suppress(OSError):
                        stat = os.stat(os.path.join(folder, name))
                        digest.update(f"{folder}/{name}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
        return digest.hexdigest()

    def close(self) -> None:
        return None


class GitSource:
    """The manifests of a Git ref, read without a checkout; or, for a controller, the commit it last reconciled.

    ``follow`` gives the commit a controller's last tick reconciled (None before its first tick): the view
    then shows the site against what the controller applies, not against a branch it has not fetched yet.
    A cached clone of a URL is fetched once when the view starts and again at each full refresh without
    ``follow`` (with it, the controller fetches).
    """

    def __init__(self, location: str, ref: str, path: str, cache_dir: Path, max_file_bytes: int,
                 follow: Callable[[], str | None] | None = None) -> None:
        self.location, self.ref, self.path, self.cache_dir = location, ref, path, cache_dir
        self.max_file_bytes = max_file_bytes
        self.follow = follow
        self.repo = GitRepository(location, cache_dir)
        self.cache = ParseCache(cache_dir / "parse-cache.db")

    def _revision(self) -> Revision:
        sha = self.follow() if self.follow is not None else None
        found = self.repo.resolve(sha or self.ref)
        return Revision(self.ref, found.sha, found.repo)

    def load(self) -> tuple[DesiredState, Provenance]:
        if self.follow is None and self.repo.mirror is not None:
            self.repo = GitRepository(self.location, self.cache_dir)  # fetches the cached clone
        revision = self._revision()
        desired = load_revision(self.repo, revision, self.path, self.cache, max_file_bytes=self.max_file_bytes)
        return desired, Provenance(self.ref, revision.sha, f"{self.location}:{self.path}")

    def marker(self) -> object:
        if self.follow is not None:
            return self.follow()
        return self.repo.resolve(self.ref).sha

    def close(self) -> None:
        self.cache.close()


class _RememberedRead:
    """The site, remembering what its last :meth:`read` returned: the plan reads the site once, and the
    object pages show that same read (desired versus live) without reading the site a second time."""

    def __init__(self, site: Site) -> None:
        self._site = site
        self.last: LiveState | None = None

    def read(self) -> LiveState:
        self.last = self._site.read()
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._site, name)


class Refresher:
    """Makes the snapshots the web view serves, in a thread of its own (see the module's docstring).

    ``open_workspace`` opens the site (read-only) and the state store; it is called in the worker thread,
    which alone uses them. ``role`` names this process's part for the header (a controller: writer or
    standby) from the lease in force.
    """

    def __init__(self, open_workspace: Callable[[], Workspace], open_source: Callable[[], DesiredSource],
                 settings: Config, secrets_base: Path, *, options: PlanOptions | None = None,
                 refresh: float = 30.0, poll: float = 1.0, window: int = DEFAULT_WINDOW,
                 role: Callable[[Lease | None], str | None] | None = None) -> None:
        self._open_workspace = open_workspace
        self._open_source = open_source
        self.settings = settings
        self.secrets_base = secrets_base
        self.options = options or PlanOptions()
        self.refresh = refresh
        self.poll = poll
        self.window = window
        self.role = role
        self.snapshot: Snapshot | None = None
        self.generation = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._published = threading.Condition()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._force = False

    # -- the thread ----------------------------------------------------------------------------------------

    def start(self, wait: float | None = 120.0) -> None:
        """Start the worker; wait (up to ``wait`` seconds) for the first snapshot.

        Raises what opening the site, the state store or the manifests raised, so a command can report it
        in one line before it listens.
        """
        self._thread = threading.Thread(target=self._run, name="web-refresh", daemon=True)
        self._thread.start()
        if wait is not None:
            self._ready.wait(wait)
            if self._failure is not None:
                raise self._failure

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        """Re-plan now (a test, or a tick that just ended in this process)."""
        self._force = True
        self._wake.set()

    def wait_for(self, generation: int, timeout: float) -> Snapshot | None:
        """The first snapshot of at least this generation, or None after ``timeout`` seconds."""
        with self._published:
            self._published.wait_for(lambda: self.generation >= generation, timeout)
        return self.snapshot if self.generation >= generation else None

    def _run(self) -> None:
        try:
            workspace = self._open_workspace()
        except BaseException as exc:
            self._fail(exc)
            return
        try:
            source = self._open_source()
        except BaseException as exc:
            workspace.close()
            self._fail(exc)
            return
        try:
            self._loop(workspace, source)
        finally:
            source.close()
            workspace.close()

    def _fail(self, exc: BaseException) -> None:
        """Opening failed: a command that waits reports it; a page says it (a controller's view)."""
        self._failure = exc
        if isinstance(exc, Exception):
            self._publish_error(exc)
        self._ready.set()

    def _loop(self, workspace: Workspace, source: DesiredSource) -> None:
        last_pulse: object = None
        last_marker: object = None
        last_probe = last_look = time.monotonic()
        failed = False
        logged = ""
        while not self._stop.is_set():
            try:
                meta, pulse = self._meta(workspace.state, workspace.site.site_code)
                now = time.monotonic()
                # A folder's marker costs a stat per manifest file (about 40 ms for 10,000): not at every poll.
                marker = last_marker
                if last_marker is None or self._force or now - last_look >= max(self.poll, MARKER_EVERY):
                    marker, last_look = self._marker(source), now
                due = now - last_probe >= self.refresh
                tick_moved = last_pulse is None or pulse[0] != last_pulse[0]  # type: ignore[index]
                full = self._force or tick_moved or marker != last_marker or (failed and due)
                pulse_moved = pulse != last_pulse
                # Taken before the refresh: one that fails is tried again when something moves, or after a while,
                # not at every poll.
                last_pulse, last_marker = pulse, marker
                if not full and due:
                    last_probe = now
                    full = workspace.site.changed_since_read()
                if full:
                    self._force, failed, last_probe = False, True, now
                    self._publish_full(workspace, source, meta)
                    failed, logged = False, ""
                    workspace.site.changed_since_read()  # what the next probe compares with
                elif pulse_moved and self.snapshot is not None:
                    self._publish(replace(self.snapshot, meta=meta))
            except Exception as exc:  # a refresh that failed is shown on the page, never a dead view
                if str(exc) != logged:
                    logged = str(exc)
                    log.warning("web view: refresh failed: %s", exc, exc_info=not isinstance(exc, ReconcilerError))
                self._publish_error(exc)
            self._ready.set()
            self._wake.wait(self.poll)
            self._wake.clear()

    def _marker(self, source: DesiredSource) -> object:
        try:
            return source.marker()
        except Exception as exc:  # the next full refresh reports it
            return f"unreadable: {exc}"

    def _meta(self, state: StateBackend, site_code: str) -> tuple[Meta, tuple[object, ...]]:
        tick = state.get_status("tick")
        checked = state.get_status("checked")
        lease = state.lease_holder(site_code)
        paused = state.paused(site_code)
        role = self.role(lease) if self.role is not None else None
        meta = Meta(tick=tick, checked=checked, lease=lease, role=role, paused=paused)
        holder = (lease.lease_id, lease.holder, lease.kind) if lease is not None else None
        return meta, (repr(tick), repr(checked), holder, repr(paused), role)

    # -- snapshots -----------------------------------------------------------------------------------------

    def _publish(self, snapshot: Snapshot) -> None:
        with self._published:
            self.snapshot = replace(snapshot, generation=self.generation + 1)
            self.generation += 1
            self._published.notify_all()

    def _publish_error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ReconcilerError) else f"{type(exc).__name__}: {exc}"
        if self.snapshot is not None and self.snapshot.error == message:
            return
        base = self.snapshot or Snapshot(0, time.time(), 0.0, "", "", None, None, "", Meta())
        self._publish(replace(base, error=message, made_at=time.time()))

    def _publish_full(self, workspace: Workspace, source: DesiredSource, meta: Meta) -> None:
        started = time.monotonic()
        state = workspace.state
        desired, provenance = source.load()
        reading = _RememberedRead(workspace.site)
        step = Pass(reading, state, self.settings, self.secrets_base)  # type: ignore[arg-type]  # no keeper: plans only
        plan, stopped = step.plan(desired, self.options)
        findings: tuple[Any, ...] = ()
        invalid = None
        if stopped is not None and stopped.stage is Stage.INVALID:
            findings = tuple(stopped.findings)
            invalid = (f"the manifests have {len(findings)} error(s): nothing is applied until they are fixed; "
                       f"the first: {findings[0].render()}")
        history = read_history(state, self.window)
        owned = state.owned()
        rows = tuple(build_rows(desired, reading.last, plan, owned, state.pending_intents(),
                                state.get_status("objects") or {}, history.by_object, invalid))
        snapshot = Snapshot(
            generation=0, made_at=time.time(), took=time.monotonic() - started, site_code=workspace.site.site_code,
            site_location=workspace.site.location, ref=provenance.ref, sha=provenance.sha, source=provenance.source,
            meta=meta, rows=rows, counts=counts_of(rows), plan=plan, findings=findings, error=None, desired=desired,
            live=reading.last, history=history, by_key={r.key: r for r in rows})
        self._publish(snapshot)
