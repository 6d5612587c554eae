"""The web view as one thing to start and stop: the worker that makes snapshots and the app that serves them.

``reconcile serve`` puts it on a listener of its own (:class:`~reconciler.web.server.WebServer`); the
controller puts it on its ``--listen`` beside the probes and metrics (``metrics.serve(..., web=view)``).
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from reconciler.config import Config
from reconciler.pipeline import PlanOptions
from reconciler.state import Lease
from reconciler.web.access import Access
from reconciler.web.app import WebApp
from reconciler.web.refresh import DesiredSource, FolderSource, GitSource, Refresher
from reconciler.web.server import dispatch
from reconciler.workspace import Workspace


class WebView:
    """A running view. ``open_source`` is given the worker's workspace (a controller's view follows the commit
    its last tick reconciled, which the state store holds)."""

    def __init__(self, open_workspace: Callable[[], Workspace], open_source: Callable[[Workspace], DesiredSource],
                 settings: Config, secrets_base: Path, access: Access, *, options: PlanOptions | None = None,
                 refresh: float = 30.0, poll: float = 1.0, served_by: str = "reconcile serve",
                 role: Callable[[Lease | None], str | None] | None = None) -> None:
        holder: dict[str, Workspace] = {}

        def opened() -> Workspace:
            holder["workspace"] = open_workspace()
            return holder["workspace"]

        self.refresher = Refresher(opened, lambda: open_source(holder["workspace"]), settings, secrets_base,
                                   options=options, refresh=refresh, poll=poll, role=role)
        self.app = WebApp(lambda: self.refresher.snapshot, access, served_by=served_by)

    def start(self, wait: float | None = 120.0) -> WebView:
        """Start making snapshots; with ``wait``, return after the first one (or raise why there is none)."""
        self.refresher.start(wait)
        return self

    def dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request on a listener that is not the view's own (the controller's)."""
        dispatch(self.app, handler)

    def close(self) -> None:
        self.refresher.stop()


def manifests_source(path: Path, repo: str | None, ref: str | None, cache_dir: Path,
                     max_file_bytes: int) -> Callable[[Workspace], DesiredSource]:
    """The manifests ``reconcile plan PATH [--repo R --ref REF]`` would read, for ``reconcile serve``."""
    if repo or ref:
        return lambda workspace: GitSource(repo or ".", ref or "HEAD", path.as_posix(), cache_dir, max_file_bytes)
    return lambda workspace: FolderSource(path, max_file_bytes)


def controller_view(open_workspace: Callable[[], Workspace], repo: str, ref: str, path: str, cache_dir: Path,
                    settings: Config, access: Access, options: PlanOptions, holder: str,
                    self_heal: bool) -> WebView:
    """The view a controller serves: the site against the commit its last tick reconciled (the ref's head before
    its first tick), with this controller's part (writer, standby, or reporting only) in the header."""

    def follow(workspace: Workspace) -> Callable[[], str | None]:
        return lambda: (workspace.state.get_status("tick") or {}).get("sha")

    def role(lease: Lease | None) -> str:
        if not self_heal:
            return "reporting only (--no-self-heal)"
        return "writer" if lease is not None and lease.holder == holder else "standby"

    return WebView(open_workspace,
                   lambda workspace: GitSource(repo, ref, path, cache_dir, settings.limits.max_manifest_bytes,
                                               follow=follow(workspace)),
                   settings, Path(path), access, options=options, served_by="reconcile controller", role=role)
