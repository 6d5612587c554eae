"""A plan is data: typed, immutable actions with reasons and changes, and blocked items.

An action says everything apply needs: what to write (a typed payload, never a manifest), the live
ID it applies to, and a fingerprint of the live object as it was when the plan was made, so that a
saved plan applied later is refused when what it would touch has moved. Renderers and the applier
only read it. Secrecy is a property of a value (``FieldChange.sensitive``), so every renderer masks the
same way, and a payload holds only references to secrets (``{"env": NAME}``), never their values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from reconciler.diff.changes import FieldChange, StepChange
from reconciler.errors import Source
from reconciler.plan.policies import HighRisk
from reconciler.site.records import DeploymentRecord, TaskSequenceRecord

#: 1.2 added ``step_changes``, ``depends_on`` in dependency order, and a plan ID that is a digest of the plan;
#: 1.3 the scope of reconcile.yaml the plan was checked against.
PLAN_FORMAT_VERSION = "1.3"


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


# -- payloads: what apply writes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """How the object a creation makes is recognised, on the site and after a crash.

    ``match`` is the console name (folded), the deployment's target or the variable set's target;
    ``existing`` the live objects that already matched when the plan was made, which can therefore
    never be this action's own creation; ``unowned`` the unmanaged ones among them, so that one that
    appears only after the plan is reported as a change of the site rather than taken (None: not
    checked, as for a replace, whose old deployment is the one it knew).
    """

    match: str
    existing: tuple[str, ...] = ()
    unowned: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSequence:
    """A child sequence this plan creates: the parent's XML refers to it as ``PENDING:<console name>``
    until apply knows its ID."""

    console_name: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSequenceWrite:
    """A task sequence as the site should hold it; the sequence XML carries secret markers, not values."""

    kind: Literal["task_sequence"] = "task_sequence"
    record: TaskSequenceRecord
    desired_fp: str
    children: tuple[ChildSequence, ...] = ()
    #: a password never shows in the canonical form, so a changed one is written on the plan's word
    secrets_changed: bool = False
    identity: Identity | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Adoption:
    kind: Literal["adoption"] = "adoption"
    desired_fp: str
    #: the metadata.name that owned the live object before (a manifest renamed in Git)
    renamed_from: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentWrite:
    kind: Literal["content"] = "content"
    package_id: str | None
    dps: tuple[str, ...] = ()
    #: a distribution that only narrowed stays managed after its content leaves the DPs it dropped
    keep_ownership: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentWrite:
    kind: Literal["deployment"] = "deployment"
    #: the deployment as the site should hold it; its ``package_id`` is filled from the task sequence's
    #: ownership at apply when the same plan creates that sequence
    record: DeploymentRecord
    desired_fp: str
    task_sequence: str  # metadata.name of the TaskSequence
    #: (package ID, DP, DP, …) per package: --wait-for-content holds the deployment until one DP has it
    wait_for: tuple[tuple[str, ...], ...] = ()
    identity: Identity | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableValue:
    """One variable to write: a plain value, or a reference to a secret read at apply (always masked)."""

    name: str
    value: str | None = None
    value_from: dict[str, str] | None = None
    hidden: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VariablesWrite:
    kind: Literal["variables"] = "variables"
    scope: Literal["collection", "computer"]
    target: str | int  # CollectionID or ResourceID
    priority: int
    variables: tuple[VariableValue, ...]
    desired_fp: str
    #: further manifests contributing to the same computer's variables, owned with this one
    also: tuple[str, ...] = ()
    identity: Identity | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VariablesRemoval:
    kind: Literal["variables_removal"] = "variables_removal"
    scope: Literal["collection", "computer"]
    target: str | int
    #: the collection or computer is gone from the site, and its variables with it: only forget them
    gone: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Deletion:
    kind: Literal["deletion"] = "deletion"
    #: already gone from the site: only forget it
    gone: bool = False


Payload = TaskSequenceWrite | Adoption | ContentWrite | DeploymentWrite | VariablesWrite | VariablesRemoval | Deletion


# -- actions and plans -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    verb: Verb
    ref: ObjectRef
    reason: Reason
    live_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    depends_on: tuple[ObjectRef, ...] = ()
    source: Source | None = None
    write: Payload | None = None
    summary: str = ""
    #: set on deployments the site's verification rules call high risk
    risk: HighRisk | None = None
    #: the step tree's changes, for task sequences: inserted, removed, moved and changed steps by name
    step_changes: tuple[StepChange, ...] = ()
    #: fingerprint of the live object this action was planned against (None: nothing to compare, a creation)
    expected: str | None = None
    #: how it reaches the site: ``REST``, ``WinRM`` or both (empty for a site with one way, the embedded file)
    path: str = ""

    @property
    def key(self) -> str:
        package = self.write.package_id if isinstance(self.write, ContentWrite) else None
        return f"{self.verb.value}:{self.ref}" + (f":{package}" if package else "")

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
    #: the scope of reconcile.yaml the plan was checked against (``plan.scope.scope_summary``), for its header
    scope: dict[str, Any] | None = None

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
