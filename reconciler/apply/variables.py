"""Applying variable actions: set a collection's or a computer's variables (secrets masked, their keyed
hashes recorded), or remove them.

Handlers are functions of the run and the action, as in :mod:`reconciler.apply.tasksequences` (why is
said there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.apply.fingerprints import variables_fingerprint
from reconciler.plan.actions import Action, VariablesRemoval, VariablesWrite
from reconciler.plan.context import live_variables_fingerprint
from reconciler.secrets import describe

if TYPE_CHECKING:
    from reconciler.apply.executor import Executor


def set_variables(run: Executor, action: Action) -> str:
    write = action.write
    assert isinstance(write, VariablesWrite)
    values: list[tuple[str, str, bool]] = []
    hashes: dict[str, dict[str, str]] = {}
    for var in write.variables:
        if var.value_from:
            value = run.secret_values[(str(action.ref), var.name)]
            hashes[var.name.casefold()] = {"ref": describe(var.value_from),
                                           "hash": run.state.secret_hash(value, run.secrets.hash_key)}
            values.append((var.name, value, True))  # a value read from a secret source is always masked
        else:
            values.append((var.name, var.value or "", var.hidden))
    if write.scope == "collection":
        run.site.set_collection_variables(str(write.target), write.priority, values)
    else:
        run.site.set_computer_variables(int(write.target), values)
    live_fp = variables_fingerprint(run.site, write.scope, write.target) or live_variables_fingerprint((), None)
    if write.identity is not None:
        run.state.created(run.plan.plan_id, action.verb.value, str(action.ref), live_fp, apply_id=run.apply_id)
    for name in [action.ref.name, *write.also]:
        run.state.own(action.ref.kind, name, str(write.target))
        run.state.record_applied(action.ref.kind, name, write.desired_fp, live_fp, hashes,
                                 {"count": len(values)})
    return f"{len(values)} variable(s) set"


def remove_variables(run: Executor, action: Action) -> str:
    write = action.write
    assert isinstance(write, VariablesRemoval)
    if write.gone:
        run.state.disown(action.ref.kind, action.ref.name)
        return "the target no longer exists; forgotten"
    if write.scope == "collection":
        run.site.set_collection_variables(str(write.target), 9, [])
    else:
        run.site.set_computer_variables(int(write.target), [])
    run.state.disown(action.ref.kind, action.ref.name)
    return "variables removed"
