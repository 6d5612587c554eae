"""Fingerprints at apply time: the live object as the site holds it now, against what the plan was made on.

An action carries the fingerprint of the live object it was planned against; before the first write every
one is taken again here, in the planner's terms, and a plan whose inputs moved is refused whole. After a
write, the desired fingerprint the action carries is what the state store records as applied.
"""

from __future__ import annotations

from reconciler.diff.normalize import record_fingerprint
from reconciler.plan.actions import Action, ContentWrite, Plan, VariablesRemoval, VariablesWrite
from reconciler.plan.context import content_fingerprint, live_variables_fingerprint
from reconciler.site import Site
from reconciler.state import StateStore


def desired_fingerprint(action: Action) -> str:
    """The fingerprint of what the action writes, as the planner computed it ("" for what has none)."""
    return getattr(action.write, "desired_fp", "") or ""


def variables_fingerprint(site: Site, scope: str, target: str | int) -> str | None:
    """The fingerprint of the variables a collection or computer holds now; None when it holds none."""
    if scope == "collection":
        live = site.get_collection_settings(str(target))
        return live_variables_fingerprint(live.variables, live.precedence) if live else None
    machine = site.get_machine_settings(int(target))
    return live_variables_fingerprint(machine.variables, None) if machine else None


def live_fingerprint(action: Action, site: Site, salt: bytes) -> str:
    """The fingerprint of what an action would touch, as the site holds it now (the planner's terms)."""
    kind = action.ref.kind
    write = action.write
    if isinstance(write, ContentWrite):
        package = write.package_id or ""
        return content_fingerprint(package, write.dps, site.content_status(package) if package else {})
    if kind == "TaskSequence":
        ts = site.get_task_sequence(action.live_id or "")
        return record_fingerprint(ts, salt) if ts is not None else "(gone)"
    if kind == "TaskSequenceDeployment":
        dep = site.get_deployment(action.live_id or "")
        return record_fingerprint(dep, salt) if dep is not None else "(gone)"
    if kind in ("CollectionVariables", "ComputerVariables"):
        scope = "collection" if kind == "CollectionVariables" else "computer"
        target: str | int = action.live_id or ""
        if isinstance(write, VariablesWrite | VariablesRemoval):
            scope, target = write.scope, write.target
        return variables_fingerprint(site, scope, target) or live_variables_fingerprint((), None)
    return ""


def planned_against_moved(plan: Plan, site: Site, state: StateStore) -> list[str]:
    """Every object the plan would touch that is no longer as it was when the plan was made.

    Checked before the first write, so a plan whose inputs moved (a console edit, another writer, a
    saved plan applied later) is refused whole rather than half applied over someone else's change.
    """
    moved: list[str] = []
    seen: set[tuple[str, str | None, str | None]] = set()
    for action in plan.actions:
        if action.expected is None:
            continue
        key = (str(action.ref), action.live_id, action.key)
        if key in seen:
            continue
        seen.add(key)
        if live_fingerprint(action, site, state.salt) != action.expected:
            live = f" [{action.live_id}]" if action.live_id else ""
            moved.append(f"{action.ref}{live} ({action.verb.value})")
    return moved
