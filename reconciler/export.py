"""From a live site, or from console export ZIPs, to a manifest repository.

Export writes one readable file per object in folders that mirror console folders, adopts what it
exported (ownership is recorded, so the next plan is empty), and never writes a secret: passwords
and hidden variable values become ``valueFrom`` placeholders listed at the end. Package IDs become
console names wherever the name is unique, so manifests read the same on another site.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.archive import ConsoleExport, ExportedPackage, read_console_export, write_console_export
from reconciler.convert import infer_type, slug, xml_to_manifest
from reconciler.diff.normalize import (
    ASAP,
    DEFAULT_BOUNDARY,
    DOWNLOAD_ALL,
    INSTALL_OUTSIDE_MW,
    INTERNET_CLIENTS,
    LOGOFF,
    LOGON,
    MEDIA_AND_PXE,
    MEDIA_PXE_HIDDEN,
    MEDIA_PXE_ONLY,
    METERED,
    REMOTE_DOWNLOAD,
    RERUN,
    RESTART_OUTSIDE_MW,
    RUN_FROM_DP,
    RUN_INDEPENDENTLY,
    SHOW_PROGRESS,
    WAKE_ON_LAN,
)
from reconciler.errors import ReconcilerError
from reconciler.models import API_VERSION, KINDS
from reconciler.site.records import ContentState, DeploymentRecord, LiveState, TaskSequenceRecord
from reconciler.source.loader import load
from reconciler.source.yamlfile import dump
from reconciler.state import StateStore
from reconciler.tsxml.sequence import SecretPlaceholder, read_sequence, reference_ids

KIND_FOLDERS = {
    "TaskSequence": "task-sequences",
    "TaskSequenceDeployment": "deployments",
    "ContentDistribution": "content",
    "CollectionVariables": "variables/collections",
    "ComputerVariables": "variables/computers",
}
_WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_WEEK_ORDER = {0: "Last", 1: "First", 2: "Second", 3: "Third", 4: "Fourth"}


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (object, env variable to provide)
    adopted: int = 0
    skipped: list[str] = field(default_factory=list)  # already managed from manifests: not exported again


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


def ts_manifest(record: TaskSequenceRecord, name: str, live: LiveState, unique: set[str]
                ) -> tuple[dict[str, Any], list[SecretPlaceholder]]:
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
    return {"apiVersion": API_VERSION, "kind": "TaskSequence", "metadata": {"name": name}, "spec": spec}, read.secrets


def deployment_manifest(record: DeploymentRecord, name: str, ts_name: str, live: LiveState) -> dict[str, Any]:
    """The inverse of ``normalize.deployment_record``: SMS_Advertisement flags back to settings."""
    advert, options = record.advert_flags & 0xFFFFFFFF, record.advert_flags >> 32
    remote = record.remote_client_flags
    collection = live.collections.get(record.collection_id)
    spec: dict[str, Any] = {"taskSequence": ts_name,
                            "collection": {"name": collection.name} if collection and len(
                                live.collection_by_name(collection.name)) == 1 else {"id": record.collection_id}}
    if record.comment:
        spec["comment"] = record.comment
    spec["purpose"] = "Required" if record.offer_type == 0 else "Available"
    if advert & MEDIA_PXE_HIDDEN:
        spec["availableTo"] = "MediaAndPxeHidden"
    elif advert & MEDIA_PXE_ONLY:
        spec["availableTo"] = "MediaAndPxe"
    else:
        spec["availableTo"] = "ClientsMediaAndPxe" if advert & MEDIA_AND_PXE else "Clients"
    if advert & WAKE_ON_LAN:
        spec["sendWakeUpPackets"] = True
    if remote & METERED:
        spec["allowMeteredDownloadAfterDeadline"] = True
    assignments: list[dict[str, Any]] = []
    for token_text in record.assigned_schedule:
        token = json.loads(token_text)
        item: dict[str, Any] = {"at": token["StartTime"]}
        kind = token.get("@odata.type", "")
        if kind.endswith("RecurInterval"):
            item["recurrence"] = {"interval": {k: v for k, v in (("days", token.get("DaySpan")),
                                                                 ("hours", token.get("HourSpan")),
                                                                 ("minutes", token.get("MinuteSpan"))) if v}}
        elif kind.endswith("RecurWeekly"):
            item["recurrence"] = {"weekly": {"day": _WEEKDAYS[token["Day"] - 1],
                                             "everyWeeks": token["ForNumberOfWeeks"]}}
        elif kind.endswith("RecurMonthlyByDate"):
            item["recurrence"] = {"monthlyByDate": {"day": token["MonthDay"],
                                                    "everyMonths": token["ForNumberOfMonths"]}}
        elif kind.endswith("RecurMonthlyByWeekday"):
            item["recurrence"] = {"monthlyByWeekday": {"day": _WEEKDAYS[token["Day"] - 1],
                                                       "week": _WEEK_ORDER[token["WeekOrder"]],
                                                       "everyMonths": token["ForNumberOfMonths"]}}
        assignments.append(item)
    for bit, event in ((ASAP, "AsSoonAsPossible"), (LOGON, "Logon"), (LOGOFF, "Logoff")):
        if advert & bit:
            assignments.append({"event": event})
    schedule: dict[str, Any] = {}
    if record.present_time_enabled and record.present_time:
        schedule["availableAt"] = record.present_time
    if record.expiration_time_enabled and record.expiration_time:
        schedule["expiresAt"] = record.expiration_time
    if record.is_gmt:
        schedule["utc"] = True
    if assignments:
        schedule["assignments"] = assignments
    schedule["rerun"] = next((r.value for r, bit in RERUN.items() if remote & bit), "IfFailed")
    spec["schedule"] = schedule
    spec["userExperience"] = {
        "allowRunIndependently": bool(options & RUN_INDEPENDENTLY), "showProgress": bool(advert & SHOW_PROGRESS),
        "installOutsideMaintenanceWindow": bool(advert & INSTALL_OUTSIDE_MW),
        "restartOutsideMaintenanceWindow": bool(advert & RESTART_OUTSIDE_MW),
        "allowOnInternetClients": bool(options & INTERNET_CLIENTS)}
    alerts = {k: v for k, v in (("onFailurePercent", record.alert_failure_percent),
                                ("onSuccessBelowPercent", record.alert_success_percent),
                                ("onSuccessCheckAfter", record.alert_success_after)) if v is not None}
    if alerts:
        spec["alerts"] = alerts
    spec["content"] = {
        "access": "RunFromDistributionPoint" if remote & RUN_FROM_DP else
        "DownloadAllBeforeStart" if remote & DOWNLOAD_ALL else "DownloadWhenNeeded",
        "allowRemoteFallback": bool(remote & REMOTE_DOWNLOAD),
        "allowDefaultSiteBoundaryGroup": bool(options & DEFAULT_BOUNDARY)}
    return {"apiVersion": API_VERSION, "kind": "TaskSequenceDeployment", "metadata": {"name": name}, "spec": spec}


def _write(out: Path, relative: Path, manifest: dict[str, Any], comments: list[str]) -> Path:
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
    for ts_id, record in sorted(live.task_sequences.items()):
        if "TaskSequence" not in kinds or not wanted(record.name):
            continue
        if state.is_owned("TaskSequence", ts_id):
            result.skipped.append(f"TaskSequence {ts_id} ({record.name})")
            continue
        manifest, secrets = ts_manifest(record, ts_names[ts_id], live, unique)
        notes = [f"Exported from site {live.site_code}, task sequence {ts_id}."]
        for secret in secrets:
            notes.append(f"Secret {secret.property!r} of step {secret.where!r}: provide it in ${secret.env}.")
            result.secrets.append((f"TaskSequence/{ts_names[ts_id]}", secret.env))
        result.files.append(_write(out, Path(KIND_FOLDERS["TaskSequence"]) / _safe_folder(record.folder)
                                   / f"{ts_names[ts_id]}.yaml", manifest, notes))
        state.own("TaskSequence", ts_names[ts_id], ts_id)
        result.adopted += 1
        if "ContentDistribution" in kinds:
            needed = [r for r in reference_ids(record.sequence) if r in live.packages]
            if record.boot_image_id:
                needed.append(record.boot_image_id)
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
            manifest = deployment_manifest(record, dep_names[dep_id], ts_names[record.package_id], live)
            path = Path(KIND_FOLDERS["TaskSequenceDeployment"]) / f"{dep_names[dep_id]}.yaml"
            result.files.append(_write(out, path, manifest, [f"Exported from deployment {dep_id} ({record.name})."]))
            state.own("TaskSequenceDeployment", dep_names[dep_id], dep_id)
            result.adopted += 1
    _export_variables(live, state, out, kinds, wanted, result)
    return result


def _export_variables(live: LiveState, state: StateStore, out: Path, kinds: set[str], wanted: Any,
                      result: ExportResult) -> None:
    if "CollectionVariables" in kinds:
        names = _names([(cid, f"{live.collections[cid].name}-variables") for cid in live.collection_settings
                        if cid in live.collections])
        for cid, settings in sorted(live.collection_settings.items()):
            if cid not in names or not wanted(live.collections[cid].name):
                continue
            if state.is_owned("CollectionVariables", cid):
                result.skipped.append(f"variables of collection {cid}")
                continue
            variables, refs, notes = _variables(settings.variables, names[cid], result, "CollectionVariables")
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
            variables, refs, notes = _variables(settings.variables, names[key], result, "ComputerVariables")
            manifest = {"apiVersion": API_VERSION, "kind": "ComputerVariables", "metadata": {"name": names[key]},
                        "spec": {"computer": {"name": live.computers[rid].name}, "variables": variables}}
            result.files.append(_write(out, Path(KIND_FOLDERS["ComputerVariables"]) / f"{names[key]}.yaml",
                                       manifest, notes or [f"Variables of computer {rid}."]))
            state.own("ComputerVariables", names[key], key)
            state.record_applied("ComputerVariables", names[key], "", "", refs, {"count": len(variables)})
            result.adopted += 1


def _variables(live_vars: Any, name: str, result: ExportResult, kind: str
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]], list[str]]:
    variables: list[dict[str, Any]] = []
    refs: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for var in live_vars:
        if var.masked:
            env = re.sub(r"[^A-Z0-9]+", "_", f"{name}_{var.name}".upper()).strip("_")
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
    from reconciler.tsxml.sequence import write_sequence

    spec = read_sequence(record.sequence).spec
    sequence = write_sequence(spec, resolve=lambda ref: str(ref.get("id") or ref.get("package")), indent=None)
    props = {
        "PackageID": record.id, "Name": record.name, "Description": record.description, "Sequence": sequence,
        "BootImageID": record.boot_image_id or "", "Category": record.category or "",
        "HighImpactTaskSequence": "TRUE" if record.high_impact else "FALSE",
        "CustomHighImpactSet": 1 if record.custom_high_impact else 0,
        "CustomHighImpactHeadline": record.headline, "CustomHighImpactWarningTop": record.warning_top,
        "CustomHighImpactWarning": record.warning, "CustomHighImpactWarningInstall": record.warning_install,
        "RestartRequired": "TRUE" if record.restart_required else "FALSE",
        "EstimatedDownloadSizeMB": record.download_size_mb or 0,
        "EstimatedRunTimeMinutes": record.run_time_minutes or 0,
        "Duration": record.duration or 0, "ProgramFlags": 0 if record.enabled else 0x1000,
        "TsEnabled": "TRUE" if record.enabled else "FALSE", "Type": 2 if record.ts_type != "Custom" else 1,
    }
    refs = [ExportedPackage(pid, live.packages[pid].name, 0) for pid in reference_ids(record.sequence)
            if pid in live.packages]
    write_console_export(path, str(record.id), props, refs)
    return path


@dataclass
class ImportResult:
    written: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # existing manifests linked to instead (--on-conflict ignore)
    secrets: list[tuple[str, str]] = field(default_factory=list)
    packages: list[ExportedPackage] = field(default_factory=list)
    content_folder: Path | None = None


def import_zip(zip_path: Path, out: Path, on_conflict: str = "ignore") -> ImportResult:
    """Manifests from a console export ZIP; ``on_conflict`` is the console's choice: ignore, overwrite or new."""
    export: ConsoleExport = read_console_export(zip_path)
    existing = {o.name: o for o in load(out).objects if o.kind == "TaskSequence"} if out.exists() else {}
    names_by_id = {pid: ref.name for pid, ref in export.references.items() if ref.name}
    names_by_id.update({pid: pkg.name for pid, pkg in export.packages.items()})
    result = ImportResult(packages=sorted(export.references.values(), key=lambda r: r.package_id),
                          content_folder=export.content_folder)
    planned: list[tuple[Path, dict[str, Any], list[str]]] = []
    for ts_id, (text, _props) in sorted(export.task_sequences.items()):
        converted = xml_to_manifest(text, where=f"{zip_path}:{ts_id}")
        manifest = converted.manifest
        manifest["spec"] = _by_name(manifest["spec"], names_by_id)
        name = manifest["metadata"]["name"]
        if name in existing:
            if on_conflict == "ignore":
                result.kept.append(str(existing[name].source))
                continue
            if on_conflict == "new":
                n = 2
                while f"{name}-{n}" in existing:
                    n += 1
                name = f"{name}-{n}"
                manifest["metadata"]["name"] = name
        target = (Path(existing[manifest["metadata"]["name"]].source.file)
                  if on_conflict == "overwrite" and manifest["metadata"]["name"] in existing
                  else out / KIND_FOLDERS["TaskSequence"] / f"{name}.yaml")
        notes = [f"Imported from {zip_path.name} (task sequence {ts_id})."]
        for secret in converted.secrets:
            notes.append(f"Secret {secret.property!r} of step {secret.where!r}: provide it in ${secret.env}.")
            result.secrets.append((f"TaskSequence/{name}", secret.env))
        KINDS["TaskSequence"].model_validate(manifest)
        planned.append((target, manifest, notes))
    for target, manifest, notes in planned:  # everything validated first: a bad archive writes nothing
        relative = target.relative_to(out) if target.is_relative_to(out) else Path(target.name)
        result.written.append(_write(out, relative, manifest, notes))
    return result


def _by_name(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_by_name(n, names) for n in node]
    if isinstance(node, dict):
        if set(node) == {"id"} and node["id"] in names:
            return {"package": names[node["id"]]}
        return {k: _by_name(v, names) for k, v in node.items()}
    return node
