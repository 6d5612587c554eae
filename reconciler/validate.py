"""Rules over the whole set of manifests that need no live site.

Per-document rules live in the models (so they carry the field's location); what needs more than
one document, or knowledge of what a task sequence does, lives here. Each finding names the object,
the field, what was found and what to do.
"""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict
from collections.abc import Iterable

from reconciler.errors import Finding, Severity
from reconciler.models import GenericStep, Group, TaskSequence, iter_steps
from reconciler.models.deployment import MEDIA_AND_PXE, AvailableTo, TaskSequenceDeployment
from reconciler.models.distribution import ContentDistribution
from reconciler.models.tasksequence import OS_DEPLOYMENT_TYPES
from reconciler.models.variables import CollectionVariables, ComputerVariables
from reconciler.source.loader import DesiredState, LoadedObject, format_path

#: ConfigMgr refuses more than this many variables on one computer.
MAX_VARIABLES_PER_COMPUTER = 1000


def deploys_os(ts: TaskSequence) -> bool:
    """An OS deployment: by its type, or because a step applies an OS image or partitions a disk."""
    if ts.spec.type in OS_DEPLOYMENT_TYPES:
        return True
    for _, node in iter_steps(ts.spec.steps):
        known = getattr(node, "step_type", None)
        if known is not None and known.deploys_os:
            return True
    return False


class _Findings:
    def __init__(self, state: DesiredState) -> None:
        self.state = state
        self.items: list[Finding] = []

    def add(self, severity: Severity, obj: LoadedObject, path: tuple[str | int, ...], message: str,
            rule: str) -> None:
        self.items.append(Finding(severity, self.state.locate(obj, path), message, format_path(path), rule, obj.key))


def validate(state: DesiredState) -> list[Finding]:
    """Every finding of the state: load-time problems first, then the set rules, in file order."""
    out = _Findings(state)
    _unique_names(out)
    sequences = {o.name: o for o in state.of_kind("TaskSequence")}
    _references(out, sequences)
    _deployment_rules(out, sequences)
    _step_rules(out)
    _variable_rules(out)
    _generic_step_types(out)
    return [*state.findings, *sorted(out.items, key=lambda f: (f.source.file, f.source.line or 0))]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


def _unique_names(out: _Findings) -> None:
    first: dict[str, LoadedObject] = {}
    for obj in out.state.objects:
        if obj.key in first:
            other = first[obj.key]
            out.add(Severity.ERROR, obj, ("metadata", "name"),
                    f"'{obj.name}' is already used by another {obj.kind} at {other.source}; "
                    "metadata.name must be unique per kind", "unique-name")
        else:
            first[obj.key] = obj
    console: dict[str, LoadedObject] = {}
    for obj in out.state.of_kind("TaskSequence"):
        name = obj.manifest.spec.name.casefold()  # type: ignore[union-attr]
        if name in console:
            out.add(Severity.WARNING, obj, ("spec", "name"),
                    f"console name {obj.manifest.spec.name!r} is also used by "  # type: ignore[union-attr]
                    f"{console[name].key}; adopting live objects by name would be ambiguous", "console-name")
        else:
            console[name] = obj


def _references(out: _Findings, sequences: dict[str, LoadedObject]) -> None:
    for obj in out.state.objects:
        manifest = obj.manifest
        if isinstance(manifest, TaskSequenceDeployment | ContentDistribution):
            target = manifest.spec.task_sequence
            if target not in sequences:
                close = difflib.get_close_matches(target, list(sequences), n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else (
                    "; no TaskSequence manifest has that metadata.name")
                out.add(Severity.ERROR, obj, ("spec", "taskSequence"),
                        f"refers to TaskSequence '{target}', which is not defined{hint}", "reference")
        if isinstance(manifest, TaskSequence):
            for path, node in iter_steps(manifest.spec.steps):
                if getattr(node, "type", None) == "RunTaskSequence":
                    child = node.settings.task_sequence  # type: ignore[union-attr]
                    if child and getattr(child, "package", None) == manifest.spec.name:
                        out.add(Severity.ERROR, obj, (*_step_path(path), "settings", "taskSequence"),
                                "a task sequence cannot run itself as a child sequence", "reference")


def _step_path(path: tuple[int, ...]) -> tuple[str | int, ...]:
    out: list[str | int] = ["spec", "steps"]
    for i, index in enumerate(path):
        if i:
            out.append("steps")
        out.append(index)
    return tuple(out)


def _deployment_rules(out: _Findings, sequences: dict[str, LoadedObject]) -> None:
    for obj in out.state.of_kind("TaskSequenceDeployment"):
        spec = obj.manifest.spec  # type: ignore[union-attr]
        ts_obj = sequences.get(spec.task_sequence)
        os_deployment = ts_obj is not None and deploys_os(ts_obj.manifest)  # type: ignore[arg-type]
        if os_deployment and spec.allow_metered_download_after_deadline:
            out.add(Severity.ERROR, obj, ("spec", "allowMeteredDownloadAfterDeadline"),
                    f"TaskSequence '{spec.task_sequence}' deploys an operating system; ConfigMgr does not offer "
                    "downloading on metered networks after the deadline for OS deployments; set it to false",
                    "metered-os")
        if os_deployment and spec.user_experience.allow_on_internet_clients:
            out.add(Severity.ERROR, obj, ("spec", "userExperience", "allowOnInternetClients"),
                    f"TaskSequence '{spec.task_sequence}' deploys an operating system; OS deployments cannot run "
                    "on internet-based clients; set it to false", "internet-os")
        if spec.available_to in MEDIA_AND_PXE and spec.schedule.assignments:
            only = spec.available_to is not AvailableTo.CLIENTS_MEDIA_AND_PXE
            message = ("assignment schedules are ignored by media and PXE boots"
                       + ("; this deployment is only for media and PXE, so they never apply" if only
                          else "; they apply to clients only"))
            out.add(Severity.WARNING if only else Severity.INFO, obj, ("spec", "schedule", "assignments"), message,
                    "schedule-media-pxe")


def _step_rules(out: _Findings) -> None:
    for obj in out.state.of_kind("TaskSequence"):
        for path, node in iter_steps(obj.manifest.spec.steps):  # type: ignore[union-attr]
            if getattr(node, "type", None) == "SetVariable":
                settings = node.settings  # type: ignore[union-attr]
                if settings.do_not_show_value and isinstance(settings.value, str) and settings.value:
                    out.add(Severity.ERROR, obj, (*_step_path(path), "settings", "value"),
                            "doNotShowValue hides this value, so it is a secret and must not be plaintext in Git; "
                            "use value: {valueFrom: {env: NAME}}", "plaintext-secret")
            if isinstance(node, GenericStep) and node.type is None and node.action is None:
                out.add(Severity.ERROR, obj, (*_step_path(path),),
                        "a step without a type runs its 'action' command line; give 'action' or a type",
                        "step-action")


def _variable_rules(out: _Findings) -> None:
    per_computer: dict[str, list[tuple[LoadedObject, int]]] = defaultdict(list)
    per_collection: dict[str, LoadedObject] = {}
    for obj in out.state.objects:
        manifest = obj.manifest
        if not isinstance(manifest, CollectionVariables | ComputerVariables):
            continue
        names: Counter[str] = Counter()
        for i, var in enumerate(manifest.spec.variables):
            folded = var.name.casefold()
            names[folded] += 1
            if names[folded] == 2:
                out.add(Severity.ERROR, obj, ("spec", "variables", i, "name"),
                        f"variable '{var.name}' is defined twice (names are case-insensitive in ConfigMgr)",
                        "duplicate-variable")
        if isinstance(manifest, ComputerVariables):
            for i, _ in enumerate(manifest.spec.variables):
                per_computer[manifest.spec.computer.key()].append((obj, i))
        else:
            key = manifest.spec.collection.key()
            if key in per_collection:
                out.add(Severity.ERROR, obj, ("spec", "collection"),
                        f"collection {manifest.spec.collection} already has variables in "
                        f"{per_collection[key].key}; ConfigMgr keeps one variable set per collection", "collection-set")
            else:
                per_collection[key] = obj
    for entries in per_computer.values():
        seen: dict[str, LoadedObject] = {}
        for obj, i in entries:
            var = obj.manifest.spec.variables[i]  # type: ignore[union-attr]
            other = seen.get(var.name.casefold())
            if other is not None and other is not obj:
                out.add(Severity.ERROR, obj, ("spec", "variables", i, "name"),
                        f"variable '{var.name}' for this computer is also set by {other.key}", "duplicate-variable")
            seen.setdefault(var.name.casefold(), obj)
        if len(seen) > MAX_VARIABLES_PER_COMPUTER:
            obj = entries[-1][0]
            out.add(Severity.ERROR, obj, ("spec", "variables"),
                    f"computer {obj.manifest.spec.computer} gets {len(seen)} variables across "  # type: ignore[union-attr]
                    f"{len({id(o) for o, _ in entries})} manifests; ConfigMgr allows at most "
                    f"{MAX_VARIABLES_PER_COMPUTER}", "variable-limit")


def _generic_step_types(out: _Findings) -> None:
    """Say which step types are only known generically: their properties are kept but not checked."""
    uses: dict[str, list[tuple[LoadedObject, tuple[int, ...]]]] = defaultdict(list)
    for obj in out.state.of_kind("TaskSequence"):
        for path, node in iter_steps(obj.manifest.spec.steps):  # type: ignore[union-attr]
            if isinstance(node, GenericStep) and not isinstance(node, Group):
                uses[node.type or "(no type: MDT command)"].append((obj, path))
    for step_type, where in sorted(uses.items()):
        obj, path = where[0]
        out.add(Severity.INFO, obj, (*_step_path(path), "type"),
                f"step type {step_type} is known only generically ({len(where)} step(s)); its properties are "
                "kept verbatim and not checked", "generic-step")
