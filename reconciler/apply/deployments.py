"""Applying deployment actions: create (after its content is on a DP, when asked to wait), update, replace,
delete, with an audit entry for every high-risk deployment written.

Handlers are functions of the run and the action, as in :mod:`reconciler.apply.tasksequences` (why is
said there).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from reconciler.apply.fingerprints import desired_fingerprint
from reconciler.apply.interrupted import claim_leftover
from reconciler.diff.normalize import record_fingerprint
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Action, DeploymentWrite
from reconciler.site.records import ContentState, DeploymentRecord
from reconciler.state import who

if TYPE_CHECKING:
    from reconciler.apply.executor import Executor


def _to_write(run: Executor, action: Action) -> DeploymentRecord:
    """The record to write, deploying the task sequence's live ID (created earlier in this run, perhaps)."""
    write = action.write
    assert isinstance(write, DeploymentWrite)
    record = write.record
    ts_id = run.state.owned_id("TaskSequence", write.task_sequence)
    if not ts_id:
        raise ReconcilerError(f"TaskSequence/{write.task_sequence} is not on the site yet")
    if record.package_id != ts_id:
        record = replace(record, package_id=ts_id)
    return record


def _record_applied(run: Executor, action: Action, dep_id: str) -> None:
    live = run.site.get_deployment(dep_id)
    if live is not None:
        run.state.record_applied(action.ref.kind, action.ref.name, desired_fingerprint(action),
                                 record_fingerprint(live, run.state.salt))


def _wait_for_content(run: Executor, action: Action) -> None:
    """Hold a deployment back until its content is installed on at least one targeted DP (bounded)."""
    waiting = action.write.wait_for if isinstance(action.write, DeploymentWrite) else ()
    if run.wait_for_content is None or not waiting:
        return
    deadline = time.monotonic() + run.wait_for_content
    delay = 0.2
    while True:
        missing = []
        for package_id, *dps in waiting:
            status = run.site.content_status(package_id)
            if not any(dp in status and status[dp].state is ContentState.INSTALLED for dp in dps):
                missing.append(package_id)
        if not missing:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise ReconcilerError(f"content {', '.join(missing)} is still not installed on any targeted DP after "
                                  f"{run.wait_for_content:.0f} s; the deployment was not created")
        run.notice(f"{action.ref}: waiting for content {', '.join(missing)} ({left:.0f} s left)")
        time.sleep(min(delay, left))
        delay = min(delay * 2, 5.0)


def _audit(run: Executor, action: Action, dep_id: str) -> None:
    if action.risk is None:
        return
    risk = action.risk
    run.state.audit(run.plan.plan_id, str(action.ref), {
        "who": run.actor or who(), "when": datetime.now(UTC).isoformat(timespec="seconds"), "deployment": dep_id,
        "collection": risk.collection_id, "collection_name": risk.collection_name,
        "member_count": risk.member_count, "acknowledged": risk.acknowledged, "reasons": list(risk.reasons)},
        apply_id=run.apply_id)


def create_deployment(run: Executor, action: Action) -> str:
    _wait_for_content(run, action)
    record = _to_write(run, action)
    dep_id = run.state.owned_id(action.ref.kind, action.ref.name)
    if dep_id and run.site.get_deployment(dep_id) is not None:
        run.site.update_deployment(dep_id, record)
    else:
        leftovers = [d.id for d in run.site.find_deployments(record.package_id, record.collection_id)
                     if d.id and not run.state.is_owned("TaskSequenceDeployment", d.id)]
        # Only the deployment an interrupted run of this action made is taken over.
        made = claim_leftover(action, run.state, leftovers,
                              f"a deployment of {record.package_id} to {record.collection_id}",
                              "is on the site and not managed by this tool; it was left as it is: rerun with --adopt "
                              "to take it over")
        if made is not None:
            dep_id = made
            run.site.update_deployment(dep_id, record)
        else:
            dep_id = run.site.create_deployment(record)
            run.state.created(run.plan.plan_id, action.verb.value, str(action.ref), dep_id, apply_id=run.apply_id)
        run.state.own(action.ref.kind, action.ref.name, dep_id)
    _record_applied(run, action, dep_id)
    _audit(run, action, dep_id)
    return f"deployment {dep_id}"


def update_deployment(run: Executor, action: Action) -> str:
    record = _to_write(run, action)
    dep_id = run.state.owned_id(action.ref.kind, action.ref.name) or action.live_id
    if not dep_id or run.site.get_deployment(dep_id) is None:
        raise ReconcilerError(f"deployment {dep_id} no longer exists; the next plan creates it again")
    run.site.update_deployment(dep_id, record)
    _record_applied(run, action, dep_id)
    _audit(run, action, dep_id)
    return f"updated {dep_id}"


def replace_deployment(run: Executor, action: Action) -> str:
    old = action.live_id
    if old and run.site.get_deployment(old) is not None:
        run.site.delete_deployment(old)
    run.state.disown(action.ref.kind, action.ref.name)
    return f"deleted {old}; " + create_deployment(run, action)


def delete_deployment(run: Executor, action: Action) -> str:
    if action.live_id and run.site.get_deployment(action.live_id) is not None:
        run.site.delete_deployment(action.live_id)
    run.state.disown(action.ref.kind, action.ref.name)
    return f"deleted {action.live_id}"
