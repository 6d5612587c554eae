"""Rules about one object, and the facts about it that set rules and plans need.

They run once, when a document is validated, so their results can be cached with the parsed file
(by Git blob ID): an unchanged task sequence is never walked again, step by step, to find out
whether it deploys an operating system.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.models import GenericStep, Group, Manifest, TaskSequence, iter_steps
from reconciler.models.deployment import MEDIA_AND_PXE, AvailableTo, ContentAccess, Purpose, TaskSequenceDeployment
from reconciler.models.distribution import ContentDistribution
from reconciler.models.steptypes import STEP_TYPES
from reconciler.models.tasksequence import OS_DEPLOYMENT_TYPES
from reconciler.site.records import TaskSequenceRecord


@dataclass(frozen=True, slots=True)
class ObjectProblem:
    path: tuple[str | int, ...]
    message: str
    rule: str
    severity: str = "error"


@dataclass(frozen=True, slots=True)
class ObjectFacts:
    console_name: str | None = None
    deploys_os: bool = False
    high_impact: bool = False
    #: step types known only generically: (type, number of steps, path of the first)
    generic_steps: tuple[tuple[str, int, tuple[int, ...]], ...] = ()
    #: a deployment's task sequence (metadata.name)
    task_sequence: str | None = None
    #: a deployment's problems that hold only when its task sequence deploys an operating system
    os_problems: tuple[ObjectProblem, ...] = ()


def step_path(path: tuple[int, ...]) -> tuple[str | int, ...]:
    out: list[str | int] = ["spec", "steps"]
    for i, index in enumerate(path):
        if i:
            out.append("steps")
        out.append(index)
    return tuple(out)


def deploys_os(ts: TaskSequence) -> bool:
    """An OS deployment: by its type, or because a step applies an OS image or partitions a disk."""
    if ts.spec.type in OS_DEPLOYMENT_TYPES:
        return True
    for _, node in iter_steps(ts.spec.steps):
        known = getattr(node, "step_type", None)
        if known is not None and known.deploys_os:
            return True
    return False


#: XML step types that apply an OS image or partition a disk, for sequences known only from the site.
_OS_XML_TYPES = tuple(f'type="{t.xml_type}"' for t in STEP_TYPES if t.deploys_os)


def live_deploys_os(record: TaskSequenceRecord) -> bool:
    """``deploys_os`` of a sequence read from the site (a child sequence no manifest describes)."""
    if record.ts_type in {t.value for t in OS_DEPLOYMENT_TYPES}:
        return True
    return any(marker in record.sequence for marker in _OS_XML_TYPES)


def _deployment(dep: TaskSequenceDeployment) -> tuple[ObjectFacts, list[ObjectProblem]]:
    spec = dep.spec
    ts = spec.task_sequence
    os_problems = []
    if spec.allow_metered_download_after_deadline:
        os_problems.append(ObjectProblem(
            ("spec", "allowMeteredDownloadAfterDeadline"),
            f"TaskSequence '{ts}' deploys an operating system; ConfigMgr does not offer downloading on metered "
            "networks after the deadline for OS deployments; set it to false", "metered-os"))
    if spec.user_experience.allow_on_internet_clients:
        os_problems.append(ObjectProblem(
            ("spec", "userExperience", "allowOnInternetClients"),
            f"TaskSequence '{ts}' deploys an operating system; OS deployments cannot run on internet-based "
            "clients; set it to false", "internet-os"))
    problems = []
    if spec.send_wake_up_packets and spec.purpose is not Purpose.REQUIRED:
        problems.append(ObjectProblem(
            ("spec", "sendWakeUpPackets"), "sendWakeUpPackets is only offered for Required deployments; set "
            "purpose: Required or sendWakeUpPackets: false", "wake-up-needs-required"))
    if spec.content.access is ContentAccess.DOWNLOAD_ALL_BEFORE_START and spec.available_to in MEDIA_AND_PXE:
        problems.append(ObjectProblem(
            ("spec", "content", "access"), "DownloadAllBeforeStart is not offered when the deployment is available "
            f"to media and PXE ({spec.available_to.value}); use DownloadWhenNeeded or availableTo: Clients",
            "download-all-media-pxe"))
    if spec.available_to in MEDIA_AND_PXE and spec.schedule.assignments:
        only = spec.available_to is not AvailableTo.CLIENTS_MEDIA_AND_PXE
        message = ("assignment schedules are ignored by media and PXE boots"
                   + ("; this deployment is only for media and PXE, so they never apply" if only
                      else "; they apply to clients only"))
        problems.append(ObjectProblem(("spec", "schedule", "assignments"), message, "schedule-media-pxe",
                                      "warning" if only else "info"))
    return ObjectFacts(task_sequence=ts, os_problems=tuple(os_problems)), problems


def examine(manifest: Manifest) -> tuple[ObjectFacts, list[ObjectProblem]]:
    if isinstance(manifest, TaskSequenceDeployment):
        return _deployment(manifest)
    if isinstance(manifest, ContentDistribution):
        return ObjectFacts(task_sequence=manifest.spec.task_sequence), []
    if not isinstance(manifest, TaskSequence):
        return ObjectFacts(), []
    problems: list[ObjectProblem] = []
    generic: dict[str, list[tuple[int, ...]]] = {}
    os_step = False
    for path, node in iter_steps(manifest.spec.steps):
        known = getattr(node, "step_type", None)
        if known is not None and known.deploys_os:
            os_step = True
        step_type = getattr(node, "type", None)
        if step_type == "SetVariable":
            settings = node.settings  # type: ignore[union-attr]
            if settings.do_not_show_value and isinstance(settings.value, str) and settings.value:
                problems.append(ObjectProblem(
                    (*step_path(path), "settings", "value"),
                    "doNotShowValue hides this value, so it is a secret and must not be plaintext in Git; "
                    "use value: {valueFrom: {env: NAME}}", "plaintext-secret"))
        elif step_type == "RunTaskSequence":
            child = node.settings.task_sequence  # type: ignore[union-attr]
            if child and getattr(child, "package", None) == manifest.spec.name:
                problems.append(ObjectProblem((*step_path(path), "settings", "taskSequence"),
                                              "a task sequence cannot run itself as a child sequence", "reference"))
        if isinstance(node, GenericStep) and not isinstance(node, Group):
            if node.type is None and node.action is None:
                problems.append(ObjectProblem(
                    step_path(path), "a step without a type runs its 'action' command line; give 'action' or a type",
                    "step-action"))
            generic.setdefault(node.type or "(no type: MDT command)", []).append(path)
    facts = ObjectFacts(
        console_name=manifest.spec.name,
        deploys_os=manifest.spec.type in OS_DEPLOYMENT_TYPES or os_step,
        high_impact=manifest.spec.high_impact.enabled,
        generic_steps=tuple((t, len(paths), paths[0]) for t, paths in sorted(generic.items())),
    )
    return facts, problems
