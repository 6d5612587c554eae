"""The JSON plan document: one model builds it and generates its schema, so the two cannot drift.

Tools read this document (``--output json``); its schema (``crds/plan.schema.json``, written by
``reconcile crds``) is generated from the same models. Additive changes keep the major version.
Sensitive values are never in it: a change marked sensitive carries neither its before nor its after.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.diff.changes import FieldChange, StepChange
from reconciler.plan.actions import PLAN_FORMAT_VERSION, Action, Blocked, Plan

FORMAT_VERSIONS = ("1.0", "1.1", "1.2", "1.3")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChangeDoc(_Doc):
    path: str = Field(description="The field, as the manifest names it (dotted, relative to the object or step).")
    before: Any = Field(description="The live value; null when the field is new or the change is sensitive.")
    after: Any = Field(description="The wanted value; null when the field goes away or the change is sensitive.")
    sensitive: bool


class StepChangeDoc(_Doc):
    op: Literal["inserted", "removed", "moved", "changed"]
    path: list[str] = Field(description="Names from the top of the step tree: group names, then the node's name.")
    display_path: str = Field(description="The path joined with a single right-pointing angle quotation mark "
                                          "(U+203A), as the text plan prints it.")
    group: bool
    type: str | None = Field(description="The step type; null for a group.")
    position: str = Field(description="Where the node is (was, for a removed one), in words.")
    previous: str | None = Field(description="For a moved node: where it was, in words.")
    fields: list[ChangeDoc] = Field(description="Changes inside the node, paths relative to it.")


class HighRiskDoc(_Doc):
    reasons: list[str]
    collection: str
    collection_name: str
    member_count: int
    acknowledged: bool
    needs_acknowledgement: bool
    site_systems: bool


class ActionDoc(_Doc):
    verb: str
    symbol: str
    kind: str
    name: str
    live_id: str | None
    reason: Literal["new", "changed", "drift", "content", "orphan", "adopt", "secret"]
    summary: str
    file: str | None
    line: int | None
    depends_on: list[str] = Field(description="Objects whose actions run before this one (1.2: dependency order).")
    high_risk: HighRiskDoc | None
    changes: list[ChangeDoc]
    step_changes: list[StepChangeDoc] = Field(default_factory=list,
                                              description="1.2: a task sequence's step tree changes, by name.")
    path: str = Field(default="", description="1.2: how the action reaches the site (REST, WinRM, REST + WinRM); "
                                              "empty for a site with one way (the embedded file).")


class FindingDoc(_Doc):
    kind: str
    name: str
    message: str
    rule: str | None
    path: str | None
    file: str | None
    line: int | None
    column: int | None


class OptionsDoc(_Doc):
    adopt: bool
    prune: bool
    targets: list[str]


class SummaryDoc(_Doc):
    create: int = Field(ge=0)
    modify: int = Field(ge=0)
    distribute: int = Field(ge=0)
    redistribute: int = Field(ge=0)
    delete: int = Field(ge=0)
    blocked: int = Field(ge=0)


class OrphanDoc(_Doc):
    kind: str
    name: str


class ResultDoc(_Doc):
    verb: str
    kind: str
    name: str
    outcome: Literal["applied", "failed", "skipped"]
    message: str


class ScopeDoc(_Doc):
    restricted: bool = Field(description="false: reconcile.yaml has no scope, and the manifests may touch anything "
                                         "the site's role-based administration allows.")
    file: str | None = Field(description="The reconcile.yaml the scope was read from.")
    folders: list[str] | None = Field(description="Console folders task sequences may live in (and below); null: "
                                                   "any.")
    collections: list[str] | None = Field(description="Collections (name or ID) deployments and collection "
                                                       "variables may target; null: any.")
    distribution_points: list[str] | None = Field(description="DPs content may go to; null: any.")
    distribution_point_groups: list[str] | None = Field(description="DP groups content may go to; null: any.")


class PlanDocument(_Doc):
    """The JSON plan printed by ``reconcile plan --output json`` (and ``--dry-run``)."""

    model_config = ConfigDict(extra="forbid", title="reconcile plan (format_version 1.x)")

    format_version: Literal["1.0", "1.1", "1.2", "1.3"] = Field(
        description="1.1 added the action reason \"secret\"; 1.2 added step_changes, dependency order and a plan "
                    "ID that is a digest of the plan (the same inputs give the same ID); 1.3 added scope.")
    plan_id: str = Field(min_length=1)
    site: str = Field(pattern=r"^[A-Z0-9]{3}$")
    options: OptionsDoc
    summary: SummaryDoc
    actions: list[ActionDoc]
    blocked: list[FindingDoc]
    warnings: list[FindingDoc]
    orphans: list[OrphanDoc]
    scope: ScopeDoc | None = Field(default=None, description="1.3: the scope (reconcile.yaml) the plan was checked "
                                                             "against; restricted false when there is none.")
    result: list[ResultDoc] | None = Field(default=None, description="After an apply: each action's outcome.")


def _value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return json.loads(json.dumps(value, default=str))


def _change(change: FieldChange) -> ChangeDoc:
    return ChangeDoc(path=change.path, before=None if change.sensitive else _value(change.before),
                     after=None if change.sensitive else _value(change.after), sensitive=change.sensitive)


def _step_change(change: StepChange) -> StepChangeDoc:
    return StepChangeDoc(op=change.op.value, path=list(change.path), display_path=change.display_path,
                         group=change.is_group, type=change.step_type, position=change.position,
                         previous=change.previous, fields=[_change(f) for f in change.fields])


def _finding(item: Blocked) -> FindingDoc:
    source = item.source
    return FindingDoc(kind=item.ref.kind, name=item.ref.name, message=item.message, rule=item.rule or None,
                      path=item.path or None, file=source.file if source else None,
                      line=source.line if source else None, column=source.column if source else None)


def _action(action: Action) -> ActionDoc:
    risk = action.risk
    return ActionDoc(
        verb=action.verb.value, symbol=action.symbol, kind=action.ref.kind, name=action.ref.name,
        live_id=action.live_id, reason=action.reason.value, summary=action.summary,
        file=action.source.file if action.source else None, line=action.source.line if action.source else None,
        depends_on=[str(d) for d in action.depends_on],
        high_risk=HighRiskDoc(**risk.to_json()) if risk is not None else None,  # type: ignore[arg-type]
        changes=[_change(c) for c in action.changes], step_changes=[_step_change(s) for s in action.step_changes],
        path=action.path)


def build_document(plan: Plan) -> PlanDocument:
    return PlanDocument(
        format_version=PLAN_FORMAT_VERSION, plan_id=plan.plan_id, site=plan.site_code,
        options=OptionsDoc(adopt=plan.adopt, prune=plan.prune, targets=list(plan.targets)),
        summary=SummaryDoc(**plan.counts()), actions=[_action(a) for a in plan.actions],
        blocked=[_finding(b) for b in plan.blocked], warnings=[_finding(w) for w in plan.warnings],
        orphans=[OrphanDoc(kind=o.kind, name=o.name) for o in plan.orphans],
        scope=ScopeDoc(**plan.scope) if plan.scope is not None else None)


def plan_document(plan: Plan) -> dict[str, Any]:
    """The versioned JSON plan as plain data (schema: crds/plan.schema.json)."""
    document = build_document(plan).model_dump(mode="json")
    document.pop("result")  # present only in the output of an apply
    return document


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of the plan document, generated from the models above."""
    schema = PlanDocument.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://configmgr.gitops.io/schemas/plan-1.schema.json",
            "description": "The JSON plan printed by `reconcile plan --output json`. Additive changes keep the "
                           "major version; anything else bumps it.", **schema}
