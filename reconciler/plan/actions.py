"""A plan is data: typed actions with reasons and field-level changes, and blocked items.

Renderers and the applier only read it. Secrecy is a property of a value (``FieldChange.sensitive``),
so every renderer masks the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.diff.changes import FieldChange
from reconciler.errors import Source

PLAN_FORMAT_VERSION = "1.1"


class Verb(StrEnum):
    CREATE_TASK_SEQUENCE = "CreateTaskSequence"
    UPDATE_TASK_SEQUENCE = "UpdateTaskSequence"
    ENABLE_TASK_SEQUENCE = "EnableTaskSequence"
    DISABLE_TASK_SEQUENCE = "DisableTaskSequence"
    MOVE_TASK_SEQUENCE = "MoveTaskSequence"
    DELETE_TASK_SEQUENCE = "DeleteTaskSequence"
    DISTRIBUTE_CONTENT = "DistributeContent"
    REDISTRIBUTE_CONTENT = "RedistributeContent"
    REMOVE_CONTENT = "RemoveContent"
    CREATE_DEPLOYMENT = "CreateDeployment"
    UPDATE_DEPLOYMENT = "UpdateDeployment"
    REPLACE_DEPLOYMENT = "ReplaceDeployment"
    DELETE_DEPLOYMENT = "DeleteDeployment"
    SET_VARIABLES = "SetVariables"
    REMOVE_VARIABLES = "RemoveVariables"
    ADOPT = "Adopt"


class Reason(StrEnum):
    NEW = "new"
    CHANGED = "changed"  # Git moved
    DRIFT = "drift"  # the live object moved away from what was applied
    CONTENT = "content"  # a DP lacks, failed, or holds an older version of content
    ORPHAN = "orphan"  # owned, no manifest
    ADOPT = "adopt"  # unowned live object taken over with --adopt
    SECRET = "secret"  # only a secret changed: its valueFrom, or with --refresh-secrets its value


#: Symbols of the text plan, as in terraform.
SYMBOLS = {
    Verb.CREATE_TASK_SEQUENCE: "+", Verb.CREATE_DEPLOYMENT: "+", Verb.DISTRIBUTE_CONTENT: "+",
    Verb.SET_VARIABLES: "~", Verb.UPDATE_TASK_SEQUENCE: "~", Verb.UPDATE_DEPLOYMENT: "~",
    Verb.ENABLE_TASK_SEQUENCE: "~", Verb.DISABLE_TASK_SEQUENCE: "~",
    Verb.MOVE_TASK_SEQUENCE: ">", Verb.REDISTRIBUTE_CONTENT: "⇅", Verb.REPLACE_DEPLOYMENT: "-/+",
    Verb.DELETE_TASK_SEQUENCE: "-", Verb.DELETE_DEPLOYMENT: "-", Verb.REMOVE_CONTENT: "-",
    Verb.REMOVE_VARIABLES: "-", Verb.ADOPT: "=",
}

CREATES = {Verb.CREATE_TASK_SEQUENCE, Verb.CREATE_DEPLOYMENT, Verb.DISTRIBUTE_CONTENT}
DELETES = {Verb.DELETE_TASK_SEQUENCE, Verb.DELETE_DEPLOYMENT, Verb.REMOVE_CONTENT, Verb.REMOVE_VARIABLES}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Action:
    verb: Verb
    ref: ObjectRef
    reason: Reason
    live_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    depends_on: tuple[ObjectRef, ...] = ()
    source: Source | None = None
    #: What apply needs that is not in the manifest: target DPs, previous IDs, variable names, …
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    summary: str = ""
    #: set on deployments the site's verification rules call high risk (a policies.HighRisk)
    risk: Any = None

    @property
    def key(self) -> str:
        return f"{self.verb.value}:{self.ref}" + (f":{self.params.get('package')}" if "package" in self.params else "")

    @property
    def symbol(self) -> str:
        """The plan's mark; variables set where none were is a creation, as the summary counts it."""
        if self.verb is Verb.SET_VARIABLES and self.reason is Reason.NEW:
            return "+"
        return SYMBOLS[self.verb]


@dataclass(frozen=True, slots=True)
class Blocked:
    ref: ObjectRef
    message: str
    source: Source | None = None
    path: str = ""
    rule: str = ""


@dataclass
class Plan:
    plan_id: str
    site_code: str
    actions: list[Action] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    warnings: list[Blocked] = field(default_factory=list)
    orphans: list[ObjectRef] = field(default_factory=list)  # owned objects with no manifest, kept (no --prune)
    adopt: bool = False
    prune: bool = False
    targets: tuple[str, ...] = ()
    #: (package, DP) pairs each ContentDistribution wants, recorded as owned when the plan is applied
    content_pairs: dict[str, list[list[str]]] = field(default_factory=dict)
    #: unfinished intents of earlier, interrupted runs that this plan supersedes (object → that run's plan ID):
    #: the plan has nothing left to do for those objects, so applying it resolves them
    settles: dict[str, str] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def counts(self) -> dict[str, int]:
        create = sum(1 for a in self.actions if a.verb in (Verb.CREATE_TASK_SEQUENCE, Verb.CREATE_DEPLOYMENT)
                     or (a.verb is Verb.SET_VARIABLES and a.reason is Reason.NEW))
        delete = sum(1 for a in self.actions if a.verb in DELETES)
        redistribute = sum(1 for a in self.actions if a.verb is Verb.REDISTRIBUTE_CONTENT)
        distribute = sum(1 for a in self.actions if a.verb is Verb.DISTRIBUTE_CONTENT)
        modify = len(self.actions) - create - delete - redistribute - distribute
        return {"create": create, "modify": modify, "distribute": distribute, "redistribute": redistribute,
                "delete": delete, "blocked": len(self.blocked)}
