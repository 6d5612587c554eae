"""A plan as a document: its digest (the plan ID) and the file a saved plan is written to.

``reconcile plan --out FILE`` writes the whole plan (every payload, every planned-against fingerprint,
never a secret value: payloads hold references) with what it was made from; ``reconcile apply FILE``
reads it back into the same typed actions. Both directions go through one pydantic type adapter over the
plan's own dataclasses, so the file cannot drift from the types apply reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reconciler.errors import ReconcilerError
from reconciler.plan.actions import PLAN_FORMAT_VERSION, Plan

#: Saved plans are read only by the version of the format they were written in.
SAVED_PLAN_FORMAT = "configmgr-ts-reconciler/saved-plan/1"


class SavedPlanError(ReconcilerError):
    """A saved plan cannot be read, or cannot be applied as it is; nothing was applied."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanInputs:
    """What a plan was made from, so that applying it later can refuse when any of it moved.

    ``manifests`` is a digest of every manifest the plan read (kind, name and document fingerprint),
    ``source`` and ``ref``/``sha`` where they came from; ``site`` the site code and where the site is.
    """

    source: str
    ref: str | None = None
    sha: str | None = None
    dirty: bool = False
    manifests: str = ""
    site: str = ""
    site_location: str = ""
    path: str = "manifests"
    repo: str | None = None


@dataclass(kw_only=True)
class SavedPlan:
    format: str = SAVED_PLAN_FORMAT
    plan_format_version: str = PLAN_FORMAT_VERSION
    plan: Plan
    inputs: PlanInputs
    created: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@cache
def _plan_adapter() -> TypeAdapter[Plan]:
    return TypeAdapter(Plan)


@cache
def _saved_adapter() -> TypeAdapter[SavedPlan]:
    return TypeAdapter(SavedPlan)


def plan_digest(plan: Plan) -> str:
    """The plan's ID: a digest of everything it would do and refuse, so equal inputs give equal IDs."""
    return plan_sha256(plan)[:12]


def plan_sha256(plan: Plan) -> str:
    """The whole SHA-256 the plan's ID is the first 12 digits of (the audit keeps it beside the ID)."""
    # The scope is the header's note of what was checked; what it blocked is in ``blocked``, and a plan saved
    # before plans carried it keeps its ID.
    data = _plan_adapter().dump_python(plan, mode="json", exclude={"plan_id", "scope"})
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_saved_plan(saved: SavedPlan, path: Path) -> None:
    path.write_bytes(_saved_adapter().dump_json(saved, indent=1))


#: A saved plan holds sequence XML (at most 2 MB each) for every sequence it writes; this bounds what is read.
MAX_SAVED_PLAN_BYTES = 512 * 1024 * 1024


def read_saved_plan(path: Path) -> SavedPlan:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SAVED_PLAN_BYTES + 1)
    except OSError as exc:
        raise SavedPlanError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_SAVED_PLAN_BYTES:
        raise SavedPlanError(f"{path}: larger than {MAX_SAVED_PLAN_BYTES:,} bytes; not a saved plan")
    try:
        head = json.loads(raw)
    except ValueError:
        raise SavedPlanError(f"{path}: not a saved plan (not JSON); write one with 'reconcile plan --out FILE'") \
            from None
    if not isinstance(head, dict) or head.get("format") != SAVED_PLAN_FORMAT:
        found = head.get("format") if isinstance(head, dict) else None
        raise SavedPlanError(f"{path}: not a saved plan of this tool (format {found!r}, expected "
                             f"{SAVED_PLAN_FORMAT!r}); write one with 'reconcile plan --out FILE'")
    try:
        saved = _saved_adapter().validate_python(head)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SavedPlanError(f"{path}: damaged saved plan: {where}: {first['msg']} ({exc.error_count()} "
                             "problem(s)); plan again") from None
    if plan_digest(saved.plan) != saved.plan.plan_id:
        raise SavedPlanError(f"{path}: the plan's content does not match its ID {saved.plan.plan_id}: the file "
                             "was changed after it was written; plan again")
    return saved
