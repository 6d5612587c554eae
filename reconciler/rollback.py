"""Rolling a site back to what an earlier apply wrote: plan from that apply's commit, then apply as usual.

An apply records where its manifests came from (the repository, the path in it, the commit). A rollback
plans the site against the manifests of that very commit, so what it writes is what that apply wrote, and
goes through the same pass as any apply (lease, secrets preflight, confirmation, audit). It is refused when
there is no commit to go back to (a folder outside Git, or a working copy with uncommitted changes), and
while a self-healing controller follows the branch: its next tick would revert the rollback, so the
controller is paused first (``reconcile controller pause``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.state import JournalEntry, StateBackend
from reconciler.status import DEFAULT_FRESH_SECONDS


class RollbackRefused(ReconcilerError):
    """The apply cannot be rolled back to (no commit, unknown repository), or a controller would revert it."""


@dataclass(frozen=True, slots=True)
class RollbackSource:
    """The commit an apply came from, and where to read its manifests."""

    apply_id: str
    record: JournalEntry
    repo: str
    path: str
    sha: str
    ref: str | None
    #: the local manifests folder (its reconcile.yaml and secrets), when the apply recorded one
    folder: str | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple((self.record.detail.get("options") or {}).get("targets") or ())


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}… ({len(text)} characters)"


def rollback_source(state: StateBackend, apply_id: str, repo: str | None = None) -> RollbackSource:
    """Where the manifests of apply ``apply_id`` are: its commit, in its repository (or ``repo``)."""
    record = state.apply_record(apply_id)
    if record is None:
        raise RollbackRefused(f"there is no apply {_shown(apply_id)} in {state.location}; 'reconcile history' lists "
                              "the apply IDs")
    provenance: dict[str, Any] = record.detail.get("provenance") or {}
    where: dict[str, Any] = record.detail.get("location") or {}
    sha = provenance.get("sha")
    source = str(provenance.get("source") or "")
    if not sha:
        raise RollbackRefused(f"apply {apply_id} was made from the folder {source}, which is not a Git commit: there "
                              "is no commit to roll back to; apply the manifests you want instead")
    if provenance.get("dirty"):
        raise RollbackRefused(f"apply {apply_id} was made from {source} with uncommitted changes: commit {sha[:12]} "
                              "does not hold what it wrote; apply the manifests you want instead")
    if repo is None:
        repo = where.get("repo")
        if repo is None and ":" in source:
            repo = source.rpartition(":")[0]
    if not repo:
        raise RollbackRefused(f"apply {apply_id} does not record its repository; name it with --repo PATH")
    path = where.get("path") or (source.rpartition(":")[2] if ":" in source else "manifests")
    return RollbackSource(apply_id, record, str(repo), str(path), str(sha), provenance.get("ref"), where.get("folder"))


def controller_following(state: StateBackend, site: str, now: float | None = None) -> str | None:
    """Why a rollback would be undone: a self-healing controller, not paused, follows a branch. None: nothing would.

    A controller is taken to be running while it holds the site's lease, or when it started, has not
    stopped, and checked the site within twice its interval (10 minutes when unknown).
    """
    if state.paused(site) is not None:
        return None
    now = time.time() if now is None else now
    controller = state.get_status("controller") or {}
    lease = state.lease_holder(site)
    checked = (state.get_status("checked") or {}).get("at") or 0
    started, stopped = controller.get("started_at") or 0, controller.get("stopped_at") or 0
    window = 2 * float(controller["interval"]) if controller.get("interval") else DEFAULT_FRESH_SECONDS
    running = (lease is not None and lease.kind == "controller") or (
        started and stopped < started and now - float(checked) <= window)
    if not running or controller.get("self_heal") is False:
        return None
    follows = f"{controller.get('ref') or 'its branch'} of {controller.get('repo') or 'its repository'}"
    who = f" ({lease.describe()})" if lease is not None and lease.kind == "controller" else ""
    return (f"a controller with self-heal follows {follows}{who}: its next tick would apply the branch again and "
            "revert this rollback. Pause it first ('reconcile controller pause --reason ...'), roll back, revert the "
            "change on the branch, then 'reconcile controller resume'")


def folder_of(source: RollbackSource) -> Path:
    """The local manifests folder whose reconcile.yaml and secrets the rollback uses (as the controller does)."""
    if source.folder and Path(source.folder).is_dir():
        return Path(source.folder)
    return Path(source.path)
