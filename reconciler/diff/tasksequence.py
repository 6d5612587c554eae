"""What differs between a live task sequence and the record its manifest asks for, in the manifest's terms.

The properties (a boot image as ``Name [ID]``), where it sits in the console and whether it is enabled
(the console's own actions, so the planner can make them actions of their own), and the step tree
compared by identity: steps inserted (with what they do), removed, moved and changed, by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reconciler.diff.changes import FieldChange, StepChange, StepOp
from reconciler.diff.compare import field_changes
from reconciler.diff.normalize import ts_canonical, ts_properties
from reconciler.diff.steps import diff_steps, node_fields
from reconciler.diff.terms import present_step_changes
from reconciler.diff.tsproperties import ts_property_changes
from reconciler.site.records import LiveState, TaskSequenceRecord


@dataclass(frozen=True, slots=True)
class TaskSequenceDiff:
    fields: tuple[FieldChange, ...] = ()
    steps: tuple[StepChange, ...] = ()
    folder: tuple[FieldChange, ...] = ()
    enabled: tuple[FieldChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.fields or self.steps or self.folder or self.enabled)


def diff_task_sequence(live: TaskSequenceRecord, record: TaskSequenceRecord, state: LiveState) -> TaskSequenceDiff:
    """``live`` → ``record``. The step tree is read from the XML only when the sequences differ.

    A site that does not hold the console's type (``live.ts_type == ""``) is not asked to change it.
    """
    record = comparable(live, record)
    if record.sequence == live.sequence:
        before, after = ts_properties(live), ts_properties(record)
    else:
        before, after = ts_canonical(live), ts_canonical(record)
    steps_before, steps_after = before.pop("steps", []), after.pop("steps", [])
    if before == after and steps_before == steps_after:
        return TaskSequenceDiff()
    # Anything the sequence XML carries beside its steps (MDT's global variables, the XML version) is
    # compared field by field; the properties as the manifest writes them.
    properties = set(ts_properties(record))
    rest_before = {k: v for k, v in before.items() if k not in properties}
    rest_after = {k: v for k, v in after.items() if k not in properties}
    changes = ts_property_changes(live, record, state) + field_changes(rest_before, rest_after)
    # Secret references are named after their steps, so comparing them would only echo a step's rename; a
    # secret that changed is known from the references and hashes recorded at apply, not from the sequence.
    steps = present_step_changes(_with_inserted_fields(diff_steps(steps_before, steps_after, opaque_references=True)),
                                 state)
    return TaskSequenceDiff(fields=tuple(c for c in changes if c.path not in ("enabled", "folder")), steps=steps,
                            folder=tuple(c for c in changes if c.path == "folder"),
                            enabled=tuple(c for c in changes if c.path == "enabled"))


def comparable(live: TaskSequenceRecord, record: TaskSequenceRecord) -> TaskSequenceRecord:
    """The record as far as this site can hold it: without the console's type where the site keeps none."""
    return replace(record, ts_type="") if not live.ts_type and record.ts_type else record


def _with_inserted_fields(changes: tuple[StepChange, ...]) -> tuple[StepChange, ...]:
    """An inserted step carries its settings and condition as fields, so a reviewer sees what it does."""
    out = []
    for change in changes:
        if change.op is StepOp.INSERTED and not change.is_group and change.node:
            node = {k: v for k, v in change.node.items() if k != "steps"}
            identity = {k: node[k] for k in ("name", "type") if k in node}
            change = replace(change, fields=node_fields(identity, node, opaque_references=True))
        out.append(change)
    return tuple(out)
