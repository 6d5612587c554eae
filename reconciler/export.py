"""From a live site, or from console export ZIPs, to a manifest repository.

Export writes one readable file per object in folders that mirror console folders, adopts what it
exported (ownership is recorded, so the next plan is empty), and never writes a secret: passwords
and hidden variable values become ``valueFrom`` placeholders listed at the end. Package IDs become
console names wherever the name is unique, so manifests read the same on another site.

A task sequence read from a site, and the same task sequence read back from a ZIP that
:func:`export_zip` wrote, give the same manifest: the same key order, the same placeholder names
(``TS_<METADATA NAME>__<STEP>__<PROPERTY>``), names for package IDs. A ZIP the console wrote has no
folder, and its type is inferred from the steps (see :mod:`reconciler.archive`).
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler.archive import ConsoleExport, ExportedPackage, entry_where, read_console_export, write_console_export
from reconciler.convert import InvalidSequence, infer_type, manifest_problems, slug, xml_to_manifest
from reconciler.diff.advertisement import deployment_settings
from reconciler.diff.normalize import ts_references
from reconciler.errors import CodecError, ReconcilerError, shorten
from reconciler.models import API_VERSION, KINDS
from reconciler.models.deployment import TaskSequenceDeployment
from reconciler.models.steptypes import BY_NAME
from reconciler.models.tasksequence import TaskSequenceType
from reconciler.rules import examine, live_deploys_os
from reconciler.site.records import ContentState, DeploymentRecord, LiveState, PackageType, TaskSequenceRecord
from reconciler.source.loader import load
from reconciler.source.yamlfile import YamlProblem, decode, dump, load_documents
from reconciler.state import StateStore
from reconciler.tsxml.sequence import SecretPlaceholder, iter_step_nodes, read_sequence, reference_ids, write_sequence

KIND_FOLDERS = {
    "TaskSequence": "task-sequences",
    "TaskSequenceDeployment": "deployments",
    "ContentDistribution": "content",
    "CollectionVariables": "variables/collections",
    "ComputerVariables": "variables/computers",
}

#: Device names Windows reserves in every folder, in any case and with any extension ("CON", "nul.txt",
#: "Com1.yaml"): Git for Windows cannot check out a file or folder so named. COM0/LPT0 and the
#: superscript digits are on Microsoft's list ("Naming Files, Paths, and Namespaces") too.
_WINDOWS_DEVICE = re.compile(r"(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])", re.IGNORECASE)

#: The order of a TaskSequence spec's keys in every manifest written here, so that a task sequence
#: exported from a site and the same one imported from a ZIP are the same text.
_SPEC_ORDER = ("name", "description", "type", "folder", "enabled", "bootImage", "highImpact", "softwareCenter",
               "category", "maxRunTimeMinutes")

#: ConfigMgr's PackageType numbers as ReferencesInfo.xml holds them (the corpus shows 0, 258 and 259).
_PACKAGE_TYPE_NUMBERS = {PackageType.PACKAGE: 0, PackageType.DRIVER_PACKAGE: 3, PackageType.TASK_SEQUENCE: 4,
                         PackageType.OPERATING_SYSTEM_IMAGE: 257, PackageType.BOOT_IMAGE: 258,
                         PackageType.OPERATING_SYSTEM_UPGRADE: 259}

#: The console's Export Task Sequence wizard empties every password. An empty secret is only a
#: left-out value when the step uses it; then import asks for it with a placeholder. An empty product
#: key is a common, working choice (volume licensing needs none), so it stays empty.
_SECRET_IN_USE: dict[tuple[str, str], Callable[[dict[str, Any]], bool]] = {
    ("RunCommandLine", "userPassword"): lambda s: s.get("runAsUser") is True,
    ("RunPowerShellScript", "userPassword"): lambda s: s.get("runAsUser") is True,
    ("SetVariable", "value"): lambda s: s.get("doNotShowValue") is True,
    ("ApplyWindowsSettings", "adminPassword"): lambda s: s.get("randomAdminPassword") is False,
    ("ApplyNetworkSettings", "password"): lambda s: bool(s.get("account")),
    ("JoinDomainOrWorkgroup", "password"): lambda s: bool(s.get("account")),
    ("ConnectToNetworkFolder", "password"): lambda s: bool(s.get("account")),
    ("CaptureOperatingSystemImage", "password"): lambda s: bool(s.get("account")),
    ("RestoreUserState", "localAccountPassword"): lambda s: s.get("restoreLocalAccounts") is True,
    ("EnableBitLocker", "pin"): lambda s: s.get("mode") == "TPMAndPIN",
}


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (object, env variable to provide)
    adopted: int = 0
    skipped: list[str] = field(default_factory=list)  # already managed from manifests: not exported again
    #: One line each: what of a live object its manifest leaves out (the next plan shows it as a change).
    warnings: list[str] = field(default_factory=list)


def _names(items: list[tuple[str, str]]) -> dict[str, str]:
    """Stable, file-system-safe metadata.names: slug of the console name, -2, -3… by live ID on collision."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for live_id, console in sorted(items):
        base = slug(console)
        name, n = base, 2
        while name in used:
            name = f"{base[:60]}-{n}"
            n += 1
        used.add(name)
        out[live_id] = name
    return out


def _safe_folder(folder: str | None) -> Path:
    if not folder:
        return Path()
    parts = [re.sub(r"[^A-Za-z0-9 ._-]+", "_", p).strip(" .") or "_" for p in re.split(r"[\\/]+", folder) if p]
    return Path(*parts) if parts else Path()


def _portable(part: str) -> str:
    """A file or folder name every system can check out: a Windows device name gets '_' (CON -> CON_).

    Windows reads the base name up to the first dot, trailing spaces dropped, so "nul .txt" is NUL too.
    """
    base, dot, rest = part.partition(".")
    stem = base.rstrip(" ")
    if _WINDOWS_DEVICE.fullmatch(stem):
        return f"{stem}_{base[len(stem):]}{dot}{rest}"
    return part


def _unique(base: str, used: set[str]) -> str:
    name, n = base, 2
    while name in used:
        name = f"{base}_{n}"
        n += 1
    used.add(name)
    return name


def _secret_env(ts_name: str, step: str, prop: str, used: set[str]) -> str:
    """``OSD_TS_<METADATA NAME>__<STEP>__<PROPERTY>``: one variable per secret, the same on every run.

    Each part is upper case with every run of other characters one ``_``, so ``__`` only ever separates
    parts: two task sequences (their metadata.names differ) never share a name, whatever their steps
    are called. Two steps of one sequence with the same name get _2, _3… in step order, from ``used``.
    """
    parts = (re.sub(r"[^A-Z0-9]+", "_", part.upper()).strip("_") or "_" for part in (ts_name, step, prop))
    return _unique("OSD_TS_" + "__".join(parts), used)  # OSD_: allowed by the default secrets policy


def _secret_placeholders(spec: dict[str, Any], ts_name: str, used: set[str], fill_empty: bool
                         ) -> list[SecretPlaceholder]:
    """Name every secret of the steps after its task sequence, step and property, in step order.

    Secrets the sequence reader found are renamed. With ``fill_empty`` (a console export, which empties
    every password), an empty secret the step uses becomes a placeholder too, so that the administrator
    is asked for it instead of the site receiving an empty password.
    """
    found: list[SecretPlaceholder] = []

    def placeholder(step: str, prop: str) -> dict[str, str]:
        env = _secret_env(ts_name, step, prop, used)
        found.append(SecretPlaceholder(step, prop, env))
        return {"env": env}

    for node in iter_step_nodes(spec.get("steps") or []):
        known = BY_NAME.get(node.get("type") or "")
        settings = node.get("settings") or {}
        for prop in known.props if known is not None else ():
            value = settings.get(prop.field)
            in_use = _SECRET_IN_USE.get((node["type"], prop.field))
            left_out = fill_empty and value == "" and in_use is not None and in_use(settings)
            if prop.kind == "rules" and isinstance(value, list):
                for rule in value:
                    variables = rule.get("variables") or []
                    for i, var in enumerate(variables):
                        if var.get("valueFrom") is not None:
                            var["valueFrom"] = placeholder(node["name"], f"rule {var['name']}")
                        elif fill_empty and var.get("secret") and not var.get("value"):
                            variables[i] = {"name": var["name"], "secret": True,
                                            "valueFrom": placeholder(node["name"], f"rule {var['name']}")}
            elif left_out or (isinstance(value, dict) and value.get("valueFrom") is not None):
                settings[prop.field] = {"valueFrom": placeholder(node["name"], prop.property)}
        for raw in node.get("properties") or ():
            if raw.get("valueFrom") is not None:
                raw["valueFrom"] = placeholder(node["name"], raw.get("property") or raw.get("variable") or "value")
    return found


def _ordered(spec: dict[str, Any]) -> dict[str, Any]:
    return {**{k: spec[k] for k in _SPEC_ORDER if k in spec}, **{k: v for k, v in spec.items() if k not in _SPEC_ORDER}}


def _content_of(ts_id: str, live: LiveState, seen: frozenset[str] = frozenset()) -> list[str]:
    """Packages a sequence needs on its DPs, counted as the planner counts them.

    A child task sequence (Run Task Sequence) is in the reference list, but a DP never "installs" a
    task sequence: the child brings its own content instead, and never itself.
    """
    out: list[str] = []
    for ref in ts_references(live.task_sequences[ts_id]):
        package = live.packages.get(ref)
        if ref in live.task_sequences or (package is not None and package.type is PackageType.TASK_SEQUENCE):
            if ref in live.task_sequences and ref not in seen | {ts_id}:
                out.extend(_content_of(ref, live, seen | {ts_id}))
            continue
        if package is not None:
            out.append(ref)
    return list(dict.fromkeys(out))


def _package_ref(package_id: str, live: LiveState, unique_names: set[str]) -> dict[str, str]:
    package = live.packages.get(package_id)
    if package is not None and package.name in unique_names:
        return {"package": package.name}
    return {"id": package_id}


def _rename_refs(node: Any, live: LiveState, unique: set[str]) -> Any:
    if isinstance(node, list):
        return [_rename_refs(n, live, unique) for n in node]
    if isinstance(node, dict):
        if set(node) == {"id"} and isinstance(node["id"], str) and node["id"] in live.packages:
            return _package_ref(node["id"], live, unique)
        return {k: _rename_refs(v, live, unique) for k, v in node.items()}
    return node


def ts_manifest(record: TaskSequenceRecord, name: str, live: LiveState, unique: set[str],
                used_envs: set[str] | None = None) -> tuple[dict[str, Any], list[SecretPlaceholder]]:
    """The manifest of a live task sequence; ``used_envs`` collects placeholder names across one export."""
    read = read_sequence(record.sequence, where=record.name)
    spec: dict[str, Any] = {"name": record.name}
    if record.description:
        spec["description"] = record.description
    spec["type"] = record.ts_type or infer_type(read.spec["steps"])
    if record.folder:
        spec["folder"] = record.folder
    if not record.enabled:
        spec["enabled"] = False
    if record.boot_image_id:
        spec["bootImage"] = _package_ref(record.boot_image_id, live, unique)
    if record.high_impact:
        high: dict[str, Any] = {"enabled": True}
        if record.custom_high_impact:
            high["notification"] = {"headline": record.headline,
                                    "body": [record.warning_top, record.warning, record.warning_install]}
        spec["highImpact"] = high
    center = {k: v for k, v in (("restartRequired", record.restart_required or None),
                                ("downloadSizeMB", record.download_size_mb),
                                ("estimatedRunTimeMinutes", record.run_time_minutes)) if v is not None}
    if center:
        spec["softwareCenter"] = center
    if record.category:
        spec["category"] = record.category
    if record.duration is not None:
        spec["maxRunTimeMinutes"] = record.duration
    spec.update(_rename_refs(read.spec, live, unique))
    secrets = _secret_placeholders(spec, name, used_envs if used_envs is not None else set(), fill_empty=False)
    return {"apiVersion": API_VERSION, "kind": "TaskSequence", "metadata": {"name": name}, "spec": spec}, secrets


def deployment_manifest(record: DeploymentRecord, name: str, ts_name: str, live: LiveState
                        ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The manifest of a live deployment, and what of the deployment it leaves out, in words.

    The settings are the shared decoding's (:func:`reconciler.diff.advertisement.deployment_settings`,
    which a plan reads deployments through too), so a deployment a manifest made comes back as that
    manifest and the next plan is empty. What no manifest can write is left out and said, never
    written as something else; so is a value the manifest's own checks refuse (times not written
    alike, a console rule the deployment breaks), so that what export writes always validates.
    """
    collection = live.collections.get(record.collection_id)
    spec: dict[str, Any] = {"taskSequence": ts_name,
                            "collection": {"name": collection.name} if collection and len(
                                live.collection_by_name(collection.name)) == 1 else {"id": record.collection_id}}
    settings, left_out = deployment_settings(record)
    spec.update(settings)
    manifest = {"apiVersion": API_VERSION, "kind": "TaskSequenceDeployment", "metadata": {"name": name},
                "spec": spec}
    sequence = live.task_sequences.get(record.package_id)
    refused = _refused_values(manifest, sequence is not None and live_deploys_os(sequence))
    return manifest, (*left_out, *refused)


def _refused_values(manifest: dict[str, Any], deploys_os: bool) -> list[str]:
    """Drop from ``manifest`` each value the model or a console rule refuses, and say what was dropped.

    Every value a site can hold that a manifest cannot is optional, and its default is the plain
    setting (no expiry, no wake-up packets, download when needed), so dropping it leaves a manifest
    that validates. Dropping one can clear another's problem (an expiry before the start time), so
    the manifest is checked again until it passes; a problem that no drop clears is a bug here.
    """
    dropped: list[str] = []
    for _ in range(16):
        try:
            model = TaskSequenceDeployment.model_validate(manifest)
        except ValidationError as exc:
            problems = [(tuple(e["loc"]), str(e["msg"])) for e in exc.errors(include_url=False)]
        else:
            facts, found = examine(model)
            found = [p for p in found if p.severity == "error"] + (list(facts.os_problems) if deploys_os else [])
            problems = [(p.path, p.message) for p in found]
        if not problems:
            return dropped
        path, message = problems[0]
        if path[:1] != ("spec",) or path[1:2] in (("taskSequence",), ("collection",)):
            break  # not an optional value of the spec: nothing to drop
        value = _pop(manifest, path)
        if value is _MISSING:
            break
        where = ".".join(str(part) for part in path[1:])
        dropped.append(f"{where} {shorten(value)} ({message})")
    raise ReconcilerError(f"cannot export TaskSequenceDeployment/{manifest['metadata']['name']}: its manifest does "
                          f"not validate ({problems[0][1]}); export the other kinds with --kind")


_MISSING = object()


def _pop(node: Any, path: tuple[Any, ...]) -> Any:
    """Remove the value at ``path`` (mapping keys and list indexes) and return it; ``_MISSING`` if there is none."""
    for part in path[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return _MISSING
    last = path[-1]
    if isinstance(node, dict) and last in node:
        return node.pop(last)
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        return node.pop(last)
    return _MISSING


def _one_line(text: str) -> str:
    """Text for a comment or a warning line: a line break in a console name must not start a line of YAML."""
    return re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", "?", text)


def _write(out: Path, relative: Path, manifest: dict[str, Any], comments: list[str]) -> Path:
    relative = Path(*(_portable(part) for part in relative.parts))
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = manifest["kind"].lower()
    depth = len(relative.parts)  # the output folder is the repository's manifests/ folder, crds/ is beside it
    header = [f"# yaml-language-server: $schema={'../' * depth}crds/{kind}.schema.json", *comments]
    path.write_text("\n".join(f"{line}" if line.startswith("#") else f"# {line}" for line in header) + "\n"
                    + dump(manifest), encoding="utf-8")
    return path


def export_site(live: LiveState, state: StateStore, out: Path, kinds: set[str] | None = None,
                name_filter: str | None = None) -> ExportResult:
    """Write manifests for everything in the site (optionally by kind and console-name pattern) and adopt it."""
    result = ExportResult()
    kinds = kinds or set(KINDS)

    def wanted(console: str) -> bool:
        return name_filter is None or fnmatch.fnmatchcase(console.casefold(), name_filter.casefold())

    counts: dict[str, int] = defaultdict(int)
    for package in live.packages.values():
        counts[package.name] += 1
    unique = {n for n, c in counts.items() if c == 1}
    ts_names = _names([(i, t.name) for i, t in live.task_sequences.items()])
    used_envs: set[str] = set()
    for ts_id, record in sorted(live.task_sequences.items()):
        if "TaskSequence" not in kinds or not wanted(record.name):
            continue
        if state.is_owned("TaskSequence", ts_id):
            result.skipped.append(f"TaskSequence {ts_id} ({record.name})")
            continue
        manifest, secrets = ts_manifest(record, ts_names[ts_id], live, unique, used_envs)
        notes = [f"Exported from site {live.site_code}, task sequence {ts_id}."]
        for secret in secrets:
            notes.append(f"Secret {secret.property!r} of step {secret.where!r}: provide it in ${secret.env}.")
            result.secrets.append((f"TaskSequence/{ts_names[ts_id]}", secret.env))
        result.files.append(_write(out, Path(KIND_FOLDERS["TaskSequence"]) / _safe_folder(record.folder)
                                   / f"{ts_names[ts_id]}.yaml", manifest, notes))
        state.own("TaskSequence", ts_names[ts_id], ts_id)
        result.adopted += 1
        if "ContentDistribution" in kinds:
            needed = _content_of(ts_id, live)
            dps = sorted({dp for (pid, dp) in live.content if pid in needed})
            holding = [dp for dp in dps if all(
                (s := live.content.get((pid, dp))) is not None and s.state is ContentState.INSTALLED for pid in needed)]
            if needed and holding:
                name = f"{ts_names[ts_id]}-content"[:63]
                cd = {"apiVersion": API_VERSION, "kind": "ContentDistribution", "metadata": {"name": name},
                      "spec": {"taskSequence": ts_names[ts_id], "distributionPoints": holding}}
                result.files.append(_write(out, Path(KIND_FOLDERS["ContentDistribution"]) / f"{name}.yaml", cd,
                                           [f"DPs that hold all content of {record.name!r}."]))
                state.own("ContentDistribution", name, "content")
                state.record_applied("ContentDistribution", name, "", "",
                                     extra={"pairs": [[p, dp] for p in needed for dp in holding]})
                result.adopted += 1
    if "TaskSequenceDeployment" in kinds:
        def target(d: DeploymentRecord) -> str:
            collection = live.collections.get(d.collection_id)
            return collection.name if collection else d.collection_id

        dep_names = _names([(i, f"{ts_names[d.package_id]}-{target(d)}")
                            for i, d in live.deployments.items() if d.package_id in ts_names])
        for dep_id, record in sorted(live.deployments.items()):
            if record.package_id not in ts_names or not wanted(live.task_sequences[record.package_id].name):
                continue
            if state.is_owned("TaskSequenceDeployment", dep_id):
                result.skipped.append(f"deployment {dep_id} ({record.name})")
                continue
            manifest, left_out = deployment_manifest(record, dep_names[dep_id], ts_names[record.package_id], live)
            path = Path(KIND_FOLDERS["TaskSequenceDeployment"]) / f"{dep_names[dep_id]}.yaml"
            notes = [f"Exported from deployment {dep_id} ({_one_line(record.name)})."]
            notes += [f"Left out: {_one_line(item)}" for item in left_out]
            result.files.append(_write(out, path, manifest, notes))
            result.warnings += [f"TaskSequenceDeployment/{dep_names[dep_id]} (deployment {dep_id}, "
                                f"{shorten(record.name)}): left out {_one_line(item)}" for item in left_out]
            state.own("TaskSequenceDeployment", dep_names[dep_id], dep_id)
            result.adopted += 1
    _export_variables(live, state, out, kinds, wanted, result, used_envs)
    return result


def _export_variables(live: LiveState, state: StateStore, out: Path, kinds: set[str], wanted: Any,
                      result: ExportResult, used_envs: set[str]) -> None:
    if "CollectionVariables" in kinds:
        names = _names([(cid, f"{live.collections[cid].name}-variables") for cid in live.collection_settings
                        if cid in live.collections])
        for cid, settings in sorted(live.collection_settings.items()):
            if cid not in names or not wanted(live.collections[cid].name):
                continue
            if state.is_owned("CollectionVariables", cid):
                result.skipped.append(f"variables of collection {cid}")
                continue
            variables, refs, notes = _variables(settings.variables, names[cid], result, "CollectionVariables",
                                                used_envs)
            manifest = {"apiVersion": API_VERSION, "kind": "CollectionVariables", "metadata": {"name": names[cid]},
                        "spec": {"collection": {"name": live.collections[cid].name}, "priority": settings.precedence,
                                 "variables": variables}}
            result.files.append(_write(out, Path(KIND_FOLDERS["CollectionVariables"]) / f"{names[cid]}.yaml",
                                       manifest, notes or [f"Variables of collection {cid}."]))
            state.own("CollectionVariables", names[cid], cid)
            state.record_applied("CollectionVariables", names[cid], "", "", refs, {"count": len(variables)})
            result.adopted += 1
    if "ComputerVariables" in kinds:
        names = _names([(str(rid), live.computers[rid].name) for rid in live.machine_settings
                        if rid in live.computers])
        for rid, settings in sorted(live.machine_settings.items()):
            key = str(rid)
            if key not in names or not wanted(live.computers[rid].name):
                continue
            if state.is_owned("ComputerVariables", key):
                result.skipped.append(f"variables of computer {rid}")
                continue
            variables, refs, notes = _variables(settings.variables, names[key], result, "ComputerVariables",
                                                used_envs)
            manifest = {"apiVersion": API_VERSION, "kind": "ComputerVariables", "metadata": {"name": names[key]},
                        "spec": {"computer": {"name": live.computers[rid].name}, "variables": variables}}
            result.files.append(_write(out, Path(KIND_FOLDERS["ComputerVariables"]) / f"{names[key]}.yaml",
                                       manifest, notes or [f"Variables of computer {rid}."]))
            state.own("ComputerVariables", names[key], key)
            state.record_applied("ComputerVariables", names[key], "", "", refs, {"count": len(variables)})
            result.adopted += 1


def _variables(live_vars: Any, name: str, result: ExportResult, kind: str, used_envs: set[str]
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]], list[str]]:
    variables: list[dict[str, Any]] = []
    refs: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for var in live_vars:
        if var.masked:
            base = re.sub(r"[^A-Z0-9]+", "_", f"{name}_{var.name}".upper()).strip("_")
            env = _unique(f"OSD_{base}", used_envs)  # OSD_: allowed by the default secrets policy
            variables.append({"name": var.name, "hidden": True, "valueFrom": {"env": env}})
            refs[var.name.casefold()] = {"ref": f"env:{env}"}
            notes.append(f"Hidden value of {var.name} is never exported: provide it in ${env}.")
            result.secrets.append((f"{kind}/{name}", env))
        else:
            variables.append({"name": var.name, "value": var.value or ""})
    return variables, refs, notes


def export_zip(live: LiveState, path: Path, console_name: str) -> Path:
    """A console-compatible export ZIP of one task sequence, without passwords (as the console exports)."""
    matches = [t for t in live.task_sequences.values() if t.name == console_name]
    if len(matches) != 1:
        raise ReconcilerError(f"{len(matches)} task sequences are named {console_name!r}; export needs exactly one")
    record = matches[0]
    spec = read_sequence(record.sequence).spec
    sequence = write_sequence(spec, resolve=lambda ref: str(ref.get("id") or ref.get("package")), indent=None)
    # Values and CIM types as the console writes them (see archive._PROPERTY_TYPES): flags are uint32 0 / 1.
    props = {
        "PackageID": record.id, "Name": record.name, "Description": record.description, "Sequence": sequence,
        "BootImageID": record.boot_image_id or "", "Category": record.category or "",
        "HighImpactTaskSequence": 1 if record.high_impact else 0,
        "CustomHighImpactSet": 1 if record.custom_high_impact else 0,
        "CustomHighImpactHeadline": record.headline, "CustomHighImpactWarningTop": record.warning_top,
        "CustomHighImpactWarning": record.warning, "CustomHighImpactWarningInstall": record.warning_install,
        "RestartRequired": 1 if record.restart_required else 0,
        "EstimatedDownloadSizeMB": record.download_size_mb or 0,
        "EstimatedRunTimeMinutes": record.run_time_minutes or 0,
        "Duration": record.duration or 0, "ProgramFlags": 0 if record.enabled else 0x1000,
        "TsEnabled": "TRUE" if record.enabled else "FALSE",
        # ConfigMgr's own Type: 1 generic, 2 operating system deployment (a site without the console type: the steps)
        "Type": (2 if record.ts_type != "Custom" else 1) if record.ts_type else (2 if live_deploys_os(record) else 1),
    }
    # ReferencesInfo.xml names every package the sequence needs, the boot image first, as the console's
    # exports do; import turns IDs into these names.
    ids = ([record.boot_image_id] if record.boot_image_id else []) + list(reference_ids(record.sequence))
    refs = [ExportedPackage(pid, live.packages[pid].name, _PACKAGE_TYPE_NUMBERS.get(live.packages[pid].type, 0))
            for pid in dict.fromkeys(ids) if pid in live.packages]
    write_console_export(path, str(record.id), props, refs,
                         carried={"type": record.ts_type, "folder": record.folder or ""})
    return path


@dataclass
class ImportResult:
    written: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # existing manifests linked to instead (--on-conflict ignore)
    secrets: list[tuple[str, str]] = field(default_factory=list)
    packages: list[ExportedPackage] = field(default_factory=list)
    content_folder: Path | None = None


def import_zip(zip_path: Path, out: Path, on_conflict: str = "ignore") -> ImportResult:
    """Manifests from a console export ZIP; ``on_conflict`` is the console's choice: ignore, overwrite or new.

    ``overwrite`` replaces only the conflicting document: a file that also holds other manifests (a
    deployment after ``---``) keeps them, and its comments, as written.
    """
    export: ConsoleExport = read_console_export(zip_path)
    existing = {o.name: o for o in load(out).objects if o.kind == "TaskSequence"} if out.exists() else {}
    names_by_id = {pid: ref.name for pid, ref in export.references.items() if ref.name}
    names_by_id.update({pid: pkg.name for pid, pkg in export.packages.items()})
    result = ImportResult(packages=sorted(export.references.values(), key=lambda r: r.package_id),
                          content_folder=export.content_folder)
    planned: list[tuple[Path, dict[str, Any], list[str]]] = []
    replaced: dict[Path, str] = {}  # --on-conflict overwrite: file -> its new text
    used_envs: set[str] = set()
    taken: set[str] = set()  # metadata.names given to this archive's sequences so far
    problems: list[str] = []  # every sequence is checked before the archive is refused
    archive_name = re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", "?", zip_path.name)  # it goes into a comment line
    for ts_id, (text, _props) in sorted(export.task_sequences.items()):
        where = entry_where(zip_path, f"SMS_TaskSequencePackage/{ts_id}/object.xml")
        try:
            converted = xml_to_manifest(text, where=where)
        except CodecError as exc:
            problems.extend(str(exc).splitlines())
            continue
        manifest = converted.manifest
        spec = _by_name(manifest["spec"], names_by_id)
        carried = export.carried.get(ts_id, {})
        if carried.get("type") in {t.value for t in TaskSequenceType}:
            spec["type"] = carried["type"]
        if carried.get("folder"):
            spec["folder"] = carried["folder"]
        name = base = manifest["metadata"]["name"]
        n = 2
        while name in taken:  # console names that make the same metadata.name: -2, -3… by package ID, as export
            name = f"{base[:60]}-{n}"
            n += 1
        if name in existing:
            if on_conflict == "ignore":
                taken.add(name)
                result.kept.append(str(existing[name].source))
                continue
            if on_conflict == "new":
                n = 2
                while f"{name}-{n}" in existing or f"{name}-{n}" in taken:
                    n += 1
                name = f"{name}-{n}"
        taken.add(name)
        manifest["metadata"]["name"] = name
        secrets = _secret_placeholders(spec, name, used_envs, fill_empty=True)
        manifest["spec"] = _ordered(spec)
        notes = [f"Imported from {archive_name} (task sequence {ts_id})."]
        for secret in secrets:
            notes.append(f"Secret {secret.property!r} of step {secret.where!r}: provide it in ${secret.env}.")
            result.secrets.append((f"TaskSequence/{name}", secret.env))
        found = manifest_problems(manifest)  # what the archive's other parts (names, type, folder) brought
        if found:
            problems.extend(f"{where}: {problem}" for problem in found)
            continue
        if on_conflict == "overwrite" and name in existing:
            target = Path(existing[name].source.file)
            before = replaced[target] if target in replaced else decode(target.read_bytes(), str(target))
            replaced[target] = _replace_document(before, existing[name].doc_index, manifest, notes, str(target))
            result.written.append(target)
            continue
        planned.append((out / KIND_FOLDERS["TaskSequence"] / f"{name}.yaml", manifest, notes))
    if problems:
        raise InvalidSequence(problems)
    # Everything is validated and every new text is built first: a bad archive writes nothing.
    for target, text in replaced.items():
        bom = "\ufeff" if target.read_bytes().startswith(b"\xef\xbb\xbf") else ""
        target.write_bytes((bom + text).encode("utf-8"))
    for target, manifest, notes in planned:
        result.written.append(_write(out, target.relative_to(out), manifest, notes))
    return result


#: Comment lines an import writes above a manifest; an overwrite replaces them with the document.
_IMPORT_NOTES = ("# Imported from ", "# Secret ")


def _replace_document(text: str, index: int, manifest: dict[str, Any], notes: list[str], where: str) -> str:
    """``text`` with document ``index`` replaced by ``manifest``; other documents and comments stay as written.

    The span replaced runs from the document's first key to the end of its last value's line, so the
    ``---`` separators, a comment header, and comments after the document are kept.
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))  # character offsets (libyaml's are bytes)
        count = sum(1 for _ in load_documents(text))
    except (yaml.YAMLError, YamlProblem) as exc:
        raise ReconcilerError(f"{where}: cannot be read to replace a manifest in it ({exc})") from None
    if index >= len(nodes) or nodes[index] is None:
        raise ReconcilerError(f"{where}: document {index + 1} is gone; run the import again")
    node = nodes[index]
    start = node.start_mark.index
    if node.start_mark.column == 0:  # drop the notes an earlier import wrote right above it
        lines = text[:start].splitlines(keepends=True)
        while lines and lines[-1].startswith(_IMPORT_NOTES):
            start -= len(lines.pop())
    last = node
    while isinstance(last, yaml.MappingNode | yaml.SequenceNode) and last.value and not last.flow_style:
        last = last.value[-1][1] if isinstance(last, yaml.MappingNode) else last.value[-1]
    end = start + len(text[start:last.end_mark.index].rstrip())  # a block scalar's span takes in blank lines
    line_end = text.find("\n", end)
    end = len(text) if line_end < 0 else line_end + 1
    body = "".join(f"# {note}\n" for note in notes) + dump(manifest)
    if "\r\n" in text:
        body = body.replace("\n", "\r\n")
    before = text[:start]
    if before and not before.endswith("\n"):
        before += "\n"  # the document began on its "---" line
    new = before + body + text[end:]
    if sum(1 for _ in load_documents(new)) != count:
        raise ReconcilerError(f"{where}: replacing document {index + 1} would change the other documents; "
                              "edit the file by hand or import with --on-conflict new")
    return new


def _by_name(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_by_name(n, names) for n in node]
    if isinstance(node, dict):
        if set(node) == {"id"} and node["id"] in names:
            return {"package": names[node["id"]]}
        return {k: _by_name(v, names) for k, v in node.items()}
    return node
