"""Hostile console export ZIPs and XML: each ends in one clear line naming the archive entry, nothing written.

The archives are built byte by byte here (a ZIP writer that lets a header say anything), from a real
console export in the corpus, so what is wrong is exactly one thing at a time.
"""

from __future__ import annotations

import io
import os
import re
import struct
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.archive import OBJECT_XML_LIMIT, UnsafeArchive
from reconciler.cli import cli
from reconciler.errors import CodecError, ReconcilerError
from reconciler.export import import_zip
from tests.conftest import CORPUS

SOURCE = CORPUS / "zips" / "DRFiles__TS-BitLocker.zip"
OBJECT = "SMS_TaskSequencePackage/PS100294/object.xml"
REFERENCES = "SMS_TaskSequencePackage/PS100294/ReferencesInfo.xml"


# -- a ZIP writer that writes whatever a header should say -----------------------------------------------

@dataclass
class Member:
    name: str
    data: bytes = b""
    method: int = zipfile.ZIP_DEFLATED
    raw: bytes | None = None  # compressed bytes as they are to be stored (``data`` is then ignored)
    crc: int | None = None  # None: the CRC of ``data``
    size: int | None = None  # declared uncompressed size; None: len(data)
    mode: int = 0o100644


def build(members: list[Member]) -> bytes:
    out = io.BytesIO()
    central = []
    for m in members:
        raw = m.raw if m.raw is not None else (
            m.data if m.method == zipfile.ZIP_STORED else _deflate(m.data))
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        size = len(m.data) if m.size is None else m.size
        name = m.name.encode()
        offset = out.tell()
        out.write(struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 20, 0x800, m.method, 0, 0x21, crc, len(raw), size,
                              len(name), 0) + name + raw)
        central.append(struct.pack("<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", 0x314, 20, 0x800, m.method, 0, 0x21, crc,
                                   len(raw), size, len(name), 0, 0, 0, 0, m.mode << 16, offset) + name)
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    count = min(len(members), 0xFFFF)
    out.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, count, count, len(directory), start, 0))
    return out.getvalue()


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def corpus_members() -> list[Member]:
    with zipfile.ZipFile(SOURCE) as archive:
        return [Member(info.filename, archive.read(info)) for info in archive.infolist()]


def replaced(**changes: Member | bytes | None) -> list[Member]:
    """The corpus export with entries replaced (a Member or new data) or dropped (None), by short name."""
    names = {"object": OBJECT, "references": REFERENCES, "manifest": "Manifest.xml"}
    out = []
    for member in corpus_members():
        key = next((k for k, v in names.items() if v == member.name), None)
        if key in changes:
            change = changes[key]
            if change is None:
                continue
            member = change if isinstance(change, Member) else Member(member.name, change)
        out.append(member)
    return out


def object_xml() -> str:
    with zipfile.ZipFile(SOURCE) as archive:
        return archive.read(OBJECT).decode("utf-8-sig")


def with_property(name: str, value: str) -> bytes:
    """The corpus object.xml with one CIM property's value replaced."""
    text = object_xml()
    pattern = re.compile(rf'(<PROPERTY NAME="{name}"[^>]*>.*?</QUALIFIER>\s*<VALUE>)(.*?)(</VALUE>)', re.S)
    assert pattern.search(text), name
    return pattern.sub(lambda m: m.group(1) + value + m.group(3), text, count=1).encode()


def with_array(name: str) -> bytes:
    """The corpus object.xml with one CIM property written as an array."""
    pattern = re.compile(rf'<PROPERTY NAME="{name}"[^>]*>.*?</PROPERTY>', re.S)
    array = (f'<PROPERTY.ARRAY NAME="{name}" TYPE="string"><VALUE.ARRAY><VALUE>a</VALUE><VALUE>b</VALUE>'
             "</VALUE.ARRAY></PROPERTY.ARRAY>")
    return pattern.sub(lambda _: array, object_xml(), count=1).encode()


def with_sequence(sequence: str) -> bytes:
    escaped = sequence.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return with_property("Sequence", escaped)


def refused(tmp_path: Path, data: bytes, error: type[ReconcilerError] = ReconcilerError) -> str:
    """Import ``data`` through the CLI and the library: one 'error:' line, exit 1, nothing written."""
    archive = tmp_path / "export.zip"
    archive.write_bytes(data)
    with pytest.raises(error) as caught:
        import_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(cli, ["import", str(archive), "--out", str(tmp_path / "cli-out")])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(f"error: {archive}") for line in lines), lines
    assert "Traceback" not in result.output and not (tmp_path / "cli-out").exists()
    return str(caught.value)


# -- damaged archives and lying headers ------------------------------------------------------------------

def _directory_cut(data: bytes) -> bytes:
    start = data.rfind(b"PK\x01\x02")
    return data[:start + 20] + data[data.rfind(b"PK\x05\x06"):]


def _middle_cut(data: bytes) -> bytes:
    """1,000 bytes of object.xml gone: the directory still lists it, at offsets that no longer hold it."""
    at = data.index(OBJECT.encode()) + 2000
    return data[:at] + data[at + 1000:]


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: b"this is not an archive" * 40, "not a readable ZIP file"),
    (lambda: _directory_cut(build(corpus_members())), "not a readable ZIP file"),
    (lambda: build(corpus_members())[:-10], "not a readable ZIP file"),
    (lambda: _middle_cut(build(corpus_members())), f"entry '{OBJECT}': its local header is missing"),
])
def test_a_file_that_is_no_zip_or_has_a_cut_directory_is_refused_in_one_line(tmp_path: Path, make, expected: str
                                                                              ) -> None:
    message = refused(tmp_path, make(), UnsafeArchive)
    assert expected in message and "\n" not in message


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1:]


@pytest.mark.parametrize(("member", "expected"), [
    # The CRC in both headers says something else.
    (lambda data: Member(OBJECT, data, crc=zlib.crc32(data) ^ 1), "fails its CRC-32 check"),
    # A stored entry whose bytes were changed.
    (lambda data: Member(OBJECT, data, method=zipfile.ZIP_STORED, raw=_flipped(data, 500), crc=zlib.crc32(data)),
     "fails its CRC-32 check"),
    # A damaged deflate stream.
    (lambda data: Member(OBJECT, data, raw=_flipped(_deflate(data), 40)), "damaged"),
    # The header declares less than the data holds, or more.
    (lambda data: Member(OBJECT, data, size=len(data) - 1000), "holds more than the"),
    (lambda data: Member(OBJECT, data, size=len(data) + 1000), "not the"),
    # A stored entry whose sizes disagree.
    (lambda data: Member(OBJECT, data, method=zipfile.ZIP_STORED, size=len(data) - 1), "stored uncompressed in"),
    # The compressed size covers more than the deflate stream.
    (lambda data: Member(OBJECT, data, raw=_deflate(data) + b"\0" * 64), "ends before the"),
    # Encryption and compression methods a console export never uses.
    (lambda data: Member(OBJECT, data, method=zipfile.ZIP_LZMA, raw=b"x" * len(data)), "compression method 14"),
])
def test_a_damaged_entry_or_a_lying_header_is_refused_naming_the_entry(tmp_path: Path, member, expected: str
                                                                        ) -> None:
    data = object_xml().encode()
    message = refused(tmp_path, build(replaced(object=member(data))), UnsafeArchive)
    assert message.startswith(f"{tmp_path / 'export.zip'}: entry '{OBJECT}': ") and expected in message, message
    assert "\n" not in message


def test_an_entry_whose_local_header_names_another_file_is_refused(tmp_path: Path) -> None:
    data = build(replaced())
    at = data.index(OBJECT.encode())  # the first occurrence is the local header's
    forged = data[:at] + OBJECT.replace("object", "OBJECT").encode() + data[at + len(OBJECT):]
    assert "its local header names" in refused(tmp_path, forged, UnsafeArchive)


# -- memory stays bounded ---------------------------------------------------------------------------------

def _bomb(blocks: int) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``blocks`` MiB at about 30:1 (33 KiB of noise per MiB), with its CRC."""
    block = os.urandom(33 * 1024) + bytes(2**20 - 33 * 1024)
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    once = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)  # a full flush: every copy is the same bytes
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    return once * blocks + packer.flush(), crc, blocks * 2**20


def _peak_import(archive: Path, out: Path) -> tuple[str, int]:
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchive) as caught:
            import_zip(archive, out)
        return str(caught.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_1_gb_object_xml_at_30_to_1_is_refused_with_little_memory(tmp_path: Path) -> None:
    """The audit's bomb: 34 MB of ZIP, 1,000 MiB of object.xml, within the ratio and overall size limits."""
    raw, crc, size = _bomb(1000)
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(build(replaced(object=Member(OBJECT, raw=raw, crc=crc, size=size))))
    assert 30 < archive.stat().st_size / 2**20 < 40
    message, peak = _peak_import(archive, tmp_path / "out")
    assert f"entry '{OBJECT}': declares 1,048,576,000 bytes; this part is at most 16 MiB" in message
    assert peak < 200 * 2**20 and not (tmp_path / "out").exists()


def test_a_bomb_behind_a_small_declared_size_stops_at_that_size(tmp_path: Path) -> None:
    """A header that declares 1 MiB for 200 MiB of data: the bytes that come out are counted, not the header."""
    raw, crc, _ = _bomb(200)
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(build(replaced(object=Member(OBJECT, raw=raw, crc=crc, size=2**20))))
    message, peak = _peak_import(archive, tmp_path / "out")
    assert "holds more than the 1,048,576 bytes its header declares" in message
    assert peak < 32 * 2**20 and not (tmp_path / "out").exists()


def test_an_object_xml_larger_than_its_limit_is_refused(tmp_path: Path) -> None:
    data = b"<INSTANCE>" + b" " * OBJECT_XML_LIMIT + b"</INSTANCE>"
    message = refused(tmp_path, build(replaced(object=Member(OBJECT, data, method=zipfile.ZIP_STORED))),
                      UnsafeArchive)
    assert f"declares {len(data):,} bytes; this part is at most 16 MiB" in message


def test_a_central_directory_of_300000_entries_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    archive.write_bytes(build(replaced() + [Member(f"{i}", method=zipfile.ZIP_STORED) for i in range(300_000)]))
    message, peak = _peak_import(archive, tmp_path / "out")
    assert "its central directory is" in message and "refused" in message
    assert peak < 200 * 2**20


# -- values longer than ConfigMgr allows ------------------------------------------------------------------

def test_a_600_character_description_is_an_error_naming_the_entry_the_field_and_the_limit(tmp_path: Path) -> None:
    text = "Lorem ipsum dolor sit amet " * 22 + "THE-END"
    message = refused(tmp_path, build(replaced(object=with_property("Description", text))), CodecError)
    assert message == (f"{tmp_path / 'export.zip'}: entry '{OBJECT}': the Description property (spec.description) "
                       f"is {len(text)} characters ({text[:40]!r}…); ConfigMgr allows at most 512")
    assert "THE-END" not in message


def test_a_console_name_over_50_characters_is_an_error_not_cut(tmp_path: Path) -> None:
    name = "N" * 60
    message = refused(tmp_path, build(replaced(object=with_property("Name", name))), CodecError)
    assert "the Name property (spec.name) is 60 characters" in message and "at most 50" in message


def _long_step_sequence(step_name: str) -> str:
    return (f'<sequence version="3.10"><step type="SMS_TaskSequence_RunCommandLineAction" name="{step_name}" '
            'description=""><action>cmd.exe /c exit 0</action><defaultVarList>'
            '<variable name="CommandLine" property="CommandLine">cmd.exe /c exit 0</variable>'
            '</defaultVarList></step></sequence>')


def test_a_600_character_step_name_in_an_archive_is_an_error_naming_the_step(tmp_path: Path) -> None:
    message = refused(tmp_path, build(replaced(object=with_sequence(_long_step_sequence("S" * 600)))), CodecError)
    assert message.endswith("the name of the step at spec.steps[0] is 600 characters "
                            f"({'S' * 40!r}…); ConfigMgr allows 1 to 100")


def test_convert_reports_a_600_character_step_name_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "long.xml"
    source.write_text(_long_step_sequence("Step " + "x" * 595))
    result = CliRunner().invoke(cli, ["convert", str(source)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (f"error: {source}: the name of the step at spec.steps[0] is 600 characters "
                             f"({('Step ' + 'x' * 35)!r}…); ConfigMgr allows 1 to 100\n")


def test_convert_lists_every_value_too_long_one_line_each(tmp_path: Path) -> None:
    source = tmp_path / "object.xml"
    source.write_bytes(with_property("Description", "D" * 600).replace(b'name="', b'name="' + b"n" * 120, 1))
    result = CliRunner().invoke(cli, ["convert", str(source)])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and len(lines) == 2, lines
    assert all(line.startswith(f"error: {source}: ") and len(line) < 300 for line in lines)


def test_convert_refuses_a_file_larger_than_any_task_sequence(tmp_path: Path) -> None:
    source = tmp_path / "huge.xml"
    source.write_bytes(b"<sequence>" + b" " * OBJECT_XML_LIMIT + b"</sequence>")
    result = CliRunner().invoke(cli, ["convert", str(source)])
    assert result.exit_code == 1 and result.stderr == (
        f"error: {source}: is larger than 16 MiB; task sequence XML is never that large "
        "(ConfigMgr refuses a sequence over 2 MB)\n")


def test_convert_refuses_a_sequence_nested_deeper_than_any_real_one(tmp_path: Path) -> None:
    source = tmp_path / "deep.xml"
    source.write_text('<sequence version="3.10">' + '<group name="g">' * 5000 + "</group>" * 5000 + "</sequence>")
    result = CliRunner().invoke(cli, ["convert", str(source)])
    assert result.exit_code == 1 and "nested more than 64 deep" in result.stderr
    assert len(result.stderr.splitlines()) == 1


# -- duplicate names --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("second", "expected"), [
    (OBJECT, f"entry '{OBJECT}' is in the archive twice"),
    (OBJECT.upper(), "differ only in case or separators"),
    (OBJECT.replace("/", "\\"), "differ only in case or separators"),
])
def test_two_entries_for_one_file_are_refused(tmp_path: Path, second: str, expected: str) -> None:
    members = replaced()
    members.append(Member(second, with_property("Description", "the other one")))
    message = refused(tmp_path, build(members), UnsafeArchive)
    assert expected in message


def test_two_sequences_whose_names_make_the_same_file_are_both_imported(tmp_path: Path) -> None:
    members = replaced(object=with_property("Name", "OSD - Win 11"))
    members.append(Member(OBJECT.replace("PS100294", "PS100295"), with_property("Name", "OSD Win 11")))
    result = import_zip(_write(tmp_path, build(members)), tmp_path / "out")
    assert sorted(p.name for p in result.written) == ["osd-win-11-2.yaml", "osd-win-11.yaml"]
    assert "name: OSD Win 11" in (tmp_path / "out" / "task-sequences" / "osd-win-11-2.yaml").read_text()


def _write(tmp_path: Path, data: bytes) -> Path:
    archive = tmp_path / "export.zip"
    archive.write_bytes(data)
    return archive


# -- everything else a hostile archive holds --------------------------------------------------------------

@pytest.mark.parametrize(("changes", "entry", "expected"), [
    ({"object": b"<INSTANCE><PROPERTY"}, OBJECT, "malformed XML"),
    ({"object": with_property("Sequence", "&lt;sequence&gt;&lt;group")}, OBJECT, "malformed XML"),
    ({"object": with_property("Sequence", "")}, OBJECT, "no Sequence property"),
    ({"object": with_sequence("<notasequence/>")}, OBJECT, "expected <sequence>"),
    ({"object": with_array("Name")}, OBJECT, "the Name property is an array"),
    ({"object": with_array("Sequence")}, OBJECT, "the Sequence property is an array"),
    ({"object": with_array("BootImageID")}, OBJECT, "the BootImageID property is an array"),
    ({"object": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><INSTANCE>&a;</INSTANCE>'}, OBJECT,
     "refused unsafe XML"),
    ({"object": b"\xff\xfe<INSTANCE>\xff</INSTANCE>"}, OBJECT, "not UTF-8"),
    ({"object": with_sequence('<sequence version="3.10">' + "<group name='g'>" * 100 + "</group>" * 100
                              + "</sequence>")}, OBJECT, "nested more than 64 deep"),
    # Stored: so repetitive a part is refused as a zip bomb when compressed.
    ({"object": Member(OBJECT, b"<INSTANCE>" + b"<a/>" * 150_000 + b"</INSTANCE>", method=zipfile.ZIP_STORED)},
     OBJECT, "more than 100,000 elements"),
    ({"object": Member(OBJECT, with_sequence('<sequence version="3.10">' + "<group name='g'/>" * 150_000
                                             + "</sequence>"), method=zipfile.ZIP_STORED)},
     OBJECT, "more than 100,000 elements"),
    ({"references": b"<ArrayOfString><string>"}, REFERENCES, "malformed XML"),
    ({"references": b"<ArrayOfString><string>&lt;INSTANCE&gt;</string></ArrayOfString>"}, REFERENCES,
     "malformed XML"),
    ({"references": b"<ArrayOfString><string>&lt;INSTANCE&gt;&lt;PROPERTY NAME='ReferencePackageID'&gt;&lt;VALUE&gt;"
                    b"PS1&lt;/VALUE&gt;&lt;/PROPERTY&gt;&lt;PROPERTY NAME='ReferencePackageType'&gt;&lt;VALUE&gt;"
                    b"boot&lt;/VALUE&gt;&lt;/PROPERTY&gt;&lt;/INSTANCE&gt;</string></ArrayOfString>"}, REFERENCES,
     "ReferencePackageType of 'PS1' is 'boot', not a number"),
    ({"manifest": None}, None, "no Manifest.xml"),
    ({"object": None}, None, "holds no task sequence"),
])
def test_every_part_that_cannot_be_read_is_one_line_naming_its_entry(tmp_path: Path, changes: dict,
                                                                     entry: str | None, expected: str) -> None:
    message = refused(tmp_path, build(replaced(**changes)))
    assert expected in message and "\n" not in message, message
    if entry:
        assert f"entry '{entry}'" in message


@pytest.mark.parametrize("folder", ["PS1\nkind: Evil", "PS 100294", "x" * 40])
def test_an_object_folder_that_is_not_a_package_id_is_refused(tmp_path: Path, folder: str) -> None:
    members = [*replaced(object=None), Member(f"SMS_TaskSequencePackage/{folder}/object.xml", object_xml().encode())]
    message = refused(tmp_path, build(members), CodecError)
    assert "is not a ConfigMgr package ID" in message and "\n" not in message


def test_other_parts_have_their_own_limits(tmp_path: Path) -> None:
    data = b"<ArrayOfString>" + b" " * 5 * 2**20 + b"</ArrayOfString>"
    message = refused(tmp_path, build(replaced(references=Member(REFERENCES, data, method=zipfile.ZIP_STORED))),
                      UnsafeArchive)
    assert f"entry '{REFERENCES}': declares" in message and "at most 4 MiB" in message


# -- fuzz: mutated real exports -------------------------------------------------------------------------

def _check_import(tmp_path: Path, data: bytes) -> None:
    """Import either succeeds or raises the product's typed error, and then writes nothing."""
    archive = tmp_path / "fuzz.zip"
    archive.write_bytes(data)
    out = tmp_path / "fuzz-out"
    try:
        import_zip(archive, out)
    except ReconcilerError:
        assert not out.exists()
    else:
        for path in sorted(out.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        out.rmdir()


_DEFLATED = build(corpus_members())
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(_DEFLATED) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, len(_DEFLATED))))
def test_mutated_archive_bytes_import_or_fail_cleanly(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None
                                                      ) -> None:
    data = bytearray(_DEFLATED)
    for at, value in edits:
        data[at] = value
    _check_import(tmp_path, bytes(data if cut is None else data[:cut]))


_OBJECT = object_xml().encode()


#: What the XML fuzz writes over or into object.xml: markup, escapes, bad bytes, and a value too long.
_TOKENS = [b"<", b">", b"&", b";", b'"', b"=", b"/", b"\x00", b"\xff", b"&lt;", b"&gt;", b"&quot;", b"&#0;",
           b"]]>", b"<![CDATA[", b"<group name='g'>", b"</step>", b"&lt;group name=&quot;g&quot;&gt;", b"x" * 600]


@_FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(_OBJECT) - 1), st.sampled_from(_TOKENS), st.booleans()),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, len(_OBJECT))))
def test_mutated_object_xml_imports_or_fails_cleanly(tmp_path: Path, edits: list[tuple[int, bytes, bool]],
                                                     cut: int | None) -> None:
    data = _OBJECT if cut is None else _OBJECT[:cut]
    for at, token, insert in edits:
        data = data[:at] + token + data[at + (0 if insert else len(token)):]
    _check_import(tmp_path, build(replaced(object=data)))
