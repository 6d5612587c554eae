"""Planning task sequence variables of collections and computers.

ConfigMgr writes a target's variables as one array, so a set is planned as a whole: one action that
writes every variable of the target. A hidden value is never read back; it is compared by the reference
it came from and, with ``--refresh-secrets``, by the keyed hash stored when it was written.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from reconciler.diff.normalize import Unresolved, fingerprint
from reconciler.diff.variables import diff_variables
from reconciler.effective import effective_count
from reconciler.plan.actions import (
    Action,
    Adoption,
    FieldChange,
    Identity,
    ObjectRef,
    Reason,
    VariablesWrite,
    VariableValue,
    Verb,
)
from reconciler.plan.context import Planning, live_variables_fingerprint, spec_fingerprint
from reconciler.site.records import LiveVariable
from reconciler.source.loader import LoadedObject
from reconciler.validate import MAX_VARIABLES_PER_COMPUTER


def _unmasked_secrets(variables: list[Any], live: tuple[LiveVariable, ...]) -> bool:
    """Whether a value read from a secret source sits unmasked on the site.

    Earlier versions wrote a ``valueFrom`` value in clear when ``hidden: false`` was given (or left out);
    such a set is compared field by field, so the value is written again, masked.
    """
    sources = {v.name.casefold() for v in variables if v.value_from is not None}
    return bool(sources) and any(not v.masked and v.name.casefold() in sources for v in live)


def plan_variables(p: Planning) -> None:
    for obj in p.desired.of_kind("CollectionVariables"):
        spec = obj.manifest.spec  # type: ignore[union-attr]
        try:
            collection = p.resolver.collection(spec.collection, ("spec", "collection"))
        except Unresolved as exc:
            owned_id = p.owned.get((obj.kind, obj.name))
            if owned_id and owned_id not in p.live.collections:
                last = p.applied.get((obj.kind, obj.name))
                count = (last.extra.get("count") if last else None) or "its"
                p.block(obj, exc.path, (
                    f"collection {owned_id} was deleted in the site, and ConfigMgr deleted {count} variable(s) "
                    "with it; recreate the collection, point this manifest at another one, or delete the "
                    "manifest (--prune then forgets the variables)"), "collection-deleted")
            else:
                p.block(obj, exc.path, exc.message, "reference")
            continue
        if collection.built_in:
            p.block(obj, ("spec", "collection"), f"{collection.name!r} ({collection.id}) is a built-in "
                    "collection; built-in collections cannot hold variables", "built-in")
            continue
        if not p.wanted(obj):
            continue
        live = p.live.collection_settings.get(collection.id)
        variable_set(p, obj, "collection", collection.id, collection.name, spec.variables, spec.priority,
                     live.variables if live else (), live.precedence if live else None)
    by_computer: dict[int, list[LoadedObject]] = defaultdict(list)
    for obj in p.desired.of_kind("ComputerVariables"):
        spec = obj.manifest.spec  # type: ignore[union-attr]
        try:
            computer = p.resolver.computer(spec.computer, ("spec", "computer"))
        except Unresolved as exc:
            p.block(obj, exc.path, exc.message, "reference")
            continue
        if p.wanted(obj):
            by_computer[computer.resource_id].append(obj)
    for resource_id, objs in by_computer.items():
        objs.sort(key=lambda o: o.name)
        computer = p.live.computers[resource_id]
        count = effective_count(computer, p.desired, p.live)
        if count > MAX_VARIABLES_PER_COMPUTER:
            p.block(objs[0], ("spec", "variables"), (
                f"computer {computer.name!r} would get {count} variables from its collections and computer "
                f"variables (live and in Git); ConfigMgr allows at most {MAX_VARIABLES_PER_COMPUTER}"),
                "variable-limit")
            continue
        variables = [v for o in objs for v in o.manifest.spec.variables]  # type: ignore[union-attr]
        live = p.live.machine_settings.get(resource_id)
        variable_set(p, objs[0], "computer", resource_id, computer.name, variables, None,
                     live.variables if live else (), None, also=[o.name for o in objs[1:]])


def variable_set(p: Planning, obj: LoadedObject, scope: Literal["collection", "computer"], target: str | int,
                 target_name: str, variables: list[Any], priority: int | None, live: tuple[LiveVariable, ...],
                 live_priority: int | None, also: list[str] | None = None) -> None:
    ref = ObjectRef(obj.kind, obj.name)
    desired_fp = fingerprint([spec_fingerprint(obj), target, also or []])
    live_fp = live_variables_fingerprint(live, live_priority)
    last = p.applied.get((obj.kind, obj.name))
    last_secrets: dict[str, Any] = last.secrets if last else {}
    # A stored hash counts only while its variable still reads from the same source.
    sources = {v.name.casefold(): str(v.value_from) for v in variables if v.value_from is not None}
    found = p.rotated(obj, {k: (v["ref"], v.get("hash", "")) for k, v in last_secrets.items()
                            if sources.get(k) == v.get("ref")}, ("spec", "variables"))
    if found is None:
        return
    rotated = set(found)
    if not rotated and p.in_sync(obj.kind, obj.name, desired_fp, live_fp) and not _unmasked_secrets(variables, live):
        return
    owned_id = p.owned.get((obj.kind, obj.name))
    match = f"{scope}:{target}"  # what an interrupted run of this write is recognised by (PendingIntent.made)
    if owned_id is None and live and not p.plan.adopt and p.interrupted_creation(ref, match, [live_fp]) is None:
        p.block(obj, ("spec", scope), f"{scope} {target_name!r} already has {len(live)} variable(s) that this "
                "tool does not manage; rerun with --adopt to take them over", "unowned")
        return
    changes = diff_variables(variables, live, last_secrets, rotated)
    if priority is not None and live_priority != priority and (live or variables):
        changes.append(FieldChange("priority", live_priority, priority))
    if not changes:
        if owned_id is None and live and p.plan.adopt:
            # The live variables are already as wanted: adopting them changes who owns them, not the site.
            p.add(Action(Verb.ADOPT, ref, Reason.ADOPT, str(target), source=obj.source,
                         write=Adoption(desired_fp=desired_fp),
                         summary=f"take over the {len(live)} variable(s) of {scope} {target_name!r}",
                         expected=live_fp))
        return
    wanted = {v.name.casefold() for v in variables}
    extra = sorted(v.name for v in live if v.name.casefold() not in wanted)
    if extra and owned_id is not None:
        # A site writes a collection's or computer's variables as one array, and the manifest is that array: a
        # variable added in the console is not merged but removed. Said here, so it never goes without warning.
        p.warn(obj, ("spec", "variables"), f"{scope} {target_name!r} holds {len(extra)} variable(s) no manifest "
               f"lists ({', '.join(extra)}), added outside this tool: this manifest owns the {scope}'s whole "
               "variable set, so applying removes them; add them to spec.variables to keep them",
               "variables-owned-whole")
    reason = Reason.NEW if owned_id is None and not live else (
        Reason.ADOPT if owned_id is None else p.reason(obj.kind, obj.name, desired_fp))
    if owned_id is not None and all(c.sensitive and c.before is not None for c in changes):
        reason = Reason.SECRET  # only hidden values changed: their source, or (--refresh-secrets) their value
    values = tuple(VariableValue(name=v.name, value=v.value,
                                 value_from=v.value_from.model_dump(exclude_none=True) if v.value_from else None,
                                 hidden=bool(v.hidden)) for v in variables)
    write = VariablesWrite(scope=scope, target=target, priority=priority or 9, variables=values,
                           desired_fp=desired_fp, also=tuple(also or ()),
                           identity=Identity(match=match, existing=(live_fp,) if live else ()))
    p.add(Action(Verb.SET_VARIABLES, ref, reason, str(target), tuple(changes), source=obj.source, write=write,
                 summary=f"{len(variables)} variable(s) on {scope} {target_name!r}", expected=live_fp))
