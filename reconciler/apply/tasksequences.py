"""Applying task sequence actions: create (or take over what an interrupted run made), update, enable,
disable, move, delete.

Each handler is a function of the run (:class:`~reconciler.apply.executor.Executor`: the plan, the site,
the state store and the secrets read at preflight) and the action, rather than a method of a mixin: the
handlers of one kind read top to bottom here, what each one uses of the run is spelled out at the call,
and the executor dispatches through one table from verb to function.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from reconciler.apply.fingerprints import desired_fingerprint
from reconciler.apply.interrupted import claim_leftover
from reconciler.apply.secrets import resolve_secret
from reconciler.diff.normalize import PENDING, record_fingerprint, ts_canonical
from reconciler.diff.tasksequence import comparable
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Action, TaskSequenceWrite
from reconciler.site.records import TaskSequenceRecord
from reconciler.tsxml.sequence import fill_secrets, secret_references, step_secret_refs

if TYPE_CHECKING:
    from reconciler.apply.executor import Executor


def record_applied(run: Executor, action: Action, ts_id: str) -> None:
    """Record the sequence as applied: its fingerprints, and the keyed hashes of the step secrets written."""
    live = run.site.get_task_sequence(ts_id)
    if live is not None:
        hashes = {}
        if isinstance(action.write, TaskSequenceWrite):
            record = action.write.record
            hashes = {f"{k}:{n}": run.state.secret_hash(run.step_secrets[(k, n)], run.secrets.hash_key)
                      for k, n in secret_references(record.sequence) if (k, n) in run.step_secrets}
            if hashes:
                hashes["@refs"] = step_secret_refs(record.sequence)  # type: ignore[assignment]
        run.state.record_applied(action.ref.kind, action.ref.name, desired_fingerprint(action),
                                 record_fingerprint(live, run.state.salt), hashes)


def _with_secrets(run: Executor, record: TaskSequenceRecord) -> TaskSequenceRecord:
    """The record as written to the site: secret markers replaced by the values read at preflight."""
    if "{{secret:" not in record.sequence:
        return record

    def value_of(kind: str, name: str) -> str:
        if (kind, name) not in run.step_secrets:
            source = {"env": name} if kind == "env" else {"file": name}
            run.step_secrets[(kind, name)] = resolve_secret(run.secrets, source)
        return run.step_secrets[(kind, name)]

    return replace(record, sequence=fill_secrets(record.sequence, value_of))


def _to_write(run: Executor, action: Action) -> TaskSequenceRecord:
    """The record to write, with the IDs of the child sequences this plan created filled in.

    A parent that runs a child created by the same plan refers to it as ``PENDING:<console name>``;
    the child's action ran first (it is a dependency), so its ID is known now.
    """
    write = action.write
    assert isinstance(write, TaskSequenceWrite)
    record = write.record
    if not write.children:
        return record
    sequence = record.sequence
    for child in write.children:
        child_id = run.state.owned_id("TaskSequence", child.name)
        if child_id is None:
            raise ReconcilerError(f"runs TaskSequence/{child.name} ({child.console_name!r}), which is not on "
                                  "the site: its creation did not succeed")
        # The marker stands as an attribute value or as an element's text, escaped as XML escapes it.
        for written in {escape(child.console_name), escape(child.console_name, {'"': "&quot;"})}:
            sequence = re.sub(f'(?<=[">]){re.escape(PENDING + written)}(?=["<])', child_id, sequence)
    return replace(record, sequence=sequence,
                   references=tuple(r for r in record.references if not r.startswith(PENDING)))


def create_task_sequence(run: Executor, action: Action) -> str:
    record = _to_write(run, action)
    ts_id = run.state.owned_id(action.ref.kind, action.ref.name)
    if ts_id and run.site.get_task_sequence(ts_id) is not None:
        return update_task_sequence(run, action, ts_id)
    # A killed run may have created it without recording ownership: find it by console name.
    leftovers = [t.id for t in run.site.find_task_sequences(record.name)
                 if t.id and not run.state.is_owned("TaskSequence", t.id)]
    # Only the object an interrupted run of this action made is taken over; any other is not ours.
    ts_id = claim_leftover(action, run.state, leftovers, f"a task sequence named {record.name!r}",
                           "is on the site and not managed by this tool; it was left as it is: rerun with --adopt to "
                           "take it over, or rename")
    if ts_id is not None:
        run.state.own(action.ref.kind, action.ref.name, ts_id)
        return update_task_sequence(run, action, ts_id)
    ts_id = run.site.create_task_sequence(_with_secrets(run, record))
    run.state.created(run.plan.plan_id, action.verb.value, str(action.ref), ts_id, apply_id=run.apply_id)
    run.state.own(action.ref.kind, action.ref.name, ts_id)
    record_applied(run, action, ts_id)
    return f"created {ts_id}"


def update_task_sequence(run: Executor, action: Action, ts_id: str | None = None) -> str:
    ts_id = ts_id or run.state.owned_id(action.ref.kind, action.ref.name) or action.live_id
    record = _to_write(run, action)
    live = run.site.get_task_sequence(ts_id) if ts_id else None
    if live is None:
        raise ReconcilerError(f"task sequence {ts_id} no longer exists; the next plan creates it again")
    secrets_changed = isinstance(action.write, TaskSequenceWrite) and action.write.secrets_changed
    if ts_canonical(live) != ts_canonical(comparable(live, record)) or secrets_changed:
        # A password never shows in the canonical form, so a changed one is written on the plan's word.
        run.site.update_task_sequence(ts_id, _with_secrets(run, record))
        message = f"updated {ts_id}"
    else:
        message = f"{ts_id} already up to date"
    record_applied(run, action, ts_id)
    return message


def _patch(run: Executor, action: Action, change: Callable[[str], None]) -> str:
    ts_id = run.state.owned_id(action.ref.kind, action.ref.name) or action.live_id
    if not ts_id or run.site.get_task_sequence(ts_id) is None:
        raise ReconcilerError(f"task sequence {ts_id} no longer exists")
    change(ts_id)
    record_applied(run, action, ts_id)
    return ts_id


def enable_task_sequence(run: Executor, action: Action) -> str:
    return f"enabled {_patch(run, action, lambda i: run.site.set_task_sequence_enabled(i, True))}"


def disable_task_sequence(run: Executor, action: Action) -> str:
    return f"disabled {_patch(run, action, lambda i: run.site.set_task_sequence_enabled(i, False))}"


def move_task_sequence(run: Executor, action: Action) -> str:
    assert isinstance(action.write, TaskSequenceWrite)
    folder = action.write.record.folder
    return f"moved {_patch(run, action, lambda i: run.site.move_task_sequence(i, folder))}"


def delete_task_sequence(run: Executor, action: Action) -> str:
    ts_id = action.live_id
    if ts_id and run.site.get_task_sequence(ts_id) is not None:
        run.site.delete_task_sequence(ts_id)
    run.state.disown(action.ref.kind, action.ref.name)
    return f"deleted {ts_id}"
