"""What the web view shows, as one immutable snapshot: the estate's objects, their status, the plan, the history.

A snapshot is made away from any request (:mod:`reconciler.web.refresh` makes one after each tick, on a change
of the manifests and on an interval) and then only read: a request never touches the site or the state store,
so a page costs the same whatever the site is, and every page of one generation tells one story.

An object's status is the controller's (:func:`reconciler.controller.tick.object_status`: synced, out of sync,
drifted, blocked), refined by what only the state store knows: an apply interrupted during the object's
action (pending) and an action that failed and is still planned (failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from reconciler.controller.tick import object_status
from reconciler.diff.terms import collection_text, task_sequence_text
from reconciler.errors import Finding
from reconciler.plan.actions import Action, Blocked, Plan
from reconciler.site.records import LiveState
from reconciler.source.loader import DesiredState, LoadedObject
from reconciler.state.records import Lease, Pause, PendingIntent

#: Every status an object can have, in the order people triage them (the overview's counts and sort).
STATUSES = ("failed", "blocked", "drifted", "out of sync", "pending", "synced")
#: The kinds in the order of the manifests' table (README), for the kind filter.
KIND_ORDER = ("TaskSequence", "TaskSequenceDeployment", "ContentDistribution", "CollectionVariables",
              "ComputerVariables")


@dataclass(frozen=True, slots=True)
class Row:
    """One object of the overview."""

    kind: str
    name: str
    console: str
    live_id: str
    status: str
    reason: str
    #: when an apply last changed it (epoch seconds), and the commit that apply came from
    changed_at: float | None = None
    commit: str = ""
    #: where its manifest is (file:line); empty for a managed object without a manifest
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class ApplyRecord:
    """One apply of the history page: when, which apply and plan, from which commit, who, what came of it."""

    at: float
    apply_id: str
    plan_id: str
    ref: str
    sha: str
    source: str
    who: str
    planned: dict[str, int]
    result: dict[str, int]
    outcome: str


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """An action the audit trail holds for one object: what was done, how it ended, from which commit, by whom."""

    at: float
    apply_id: str
    plan_id: str
    action: str
    reason: str
    outcome: str
    message: str = ""
    #: how many field and step changes the action made
    changes: int = 0
    sha: str = ""
    ref: str = ""
    who: str = ""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Any other audit event: a high-risk deployment acknowledged, a refused attempt, a pause or a resume."""

    at: float
    event: str
    actor: str
    object: str
    outcome: str
    apply_id: str
    plan_id: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class History:
    """The journal as far as the view reads it: the latest applies and what they did to each object."""

    applies: tuple[ApplyRecord, ...] = ()
    by_object: dict[str, tuple[ObjectEvent, ...]] = field(default_factory=dict)
    audits: tuple[AuditRecord, ...] = ()
    #: how many of the newest audit events were read (older ones are not shown)
    window: int = 0


@dataclass(frozen=True)
class Meta:
    """What changes without a new plan: the last tick, the writer, pause. Cheap to read every few seconds."""

    tick: dict[str, Any] | None = None
    checked: dict[str, Any] | None = None
    lease: Lease | None = None
    #: this controller's role (``writer`` / ``standby``) when the view is served by a controller
    role: str | None = None
    #: the pause in force (None: not paused)
    paused: Pause | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything every page of one generation shows. Never changed after it is made."""

    generation: int
    made_at: float
    took: float
    site_code: str
    site_location: str
    ref: str | None
    sha: str | None
    source: str
    meta: Meta
    rows: tuple[Row, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None
    findings: tuple[Finding, ...] = ()
    #: why the last refresh failed (the rows are then those of the refresh before)
    error: str | None = None
    desired: DesiredState | None = None
    live: LiveState | None = None
    history: History = field(default_factory=History)
    by_key: dict[str, Row] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        present = {r.kind for r in self.rows}
        return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))

    def actions_of(self, key: str) -> list[Action]:
        return [a for a in self.plan.actions if str(a.ref) == key] if self.plan is not None else []

    def blocked_of(self, key: str) -> list[Blocked]:
        return [b for b in self.plan.blocked if str(b.ref) == key] if self.plan is not None else []

    def object(self, key: str) -> LoadedObject | None:
        if self.desired is None:
            return None
        return next((o for o in self.desired.objects if o.key == key), None)


def counts_of(rows: tuple[Row, ...] | list[Row]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


# -- building the rows -------------------------------------------------------------------------------------


def _spec(obj: LoadedObject) -> dict[str, Any]:
    """The manifest's spec as plain data: the validated JSON the loader kept, without building the model."""
    return json.loads(obj.payload).get("spec") or {}


def _collection_name(ref: dict[str, Any] | None, live: LiveState | None) -> str:
    ref = ref or {}
    if ref.get("id"):
        found = live.collections.get(str(ref["id"])) if live is not None else None
        return found.name if found is not None else str(ref["id"])
    return str(ref.get("name") or "")


def _computer_name(ref: dict[str, Any] | None) -> str:
    ref = ref or {}
    return str(ref.get("name") or ref.get("resourceId") or "")


def console_name(obj: LoadedObject, ts_names: dict[str, str], live: LiveState | None) -> str:
    """The name an administrator finds the object by in the console."""
    if obj.kind == "TaskSequence":
        return obj.facts.console_name or ""
    spec = _spec(obj)
    if obj.kind == "TaskSequenceDeployment":
        ts = ts_names.get(spec.get("taskSequence") or "", spec.get("taskSequence") or "")
        return f"{ts} to {_collection_name(spec.get('collection'), live)}"
    if obj.kind == "ContentDistribution":
        return ts_names.get(spec.get("taskSequence") or "", "")
    if obj.kind == "CollectionVariables":
        return _collection_name(spec.get("collection"), live)
    if obj.kind == "ComputerVariables":
        return _computer_name(spec.get("computer"))
    return ""


def live_console_name(kind: str, live_id: str, live: LiveState | None) -> str:
    """The console name of a managed object that has no manifest any more, from the site."""
    if live is None or not live_id:
        return ""
    if kind == "TaskSequence":
        found = live.task_sequences.get(live_id)
        return found.name if found is not None else ""
    if kind == "TaskSequenceDeployment":
        dep = live.deployments.get(live_id)
        if dep is None:
            return ""
        return f"{task_sequence_text(dep.package_id, live)} to {collection_text(dep.collection_id, live)}"
    if kind == "CollectionVariables":
        found = live.collections.get(live_id)
        return found.name if found is not None else ""
    if kind == "ComputerVariables" and live_id.isdigit():
        computer = live.computers.get(int(live_id))
        return computer.name if computer is not None else ""
    return ""


def _shown_id(kind: str, live_id: str | None) -> str:
    # A ContentDistribution owns no one live object (its pairs of package and DP are recorded apart): the
    # ownership map holds a placeholder for it, which is no ID a person could look up.
    if not live_id or kind == "ContentDistribution":
        return ""
    return live_id


def _action_reason(actions: list[Action], console: str = "") -> str:
    """``UpdateTaskSequence (changed)``, with the action's summary unless it only repeats the console name."""
    return "; ".join(f"{a.verb.value} ({a.reason.value})" + (f": {a.summary}" if a.summary and a.summary != console
                                                               else "") for a in actions)


def build_rows(desired: DesiredState | None, live: LiveState | None, plan: Plan | None,
               owned: dict[tuple[str, str], str], pending: dict[str, PendingIntent],
               tick_objects: dict[str, str], events: dict[str, tuple[ObjectEvent, ...]],
               invalid: str | None = None) -> list[Row]:
    """One row per object the manifests describe or the tool manages, in kind order, then by name.

    ``invalid`` (the manifests have errors, so there is no plan) blocks every object, as the controller
    does: nothing can be applied until the branch is fixed.
    """
    objects = desired.objects if desired is not None else []
    ts_names = {o.name: o.facts.console_name or "" for o in objects if o.kind == "TaskSequence"}
    base = object_status(desired, plan) if desired is not None and plan is not None else {}
    actions: dict[str, list[Action]] = {}
    blocked: dict[str, list[Blocked]] = {}
    if plan is not None:
        for action in plan.actions:
            actions.setdefault(str(action.ref), []).append(action)
        for item in plan.blocked:
            blocked.setdefault(str(item.ref), []).append(item)
    rows: list[Row] = []
    seen: set[str] = set()

    def row(kind: str, name: str, console: str, source: str) -> Row:
        key = f"{kind}/{name}"
        seen.add(key)
        live_id = owned.get((kind, name))
        planned = actions.get(key, [])
        if live_id is None:
            live_id = next((a.live_id for a in planned if a.live_id), None)
        history = events.get(key, ())
        last = next((e for e in history if e.outcome in ("applied", "failed")), None)
        failure = last.message if last is not None and last.outcome == "failed" else ""
        changed = next((e for e in history if e.outcome == "applied"), None)
        status, reason = "synced", ""
        if invalid is not None:
            status, reason = "blocked", invalid
        elif key in blocked:
            items = blocked[key]
            status = "blocked"
            reason = items[0].message + (f" (and {len(items) - 1} more)" if len(items) > 1 else "")
        elif key in pending:
            intent = pending[key]
            status = "pending"
            reason = (f"an apply stopped during {intent.action} (plan {intent.plan_id}); the next apply finishes "
                      "it")
        elif planned and (tick_objects.get(key) == "failed" or (last is not None and last.outcome == "failed")):
            status = "failed"
            reason = failure or _action_reason(planned, console)
        elif planned:
            status = base.get(key) or ("drifted" if any(a.reason.value == "drift" for a in planned)
                                       else "out of sync")
            if status not in ("drifted", "out of sync"):
                status = "out of sync"
            reason = _action_reason(planned, console)
        return Row(kind, name, console, _shown_id(kind, live_id), status, reason,
                   changed.at if changed is not None else None, changed.sha if changed is not None else "", source)

    for obj in objects:
        rows.append(row(obj.kind, obj.name, console_name(obj, ts_names, live), str(obj.source)))
    for (kind, name), live_id in owned.items():
        key = f"{kind}/{name}"
        if key in seen:
            continue
        made = row(kind, name, live_console_name(kind, live_id, live), "")
        if made.status == "synced":
            # Managed, and no manifest describes it: kept, unless a plan with --prune deletes it.
            made = Row(made.kind, made.name, made.console, made.live_id, "out of sync",
                       "no manifest describes it; kept (--prune deletes it)", made.changed_at, made.commit, "")
        rows.append(made)
    for key in list(actions) + list(blocked):
        if key not in seen:
            kind, _, name = key.partition("/")
            rows.append(row(kind, name, "", ""))
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    rows.sort(key=lambda r: (order.get(r.kind, len(order)), r.kind, r.name))
    return rows
