"""Live values in the manifest's terms: references by console name and ID, for people reading a plan.

The diff stage compares IDs (``PS100003``, ``SMS00001``): two packages may share a console name, and a
renamed package is still the same package. A reviewer, though, reads names. So every reference is
shown as ``Console Name [ID]`` (``OSD Pilot [PS100001]``, ``Windows 11 23H2 x64 [PS100003]``), which
names what the manifest names and still tells two namesakes apart; an ID the site does not know reads
``[PS1000FF] (not on the site)``. Presenting never changes what was compared: it runs after the diff,
on its results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reconciler.diff.changes import FieldChange, StepChange
from reconciler.diff.normalize import PENDING
from reconciler.models.steptypes import BY_NAME
from reconciler.site.records import LiveState

#: A reference to a task sequence that the same plan creates (its ID is known only at apply).
CREATED_BY_PLAN = "(created by this plan)"
NOT_ON_SITE = "(not on the site)"


def _named(name: str | None, ref_id: str) -> str:
    return f"{name} [{ref_id}]" if name is not None else f"[{ref_id}] {NOT_ON_SITE}"


def package_text(package_id: str, live: LiveState) -> str:
    """A package, image, boot image or driver package: ``Boot image (x64) [PS100004]``."""
    if package_id.startswith(PENDING):
        return f"{package_id.removeprefix(PENDING)} {CREATED_BY_PLAN}"
    package = live.packages.get(package_id.upper())
    if package is not None:
        return _named(package.name, package_id)
    sequence = live.task_sequences.get(package_id.upper())
    return _named(sequence.name if sequence is not None else None, package_id)


def task_sequence_text(ts_id: str, live: LiveState) -> str:
    """A task sequence: ``Windows 11 23H2 - Install [PS100012]``."""
    if ts_id.startswith(PENDING):
        return f"{ts_id.removeprefix(PENDING)} {CREATED_BY_PLAN}"
    sequence = live.task_sequences.get(ts_id.upper())
    if sequence is not None:
        return _named(sequence.name, ts_id)
    return package_text(ts_id, live)


def collection_text(collection_id: str, live: LiveState) -> str:
    """A collection: ``All Systems [SMS00001]``."""
    collection = live.collections.get(collection_id) or live.collections.get(collection_id.upper())
    return _named(collection.name if collection is not None else None, collection_id)


# -- references inside a step tree --------------------------------------------------------------------


def _is_package_reference(value: Any) -> bool:
    """``{id: PS100003}``: how the sequence codec reads every package field back from site XML."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("id"), str)


def _package_list_text(value: str, live: LiveState) -> str:
    """Download Package Content keeps its packages as ``PS100001,PS100002``."""
    return ", ".join(package_text(p.strip(), live) for p in value.split(",") if p.strip())


def present_value(value: Any, live: LiveState, step_type: str | None = None, field: str | None = None) -> Any:
    """``value`` with every package reference inside it shown as ``Name [ID]``; anything else as it was.

    ``step_type`` and ``field`` say where the value sits: a step's whole ``settings`` (a type, no field),
    or one settings field, which matters for the one reference that is not a mapping (Download Package
    Content's comma-separated package IDs) and for a child sequence (Run Task Sequence).
    """
    if _is_package_reference(value):
        if step_type == "RunTaskSequence":
            return task_sequence_text(value["id"], live)
        return package_text(value["id"], live)
    if isinstance(value, str) and step_type == "DownloadPackageContent" and field == "packages":
        return _package_list_text(value, live)
    if isinstance(value, Mapping):
        if "valueFrom" in value:
            return value  # a secret's reference: nothing to look up, and renderers mask it by path
        if step_type is not None and field is None:  # a step's settings: each key is a field
            return {key: present_value(v, live, step_type, key) for key, v in value.items()}
        return {key: present_value(v, live, step_type, field) for key, v in value.items()}
    if isinstance(value, list):
        return [present_value(v, live, step_type, field) for v in value]
    return value


def _present_node(node: Mapping[str, Any], live: LiveState) -> dict[str, Any]:
    out = dict(node)
    step_type = node.get("type") if isinstance(node.get("type"), str) else None
    if isinstance(node.get("settings"), Mapping):
        out["settings"] = present_value(node["settings"], live, step_type or "")
    if isinstance(node.get("steps"), list):
        out["steps"] = present_references(node["steps"], live)
    return out


def present_references(steps: list[dict[str, Any]], live: LiveState) -> list[dict[str, Any]]:
    """A copy of a step tree (as ``ts_canonical(record)["steps"]`` holds it) with every content reference
    in a step's settings shown as ``Name [ID]``: ``{image: {id: PS100003}}`` becomes
    ``{image: "Windows 11 23H2 x64 [PS100003]"}``. For display only: compare the trees as they were."""
    return [_present_node(node, live) if isinstance(node, Mapping) else node for node in steps]


def _reference_field(step_type: str | None, field: str) -> bool:
    known = BY_NAME.get(step_type or "")
    prop = known.prop(field) if known is not None else None
    return prop is not None and prop.kind == "package"


def _present_field(change: FieldChange, live: LiveState, before_type: str | None, after_type: str | None
                   ) -> FieldChange:
    """One field change inside a step, by its path relative to the step.

    The step diff walks into a reference, so a changed image is ``settings.image.id: PS100005 →
    PS100003``; the manifest writes the reference itself (``image: {package: …}`` or ``{id: …}``), so
    it is shown as ``settings.image`` with both sides named.
    """
    if change.sensitive:
        return change
    if change.path == "settings":
        return replace(change, before=present_value(change.before, live, before_type or ""),
                       after=present_value(change.after, live, after_type or ""))
    head, _, rest = change.path.partition(".")
    if head != "settings" or not rest:
        return change  # conditions, options and generic properties hold no content references
    field = rest.split(".", 1)[0].split("[", 1)[0]
    if rest == f"{field}.id" and (_reference_field(before_type, field) or _reference_field(after_type, field)):
        def side(value: Any, step_type: str | None) -> Any:
            return present_value({"id": value}, live, step_type, field) if isinstance(value, str) else value

        return replace(change, path=f"settings.{field}", before=side(change.before, before_type),
                       after=side(change.after, after_type))
    return replace(change, before=present_value(change.before, live, before_type, field),
                   after=present_value(change.after, live, after_type, field))


def present_step_changes(changes: tuple[StepChange, ...], live: LiveState) -> tuple[StepChange, ...]:
    """The results of ``diff_steps`` with references shown as ``Name [ID]``: in the fields changed inside
    a step (``settings.image: Windows 10 22H2 x64 [PS100005] → Windows 11 23H2 x64 [PS100003]`` where
    the step diff says ``settings.image.id: PS100005 → PS100003``) and in the whole node of an inserted
    or removed step. Which nodes and fields changed stays what the IDs gave."""
    out = []
    for change in changes:
        retyped = [f for f in change.fields if f.path == "type"]
        old_type = retyped[0].before if retyped else change.step_type
        fields = tuple(_present_field(f, live, old_type, change.step_type) for f in change.fields)
        node = _present_node(change.node, live) if change.node is not None else None
        out.append(replace(change, fields=fields, node=node))
    return tuple(out)
