"""Which way each action reaches the site: the AdminService (REST), WinRM, or no way at all.

A real site offers some writes over REST only when its ``$metadata`` lists them, and some (a task
sequence's steps, deployment schedules, hidden variables) only over WinRM; the site says which at start-up
(``Site.paths()``). A plan shows each action's path, and blocks an action no path can do, naming what to
configure, so nothing is half applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from reconciler.plan.actions import Action, Blocked, DeploymentWrite, Plan, VariablesRemoval, VariablesWrite, Verb

UNAVAILABLE = "unavailable"

_OPERATIONS: dict[Verb, tuple[str, ...]] = {
    Verb.CREATE_TASK_SEQUENCE: ("create_task_sequence",),
    Verb.UPDATE_TASK_SEQUENCE: ("update_task_sequence",),
    Verb.ENABLE_TASK_SEQUENCE: ("set_task_sequence_enabled",),
    Verb.DISABLE_TASK_SEQUENCE: ("set_task_sequence_enabled",),
    Verb.MOVE_TASK_SEQUENCE: ("move_task_sequence",),
    Verb.DELETE_TASK_SEQUENCE: ("delete_task_sequence",),
    Verb.DISTRIBUTE_CONTENT: ("distribute_content",),
    Verb.REDISTRIBUTE_CONTENT: ("redistribute_content",),
    Verb.REMOVE_CONTENT: ("remove_content",),
    Verb.CREATE_DEPLOYMENT: ("create_deployment",),
    Verb.UPDATE_DEPLOYMENT: ("update_deployment",),
    Verb.REPLACE_DEPLOYMENT: ("delete_deployment", "create_deployment"),
    Verb.DELETE_DEPLOYMENT: ("delete_deployment",),
}


def operations(action: Action) -> tuple[str, ...]:
    """The site operations an action performs (none for a take-over, which only records ownership)."""
    write = action.write
    if isinstance(write, VariablesWrite | VariablesRemoval):
        base = (f"set_{write.scope}_variables",)
        masked = isinstance(write, VariablesWrite) and any(v.hidden or v.value_from for v in write.variables)
        return (*base, "masked_variables") if masked else base
    ops = _OPERATIONS.get(action.verb, ())
    schedule = isinstance(write, DeploymentWrite) and write.record.assigned_schedule
    if schedule and action.verb is not Verb.DELETE_DEPLOYMENT:
        ops = (*ops, "deployment_schedule")
    return ops


def with_paths(plan: Plan, paths: Mapping[str, str]) -> None:
    """Mark each action with its path (``REST``, ``WinRM``, ``REST + WinRM``) and block what no path can do."""
    if not paths:
        return
    marked = []
    for action in plan.actions:
        used = [paths.get(op, "REST") for op in operations(action)]
        if UNAVAILABLE in used:
            missing = [op for op in operations(action) if paths.get(op) == UNAVAILABLE]
            plan.blocked.append(Blocked(action.ref, (
                f"{action.verb.value} needs {', '.join(o.replace('_', ' ') for o in missing)}, which this site offers "
                "neither over its AdminService ($metadata) nor over WinRM: set site.winrm in reconcile.yaml (a host "
                "with the ConfigMgr console), or site.restUnproven to try the AdminService"), action.source, "",
                "site-path"))
        marked.append(replace(action, path=" + ".join(dict.fromkeys(used))) if used else action)
    plan.actions = marked
