"""Converting between ConfigMgr task sequence XML and TaskSequence manifests.

Reads a bare ``<sequence>`` (as stored in ``SMS_TaskSequencePackage.Sequence``, or an MDT ts.xml)
or a console export's ``object.xml``, whose package properties also fill in the console name,
description, boot image, high-impact settings, Software Center properties and enabled state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import ValidationError

from reconciler.errors import CodecError, ReconcilerError
from reconciler.models import API_VERSION, TaskSequence
from reconciler.models.tasksequence import TaskSequenceSpec
from reconciler.site.records import MAX_SEQUENCE_BYTES
from reconciler.source.loader import format_path
from reconciler.tsxml.sequence import (
    PackageResolver,
    SecretPlaceholder,
    find_sequence_text,
    iter_step_nodes,
    read_sequence,
    resolve_by_id,
    write_sequence,
)

#: ProgramFlags bit ConfigMgr sets on a disabled task sequence.
PROGRAM_FLAG_DISABLED = 0x1000

#: The largest XML document converted: a bare ``<sequence>`` or a console ``object.xml``, which holds
#: the sequence escaped inside CIM-XML (markup grows by about a third) and the package properties.
MAX_XML_BYTES = 16 * 2**20
#: ConfigMgr refuses a sequence over 2 MB, so no site exported a larger one; twice that leaves room for
#: another tool's indentation and bounds what converting costs (16 MiB of empty groups took 1.3 GB).
SEQUENCE_READ_LIMIT = 2 * MAX_SEQUENCE_BYTES
#: Elements nested deeper than this are refused before the step reader, which recurses, sees them.
#: Real sequences nest groups and conditions a handful of levels; 400 nested groups crash the reader.
MAX_XML_DEPTH = 64
#: Elements in one document, counted while it is parsed: 16 MiB of ``<a/>`` is 4 million elements and
#: 450 MB of tree. The corpus holds at most 14 elements per KiB of sequence (about 57,000 in the 4 MiB
#: read) and 3,118 in an object.xml; 100,000 empty groups take 180 MB to convert.
MAX_XML_ELEMENTS = 100_000
#: The longest prefix of a value a message quotes.
QUOTE_CHARS = 40


class InvalidSequence(CodecError):
    """The XML holds what a TaskSequence manifest, and ConfigMgr, cannot hold; one line per problem."""

    def __init__(self, problems: list[str], *, where: str = "") -> None:
        ReconcilerError.__init__(self, "\n".join(f"{where}: {p}" if where else p for p in problems))
        self.where = where
        self.problems = problems


def excerpt(value: Any) -> str:
    """A value as messages quote it: at most :data:`QUOTE_CHARS` characters, '…' when cut."""
    text = str(value)
    return repr(text) if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]!r}…"


def quote(value: Any) -> str:
    """:func:`excerpt`, with the length when the value was cut."""
    text = str(value)
    return excerpt(text) if len(text) <= QUOTE_CHARS else f"{excerpt(text)} ({len(text):,} characters)"


def read_xml_file(path: Path) -> bytes:
    """An XML file to convert, read no further than :data:`MAX_XML_BYTES` (``/dev/zero`` ends too)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise CodecError(f"cannot be read ({exc.strerror or exc})", where=str(path)) from None
    if len(data) > MAX_XML_BYTES:
        raise CodecError(f"is larger than {MAX_XML_BYTES // 2**20} MiB; task sequence XML is never that large "
                         f"(ConfigMgr refuses a sequence over {MAX_SEQUENCE_BYTES // 2**20} MB)", where=str(path))
    return data


def check_sequence_size(text: str | bytes, where: str) -> None:
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > SEQUENCE_READ_LIMIT:
        raise CodecError(f"the sequence is {size:,} bytes; ConfigMgr refuses a sequence over {MAX_SEQUENCE_BYTES:,} "
                         f"bytes (2 MB), and convert reads at most {SEQUENCE_READ_LIMIT:,}", where=where)


class _BoundedTreeBuilder(TreeBuilder):
    """Builds the tree, refusing more elements or deeper nesting than any task sequence document has."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self._where = where
        self._count = 0
        self._depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._count += 1
        self._depth += 1
        if self._depth > MAX_XML_DEPTH:
            raise CodecError(f"elements are nested more than {MAX_XML_DEPTH} deep (at <{excerpt(tag)[1:-1]}>); "
                             "a task sequence nests groups and conditions a few levels", where=self._where)
        if self._count > MAX_XML_ELEMENTS:
            raise CodecError(f"holds more than {MAX_XML_ELEMENTS:,} elements; a task sequence document has a few "
                             "thousand", where=self._where)
        return super().start(tag, attrs)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return super().end(tag)


def parse_bounded(text: str | bytes, where: str = "") -> Element:
    """Parse XML from other people as :func:`~reconciler.tsxml.xmltext.parse` does (no DTDs, no entities),
    refusing too many elements or too deep a nesting while parsing, before the tree takes the memory."""
    parser = DefusedXMLParser(target=_BoundedTreeBuilder(where))
    try:
        parser.feed(text)
        return parser.close()  # type: ignore[no-any-return]
    except ParseError as exc:
        line, column = exc.position
        raise CodecError(f"malformed XML at line {line}, column {column + 1}: {exc.msg}", where=where) from None
    except DefusedXmlException as exc:
        raise CodecError(f"refused unsafe XML ({type(exc).__name__}): DTDs and entities are not allowed",
                         where=where) from None


def _clip(text: str, keep: int = 200) -> str:
    return text if len(text) <= keep else f"{text[:keep]}… ({len(text):,} characters)"


def _located(exc: CodecError, where: str) -> CodecError:
    """The step reader's error naming the file (or archive entry) first, and no more than a prefix of a value.

    The reader names the step it was in by its name, which can be any length before it is validated.
    """
    message = str(exc)
    if exc.where and message.startswith(f"{exc.where}: "):
        message = message[len(exc.where) + 2:]
    if exc.where and exc.where != where:
        message = f"step {excerpt(exc.where)}: {message}"
    return CodecError(_clip(message), where=where)


#: ``SMS_TaskSequencePackage`` properties a manifest reads, each a single value (never a PROPERTY.ARRAY).
_SINGLE_VALUED = ("Name", "Description", "Sequence", "PackageID", "BootImageID", "Category", "ProgramFlags",
                  "TsEnabled", "HighImpactTaskSequence", "CustomHighImpactSet", "CustomHighImpactHeadline",
                  "CustomHighImpactWarningTop", "CustomHighImpactWarning", "CustomHighImpactWarningInstall",
                  "RestartRequired", "EstimatedDownloadSizeMB", "EstimatedRunTimeMinutes", "Duration")


def instance_sequence(root: Element, where: str) -> tuple[str, dict[str, Any]]:
    """The Sequence and the properties of a console ``object.xml``, checked for what a manifest reads."""
    sequence, props = find_sequence_text(root, where)
    for name in _SINGLE_VALUED:
        if isinstance(props.get(name), list):
            raise CodecError(f"the {name} property is an array; ConfigMgr's {name} is a single value", where=where)
    check_sequence_size(sequence, where)
    return sequence, props


#: Manifest fields named as the XML names them.
_XML_NAMES = {("spec", "name"): "the Name property", ("spec", "description"): "the Description property"}


def _document_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """A pydantic error location in ``data``'s terms: union member tags in ``loc`` are not keys of the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        elif isinstance(node, dict | list):
            continue  # a union member's tag, or "one or a list" given one
        else:
            break
        path.append(part)
    return tuple(path)


def _field_name(manifest: dict[str, Any], path: tuple[str | int, ...]) -> str:
    if path in _XML_NAMES:
        return f"{_XML_NAMES[path]} ({format_path(path)})"
    if len(path) > 2 and path[1] == "steps" and path[-1] in ("name", "group", "description"):
        node: Any = manifest
        for part in path[:-1]:
            node = node[part]
        what = "group" if isinstance(node, dict) and "group" in node else "step"
        field_name = "description" if path[-1] == "description" else "name"
        return f"the {field_name} of the {what} at {format_path(path[:-1])}"
    return format_path(path) or "the document"


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """Why ``manifest`` is not a valid TaskSequence, one line each in ConfigMgr's terms; empty when valid.

    A message quotes no more than a short prefix of a value: XML from an export can hold anything.
    """
    try:
        TaskSequence.model_validate(manifest)
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors(include_url=False):
            path = _document_path(manifest, tuple(error["loc"]))
            field_name = _field_name(manifest, path)
            value = error.get("input")
            allowed = None
            if error["type"] == "string_too_long":
                allowed = f"at most {(error.get('ctx') or {}).get('max_length')}"
            elif isinstance(value, str):
                found = re.search(r"\b(at most \d+|\d+ to \d+)\b", error["msg"])
                allowed = found.group(1) if found else None
            if allowed is not None and isinstance(value, str):
                problems.append(f"{field_name} is {len(value):,} characters ({excerpt(value)}); "
                                f"ConfigMgr allows {allowed}")
            else:
                message = error["msg"]
                problems.append(f"{field_name}: {message[:200]}{'…' if len(message) > 200 else ''}")
        return list(dict.fromkeys(problems))
    except RecursionError:
        return ["the steps nest too deeply to validate"]
    return []


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
    """A TaskSequence manifest (YAML shape) from sequence XML or a console object.xml.

    XML comes from other people: a size, a nesting depth or a value ConfigMgr would not hold is a
    :class:`~reconciler.errors.CodecError` naming ``where`` (:class:`InvalidSequence` lists every value).
    """
    root = parse_bounded(text, where=where)
    props: dict[str, Any] = {}
    sequence_text: str | bytes = text
    if root.tag == "INSTANCE":
        sequence_text, props = instance_sequence(root, where)
        parse_bounded(sequence_text, where=f"{where} (Sequence property)")
    else:
        check_sequence_size(text, where)
    try:
        result = read_sequence(sequence_text, where=where)
    except RecursionError:
        raise CodecError("the sequence nests too deeply to read", where=where) from None
    except CodecError as exc:
        raise _located(exc, where) from None
    # A console name is ConfigMgr's (at most 50 characters: longer is an error); a name made up from the
    # file name is cut to fit.
    console_name = props.get("Name")
    if not console_name:
        console_name = ((result.spec.get("xml") or {}).get("attributes", {}).get("name")
                        or name or default_name)[:50]
    spec: dict[str, Any] = {"name": console_name}
    spec.update(_package_spec(props))
    spec["type"] = infer_type(result.spec["steps"])
    spec.update(result.spec)
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "TaskSequence",
        "metadata": {"name": slug(name or console_name)},
        "spec": spec,
    }
    # Validate now: a converted manifest that the loader would refuse is an error, not output.
    problems = manifest_problems(manifest)
    if problems:
        raise InvalidSequence(problems, where=where)
    return Converted(manifest, result.secrets, props.get("PackageID"))


def manifest_to_xml(ts: TaskSequence, resolve: PackageResolver = resolve_by_id, indent: str | None = "  ") -> str:
    """The ``<sequence>`` XML of a TaskSequence manifest (secrets empty: they are resolved only at apply)."""
    return write_sequence(spec_document(ts.spec), resolve=resolve, indent=indent)


def spec_document(spec: TaskSequenceSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True, exclude_none=True, mode="json")
