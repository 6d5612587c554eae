"""Rules over the whole set of manifests that need no live site.

Per-document rules live in the models (so they carry the field's location); what needs more than
one document, or knowledge of what a task sequence does, lives here. Each finding names the object,
the field, what was found and what to do.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reconciler.config import DEFAULT_SECRETS_FOLDER, Config, SecretsPolicy
from reconciler.errors import Finding, Severity
from reconciler.models.variables import CollectionVariables, ComputerVariables
from reconciler.rules import deploys_os, step_path
from reconciler.secrets import source_problem
from reconciler.source.loader import DesiredState, LoadedObject, format_path

__all__ = ["MAX_VARIABLES_PER_COMPUTER", "deploys_os", "has_errors", "validate"]

#: ConfigMgr refuses more than this many variables on one computer.
MAX_VARIABLES_PER_COMPUTER = 1000


class _Findings:
    def __init__(self, state: DesiredState) -> None:
        self.state = state
        self.items: list[Finding] = []

    def add(self, severity: Severity, obj: LoadedObject, path: tuple[str | int, ...], message: str,
            rule: str) -> None:
        self.items.append(Finding(severity, self.state.locate(obj, path), message, format_path(path), rule, obj.key))


def validate(state: DesiredState, config: Config | None = None) -> list[Finding]:
    """Every finding of the state: load-time problems first, then the set rules, in file order.

    ``config`` holds the secrets policy that ``valueFrom`` sources are checked against; without it, the
    defaults (a ``secrets/`` folder, environment variables starting with OSD_ or RECONCILE_SECRET_), and
    links are not followed because the folder is not known.
    """
    out = _Findings(state)
    _unique_names(out)
    sequences = {o.name: o for o in state.of_kind("TaskSequence")}
    _references(out, sequences)
    _deployment_rules(out, sequences)
    _variable_rules(out)
    _secret_sources(out, config)
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
        name = (obj.facts.console_name or "").casefold()
        if name in console:
            out.add(Severity.WARNING, obj, ("spec", "name"),
                    f"console name {obj.facts.console_name!r} is also used by "
                    f"{console[name].key}; adopting live objects by name would be ambiguous", "console-name")
        else:
            console[name] = obj


def _references(out: _Findings, sequences: dict[str, LoadedObject]) -> None:
    # A sequence with errors of its own is defined all the same: its errors are reported where it is.
    invalid = {f.object for f in out.state.findings if f.severity is Severity.ERROR and f.object}
    for obj in out.state.objects:
        if obj.kind in ("TaskSequenceDeployment", "ContentDistribution"):
            target = obj.facts.task_sequence or ""
            if target not in sequences and f"TaskSequence/{target}" not in invalid:
                close = difflib.get_close_matches(target, list(sequences), n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else (
                    "; no TaskSequence manifest has that metadata.name")
                out.add(Severity.ERROR, obj, ("spec", "taskSequence"),
                        f"refers to TaskSequence '{target}', which is not defined{hint}", "reference")


def _deployment_rules(out: _Findings, sequences: dict[str, LoadedObject]) -> None:
    """Rules that hold only for deployments of task sequences that deploy an operating system."""
    for obj in out.state.of_kind("TaskSequenceDeployment"):
        ts_obj = sequences.get(obj.facts.task_sequence or "")
        if ts_obj is not None and ts_obj.facts.deploys_os:
            for problem in obj.facts.os_problems:
                out.add(Severity.ERROR, obj, problem.path, problem.message, problem.rule)


def _variable_rules(out: _Findings) -> None:
    per_computer: dict[str, list[tuple[LoadedObject, int]]] = defaultdict(list)
    per_collection: dict[str, LoadedObject] = {}
    for obj in out.state.objects:
        if obj.kind not in ("CollectionVariables", "ComputerVariables"):
            continue
        manifest = obj.manifest
        assert isinstance(manifest, CollectionVariables | ComputerVariables)
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


def _value_from(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every ``valueFrom`` source in a manifest's JSON form, with its path (YAML keys)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "valueFrom" and isinstance(value, dict):
                yield (*path, key), value
            elif isinstance(value, dict | list):
                yield from _value_from(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, dict | list):
                yield from _value_from(value, (*path, index))


def _secret_sources(out: _Findings, config: Config | None) -> None:
    """Each ``valueFrom`` names a file inside the secrets folder or an allowed environment variable."""
    # Without settings the folder is unknown: a path is checked by its spelling, links are not followed.
    policy = config.secrets if config is not None else SecretsPolicy(Path(DEFAULT_SECRETS_FOLDER))
    for obj in out.state.objects:
        if b'"valueFrom"' not in obj.payload:
            continue
        for path, source in _value_from(json.loads(obj.payload), ()):
            key = "env" if source.get("env") else "file"
            problem = source_problem(source, policy, look=config is not None)
            if problem is not None:
                out.add(Severity.ERROR, obj, (*path, key), problem, f"secret-{key}")


def _generic_step_types(out: _Findings) -> None:
    """Say which step types are only known generically: their properties are kept but not checked."""
    uses: dict[str, list[tuple[LoadedObject, int, tuple[int, ...]]]] = defaultdict(list)
    for obj in out.state.of_kind("TaskSequence"):
        for step_type, count, first in obj.facts.generic_steps:
            uses[step_type].append((obj, count, first))
    for step_type, where in sorted(uses.items()):
        obj, _, path = where[0]
        total = sum(count for _, count, _ in where)
        out.add(Severity.INFO, obj, (*step_path(path), "type"),
                f"step type {step_type} is known only generically ({total} step(s)); its properties are "
                "kept verbatim and not checked", "generic-step")
