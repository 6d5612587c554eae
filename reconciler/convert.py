"""Converting between ConfigMgr task sequence XML and TaskSequence manifests.

Reads a bare ``<sequence>`` (as stored in ``SMS_TaskSequencePackage.Sequence``, or an MDT ts.xml)
or a console export's ``object.xml``, whose package properties also fill in the console name,
description, boot image, high-impact settings, Software Center properties and enabled state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reconciler.models import API_VERSION, TaskSequence
from reconciler.models.tasksequence import TaskSequenceSpec
from reconciler.tsxml.sequence import (
    PackageResolver,
    SecretPlaceholder,
    find_sequence_text,
    iter_step_nodes,
    read_sequence,
    resolve_by_id,
    write_sequence,
)
from reconciler.tsxml.xmltext import parse

#: ProgramFlags bit ConfigMgr sets on a disabled task sequence.
PROGRAM_FLAG_DISABLED = 0x1000


@dataclass
class Converted:
    manifest: dict[str, Any]
    secrets: list[SecretPlaceholder] = field(default_factory=list)
    package_id: str | None = None


def slug(text: str) -> str:
    """A metadata.name from a console name: lowercase, digits and '-', stable for the same input."""
    value = re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")
    return (value or "task-sequence")[:63].strip("-") or "task-sequence"


def infer_type(steps: list[dict[str, Any]]) -> str:
    """The console's task sequence type from what the steps do (ConfigMgr itself only stores generic/OSD)."""
    found = {node["type"] for node in iter_step_nodes(steps) if node.get("type")}
    if "UpgradeOperatingSystem" in found:
        return "UpgradeOperatingSystem"
    if "CaptureOperatingSystemImage" in found:
        return "CaptureOperatingSystem"
    if "ApplyOperatingSystemImage" in found:
        return "InstallOperatingSystem"
    if found & {"CaptureUserState", "RestoreUserState"}:
        return "CaptureRestoreUserState"
    return "Custom"


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _package_spec(props: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if props.get("Description"):
        spec["description"] = props["Description"]
    flags = _int(props.get("ProgramFlags"))
    enabled = not flags & PROGRAM_FLAG_DISABLED
    if str(props.get("TsEnabled", "")).upper() == "FALSE":
        enabled = False
    if not enabled:
        spec["enabled"] = False
    if props.get("BootImageID"):
        spec["bootImage"] = {"id": props["BootImageID"]}
    if _int(props.get("HighImpactTaskSequence")):
        high: dict[str, Any] = {"enabled": True}
        if _int(props.get("CustomHighImpactSet")):
            high["notification"] = {
                "headline": props.get("CustomHighImpactHeadline") or "",
                "body": [props.get("CustomHighImpactWarningTop") or "", props.get("CustomHighImpactWarning") or "",
                         props.get("CustomHighImpactWarningInstall") or ""],
            }
        spec["highImpact"] = high
    software_center = {}
    if _int(props.get("RestartRequired")):
        software_center["restartRequired"] = True
    if _int(props.get("EstimatedDownloadSizeMB")):
        software_center["downloadSizeMB"] = _int(props.get("EstimatedDownloadSizeMB"))
    if _int(props.get("EstimatedRunTimeMinutes")):
        software_center["estimatedRunTimeMinutes"] = _int(props.get("EstimatedRunTimeMinutes"))
    if software_center:
        spec["softwareCenter"] = software_center
    if props.get("Category"):
        spec["category"] = props["Category"]
    if _int(props.get("Duration")):
        spec["maxRunTimeMinutes"] = _int(props.get("Duration"))
    return spec


def xml_to_manifest(text: str | bytes, where: str = "", name: str | None = None,
                    default_name: str = "Converted task sequence") -> Converted:
    """A TaskSequence manifest (YAML shape) from sequence XML or a console object.xml."""
    root = parse(text, where=where)
    props: dict[str, Any] = {}
    sequence_text: str | bytes = text
    if root.tag == "INSTANCE":
        sequence_text, props = find_sequence_text(root, where)
    result = read_sequence(sequence_text, where=where)
    console_name = (props.get("Name") or (result.spec.get("xml") or {}).get("attributes", {}).get("name")
                    or name or default_name)
    spec: dict[str, Any] = {"name": console_name[:50]}
    spec.update(_package_spec(props))
    spec["type"] = infer_type(result.spec["steps"])
    spec.update(result.spec)
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "TaskSequence",
        "metadata": {"name": slug(name or console_name)},
        "spec": spec,
    }
    # Validate now: a converted manifest that the loader would refuse is a bug, not output.
    TaskSequence.model_validate(manifest)
    return Converted(manifest, result.secrets, props.get("PackageID"))


def manifest_to_xml(ts: TaskSequence, resolve: PackageResolver = resolve_by_id, indent: str | None = "  ") -> str:
    """The ``<sequence>`` XML of a TaskSequence manifest (secrets empty: they are resolved only at apply)."""
    return write_sequence(spec_document(ts.spec), resolve=resolve, indent=indent)


def spec_document(spec: TaskSequenceSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True, exclude_none=True, mode="json")
