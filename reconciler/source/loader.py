"""Reading manifests into a DesiredState: every document validated, every problem located.

The loader never stops at the first problem: a reviewer wants every mistake of a pull request in
one run. Documents that fail validation are left out of the state (nothing downstream may act on
them) and reported as findings with file, line, column and field path.

Manifests may come from a pull request whose author is not the person who applies them, so what is read
stays in its box: which files of a folder are read, and how symlinks, non-regular files and sizes are
refused, is :mod:`reconciler.source.folder` (a Git tree follows the same rules, :mod:`reconciler.source.git`).
Mappings and lists nest at most ``MAX_YAML_DEPTH`` levels, groups at most ``MAX_GROUP_DEPTH``. A file or
folder that cannot be read is an error finding, so no plan (and no prune) is made without it.

This module holds the loading itself: files to documents, documents to objects and findings (one
document is validated by :mod:`reconciler.source.document`), and the parse cache's unit, the
:class:`FileResult`. What it produces, :class:`DesiredState` and :class:`LoadedObject`, is
:mod:`reconciler.source.desired`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from reconciler.collector import paused
from reconciler.config import DEFAULT_MAX_MANIFEST_BYTES
from reconciler.errors import Finding, Severity, Source
from reconciler.rules import examine
from reconciler.source.desired import LOCATOR_BUDGET, DesiredState, LoadedObject
from reconciler.source.document import MAX_GROUP_DEPTH, format_path, validate_document
from reconciler.source.folder import (
    MANIFEST_SUFFIXES,
    FoundFile,
    UnreadableManifest,
    iter_manifest_files,
    read_manifest_file,
    scan_folder,
    too_large,
)
from reconciler.source.yamlfile import (
    MAX_YAML_DEPTH,
    Locator,
    YamlProblem,
    decode,
    load_documents,
    problem_finding,
    too_deep,
)


@dataclass
class FileResult:
    """What one file holds: valid objects and findings. Cached by Git blob ID, so it can be renamed."""

    documents: int = 0
    objects: list[LoadedObject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def renamed(self, name: str) -> FileResult:
        def move(source: Source) -> Source:
            return replace(source, file=name)

        return FileResult(self.documents,
                          [replace(o, source=move(o.source)) for o in self.objects],
                          [replace(f, source=move(f.source)) for f in self.findings])


class FileCache(Protocol):
    def get(self, key: str) -> FileResult | None: ...

    def put(self, key: str, result: FileResult) -> None: ...


def _depth_finding(name: str, line: int, doc_index: int, locator: Locator) -> Finding:
    deep = locator.deeper_than(doc_index, MAX_YAML_DEPTH, line)
    source = Source(name, deep[0], deep[1]) if deep else Source(name, line)
    return Finding(Severity.ERROR, source, f"mappings and lists nest more than {MAX_YAML_DEPTH} levels deep here; a "
                   f"manifest may nest at most {MAX_YAML_DEPTH} (real ones use about 15)",
                   format_path(deep[2]) if deep else "", "depth")


def parse_file(name: str, raw: bytes) -> FileResult:
    result = FileResult()
    try:
        text = decode(raw, name)
        locator = Locator(text)  # composes the file only when a finding needs a line
        body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
        for doc in load_documents(body):
            result.documents += 1
            if too_deep(doc.data):
                result.findings.append(_depth_finding(name, doc.line, doc.index, locator))
                continue
            manifest, findings = validate_document(doc.data, name, doc.line, doc.index, locator)
            result.findings.extend(findings)
            if manifest is not None:
                facts, problems = examine(manifest)
                for problem in problems:
                    where = locator.locate(doc.index, problem.path, doc.line)
                    source = Source(name, where[0], where[1]) if where else Source(name, doc.line)
                    result.findings.append(Finding(Severity(problem.severity), source, problem.message,
                                                   format_path(problem.path), problem.rule,
                                                   f"{manifest.kind}/{manifest.metadata.name}"))
                digest = hashlib.sha256(repr(doc.data).encode("utf-8")).hexdigest()
                result.objects.append(LoadedObject.of(manifest, Source(name, doc.line), doc.index, digest, facts))
    except YamlProblem as problem:
        result.findings.append(problem_finding(problem, name))
    return result


#: (display name, read at most limit + 1 bytes, cache key such as a Git blob ID or None). The reader raises
#: UnreadableManifest for what is not read (too large, not a file, a symlink leaving the root).
Item = tuple[str, Callable[[int], bytes], str | None]


def load_texts(items: Iterable[Item], read_text: Callable[[str], str] | None = None,
               cache: FileCache | None = None, *, max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
               ) -> DesiredState:
    """Load manifests from (display name, read bytes, key) items: folders and Git trees share this."""
    with paused():
        return _load_texts(items, read_text, cache, max_file_bytes)


def _load_texts(items: Iterable[Item], read_text: Callable[[str], str] | None, cache: FileCache | None,
                max_file_bytes: int) -> DesiredState:
    state = DesiredState(read_text=read_text)
    for name, read, key in items:
        state.files += 1
        cached = cache.get(key) if cache is not None and key else None
        if cached is not None:
            result = cached.renamed(name)
        else:
            try:
                raw = read(max_file_bytes)
                if len(raw) > max_file_bytes:
                    raise too_large(max_file_bytes, max_file_bytes, at_least=True)
            except UnreadableManifest as exc:
                state.unread.append(name)
                state.findings.append(Finding(Severity.ERROR, Source(name), exc.message, rule=exc.rule))
                continue
            except OSError as exc:
                state.unread.append(name)
                state.findings.append(Finding(Severity.ERROR, Source(name),
                                              f"cannot be read: {exc.strerror or exc}", rule="io"))
                continue
            result = parse_file(name, raw)
            state.parsed += 1
            if cache is not None and key:
                cache.put(key, result)
        state.documents += result.documents
        state.objects.extend(result.objects)
        state.findings.extend(result.findings)
    return state


def load(path: str | os.PathLike[str], *, max_file_bytes: int = DEFAULT_MAX_MANIFEST_BYTES) -> DesiredState:
    """Load every manifest under a folder (or one file); see the module's rules for what is read."""
    root = Path(path)
    if not root.exists():
        state = DesiredState()
        state.findings.append(Finding(Severity.ERROR, Source(str(root)), "does not exist", rule="io"))
        state.unread.append(str(root))
        return state
    found = scan_folder(root)
    real = {f.display: f.real for f in found if f.real is not None}

    def reader(file: FoundFile) -> Callable[[int], bytes]:
        if file.real is None:
            def refuse(limit: int, problem: UnreadableManifest | None = file.problem) -> bytes:
                raise problem or UnreadableManifest("cannot be read")
            return refuse
        return lambda limit, path=file.real: read_manifest_file(path, limit)

    def read_text(name: str) -> str:
        return decode(read_manifest_file(real[name], max_file_bytes), name)

    return load_texts(((f.display, reader(f), None) for f in found), read_text=read_text,
                      max_file_bytes=max_file_bytes)


__all__ = ["LOCATOR_BUDGET", "MANIFEST_SUFFIXES", "MAX_GROUP_DEPTH", "DesiredState", "FileCache", "FileResult",
           "FoundFile", "Item", "LoadedObject", "UnreadableManifest", "format_path", "iter_manifest_files", "load",
           "load_texts", "parse_file", "read_manifest_file", "scan_folder", "too_large", "validate_document"]
