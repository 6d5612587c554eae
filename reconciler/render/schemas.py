"""The JSON documents the commands print, besides the plan: their versions and schemas, from one set of models.

Every ``--output json`` document is an object with a ``format_version`` and snake_case keys, as the plan
(:mod:`reconciler.render.document`) is: a tool reading several commands' output meets one style. A
document's major version changes when a key is renamed or removed; additions keep it. ``reconcile crds``
writes each schema to ``crds/<name>.schema.json`` from these models, so a schema cannot drift from what is
printed (tests validate real output against them). Keys that are data, not names (object keys such as
``TaskSequence/win11``, counts by kind, operations by name), are maps in the schema, not properties.

The status, history and audit documents are also extended by their own commands' work: their models allow
further keys, which keep the snake_case style (a test checks every printed key).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model

from reconciler.site.records import DeploymentRecord, TaskSequenceRecord

#: ``format_version`` of each document. 2: renamed keys (camelCase to snake_case), or a bare list made an object.
VALIDATE_FORMAT_VERSION = "2"
SITE_SHOW_FORMAT_VERSION = "2"
VARS_FORMAT_VERSION = "2"
PRESTAGE_FORMAT_VERSION = "2"
HISTORY_FORMAT_VERSION = "2"
STATUS_FORMAT_VERSION = "1"
SITE_CHECK_FORMAT_VERSION = "1"
REVIEW_FORMAT_VERSION = "1"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A document its command extends: further snake_case keys are allowed."""

    model_config = ConfigDict(extra="allow")


# -- validate ------------------------------------------------------------------------------------------------


class ValidateObject(_Doc):
    kind: str
    name: str
    file: str
    line: int | None


class ValidateFinding(_Doc):
    severity: Literal["error", "warning", "info"]
    file: str
    line: int | None
    column: int | None
    object: str | None
    path: str | None
    rule: str | None
    message: str


class ValidateDocument(_Doc):
    """``reconcile validate --output json``. 2: ``version`` became ``format_version``."""

    model_config = ConfigDict(extra="forbid", title="reconcile validate (format_version 2)")
    format_version: Literal["2"]
    valid: bool
    files: int
    documents: int
    objects: list[ValidateObject]
    counts: dict[str, int] = Field(description="Findings by severity.")
    findings: list[ValidateFinding]


# -- site show -----------------------------------------------------------------------------------------------


def _record_model(cls: type, name: str, drop: tuple[str, ...] = ()) -> type[BaseModel]:
    """A model with a live record's fields (the site's own names, already snake_case)."""
    fields: dict[str, Any] = {f.name: (Any, ...) for f in dataclasses.fields(cls) if f.name not in drop}
    return create_model(name, __base__=_Doc, **fields)


TaskSequenceDoc = _record_model(TaskSequenceRecord, "TaskSequenceDoc", drop=("sequence",))
DeploymentDoc = _record_model(DeploymentRecord, "DeploymentDoc")


class CollectionDoc(_Doc):
    id: str
    name: str
    member_count: int
    has_site_systems: bool
    built_in: bool


class DpGroupDoc(_Doc):
    name: str
    members: list[str]
    collections: list[str]


class PackageDoc(_Doc):
    id: str
    name: str
    type: str
    source_version: int
    share_enabled: bool


class ContentDoc(_Doc):
    package: str
    dp: str
    state: str
    installed_version: int


class VariableDoc(_Doc):
    name: str
    value: str | None = Field(description="\"(sensitive)\" for a masked variable: the site never gives it back.")
    masked: bool


class CollectionVariablesDoc(_Doc):
    collection: str
    precedence: int
    variables: list[VariableDoc]


class ComputerVariablesDoc(_Doc):
    resource_id: int
    computer: str
    variables: list[VariableDoc]


class SiteShowDocument(_Doc):
    """``reconcile site show --output json``. 2: every key snake_case (distributionPoints became
    distribution_points, and so on)."""

    model_config = ConfigDict(extra="forbid", title="reconcile site show (format_version 2)")
    format_version: Literal["2"]
    site: str
    collections: list[CollectionDoc]
    distribution_points: list[str]
    distribution_point_groups: list[DpGroupDoc]
    packages: list[PackageDoc]
    content: list[ContentDoc]
    task_sequences: list[TaskSequenceDoc]  # type: ignore[valid-type]
    deployments: list[DeploymentDoc]  # type: ignore[valid-type]
    collection_variables: list[CollectionVariablesDoc]
    computer_variables: list[ComputerVariablesDoc]


# -- vars effective ------------------------------------------------------------------------------------------


class OriginDoc(_Doc):
    scope: str
    target: str | int
    priority: int | None
    value: str | None
    hidden: bool
    manifest: str | None
    file: str | None
    line: int | None


class EffectiveDoc(_Doc):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    value: str | None
    from_: OriginDoc = Field(alias="from", description="Where the winning value comes from.")
    overrides: list[OriginDoc]


class VarsEffectiveDocument(_Doc):
    """``reconcile vars effective --output json``. 2: ``resourceId`` became ``resource_id``."""

    model_config = ConfigDict(extra="forbid", title="reconcile vars effective (format_version 2)")
    format_version: Literal["2"]
    computer: str
    resource_id: int
    variables: list[EffectiveDoc]


# -- site check ----------------------------------------------------------------------------------------------


class ScopeSummaryDoc(_Doc):
    restricted: bool
    file: str | None
    folders: list[str] | None
    collections: list[str] | None
    distribution_points: list[str] | None
    distribution_point_groups: list[str] | None


class SiteReportDoc(_Doc):
    location: str
    kind: str
    ok: bool
    authentication: str | None
    account: str | None
    account_from: str | None
    roles: list[str]
    site: dict[str, Any]
    metadata: dict[str, Any]
    paths: dict[str, str] = Field(description="Operation → REST, WinRM or unavailable.")
    paths_note: str | None
    winrm: str | None
    access: list[dict[str, Any]]
    may_write: str
    write_reason: str
    problems: list[str]


class RemoteCheckDocument(SiteReportDoc):
    """A site URL: the first-contact report."""

    format_version: Literal["1"]
    scope: ScopeSummaryDoc | None = None


class FileCheckDocument(_Doc):
    """An embedded site file (or ``reconcile state check``): its integrity, and for a site the report."""

    format_version: Literal["1"]
    path: str
    ok: bool
    missing: bool
    problems: list[str]
    schema_version: int | None
    known_version: int | None
    counts: dict[str, int]
    report: SiteReportDoc | None = None
    scope: ScopeSummaryDoc | None = None


class SiteCheckDocument(RootModel[RemoteCheckDocument | FileCheckDocument]):
    """``reconcile site check --output json`` (and ``reconcile state check --output json``)."""

    model_config = ConfigDict(title="reconcile site check (format_version 1)")


# -- status, history, audit ----------------------------------------------------------------------------------


class StatusDocument(_Open):
    """``reconcile status --output json``."""

    model_config = ConfigDict(extra="allow", title="reconcile status (format_version 1)")
    format_version: Literal["1"]
    objects: dict[str, str] = Field(description="Kind/name → synced, out of sync, drifted, failed or blocked.")
    tick: dict[str, Any] | None
    lease: dict[str, Any] | None


class HistoryEntry(_Open):
    time: str
    plan_id: str | None
    ref: str | None
    sha: str | None
    outcome: str | None


class HistoryDocument(_Doc):
    """``reconcile history --output json``. 2: the applies, newest first, under ``applies`` (1 was a bare list)."""

    model_config = ConfigDict(extra="forbid", title="reconcile history (format_version 2)")
    format_version: Literal["2"]
    applies: list[HistoryEntry]


class AuditDocument(_Doc):
    """``reconcile audit --output json``."""

    model_config = ConfigDict(extra="forbid", title="reconcile audit (format_version 1)")
    format_version: Literal["1"]
    events: list[dict[str, Any]]


# -- prestage and the pull request plan ----------------------------------------------------------------------


class PrestageDocument(_Doc):
    """``reconcile prestage --output json``. 2: every key snake_case."""

    model_config = ConfigDict(extra="forbid", title="reconcile prestage (format_version 2)")
    format_version: Literal["2"]
    task_sequence: dict[str, Any]
    child_sequences: list[dict[str, Any]]
    source_distribution_point: str | None
    content: list[dict[str, Any]]
    files: list[str]
    written_on: str | None
    listing: bool
    note: str | None
    fetch: list[str] | None


class ReviewDocument(_Doc):
    """``reconcile plan --base REF --head REF --output json``: the manifest changes and the plan of merging."""

    model_config = ConfigDict(extra="forbid", title="reconcile pull request plan (format_version 1)")
    format_version: Literal["1"]
    base: dict[str, Any]
    head: dict[str, Any]
    manifest_changes: list[dict[str, Any]]
    plan: dict[str, Any] = Field(description="The plan document (crds/plan.schema.json).")
    untouched: dict[str, Any]


#: File name under crds/ → the model of the document.
DOCUMENTS: dict[str, type[BaseModel]] = {
    "validate.schema.json": ValidateDocument,
    "status.schema.json": StatusDocument,
    "history.schema.json": HistoryDocument,
    "audit.schema.json": AuditDocument,
    "site-show.schema.json": SiteShowDocument,
    "site-check.schema.json": SiteCheckDocument,
    "vars-effective.schema.json": VarsEffectiveDocument,
    "prestage.schema.json": PrestageDocument,
    "review.schema.json": ReviewDocument,
}


def document_schema(name: str) -> dict[str, Any]:
    model = DOCUMENTS[name]
    schema = model.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://configmgr.gitops.io/schemas/{name}",
            "description": (model.__doc__ or "").strip().splitlines()[0] + " Additive changes keep format_version; "
                           "a renamed or removed key changes it.", **schema}
