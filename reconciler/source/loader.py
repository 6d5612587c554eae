"""Reading manifests into a DesiredState: every document validated, every problem located.

The loader never stops at the first problem: a reviewer wants every mistake of a pull request in
one run. Documents that fail validation are left out of the state (nothing downstream may act on
them) and reported as findings with file, line, column and field path.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from reconciler.collector import paused
from reconciler.errors import Finding, Severity, Source
from reconciler.models import API_VERSION, KINDS, Manifest
from reconciler.rules import ObjectFacts, examine
from reconciler.source.yamlfile import YamlProblem, decode, load_documents, locate, problem_finding

MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class LoadedObject:
    """A validated manifest and where it came from.

    The manifest is kept as its validated JSON and rebuilt on first use: a plan touches the models
    of the objects that changed, and a large repository then costs memory and time for those only.
    """

    kind: str
    name: str
    source: Source
    doc_index: int
    #: Hash of the document as read; equal documents have equal fingerprints (a plan's fast path).
    fingerprint: str
    payload: bytes
    facts: ObjectFacts = field(default_factory=ObjectFacts)
    cell: list[Manifest] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def of(cls, manifest: Manifest, source: Source, doc_index: int = 0, fingerprint: str = "",
           facts: ObjectFacts | None = None) -> LoadedObject:
        return cls(manifest.kind, manifest.metadata.name, source, doc_index, fingerprint,
                   manifest.model_dump_json(by_alias=True).encode("utf-8"), facts or examine(manifest)[0])

    @property
    def manifest(self) -> Manifest:
        if not self.cell:
            self.cell.append(KINDS[self.kind].model_validate_json(self.payload))  # type: ignore[arg-type]
        return self.cell[0]

    def __getstate__(self) -> tuple[object, ...]:
        # The parse cache stores objects without their rebuilt model.
        return (self.kind, self.name, self.source, self.doc_index, self.fingerprint, self.payload, self.facts)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(("kind", "name", "source", "doc_index", "fingerprint", "payload", "facts"), state,
                               strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "cell", [])

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class DesiredState:
    objects: list[LoadedObject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    documents: int = 0
    parsed: int = 0  # files actually parsed (the others came from the parse cache)
    #: returns the text of a file by its display name, for locating fields lazily
    read_text: Callable[[str], str] | None = None

    def of_kind(self, kind: str) -> list[LoadedObject]:
        return [o for o in self.objects if o.kind == kind]

    def locate(self, obj: LoadedObject, path: tuple[str | int, ...]) -> Source:
        """The source of a field inside an object's document (falls back to the document start)."""
        if self.read_text is None:
            return obj.source
        try:
            where = locate(self.read_text(obj.source.file), obj.doc_index, path)
        except (OSError, YamlProblem):
            where = None
        if where is None:
            return obj.source
        return Source(obj.source.file, where[0], where[1])


def iter_manifest_files(root: Path) -> Iterator[Path]:
    """Every *.yaml / *.yml under root, in a stable order, skipping hidden folders (.git, .reconcile)."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                yield Path(dirpath) / name


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[tuple[str | int, ...], tuple[Any, ...]]:
    """Map a pydantic error location onto the document: union tags in ``loc`` are not in the data."""
    path: list[str | int] = []
    node = data
    rest = list(loc)
    while rest:
        part = rest[0]
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == 0:
            pass  # "one or a list": a single mapping stands for a one-item list
        elif not (isinstance(node, dict | list) and isinstance(part, str)):
            break  # the location goes below what the document holds
        rest.pop(0)  # a union member tag: it names a model, not a key of the document
    return tuple(path), tuple(rest)


# -- "did you mean" ------------------------------------------------------------------------------


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _model_candidates(tp: Any, data: Any) -> list[type[BaseModel]]:
    """Model classes a value of annotation ``tp`` may be, narrowed by a discriminator when present."""
    discriminator = None
    while typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        for meta in args[1:]:
            if hasattr(meta, "discriminator") and callable(getattr(meta, "discriminator", None)):
                discriminator = meta.discriminator
        tp = args[0]
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        members = typing.get_args(tp)
        if discriminator is not None and data is not None:
            tag = discriminator(data)
            for member in members:
                if typing.get_origin(member) is typing.Annotated:
                    for meta in typing.get_args(member)[1:]:
                        if getattr(meta, "tag", None) == tag:
                            return _model_candidates(typing.get_args(member)[0], data)
        out: list[type[BaseModel]] = []
        for member in members:
            out.extend(_model_candidates(member, data))
        return out
    return []


def _list_item_models(model: type[BaseModel], data: Any, path: tuple[str | int, ...]) -> list[str] | None:
    """Allowed field names for the mapping at ``path`` (handles list items via their parent field)."""
    parent = path
    candidates: list[type[BaseModel]] = [model]
    node = data
    pending: Any = None
    for part in parent:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if pending is not None:
                candidates = []
                for item_tp in pending:
                    candidates.extend(_model_candidates(item_tp, node))
                pending = None
            continue
        child = node.get(part) if isinstance(node, dict) else None
        nxt: list[type[BaseModel]] = []
        items: list[Any] = []
        for cls in candidates:
            for name, info in cls.model_fields.items():
                if (info.alias or name) != part:
                    continue
                tp = info.annotation
                for meta in info.metadata:
                    tp = typing.Annotated[tp, meta]
                inner = _unwrap_optional(tp)
                if typing.get_origin(_strip(inner)) is list:
                    items.append(typing.get_args(_strip(inner))[0])
                else:
                    nxt.extend(_model_candidates(tp, child))
        if items:
            pending = items
            candidates = []
        else:
            candidates = nxt
        node = child
    if not candidates:
        return None
    return sorted({info.alias or n for cls in candidates for n, info in cls.model_fields.items()})


def _unwrap_optional(tp: Any) -> Any:
    base = _strip(tp)
    origin = typing.get_origin(base)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(base) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


_SHOW_INPUT = frozenset({
    "string_type", "int_type", "int_parsing", "int_from_float", "bool_type", "bool_parsing", "float_parsing",
    "datetime_type", "datetime_parsing", "datetime_from_date_parsing", "string_pattern_mismatch",
    "greater_than_equal", "less_than_equal", "greater_than", "less_than", "string_too_long", "list_type",
    "dict_type", "model_type", "model_attributes_type", "date_from_datetime_parsing",
})


def _message(error: Any, model: type[BaseModel], data: Any, path: tuple[str | int, ...]) -> tuple[str, str]:
    kind = error["type"]
    if kind == "extra_forbidden":
        unknown = str(path[-1]) if path else "?"
        allowed = _list_item_models(model, data, path[:-1]) or []
        close = difflib.get_close_matches(unknown, allowed, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        listing = f" Allowed here: {', '.join(allowed)}." if allowed and not close else ""
        return f"unknown field '{unknown}'{hint}{listing}", "unknown-field"
    if kind == "missing":
        return "is required but missing", "required"
    message = error["msg"]
    found = error.get("input")
    if kind == "string_type" and isinstance(found, bool | int | float):
        shown = str(found).lower() if isinstance(found, bool) else str(found)
        what = "boolean" if isinstance(found, bool) else "number"
        return (f"is the YAML {what} {shown}, not text; quote it to keep the exact text "
                f"(for example '{shown}')", "yaml-unquoted")
    if kind in ("enum", "literal_error"):
        expected = (error.get("ctx") or {}).get("expected")
        found = error.get("input")
        close = []
        if expected:
            options = [o.strip().strip("'") for o in str(expected).replace(" or ", ", ").split(",")]
            close = difflib.get_close_matches(str(found), options, n=1, cutoff=0.6)
        message = f"is {found!r}; allowed: {expected}" + (f"; did you mean '{close[0]}'?" if close else "")
    elif kind in _SHOW_INPUT and not isinstance(error.get("input"), dict | list):
        message = f"{message} (found {error.get('input')!r})"
    return message, kind.replace("_", "-")


def validate_document(
    data: Any, file: str, line: int, doc_index: int, read_text: Callable[[], str]
) -> tuple[Manifest | None, list[Finding]]:
    """Validate one YAML document against its kind; findings locate each problem in the file."""
    where = Source(file, line)
    if data is None:
        return None, []
    if not isinstance(data, dict):
        return None, [Finding(Severity.ERROR, where, f"a manifest must be a mapping, found {type(data).__name__}; "
                              "start it with apiVersion, kind, metadata and spec", rule="document")]
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    if api_version != API_VERSION:
        problems.append((("apiVersion",), f"is {api_version!r}; this tool reads apiVersion: {API_VERSION}",
                         "api-version"))
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append((("kind",), f"is {kind!r}{hint}; allowed kinds: {', '.join(KINDS)}", "kind"))
    name = data.get("metadata", {}).get("name") if isinstance(data.get("metadata"), dict) else None
    object_id = f"{kind}/{name}" if kind in KINDS and isinstance(name, str) else ""
    manifest = None
    if not problems:
        model = KINDS[str(kind)]
        try:
            manifest = model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                path, _ = _data_path(data, tuple(error["loc"]))
                if error["type"] == "extra_forbidden" and error["loc"]:
                    path = (*path, error["loc"][-1]) if path[-1:] != (error["loc"][-1],) else path
                message, rule = _message(error, model, data, path)
                problems.append((path, message, rule))
        except RecursionError:
            problems.append(((), "the document nests too deeply to validate", "document"))
    if not problems:
        return manifest, []  # type: ignore[return-value]
    text: str | None = None
    findings = []
    seen: set[tuple[Any, str]] = set()
    for path, message, rule in problems:
        if (path, message) in seen:
            continue
        seen.add((path, message))
        source = where
        if path:
            if text is None:
                text = read_text()
            loc = locate(text, doc_index, path)
            if loc is not None:
                source = Source(file, loc[0], loc[1])
        findings.append(Finding(Severity.ERROR, source, message, format_path(path), rule, object_id))
    return None, findings


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


def parse_file(name: str, raw: bytes) -> FileResult:
    result = FileResult()
    try:
        text = decode(raw, name)
        body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
        for doc in load_documents(body):
            result.documents += 1
            manifest, findings = validate_document(doc.data, name, doc.line, doc.index, lambda t=text: t)
            result.findings.extend(findings)
            if manifest is not None:
                facts, problems = examine(manifest)
                for problem in problems:
                    where = locate(text, doc.index, problem.path)
                    source = Source(name, where[0], where[1]) if where else Source(name, doc.line)
                    result.findings.append(Finding(Severity(problem.severity), source, problem.message,
                                                   format_path(problem.path), problem.rule,
                                                   f"{manifest.kind}/{manifest.metadata.name}"))
                digest = hashlib.sha256(repr(doc.data).encode("utf-8")).hexdigest()
                result.objects.append(LoadedObject.of(manifest, Source(name, doc.line), doc.index, digest, facts))
    except YamlProblem as problem:
        result.findings.append(problem_finding(problem, name))
    return result


#: (display name, read the bytes, cache key such as a Git blob ID or None)
Item = tuple[str, Callable[[], bytes], str | None]


def load_texts(items: Iterable[Item], read_text: Callable[[str], str] | None = None,
               cache: FileCache | None = None) -> DesiredState:
    """Load manifests from (display name, read bytes, key) items: folders and Git trees share this."""
    with paused():
        return _load_texts(items, read_text, cache)


def _load_texts(items: Iterable[Item], read_text: Callable[[str], str] | None, cache: FileCache | None
                ) -> DesiredState:
    state = DesiredState(read_text=read_text)
    for name, read, key in items:
        state.files += 1
        cached = cache.get(key) if cache is not None and key else None
        if cached is not None:
            result = cached.renamed(name)
        else:
            try:
                raw = read()
            except OSError as exc:
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


def load(path: str | os.PathLike[str]) -> DesiredState:
    """Load every manifest under a folder (or one file)."""
    root = Path(path)
    if not root.exists():
        state = DesiredState()
        state.findings.append(Finding(Severity.ERROR, Source(str(root)), "does not exist", rule="io"))
        return state
    files = list(iter_manifest_files(root))

    def display(p: Path) -> str:
        return str(p)

    state = load_texts(((display(p), p.read_bytes, None) for p in files),
                       read_text=lambda name: decode(Path(name).read_bytes(), name))
    return state
