"""One object's page, made from a snapshot: desired against live, the plan's changes, the step tree, its history.

Values are shown in the manifest's terms on both sides (references as ``Console Name [ID]``, schedules as
phrases), through the same functions the plan's changes use (:mod:`reconciler.diff.terms`,
:func:`~reconciler.diff.deployment.deployment_terms`, :func:`~reconciler.diff.tsproperties.ts_property_terms`),
so a value the page shows is the value a plan would show. A secret is only ever ``(sensitive)``: step
fields are masked by the paths the differ calls secret (:func:`~reconciler.diff.stepfields.sensitive_paths`),
and any ``valueFrom``, hidden variable or masked live value as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from reconciler.diff.changes import StepChange, StepOp
from reconciler.diff.deployment import deployment_terms
from reconciler.diff.normalize import Resolver, Unresolved, deployment_record, ts_canonical, ts_record
from reconciler.diff.stepfields import sensitive_paths
from reconciler.diff.terms import collection_text, package_text, present_references, present_value
from reconciler.diff.tsproperties import ts_property_terms
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Action, Blocked
from reconciler.render.plan import SENSITIVE, action_lines, risk_line
from reconciler.site.records import ContentState, LiveState, LiveVariable
from reconciler.web.conditions import condition_text
from reconciler.web.estate import ObjectEvent, Row, Snapshot

#: Step options shown beside a step's settings, in the order the README lists them.
_OPTIONS = ("description", "runIn", "successCodes", "retryCount", "runFromNet", "timeout", "startIn")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the plan's text for an object, with the mark that colours it."""

    text: str
    mark: str  # add | remove | change | move | "" (a field line)


@dataclass(frozen=True, slots=True)
class ActionView:
    symbol: str
    verb: str
    reason: str
    summary: str
    path: str
    risk: str | None
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Property:
    path: str
    desired: str
    live: str
    differs: bool


@dataclass
class StepNode:
    name: str
    is_group: bool
    step_type: str
    disabled: bool
    continue_on_error: bool
    condition: str
    options: list[tuple[str, str]]
    settings: list[tuple[str, str]]
    #: inserted | changed | moved | "" (as the plan's step changes say)
    mark: str = ""
    children: list[StepNode] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ContentRow:
    package: str
    dp: str
    state: str
    version: str
    ok: bool


@dataclass(frozen=True, slots=True)
class DeploymentLink:
    kind: str
    name: str
    text: str
    live_id: str
    status: str
    managed: bool


@dataclass
class ObjectPage:
    row: Row
    actions: list[ActionView] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    warnings: list[Blocked] = field(default_factory=list)
    properties: list[Property] = field(default_factory=list)
    #: why the desired side is shown as written rather than resolved against the site
    properties_note: str = ""
    steps: list[StepNode] | None = None
    removed_steps: list[Line] = field(default_factory=list)
    live_steps: list[StepNode] | None = None
    deployments: list[DeploymentLink] = field(default_factory=list)
    content: list[ContentRow] = field(default_factory=list)
    history: tuple[ObjectEvent, ...] = ()
    history_window: int = 0


# -- values as text ---------------------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A value as the plan writes it: text as it is, anything else as JSON; unset is empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "valueFrom" in value:
        return SENSITIVE
    return json.dumps(masked(value), ensure_ascii=False, default=str)


def masked(value: Any) -> Any:
    """The value with every secret reference (``valueFrom``) shown as ``(sensitive)``."""
    if isinstance(value, dict):
        if "valueFrom" in value:
            return SENSITIVE
        return {k: masked(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict) and "valueFrom" not in value and value:
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else key))
    else:
        out[prefix] = value
    return out


def _properties(desired: dict[str, Any], live: dict[str, Any] | None, changed: set[str]) -> list[Property]:
    paths = list(desired) + [p for p in (live or {}) if p not in desired]
    out = []
    for path in paths:
        want = value_text(desired.get(path)) if path in desired else ""
        have = value_text(live.get(path)) if live is not None and path in live else ""
        differs = path in changed or (live is not None and path in desired and path in live and want != have)
        if not (want or have or differs):
            continue  # unset on both sides
        out.append(Property(path, want, have if live is not None else "(not on the site)", differs))
    return out


# -- the plan's lines ---------------------------------------------------------------------------------------

_MARKS = {"+": "add", "-": "remove", "~": "change", ">": "move", "⇅": "change", "-/+": "remove", "=": "move"}


def line_mark(text: str) -> str:
    """The colour of one line of the text plan: by the mark it starts with (``+``, ``-``, ``~``, ``>``…)."""
    stripped = text.lstrip()
    head = stripped.split(" ", 1)[0]
    if head in _MARKS and stripped.startswith(head + " ") and (text == stripped or text.startswith("  ")):
        return _MARKS[head]
    return ""


def action_view(action: Action) -> ActionView:
    """An action as the text plan prints it (the same lines), for one object's page."""
    lines = tuple(Line(text, line_mark(text)) for text in action_lines(action))
    return ActionView(action.symbol, action.verb.value, action.reason.value, action.summary, action.path,
                      risk_line(action) if action.risk is not None else None, lines)


# -- step trees ---------------------------------------------------------------------------------------------


def _settings(node: dict[str, Any], live: LiveState | None, present: bool) -> list[tuple[str, str]]:
    secret = sensitive_paths(node)
    out: list[tuple[str, str]] = []
    settings = node.get("settings")
    if isinstance(settings, dict):
        step_type = node.get("type") or ""
        for key, value in settings.items():
            if value is None:
                continue
            path = f"settings.{key}"
            if any(path == s or s.startswith((path + ".", path + "[")) for s in secret):
                out.append((key, SENSITIVE))
                continue
            if present and live is not None:
                value = present_value(value, live, step_type, key)
            elif isinstance(value, dict) and set(value) <= {"package", "id"}:
                value = value.get("package") or value.get("id")
            out.append((key, value_text(value)))
    for entry in node.get("properties") or ():
        if not isinstance(entry, dict):
            continue
        name = entry.get("property") or entry.get("variable") or ""
        text = SENSITIVE if f"properties[{name}]" in secret else value_text(entry.get("value"))
        out.append((str(name), text))
    return out


def step_nodes(steps: list[dict[str, Any]], live: LiveState | None, *, present: bool = False,
               marks: dict[tuple[int, ...], str] | None = None, at: tuple[int, ...] = ()) -> list[StepNode]:
    """A step tree for display: each node's condition in words, its options, and its settings masked."""
    out = []
    for index, node in enumerate(steps or []):
        if not isinstance(node, dict):
            continue
        here = (*at, index)
        is_group = "group" in node
        options = [(k, value_text(node.get(k))) for k in _OPTIONS if node.get(k) not in (None, "", [], {})]
        made = StepNode(
            name=str(node.get("group") if is_group else node.get("name") or ""), is_group=is_group,
            step_type=str(node.get("type") or ""), disabled=bool(node.get("disabled")),
            continue_on_error=bool(node.get("continueOnError")), condition=condition_text(node.get("condition")),
            options=options, settings=[] if is_group else _settings(node, live, present),
            mark=(marks or {}).get(here, ""))
        if is_group:
            made.children = step_nodes(node.get("steps") or [], live, present=present, marks=marks, at=here)
        out.append(made)
    return out


def _marks(changes: tuple[StepChange, ...]) -> dict[tuple[int, ...], str]:
    return {c.location: c.op.value for c in changes if c.op is not StepOp.REMOVED and c.location}


# -- per kind -----------------------------------------------------------------------------------------------


def _ts_id(snapshot: Snapshot, name: str) -> str | None:
    row = snapshot.by_key.get(f"TaskSequence/{name}")
    return row.live_id if row is not None and row.live_id else None


def _content_rows(package_ids: list[str], live: LiveState) -> list[ContentRow]:
    rows = []
    for package_id in package_ids:
        package = live.packages.get(package_id)
        for (pid, dp), status in sorted(live.content.items()):
            if pid != package_id:
                continue
            current = package is None or status.installed_version >= package.source_version
            ok = status.state is ContentState.INSTALLED and current
            version = f"{status.installed_version}" + (f" of {package.source_version}" if package is not None else "")
            rows.append(ContentRow(package_text(package_id, live), dp, status.state.name.replace("_", " ").lower(),
                                   version, ok))
    return rows


def _ts_page(page: ObjectPage, snapshot: Snapshot, manifest: Any, changed: set[str]) -> None:
    live = snapshot.live
    record_live = live.task_sequences.get(page.row.live_id) if live is not None and page.row.live_id else None
    desired_terms: dict[str, Any] | None = None
    if manifest is not None and live is not None:
        try:
            desired_terms = ts_property_terms(ts_record(manifest, Resolver(live)), live)
        except (Unresolved, ReconcilerError) as exc:
            page.properties_note = f"the manifest as written (a reference does not resolve on the site: {exc})"
    if desired_terms is None and manifest is not None:
        spec = manifest.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        spec.pop("steps", None)
        desired_terms = _flat(spec)
    live_terms = ts_property_terms(record_live, live) if record_live is not None and live is not None else None
    page.properties = _properties(desired_terms or {}, live_terms, changed)
    step_changes = tuple(c for a in snapshot.actions_of(page.row.key) for c in a.step_changes)
    if manifest is not None:
        steps = manifest.spec.model_dump(by_alias=True, exclude_none=True, mode="json").get("steps") or []
        page.steps = step_nodes(steps, live, marks=_marks(step_changes))
    page.removed_steps = [Line(text, line_mark(text)) for c in step_changes if c.op is StepOp.REMOVED
                          for text in _step_head(c)]
    if record_live is not None and live is not None:
        page.live_steps = step_nodes(present_references(ts_canonical(record_live).get("steps") or [], live), live,
                                     present=True)
        page.content = _content_rows(sorted(set(record_live.references)), live)
        page.deployments = _deployments_of(snapshot, page.row.name, record_live.id)
    else:
        page.deployments = _deployments_of(snapshot, page.row.name, None)


def _step_head(change: StepChange) -> list[str]:
    what = "group" if change.is_group else f"step ({change.step_type})" if change.step_type else "step"
    return [f"- {what} {change.display_path}: removed (was {change.position})"]


def _deployments_of(snapshot: Snapshot, ts_name: str, ts_id: str | None) -> list[DeploymentLink]:
    out = []
    managed_ids = set()
    for obj in snapshot.desired.of_kind("TaskSequenceDeployment") if snapshot.desired is not None else ():
        if obj.facts.task_sequence != ts_name:
            continue
        row = snapshot.by_key.get(obj.key)
        if row is None:
            continue
        managed_ids.add(row.live_id)
        out.append(DeploymentLink(obj.kind, obj.name, row.console, row.live_id, row.status, True))
    live = snapshot.live
    if ts_id and live is not None:
        for dep_id, dep in sorted(live.deployments.items()):
            if dep.package_id == ts_id and dep_id not in managed_ids:
                text = f"to {collection_text(dep.collection_id, live)}"
                out.append(DeploymentLink("TaskSequenceDeployment", "", text, dep_id, "not managed", False))
    return out


def _deployment_page(page: ObjectPage, snapshot: Snapshot, manifest: Any, changed: set[str]) -> None:
    live = snapshot.live
    record_live = live.deployments.get(page.row.live_id) if live is not None and page.row.live_id else None
    desired_terms: dict[str, Any] | None = None
    if manifest is not None and live is not None:
        spec = manifest.spec
        ts_obj = snapshot.object(f"TaskSequence/{spec.task_sequence}")
        try:
            collection = Resolver(live).collection(spec.collection, ("spec", "collection"))
            ts_id = _ts_id(snapshot, spec.task_sequence) or ""
            record = deployment_record(manifest, ts_id, ts_obj.facts.console_name or "" if ts_obj else "",
                                       collection, ts_obj.facts.deploys_os if ts_obj else False)
            desired_terms = deployment_terms(record, live)
        except (Unresolved, ReconcilerError) as exc:
            page.properties_note = f"the manifest as written (a reference does not resolve on the site: {exc})"
    if desired_terms is None and manifest is not None:
        desired_terms = _flat(manifest.spec.model_dump(by_alias=True, exclude_none=True, mode="json"))
    live_terms = deployment_terms(record_live, live) if record_live is not None and live is not None else None
    page.properties = _properties(desired_terms or {}, live_terms, changed)


def _live_variables(variables: tuple[LiveVariable, ...]) -> dict[str, Any]:
    return {v.name: SENSITIVE if v.masked or v.value is None else v.value for v in variables}


def _variables_page(page: ObjectPage, snapshot: Snapshot, manifest: Any, changed: set[str]) -> None:
    live = snapshot.live
    desired: dict[str, Any] = {}
    if manifest is not None:
        spec = manifest.spec
        if page.row.kind == "CollectionVariables":
            desired["priority"] = spec.priority
        for variable in spec.variables:
            secret = variable.value_from is not None or variable.hidden
            desired[f"variables.{variable.name}"] = SENSITIVE if secret else variable.value
    found: dict[str, Any] | None = None
    if live is not None and page.row.live_id:
        if page.row.kind == "CollectionVariables":
            settings = live.collection_settings.get(page.row.live_id)
            if settings is not None:
                found = {"priority": settings.precedence,
                         **{f"variables.{k}": v for k, v in _live_variables(settings.variables).items()}}
        elif page.row.live_id.isdigit():
            machine = live.machine_settings.get(int(page.row.live_id))
            if machine is not None:
                found = {f"variables.{k}": v for k, v in _live_variables(machine.variables).items()}
    page.properties = _properties(desired, found, changed)


def _content_page(page: ObjectPage, snapshot: Snapshot, manifest: Any, changed: set[str]) -> None:
    live = snapshot.live
    if manifest is not None:
        page.properties = _properties(_flat(manifest.spec.model_dump(by_alias=True, exclude_none=True, mode="json")),
                                      None, changed)
        page.properties = [Property(p.path, p.desired, "", p.differs) for p in page.properties]
        ts_id = _ts_id(snapshot, manifest.spec.task_sequence)
        record = live.task_sequences.get(ts_id) if live is not None and ts_id else None
        if record is not None and live is not None:
            page.content = _content_rows(sorted(set(record.references)), live)


def object_page(snapshot: Snapshot, key: str) -> ObjectPage | None:
    """The page of ``Kind/name``, or None when the snapshot knows no such object."""
    row = snapshot.by_key.get(key)
    if row is None:
        return None
    obj = snapshot.object(key)
    manifest = obj.manifest if obj is not None else None
    actions = snapshot.actions_of(key)
    changed = {c.path for a in actions for c in a.changes}
    page = ObjectPage(row=row, actions=[action_view(a) for a in actions], blocked=snapshot.blocked_of(key),
                      warnings=[w for w in (snapshot.plan.warnings if snapshot.plan else []) if str(w.ref) == key],
                      history=snapshot.history.by_object.get(key, ()), history_window=snapshot.history.window)
    fill = {"TaskSequence": _ts_page, "TaskSequenceDeployment": _deployment_page,
            "CollectionVariables": _variables_page, "ComputerVariables": _variables_page,
            "ContentDistribution": _content_page}.get(row.kind)
    if fill is not None:
        fill(page, snapshot, manifest, changed)
    return page
