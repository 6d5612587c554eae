"""A pull request's view: which manifests it changes, and what merging it would do to the site.

Both come from the merge result (``reconciler.source.select.load_pair``), not from the head branch: a
branch cut before the base's latest commits still holds the base's older manifests, and comparing or
planning from it would present the base's newer changes as reverted by the pull request.

The plan of the merge result is split: actions on objects the pull request touches (or that wait on
them) are the review; anything else pending on the site (drift, earlier unapplied changes, changes
already on the base) is summarised in one line, so a reviewer is not asked to approve what the change
did not cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.diff.compare import field_changes
from reconciler.plan.actions import Action, FieldChange, ObjectRef, Plan
from reconciler.source.loader import DesiredState, LoadedObject


@dataclass(frozen=True, slots=True)
class ManifestChange:
    ref: ObjectRef
    status: str  # added | modified | removed
    changes: tuple[FieldChange, ...] = ()
    file: str | None = None
    line: int | None = None


@dataclass
class Review:
    base: dict[str, str]
    head: dict[str, str]
    manifest_changes: list[ManifestChange]
    plan: Plan
    untouched: list[Action] = field(default_factory=list)

    @property
    def touched(self) -> set[ObjectRef]:
        return {c.ref for c in self.manifest_changes}


def _document(obj: LoadedObject) -> dict[str, Any]:
    return obj.manifest.model_dump(by_alias=True, exclude_none=True, mode="json")


def manifest_changes(base: DesiredState, head: DesiredState) -> list[ManifestChange]:
    """Objects added, modified (field by field) or removed between two revisions, by kind and name.

    An object moved to another file, or a file renamed, is the same object: no change.
    """
    before = {(o.kind, o.name): o for o in base.objects}
    after = {(o.kind, o.name): o for o in head.objects}
    out: list[ManifestChange] = []
    for key in sorted(set(before) | set(after)):
        ref = ObjectRef(*key)
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            out.append(ManifestChange(ref, "added", (), new.source.file, new.source.line))
        elif new is None and old is not None:
            out.append(ManifestChange(ref, "removed", (), old.source.file, old.source.line))
        elif old is not None and new is not None and old.fingerprint != new.fingerprint:
            changes = field_changes(_document(old), _document(new))
            if changes:
                out.append(ManifestChange(ref, "modified", changes, new.source.file, new.source.line))
    return out


def review(base_info: dict[str, str], head_info: dict[str, str], base: DesiredState, head: DesiredState,
           plan: Plan) -> Review:
    """Split ``plan`` (made from ``head``, the manifests after merging) by what ``base`` -> ``head`` changes."""
    changes = manifest_changes(base, head)
    touched = {c.ref for c in changes}
    mine, others = [], []
    for action in plan.actions:
        if action.ref in touched or any(d in touched for d in action.depends_on):
            mine.append(action)
        else:
            others.append(action)
    plan.actions = mine
    plan.orphans = [o for o in plan.orphans if o in touched]
    plan.warnings = [w for w in plan.warnings if w.ref in touched]
    # Blocked items stay, touched or not: a plan with any blocked item applies nothing after the merge.
    return Review(base_info, head_info, changes, plan, others)
