"""The secrets a plan writes, read before its first write: a missing or bad one refuses the whole apply.

Secret values exist only here, between preflight and the write that sends them to the site: a plan
holds references, the journal and the state store hold keyed hashes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.apply.errors import ApplyRefused
from reconciler.errors import Source
from reconciler.plan.actions import ObjectRef, Plan, TaskSequenceWrite, VariablesWrite
from reconciler.secrets import HashKeyError, SecretReader, SecretUnavailable, describe, secret_file
from reconciler.source.desired import DesiredState, LoadedObject
from reconciler.source.document import format_path
from reconciler.tsxml.sequence import secret_marker_sites, secret_references

log = logging.getLogger("reconciler.apply")

#: A step secret's value by its reference, ``("env" | "file", name)``.
StepSecrets = dict[tuple[str, str], str]
#: A variable's secret value by ``(str(action.ref), variable name)``.
VariableSecrets = dict[tuple[str, str], str]


def resolve_secret(read: SecretReader, source: dict[str, Any], who: str = "this plan") -> str:
    """Read a valueFrom source at apply time; the value goes to the site and nowhere else.

    The reader holds the secrets policy, so a plan made elsewhere (a controller following a commit, an
    old plan) cannot read a file outside the secrets folder or an environment variable off the allow-list.
    """
    try:
        return read(source)
    except SecretUnavailable as exc:
        raise ApplyRefused(f"{exc}; {who} needs it; nothing was applied") from None


def read_secrets(plan: Plan, read: SecretReader) -> tuple[StepSecrets, VariableSecrets]:
    """Every secret of the plan's steps and variables, and the key their hashes are made with.

    Each value is checked as it is read (characters XML cannot hold, ConfigMgr's length limit), so a bad
    one refuses the whole apply instead of failing it halfway.
    """
    check_plan_secrets(plan, read)  # every missing one at once, not the first of them
    step_secrets: StepSecrets = {}
    secret_values: VariableSecrets = {}
    for action in plan.actions:
        at = f" at {action.source}" if action.source else ""
        if isinstance(action.write, TaskSequenceWrite):
            record = action.write.record
            sites = secret_marker_sites(record.sequence)
            for kind, name in secret_references(record.sequence):
                log.debug("%s: reading the secret from %s %s", action.ref, kind, name)
                source = {"env": name} if kind == "env" else {"file": name}
                needed_by = f"{action.ref} ({sites.get(f'{kind}:{name}', 'a step')}){at}"
                step_secrets[(kind, name)] = resolve_secret(read, source, needed_by)
        if not isinstance(action.write, VariablesWrite):
            continue
        for var in action.write.variables:
            if var.value_from:
                needed_by = f"{action.ref} (variable {var.name}){at}"
                secret_values[(str(action.ref), var.name)] = resolve_secret(read, var.value_from, needed_by)
    if step_secrets or secret_values:
        try:
            read.hash_key  # noqa: B018 - made or read now, not after the first write
        except HashKeyError as exc:
            raise ApplyRefused(f"{exc}; nothing was applied") from None
    return step_secrets, secret_values


# -- preflight: every secret a plan needs, each missing one named at once ------------------------------------


@dataclass(frozen=True, slots=True)
class SecretUse:
    """One place a manifest names a secret: the object, the field (``…valueFrom.env``) and its file:line."""

    ref: str  # env:NAME | file:PATH
    source_spec: tuple[tuple[str, str], ...]  # the valueFrom mapping, as read
    needed_by: str  # Kind/name (step 'Join', DomainPassword) / Kind/name (variable NAME)
    field: str = ""
    at: Source | None = None

    @property
    def source(self) -> dict[str, str]:
        return dict(self.source_spec)


@dataclass(frozen=True, slots=True)
class MissingSecret:
    """A secret that cannot be read, where a manifest names it, and what would make it readable."""

    use: SecretUse
    problem: str
    expects: str

    def line(self) -> str:
        where = f"{self.use.at} " if self.use.at is not None else ""
        field = f"{self.use.field}: " if self.use.field else ""
        hint = f"; {self.expects}" if self.expects else ""
        return f"{where}{field}{self.problem}, needed by {self.use.needed_by}{hint}"

    def to_json(self) -> dict[str, Any]:
        at = self.use.at
        return {"ref": self.use.ref, "needed_by": self.use.needed_by, "field": self.use.field,
                "file": at.file if at else None, "line": at.line if at else None, "problem": self.problem,
                "expects": self.expects}


class SecretsMissing(ApplyRefused):
    """Secrets the plan needs cannot be read: every one is listed, and nothing was read further or written."""

    def __init__(self, missing: list[MissingSecret], what: str = "the plan writes",
                 outcome: str = "nothing was applied") -> None:
        self.missing = missing
        refs = len({m.use.ref for m in missing if m.use.ref})
        head = f"{refs} secret(s) {what} cannot be read" if refs else "the key of the secret hashes cannot be read"
        lines = "\n".join(f"  {m.line()}" for m in missing)
        super().__init__(f"{head}; {outcome}:\n{lines}")


def _value_from(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every ``valueFrom`` mapping in a manifest's JSON form, with its path (the YAML keys)."""
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


def _ref(source: dict[str, Any]) -> tuple[str, str]:
    return ("env", str(source["env"])) if source.get("env") else ("file", str(source.get("file")))


def _places(desired: DesiredState | None, refs: Iterable[ObjectRef]) -> dict[tuple[str, str], list[tuple[LoadedObject,
                                                                                                       tuple]]]:
    """Where the manifests of these objects name each source: (kind, name) → [(object, field path)]."""
    found: dict[tuple[str, str], list[tuple[LoadedObject, tuple]]] = {}
    if desired is None:
        return found
    wanted = {(r.kind, r.name) for r in refs}
    for obj in desired.objects:
        if (obj.kind, obj.name) not in wanted or b'"valueFrom"' not in obj.payload:
            continue
        for path, source in _value_from(json.loads(obj.payload), ()):
            kind, _ = _ref(source)
            found.setdefault(_ref(source), []).append((obj, (*path, kind)))
    return found


def _uses(ref: tuple[str, str], needed_by: str, places: list[tuple[LoadedObject, tuple]],
          desired: DesiredState | None, fallback: Source | None) -> list[SecretUse]:
    spec = ((ref[0], ref[1]),)
    text = describe({ref[0]: ref[1]})
    if not places or desired is None:
        return [SecretUse(text, spec, needed_by, at=fallback)]
    return [SecretUse(text, spec, needed_by, format_path(path), desired.locate(obj, path)) for obj, path in places]


def plan_secret_uses(plan: Plan, desired: DesiredState | None = None) -> list[SecretUse]:
    """Every secret the plan will write, at each field of the manifests that names it (in plan order)."""
    uses: list[SecretUse] = []
    for action in plan.actions:
        write = action.write
        refs = [action.ref]
        if isinstance(write, VariablesWrite):
            refs += [ObjectRef(action.ref.kind, name) for name in write.also]
        places = _places(desired, refs)
        if isinstance(write, TaskSequenceWrite):
            sites = secret_marker_sites(write.record.sequence)
            for kind, name in secret_references(write.record.sequence):
                needed_by = f"{action.ref} ({sites.get(f'{kind}:{name}', 'a step')})"
                uses += _uses((kind, name), needed_by, places.get((kind, name), []), desired, action.source)
        elif isinstance(write, VariablesWrite):
            for var in write.variables:
                if var.value_from:
                    ref = _ref(var.value_from)
                    here = [(o, p) for o, p in places.get(ref, [])
                            if var.name in _variable_at(o, p)]
                    uses += _uses(ref, f"{action.ref} (variable {var.name})", here or places.get(ref, []), desired,
                                  action.source)
    return uses


def _variable_at(obj: LoadedObject, path: tuple) -> str:
    """The name of the variable whose valueFrom sits at ``path`` (``spec.variables[i].valueFrom.env``)."""
    node: Any = json.loads(obj.payload)
    for part in path[:-2]:
        node = node[part]
    return str(node.get("name", "")) if isinstance(node, dict) else ""


def desired_secret_uses(desired: DesiredState, objects: Iterable[tuple[str, str]] | None = None) -> list[SecretUse]:
    """Every secret the manifests of ``objects`` (all when None) name: what ``--refresh-secrets`` reads."""
    chosen = None if objects is None else set(objects)
    uses: list[SecretUse] = []
    for obj in desired.objects:
        if (chosen is not None and (obj.kind, obj.name) not in chosen) or b'"valueFrom"' not in obj.payload:
            continue
        for path, source in _value_from(json.loads(obj.payload), ()):
            ref = _ref(source)
            uses += _uses(ref, obj.key, [(obj, (*path, ref[0]))], desired, obj.source)
    return uses


def _problem(use: SecretUse, exc: SecretUnavailable, read: SecretReader) -> tuple[str, str]:
    """What is wrong, in the reader's words (the reference is already on the line), and what would fix it."""
    kind, _, name = use.ref.partition(":")
    if type(exc) is not SecretUnavailable:  # refused by the policy, or a value ConfigMgr cannot store: said in full
        return str(exc), ""
    if kind == "env":
        return f"environment variable {name} is not set", ""
    try:
        where = secret_file(name, read.policy)
    except SecretUnavailable:
        return str(exc), ""
    return str(exc), f"expected at {where} (one line of text: one final line break is dropped)"


def missing_secrets(uses: Iterable[SecretUse], read: SecretReader) -> list[MissingSecret]:
    """Every use whose secret cannot be read (unset, missing, refused by the policy, unusable), and the hash key.

    Each source is read once (the reader keeps what it read for this run): a value is checked, never kept here.
    """
    missing: list[MissingSecret] = []
    problems: dict[str, SecretUnavailable | None] = {}
    listed = False
    for use in uses:
        listed = True
        if use.ref not in problems:
            try:
                read(use.source)
                problems[use.ref] = None
            except SecretUnavailable as exc:
                problems[use.ref] = exc
        problem = problems[use.ref]
        if problem is not None:
            missing.append(MissingSecret(use, *_problem(use, problem, read)))
    if listed and not missing:
        try:
            read.hash_key  # noqa: B018 - made or read now, not after the first write
        except HashKeyError as exc:
            none = SecretUse("", (), "every secret written (its keyed hash is kept in the state store)")
            missing.append(MissingSecret(none, str(exc), "set RECONCILE_SECRET_HASH_KEY or make the secrets folder "
                                                         "writable"))
    return missing


def check_plan_secrets(plan: Plan, read: SecretReader, desired: DesiredState | None = None) -> None:
    """Refuse the plan, naming every secret it writes that cannot be read (file:line, field, what it expects)."""
    missing = missing_secrets(plan_secret_uses(plan, desired), read)
    if missing:
        raise SecretsMissing(missing)
