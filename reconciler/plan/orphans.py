"""Managed objects no manifest describes any more: kept and listed, or (``--prune``) deleted, safely.

``--prune`` never deletes a sequence that a remaining deployment deploys or another sequence runs, never
strands content a remaining sequence needs, and a plan deleting more than ``--max-delete`` percent of
what is managed is blocked. Deletions run in reverse of creation: deployments before the sequences they
deploy, parents before the children they run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

from reconciler.diff.normalize import record_fingerprint, ts_references
from reconciler.plan.actions import (
    Action,
    Blocked,
    ContentWrite,
    Deletion,
    FieldChange,
    ObjectRef,
    Reason,
    VariablesRemoval,
    Verb,
)
from reconciler.plan.content import narrowed_content, status_on
from reconciler.plan.context import (
    MANAGED_KINDS,
    Planning,
    content_fingerprint,
    live_variables_fingerprint,
)
from reconciler.state import Applied

_KIND_ORDER = {k: i for i, k in enumerate(MANAGED_KINDS)}


def plan_orphans(p: Planning) -> None:
    present = {(o.kind, o.name) for o in p.desired.objects}
    # Deployments this plan deletes (orphans under --prune, replacements aside): the others still count.
    leaving = {live_id for (kind, name), live_id in p.owned.items()
               if kind == "TaskSequenceDeployment" and (kind, name) not in present and p.plan.prune
               and (not p.targets or f"{kind}/{name}" in p.targets)}
    needed_by = content_in_use(p, leaving) if p.plan.prune else {}
    needed = {pkg for pkg, users in needed_by.items() if users}
    narrowed_content(p)
    # A computer's variables are owned by every manifest that contributes to them.
    for (kind, name), live_id in sorted(p.owned.items(), key=lambda i: (_KIND_ORDER.get(i[0][0], 9), i[0][1])):
        if (kind, name) in present or kind not in MANAGED_KINDS or (kind, live_id) in p.taken_over:
            continue
        if p.targets and f"{kind}/{name}" not in p.targets:
            continue
        ref = ObjectRef(kind, name)
        if not p.plan.prune:
            p.plan.orphans.append(ref)
            continue
        if kind == "TaskSequence" and live_id in p.live.task_sequences:
            if still_used(p, ref, live_id, leaving):
                continue
            live_ts = p.live.task_sequences[live_id]
            p.add(Action(Verb.DELETE_TASK_SEQUENCE, ref, Reason.ORPHAN, live_id, write=Deletion(),
                         summary=live_ts.name, expected=record_fingerprint(live_ts, p.salt)))
        elif kind == "TaskSequenceDeployment" and live_id in p.live.deployments:
            live_dep = p.live.deployments[live_id]
            p.add(Action(Verb.DELETE_DEPLOYMENT, ref, Reason.ORPHAN, live_id, write=Deletion(),
                         summary=live_dep.name, expected=record_fingerprint(live_dep, p.salt)))
        elif kind == "ContentDistribution":
            _orphan_content(p, ref, needed, needed_by)
        elif kind in ("CollectionVariables", "ComputerVariables"):
            collection = kind == "CollectionVariables"
            gone = live_id not in p.live.collections if collection else p.live.computer(int(live_id)) is None
            if collection:
                settings = p.live.collection_settings.get(live_id)
                expected = live_variables_fingerprint(settings.variables if settings else (),
                                                      settings.precedence if settings else None)
            else:
                machine = p.live.machine_settings.get(int(live_id))
                expected = live_variables_fingerprint(machine.variables if machine else (), None)
            p.add(Action(Verb.REMOVE_VARIABLES, ref, Reason.ORPHAN, live_id,
                         write=VariablesRemoval(scope="collection" if collection else "computer",
                                                target=live_id if collection else int(live_id), gone=gone),
                         summary=f"variables of {live_id}" + (" (already gone with it)" if gone else ""),
                         expected=None if gone else expected))
        else:
            p.add(Action(Verb.DELETE_DEPLOYMENT if kind == "TaskSequenceDeployment" else Verb.DELETE_TASK_SEQUENCE,
                         ref, Reason.ORPHAN, live_id, summary="already gone from the site", write=Deletion(gone=True)))
    _deletion_order(p)


def _orphan_content(p: Planning, ref: ObjectRef, needed: set[str], needed_by: dict[str, set[str]]) -> None:
    pairs = (p.applied.get((ref.kind, ref.name)) or Applied("", "", {}, {})).extra.get("pairs", [])
    wanted = {tuple(pair) for v in p.content_pairs.values() for pair in v}
    by_package: dict[str, list[str]] = defaultdict(list)
    for package_id, dp in pairs:
        if (package_id, dp) not in wanted and (package_id, dp) in p.live.content:
            by_package[package_id].append(dp)
    for package_id in sorted(set(by_package) & needed):
        # No other ContentDistribution keeps it anywhere: removing it strands what still runs it.
        users = ", ".join(sorted(needed_by[package_id])[:3])
        p.plan.warnings.append(Blocked(ref, (
            f"--prune keeps {package_id} on {len(by_package.pop(package_id))} DP(s): {users} still needs it and "
            "no ContentDistribution targets it elsewhere"), None, "", "content-in-use"))
    for package_id, dps in sorted(by_package.items()):
        p.add(Action(Verb.REMOVE_CONTENT, ref, Reason.ORPHAN, package_id,
                     (FieldChange("distributionPoints", dps, None),),
                     write=ContentWrite(package_id=package_id, dps=tuple(dps)),
                     summary=f"{package_id} from {len(dps)} DP(s)",
                     expected=content_fingerprint(package_id, dps, status_on(p, package_id))))
    if not by_package:
        p.add(Action(Verb.REMOVE_CONTENT, ref, Reason.ORPHAN, None, write=ContentWrite(package_id=None),
                     summary="nothing left to remove"))


def _deletion_order(p: Planning) -> None:
    """Deletions depend on what must go first: a sequence's deployments, and the parents that run it."""
    deleted_deployments: dict[str, list[ObjectRef]] = defaultdict(list)  # task sequence ID -> deployments going
    deleted_sequences: dict[str, ObjectRef] = {}
    for action in p.plan.actions:
        if action.verb is Verb.DELETE_DEPLOYMENT and action.live_id in p.live.deployments:
            deleted_deployments[p.live.deployments[action.live_id].package_id].append(action.ref)
        elif action.verb is Verb.DELETE_TASK_SEQUENCE and action.live_id:
            deleted_sequences[action.live_id] = action.ref
    if not deleted_sequences:
        return
    parents: dict[str, list[ObjectRef]] = defaultdict(list)  # child ID -> parents deleted in this plan
    for ts_id, ref in deleted_sequences.items():
        record = p.live.task_sequences.get(ts_id)
        for child in ts_references(record) if record is not None else ():
            if child in deleted_sequences and child != ts_id:
                parents[child].append(ref)
    p.plan.actions = [replace(a, depends_on=(*a.depends_on, *deleted_deployments.get(a.live_id or "", ()),
                                             *parents.get(a.live_id or "", ())))
                      if a.verb is Verb.DELETE_TASK_SEQUENCE else a for a in p.plan.actions]


def still_used(p: Planning, ref: ObjectRef, ts_id: str, leaving: set[str]) -> bool:
    """--prune never deletes a sequence that is still deployed or still run as a child sequence."""
    users = [d for d_id, d in p.live.deployments.items() if d.package_id == ts_id and d_id not in leaving]
    pruned = pruned_sequences(p)
    parents = [t for t in p.live.task_sequences.values()
               if t.id != ts_id and ts_id in t.references and _state_owner(p, t.id) not in pruned]
    if not users and not parents:
        return False
    why = []
    if users:
        why.append("deployed by " + ", ".join(f"{d.id} ({d.name})" for d in users[:3]))
    if parents:
        why.append("run as a child by " + ", ".join(f"{t.id} ({t.name})" for t in parents[:3]))
    p.plan.blocked.append(Blocked(ref, (
        f"--prune would delete task sequence {ts_id}, but it is still {' and '.join(why)}; delete or change "
        "those first (deployments not managed here are never deleted)"), None, "", "prune-in-use"))
    return True


def _state_owner(p: Planning, live_id: str | None) -> str | None:
    for (kind, name), owned_id in p.owned.items():
        if kind == "TaskSequence" and owned_id == live_id:
            return name
    return None


def pruned_sequences(p: Planning) -> set[str]:
    present = {o.name for o in p.desired.of_kind("TaskSequence")}
    return {name for (kind, name) in p.owned if kind == "TaskSequence" and name not in present}


def delete_threshold(p: Planning, max_delete: float) -> None:
    """A plan that deletes more than ``max_delete`` percent of the managed objects is blocked."""
    verbs = (Verb.DELETE_TASK_SEQUENCE, Verb.DELETE_DEPLOYMENT, Verb.REMOVE_VARIABLES, Verb.REMOVE_CONTENT)
    deletions = list(dict.fromkeys(a.ref for a in p.plan.actions if a.verb in verbs
                                   and not (isinstance(a.write, ContentWrite) and a.write.keep_ownership)))
    managed = len(p.owned)
    if not deletions or not managed:
        return
    share = 100.0 * len(deletions) / managed
    if share > max_delete:
        p.plan.blocked.append(Blocked(deletions[0], (
            f"this plan deletes {len(deletions)} of {managed} managed objects ({share:.0f}%), more than "
            f"--max-delete {max_delete:g}%; review the deletions, then rerun with --max-delete "
            f"{math.ceil(share)} or higher"), None, "", "max-delete"))


def content_in_use(p: Planning, leaving: set[str]) -> dict[str, set[str]]:
    """Package → the sequences that still need it: every desired one, and every live one still deployed."""
    out: dict[str, set[str]] = defaultdict(set)
    for name, record in p.ts_records.items():
        for package_id in p.content_of(record):
            out[package_id].add(f"TaskSequence/{name}")
    deployed = {d.package_id for i, d in p.live.deployments.items() if i not in leaving}
    for ts_id in deployed:
        record = p.live.task_sequences.get(ts_id)
        if record is not None:
            for package_id in ts_references(record):
                out[package_id].add(f"{ts_id} ({record.name})")
    return out
