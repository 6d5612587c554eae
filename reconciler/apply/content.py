"""Applying content actions: distribute to the DPs that lack a package, redistribute, remove; and which
ContentDistribution objects the run leaves managed.

Handlers are functions of the run and the action, as in :mod:`reconciler.apply.tasksequences` (why is
said there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.plan.actions import Action, ContentWrite, ObjectRef
from reconciler.site.records import ContentState

if TYPE_CHECKING:
    from reconciler.apply.executor import Executor


def distribute_content(run: Executor, action: Action) -> str:
    write = action.write
    assert isinstance(write, ContentWrite) and write.package_id
    package = write.package_id
    status = run.site.content_status(package)
    lacking = [dp for dp in write.dps if dp not in status
               or status[dp].state in (ContentState.REMOVAL_PENDING, ContentState.REMOVAL_RETRYING)]
    if lacking:
        run.site.distribute_content(package, lacking)
    return f"{package} distributed to {len(lacking)} DP(s)"


def redistribute_content(run: Executor, action: Action) -> str:
    write = action.write
    assert isinstance(write, ContentWrite) and write.package_id
    for dp in write.dps:
        run.site.redistribute_content(write.package_id, dp)
    return f"{write.package_id} redistributed on {len(write.dps)} DP(s)"


def remove_content(run: Executor, action: Action) -> str:
    write = action.write
    assert isinstance(write, ContentWrite)
    if write.package_id:
        run.site.remove_content(write.package_id, list(write.dps))
    if not write.keep_ownership:  # a narrowed distribution stays managed
        run.state.disown(action.ref.kind, action.ref.name)
    return "content removed"


def record_content_ownership(run: Executor, failed: set[ObjectRef]) -> None:
    """Own every ContentDistribution of the plan whose actions did not fail, with the (package, DP) pairs."""
    for name, pairs in run.plan.content_pairs.items():
        if ObjectRef("ContentDistribution", name) in failed:
            continue
        run.state.own("ContentDistribution", name, "content")
        run.state.record_applied("ContentDistribution", name, "", "", extra={"pairs": pairs})
