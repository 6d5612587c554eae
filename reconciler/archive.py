"""Console export ZIPs (the Export Task Sequence wizard's OPC package): read safely, write compatibly.

An export holds ``Manifest.xml``, ``[Content_Types].xml``, ``_rels/.rels``, and per object
``SMS_TaskSequencePackage/<ID>/object.xml`` (a CIM-XML instance whose ``Sequence`` property is the
task sequence XML), ``ReferencesInfo.xml`` (referenced packages with their names and types) and
``AppReferencesInfo.xml``; exported dependencies add ``SMS_Package/<ID>/object.xml``. Archives come
from other people: anything that could escape the output folder or exhaust the machine is refused
before a single file is written.

Two manifest fields have no ``SMS_TaskSequencePackage`` property: the console folder (a separate
``SMS_ObjectContainerItem``, never exported) and the task sequence type beyond ConfigMgr's own
``Type`` (1 generic, 2 operating system deployment; the corpus shows no other type property). ZIPs
written here carry both in one more part, :data:`CARRIED_PART`, which nothing links to: the console
finds what it imports through ``Manifest.xml`` and ``_rels/.rels``, so it never reads that part, and
``[Content_Types].xml`` already types every ``.xml`` part, so the package stays valid OPC. Exports
made by the console do not have it: their folder is not imported and their type is inferred.
"""

from __future__ import annotations

import re
import stat
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from reconciler.errors import ReconcilerError
from reconciler.tsxml.sequence import find_sequence_text
from reconciler.tsxml.xmltext import parse

MAX_ENTRIES = 10_000
MAX_UNCOMPRESSED = 1024**3
MAX_RATIO = 100


class UnsafeArchive(ReconcilerError):
    """The archive is refused; nothing was written."""


@dataclass
class ExportedPackage:
    package_id: str
    name: str
    package_type: int | None = None


@dataclass
class ConsoleExport:
    path: Path
    task_sequences: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (object.xml, props)
    references: dict[str, ExportedPackage] = field(default_factory=dict)
    packages: dict[str, ExportedPackage] = field(default_factory=dict)  # exported SMS_Package dependencies
    content_folder: Path | None = None
    #: id -> {"type": …, "folder": …} from :data:`CARRIED_PART` (only in ZIPs this tool wrote)
    carried: dict[str, dict[str, str]] = field(default_factory=dict)


#: The part that carries what an ``SMS_TaskSequencePackage`` instance cannot hold (see the module docstring).
CARRIED_PART = "configmgr-gitops/TaskSequenceProperties.xml"
#: Attributes of a ``<TaskSequence>`` element in that part, and the keys they are read into.
_CARRIED_ATTRIBUTES = {"Type": "type", "Folder": "folder"}


def check_archive(archive: zipfile.ZipFile, where: str) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UnsafeArchive(f"{where}: {len(infos)} entries, more than {MAX_ENTRIES:,}; refused")
    total = 0
    compressed = 0
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in pure.parts:
            raise UnsafeArchive(f"{where}: entry {name!r} would be written outside the output folder; refused")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(f"{where}: entry {name!r} is a symbolic link; refused")
        total += info.file_size
        compressed += info.compress_size
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise UnsafeArchive(f"{where}: entry {name!r} expands {info.file_size / info.compress_size:.0f} times "
                                f"(more than {MAX_RATIO}: a zip bomb?); refused")
    if total > MAX_UNCOMPRESSED:
        raise UnsafeArchive(f"{where}: {total / 2**20:.0f} MiB uncompressed, more than 1 GiB; refused")
    if compressed and total / compressed > MAX_RATIO:
        raise UnsafeArchive(f"{where}: compression ratio {total / compressed:.0f}, more than {MAX_RATIO}; refused")


def _instance_props(xml: bytes | str, where: str) -> dict[str, Any]:
    root = parse(xml, where=where)
    props: dict[str, Any] = {}
    for p in root:
        name = p.get("NAME")
        if name is None or name.startswith("__"):
            continue
        value = p.find("VALUE")
        props[name] = None if value is None else (value.text or "")
    return props


def _references(text: bytes, where: str) -> list[ExportedPackage]:
    root = parse(text, where=where)
    out = []
    for entry in root:
        if not entry.text:
            continue
        props = _instance_props(entry.text, where)
        if props.get("ReferencePackageID"):
            kind = props.get("ReferencePackageType")
            out.append(ExportedPackage(props["ReferencePackageID"], props.get("ReferenceName") or "",
                                       int(kind) if kind not in (None, "") else None))
    return out


def _carried(text: bytes, where: str) -> dict[str, dict[str, str]]:
    """Type and folder per task sequence ID; the values are checked later, with the manifest they go into."""
    out: dict[str, dict[str, str]] = {}
    for entry in parse(text, where=where):
        package_id = entry.get("PackageID")
        if entry.tag == "TaskSequence" and package_id:
            out[package_id] = {key: entry.get(attr) or "" for attr, key in _CARRIED_ATTRIBUTES.items()
                               if entry.get(attr)}
    return out


def read_console_export(path: Path) -> ConsoleExport:
    where = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchive(f"{where}: not a readable ZIP file ({exc})") from None
    with archive:
        check_archive(archive, where)
        export = ConsoleExport(path)
        names = archive.namelist()
        if "Manifest.xml" not in names:
            raise ReconcilerError(f"{where}: no Manifest.xml; is this a ConfigMgr console export?")
        for name in names:
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "SMS_TaskSequencePackage" and parts[2] == "object.xml":
                text = archive.read(name)
                _, props = find_sequence_text(parse(text, where=f"{where}:{name}"), f"{where}:{name}")
                export.task_sequences[parts[1]] = (text.decode("utf-8-sig"), props)
            elif len(parts) == 3 and parts[0] == "SMS_TaskSequencePackage" and parts[2] == "ReferencesInfo.xml":
                for ref in _references(archive.read(name), f"{where}:{name}"):
                    export.references.setdefault(ref.package_id, ref)
            elif len(parts) == 3 and parts[0] == "SMS_Package" and parts[2] == "object.xml":
                props = _instance_props(archive.read(name), f"{where}:{name}")
                export.packages[parts[1]] = ExportedPackage(parts[1], props.get("Name") or parts[1], 0)
            elif name == CARRIED_PART:
                export.carried = _carried(archive.read(name), f"{where}:{name}")
        if not export.task_sequences:
            raise ReconcilerError(f"{where}: the export holds no task sequence")
    folder = path.with_name(path.stem + "_files")
    export.content_folder = folder if folder.is_dir() else None
    return export


# -- writing ----------------------------------------------------------------------------------------

#: CIM types as the console's exports in the corpus write them. HighImpactTaskSequence and
#: RestartRequired read like flags but are uint32 0 / 1 there; TsEnabled is a real boolean (TRUE / FALSE).
_PROPERTY_TYPES = {
    "BootImageID": "string", "Category": "string", "CustomHighImpactHeadline": "string",
    "CustomHighImpactSet": "uint32", "CustomHighImpactWarning": "string", "CustomHighImpactWarningInstall": "string",
    "CustomHighImpactWarningTop": "string", "Description": "string", "Duration": "uint32",
    "EstimatedDownloadSizeMB": "uint32", "EstimatedRunTimeMinutes": "uint32", "HighImpactTaskSequence": "uint32",
    "Name": "string", "PackageID": "string", "ProgramFlags": "uint32", "RestartRequired": "uint32",
    "Sequence": "string", "TsEnabled": "boolean", "Type": "uint32",
}


def object_xml(props: dict[str, Any]) -> str:
    """An ``SMS_TaskSequencePackage`` instance as the console writes it (only the properties it needs)."""
    lines = ['<INSTANCE CLASSNAME="SMS_TaskSequencePackage">']
    for name in sorted(props):
        value = props[name]
        if value is None:
            continue
        text = value if name == "Sequence" else escape(str(value))
        body = f"<![CDATA[{text}]]>" if name == "Sequence" else text
        lines.append(f'  <PROPERTY NAME="{name}" CLASSORIGIN="SMS_TaskSequencePackage" '
                     f'TYPE="{_PROPERTY_TYPES.get(name, "string")}">')
        lines.append(f"    <VALUE>{body}</VALUE>")
        lines.append("  </PROPERTY>")
    lines.append("</INSTANCE>")
    return "\r\n".join(lines) + "\r\n"


def _references_xml(refs: list[ExportedPackage], ts_id: str) -> str:
    items = []
    for ref in refs:
        instance = (
            '<INSTANCE CLASSNAME="SMS_TaskSequenceReferencesInfo">'
            f'<PROPERTY NAME="PackageID" TYPE="string"><VALUE>{escape(ts_id)}</VALUE></PROPERTY>'
            f'<PROPERTY NAME="ReferenceName" TYPE="string"><VALUE>{escape(ref.name)}</VALUE></PROPERTY>'
            f'<PROPERTY NAME="ReferencePackageID" TYPE="string"><VALUE>{escape(ref.package_id)}</VALUE></PROPERTY>'
            f'<PROPERTY NAME="ReferencePackageType" TYPE="uint32"><VALUE>{ref.package_type or 0}</VALUE></PROPERTY>'
            "</INSTANCE>")
        items.append(f"  <string>{escape(instance)}</string>")
    head = '<ArrayOfString xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ' \
           'xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
    return head + (">\r\n" + "\r\n".join(items) + "\r\n</ArrayOfString>" if items else " />")


def _carried_xml(ts_id: str, carried: dict[str, str]) -> str:
    attrs = "".join(f" {attr}={quoteattr(carried[key])}" for attr, key in _CARRIED_ATTRIBUTES.items()
                    if carried.get(key))
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n<ConfigMgrGitOps>\r\n'
            f"  <TaskSequence PackageID={quoteattr(ts_id)}{attrs} />\r\n</ConfigMgrGitOps>\r\n")


def write_console_export(path: Path, ts_id: str, props: dict[str, Any], refs: list[ExportedPackage],
                         carried: dict[str, str] | None = None) -> None:
    """A ZIP the console's Import Task Sequence wizard reads: one sequence, no content, no passwords.

    ``carried`` (``type``, ``folder``) goes into :data:`CARRIED_PART`, which only this tool reads back.
    """
    rel_id = uuid.uuid5(uuid.NAMESPACE_URL, ts_id).hex.upper()
    manifest = (
        '<LibraryDocument xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">\r\n  <Properties />\r\n  <Contents />\r\n  <EntryObjects>\r\n'
        f"    <Object Path=\"SMS_TaskSequencePackage.PackageID='{ts_id}'\" Type=\"SMS_TaskSequencePackage\" />\r\n"
        "  </EntryObjects>\r\n</LibraryDocument>")
    content_types = (
        '<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="text/xml" /><Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml" /></Types>')
    rels = (
        '<?xml version="1.0" encoding="utf-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        f'relationships"><Relationship Type="SMS_TaskSequencePackage" Target="/SMS_TaskSequencePackage/{ts_id}/'
        f'object.xml" TargetMode="External" Id="SMS_TaskSequencePackage-{rel_id}" /></Relationships>')
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "\ufeff" + content_types)
        archive.writestr("_rels/.rels", "\ufeff" + rels)
        archive.writestr("Manifest.xml", "\ufeff" + manifest)
        archive.writestr(f"SMS_TaskSequencePackage/{ts_id}/object.xml", object_xml(props))
        archive.writestr(f"SMS_TaskSequencePackage/{ts_id}/ReferencesInfo.xml", "\ufeff" + _references_xml(refs, ts_id))
        archive.writestr(f"SMS_TaskSequencePackage/{ts_id}/AppReferencesInfo.xml",
                         '\ufeff<ArrayOfString xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                         'xmlns:xsd="http://www.w3.org/2001/XMLSchema" />')
        if carried:
            archive.writestr(CARRIED_PART, _carried_xml(ts_id, carried))
