"""Console export ZIPs (the Export Task Sequence wizard's OPC package): read safely, write compatibly.

An export holds ``Manifest.xml``, ``[Content_Types].xml``, ``_rels/.rels``, and per object
``SMS_TaskSequencePackage/<ID>/object.xml`` (a CIM-XML instance whose ``Sequence`` property is the
task sequence XML), ``ReferencesInfo.xml`` (referenced packages with their names and types) and
``AppReferencesInfo.xml``; exported dependencies add ``SMS_Package/<ID>/object.xml``. Archives come
from other people: anything that could escape the output folder or exhaust the machine is refused
before a single file is written (:mod:`reconciler.safezip` reads the ZIP itself; the limits per part
are here).

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
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from reconciler.convert import MAX_XML_BYTES, instance_sequence, parse_bounded, quote
from reconciler.errors import CodecError, ReconcilerError
from reconciler.safezip import (
    MAX_DIRECTORY_BYTES,
    MAX_ENTRIES,
    MAX_RATIO,
    MAX_READ_TOTAL,
    MAX_UNCOMPRESSED,
    EntryReader,
    UnsafeArchive,
    check_archive,
    entry_where,
    open_archive,
)

#: The most each part import reads may expand to, counted while decompressing (a header's declared
#: size is never trusted). A task sequence's object.xml holds the sequence (ConfigMgr refuses one over
#: 2 MB; import reads up to :data:`~reconciler.convert.SEQUENCE_READ_LIMIT`) escaped inside CIM-XML, where
#: markup grows by about a third, and the package properties: 16 MiB leaves a wide margin (the largest
#: in the corpus is 165 KB). ReferencesInfo.xml holds about 700 bytes per referenced package.
OBJECT_XML_LIMIT = MAX_XML_BYTES
REFERENCES_LIMIT = 4 * 2**20
#: An exported package (SMS_Package/<ID>/object.xml: 15 KB in the corpus) and this tool's own part.
SMALL_PART_LIMIT = 1 * 2**20

#: A ConfigMgr package ID is a three-character site code and five hexadecimal digits (PS100294,
#: 2CM00010); the folder of an exported object is named after it and ends up in messages and comments.
_PACKAGE_ID = re.compile(r"[A-Za-z0-9]{1,16}")


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


def _instance_props(xml: bytes | str, where: str) -> dict[str, Any]:
    root = parse_bounded(xml, where=where)
    props: dict[str, Any] = {}
    for p in root:
        name = p.get("NAME")
        if name is None or name.startswith("__"):
            continue
        value = p.find("VALUE")
        props[name] = None if value is None else (value.text or "")
    return props


def _references(text: bytes, where: str) -> list[ExportedPackage]:
    root = parse_bounded(text, where=where)
    out = []
    for entry in root:
        if not entry.text:
            continue
        props = _instance_props(entry.text, where)
        if props.get("ReferencePackageID"):
            kind = props.get("ReferencePackageType")
            if kind not in (None, "") and not str(kind).isdigit():
                raise CodecError(f"ReferencePackageType of {quote(props['ReferencePackageID'])} is {quote(kind)}, "
                                 "not a number (ConfigMgr's PackageType)", where=where)
            out.append(ExportedPackage(props["ReferencePackageID"], props.get("ReferenceName") or "",
                                       int(kind) if kind not in (None, "") else None))
    return out


def _carried(text: bytes, where: str) -> dict[str, dict[str, str]]:
    """Type and folder per task sequence ID; the values are checked later, with the manifest they go into."""
    out: dict[str, dict[str, str]] = {}
    for entry in parse_bounded(text, where=where):
        package_id = entry.get("PackageID")
        if entry.tag == "TaskSequence" and package_id:
            out[package_id] = {key: entry.get(attr) or "" for attr, key in _CARRIED_ATTRIBUTES.items()
                               if entry.get(attr)}
    return out


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CodecError(f"is not UTF-8 text (byte {exc.start:,})", where=where) from None


def _package_id(value: str, where: str) -> str:
    if not _PACKAGE_ID.fullmatch(value):
        raise CodecError(f"the folder {quote(value)} is not a ConfigMgr package ID (such as PS100294)", where=where)
    return value


def read_console_export(path: Path) -> ConsoleExport:
    """The parts of a console export that import needs; anything unsafe, damaged or too large is refused.

    Only the parts listed in the module docstring are decompressed, each no further than its limit
    (:data:`OBJECT_XML_LIMIT`, :data:`REFERENCES_LIMIT`, :data:`SMALL_PART_LIMIT`). Content files
    are not in the archive: the console writes them to a ``<name>_files`` folder beside it, which
    import names and never reads.
    """
    where = str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UnsafeArchive(f"{where}: cannot be read ({exc.strerror or exc})") from None
    with handle, open_archive(handle, where) as archive:
        check_archive(archive, where)
        export = ConsoleExport(path)
        names = archive.namelist()
        if "Manifest.xml" not in names:
            raise ReconcilerError(f"{where}: no Manifest.xml; is this a ConfigMgr console export?")
        reader = EntryReader(handle, path)
        for info in archive.infolist():
            name = info.filename
            at = entry_where(path, name)
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "SMS_TaskSequencePackage" and parts[2] == "object.xml":
                ts_id = _package_id(parts[1], at)
                text = _text(reader.read(info, OBJECT_XML_LIMIT), at)
                _, props = instance_sequence(parse_bounded(text, where=at), at)
                export.task_sequences[ts_id] = (text, props)
            elif len(parts) == 3 and parts[0] == "SMS_TaskSequencePackage" and parts[2] == "ReferencesInfo.xml":
                for ref in _references(reader.read(info, REFERENCES_LIMIT), at):
                    export.references.setdefault(ref.package_id, ref)
            elif len(parts) == 3 and parts[0] == "SMS_Package" and parts[2] == "object.xml":
                package_id = _package_id(parts[1], at)
                props = _instance_props(reader.read(info, SMALL_PART_LIMIT), at)
                export.packages[package_id] = ExportedPackage(package_id, props.get("Name") or package_id, 0)
            elif name == CARRIED_PART:
                export.carried = _carried(reader.read(info, SMALL_PART_LIMIT), at)
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


__all__ = ["CARRIED_PART", "MAX_DIRECTORY_BYTES", "MAX_ENTRIES", "MAX_RATIO", "MAX_READ_TOTAL", "MAX_UNCOMPRESSED",
           "OBJECT_XML_LIMIT", "REFERENCES_LIMIT", "SMALL_PART_LIMIT", "ConsoleExport", "ExportedPackage",
           "UnsafeArchive", "check_archive", "entry_where", "object_xml", "read_console_export",
           "write_console_export"]
