"""Reading manifests into a DesiredState: every document validated, every problem located.

The loader never stops at the first problem: a reviewer wants every mistake of a pull request in
one run. Documents that fail validation are left out of the state (nothing downstream may act on
them) and reported as findings with file, line, column and field path.

Manifests may come from a pull request whose author is not the person who applies them, so what is read
stays in its box (the rules are the same for a folder and a Git tree, see :mod:`reconciler.source.git`):

- A symlink is followed when its target resolves inside the manifests root; a symlink that leaves the
  root, dangles or loops is an error. A symlink to a file the tool never reads (not ``*.yaml`` /
  ``*.yml``) is left alone wherever it points.
- Only regular files are read (never a device or a FIFO), and never more than ``max_file_bytes``.
- Mappings and lists nest at most ``MAX_YAML_DEPTH`` levels, groups at most ``MAX_GROUP_DEPTH``.
- A file or folder that cannot be read is an error finding, so no plan (and no prune) is made without it.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import os
import stat
import typing
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from reconciler.collector import paused
from reconciler.config import CONFIG_FILE, DEFAULT_MAX_MANIFEST_BYTES
from reconciler.errors import QUOTE_CHARS, Finding, ReconcilerError, Severity, Source, shorten
from reconciler.models import API_VERSION, KINDS, Manifest
from reconciler.rules import ObjectFacts, examine
from reconciler.source.yamlfile import (
    MAX_YAML_DEPTH,
    Locator,
    YamlProblem,
    decode,
    load_documents,
    problem_finding,
    too_deep,
)

MANIFEST_SUFFIXES = (".yaml", ".yml")

#: Deepest nesting of groups in a task sequence. ConfigMgr documents no limit; the deepest real sequence in the
#: corpus nests 4 groups. About 100 nested groups break applying (pydantic stops reading the manifest's JSON near
#: 200 levels, and each group is two). 16 is four times what real sequences use and far below what breaks; deeper
#: structure belongs in a child task sequence.
MAX_GROUP_DEPTH = 16

#: Characters of manifest text a DesiredState keeps for locating fields (a Locator holds about twice its text);
#: the file asked about last is kept whatever its size, so a file is read once per run of questions about it.
LOCATOR_BUDGET = 8_000_000


class UnreadableManifest(ReconcilerError):
    """A manifest file or folder that is not read: too large, not a regular file, a symlink leaving the root.

    Loading turns it into an error finding naming the file, so nothing is planned without the file.
    """

    def __init__(self, message: str, rule: str = "io") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


def too_large(size: int, limit: int, *, at_least: bool = False) -> UnreadableManifest:
    more = "more than " if at_least else ""
    return UnreadableManifest(f"is {more}{size:,} bytes; a manifest file may be at most {limit:,} bytes "
                              f"(limits.maxManifestBytes in {CONFIG_FILE}); split it into several files", "size")


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
    #: files and folders that could not be read, each also an error finding: nothing may be planned without them
    unread: list[str] = field(default_factory=list)
    #: file texts for locating fields, by display name, most recently used last (see LOCATOR_BUDGET)
    _locators: OrderedDict[str, Locator] = field(default_factory=OrderedDict, init=False, repr=False,
                                                 compare=False)

    def of_kind(self, kind: str) -> list[LoadedObject]:
        return [o for o in self.objects if o.kind == kind]

    def locate(self, obj: LoadedObject, path: tuple[str | int, ...]) -> Source:
        """The source of a field inside an object's document (falls back to the document start).

        Rules report per object (a warning on each of a thousand deployments in one file), so a file's text
        is read once and kept while the state lives (within LOCATOR_BUDGET), and only the object's own
        document is composed.
        """
        if self.read_text is None:
            return obj.source
        where = self._locator(obj.source.file).locate(obj.doc_index, path, obj.source.line)
        if where is None:
            return obj.source
        return Source(obj.source.file, where[0], where[1])

    def _locator(self, file: str) -> Locator:
        if self._locators:
            last_file, last = next(reversed(self._locators.items()))
            if last_file != file:
                last.release()  # composed nodes are kept for one file at a time
        locator = self._locators.get(file)
        if locator is not None:
            self._locators.move_to_end(file)
            return locator
        try:
            locator = Locator(self.read_text(file))  # type: ignore[misc]
        except (OSError, KeyError, YamlProblem, ReconcilerError):
            locator = Locator("")  # changed or gone since loading: sources fall back to the document start
        self._locators[file] = locator
        kept = sum(len(k.text) for k in self._locators.values())
        while kept > LOCATOR_BUDGET and len(self._locators) > 1:
            _, dropped = self._locators.popitem(last=False)
            kept -= len(dropped.text)
        return locator


# -- the files of a manifests folder ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A manifest file of a folder: what findings call it, the real path to read, or why it is not read."""

    display: str
    real: str | None
    problem: UnreadableManifest | None = None
    #: sorts like a top-down walk: a folder's files, then its subfolders, each by name
    order: tuple[tuple[int, str], ...] = ()


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _FolderScan:
    """The walk behind :func:`scan_folder`: real folders first, then the symlinks found in them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = os.path.realpath(root)
        self.found: list[FoundFile] = []
        self.files: set[str] = set()  # real paths of the files found
        self.walked: list[str] = []  # real folders read (their dot folders excepted)
        self.links: list[tuple[str, str, tuple[tuple[int, str], ...], str]] = []

    def problem(self, display: str, order: tuple[tuple[int, str], ...], message: str, rule: str) -> None:
        self.found.append(FoundFile(display, None, UnreadableManifest(message, rule), order))

    def walk(self, folder: str, display: str, order: tuple[tuple[int, str], ...]) -> None:
        """Read ``folder`` (a real path) and its real subfolders; symlinks are queued for :meth:`follow`."""
        self.walked.append(folder)
        pending = [(folder, display, order)]
        while pending:
            here, shown, key = pending.pop()
            try:
                with os.scandir(here) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                self.problem(shown, (*key, (0, "")), f"folder cannot be read: {exc.strerror or exc}; the "
                             "manifests in it would be missing from the plan (and pruned)", "io")
                continue
            subfolders = []
            for entry in entries:
                name = entry.name
                if name.startswith(".") or (here == self.base and name == CONFIG_FILE):
                    continue  # .git, .reconcile; reconcile.yaml holds settings, not manifests
                child = os.path.join(shown, name)
                if entry.is_symlink():
                    self.links.append((entry.path, child, (*key, (0, name)), here))
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append((entry.path, child, (*key, (1, name))))
                elif name.endswith(MANIFEST_SUFFIXES):
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if stat.S_ISREG(mode):
                        self.files.add(entry.path)
                        self.found.append(FoundFile(child, entry.path, None, (*key, (0, name))))
                    else:
                        self.problem(child, (*key, (0, name)), f"is {_file_kind(mode)}; a manifest is a regular "
                                     "file", "io")
            pending.extend(reversed(subfolders))

    def read(self, folder: str) -> bool:
        """Whether a walk reads ``folder`` already (it is not below a dot folder of a walked folder)."""
        for walked in self.walked:
            if _inside(folder, walked):
                rest = os.path.relpath(folder, walked)
                if rest == "." or not any(part.startswith(".") for part in rest.split(os.sep)):
                    return True
        return False

    def follow(self) -> None:
        while self.links:
            path, display, order, parent = self.links.pop(0)
            allowed = f"a symlink must point to a file or folder inside the manifests folder {self.base}"
            literal = "?"
            try:
                literal = os.readlink(path)
                target = os.path.realpath(path, strict=True)
                mode = os.stat(target).st_mode
            except OSError as exc:
                what = ("loops (a symlink that points back to itself)" if exc.errno == errno.ELOOP else
                        "dangles (its target does not exist)" if isinstance(exc, FileNotFoundError) else
                        f"cannot be followed ({exc.strerror or exc})")
                self.problem(display, order, f"is a symlink to {literal!r} that {what}; {allowed}", "symlink")
                continue
            if stat.S_ISREG(mode) and not display.endswith(MANIFEST_SUFFIXES):
                continue  # a file this tool never reads, wherever it is
            if not _inside(target, self.base):
                resolved = f" ({target})" if target != literal else ""
                self.problem(display, order, f"is a symlink to {literal!r}{resolved}, outside the manifests folder; "
                             f"{allowed}", "symlink")
            elif stat.S_ISDIR(mode):
                if _inside(parent, target):
                    self.problem(display, order, f"is a symlink to {literal!r}, a folder that contains it (a "
                                 f"loop); {allowed} that does not contain the symlink", "symlink")
                elif not self.read(target):
                    self.walk(target, display, (*order[:-1], (1, order[-1][1])))
            elif not stat.S_ISREG(mode):
                self.problem(display, order, f"is a symlink to {literal!r}, which is {_file_kind(mode)}; a "
                             "manifest is a regular file", "io")
            elif target not in self.files:
                self.files.add(target)
                self.found.append(FoundFile(display, target, None, order))


def _checkout_left(root: Path) -> str | None:
    """The Git working tree around ``root`` when ``root`` resolves outside it, else None.

    The manifests folder named on the command line is the user's choice, but in a checkout of a pull
    request the pull request decides whether ``manifests`` (or ``manifests/x.yaml``) is a symlink to ``/``.
    """
    here = Path(os.path.abspath(root))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return None if _inside(os.path.realpath(root), os.path.realpath(folder)) else str(folder)
    return None


def scan_folder(root: Path) -> list[FoundFile]:
    """Every manifest file under ``root`` (or ``root`` itself when it is a file), in a stable order.

    Dot folders (.git, .reconcile) and ``reconcile.yaml`` at the root are skipped. A file reached both
    directly and through symlinks is read once, under the first name found (real paths before links).
    """
    checkout = _checkout_left(root)
    if checkout is not None:
        return [FoundFile(str(root), None, UnreadableManifest(
            f"resolves to {os.path.realpath(root)}, outside the Git working tree {checkout} that holds it; the "
            "manifests of a repository are read from inside it (name the folder itself)", "symlink"))]
    try:
        is_folder = stat.S_ISDIR(os.stat(root).st_mode)
    except OSError:
        is_folder = False
    if not is_folder:  # one file named on the command line: read where it is, as the user named it
        return [FoundFile(str(root), os.path.realpath(root), None)]
    scan = _FolderScan(root)
    scan.walk(scan.base, str(root), ())
    scan.follow()
    return sorted(scan.found, key=lambda f: f.order)


def iter_manifest_files(root: Path) -> Iterator[Path]:
    """Every readable *.yaml / *.yml under root, in a stable order (see :func:`scan_folder`)."""
    for found in scan_folder(root):
        if found.real is not None:
            yield Path(found.display)


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_manifest_file(path: str, limit: int = DEFAULT_MAX_MANIFEST_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is refused before it is read.

    ``path`` is a resolved path: O_NOFOLLOW refuses a symlink swapped in since it was checked, and
    O_NONBLOCK keeps opening a FIFO from waiting for a writer. At most ``limit + 1`` bytes are read, so a
    file that grows after its size was checked is still refused.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableManifest(f"is {_file_kind(info.st_mode)}; a manifest is a regular file")
        if info.st_size > limit:
            raise too_large(info.st_size, limit)
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise too_large(limit, limit, at_least=True)
    return data


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = part if len(str(part)) <= QUOTE_CHARS else shorten(part)
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
        close = _close_match(unknown, allowed)
        hint = f"; did you mean '{close}'?" if close else ""
        listing = f" Allowed here: {', '.join(allowed)}." if allowed and not close else ""
        return f"unknown field {shorten(unknown)}{hint}{listing}", "unknown-field"
    if kind == "missing":
        return "is required but missing", "required"
    message = _short_message(error)
    found = error.get("input")
    if kind == "string_type" and isinstance(found, bool | int | float):
        shown = str(found).lower() if isinstance(found, bool) else shorten(str(found)).strip("'")
        what = "boolean" if isinstance(found, bool) else "number"
        return (f"is the YAML {what} {shown}, not text; quote it to keep the exact text "
                f"(for example '{shown}')", "yaml-unquoted")
    if kind in ("enum", "literal_error"):
        expected = (error.get("ctx") or {}).get("expected")
        found = error.get("input")
        close = None
        if expected:
            options = [o.strip().strip("'") for o in str(expected).replace(" or ", ", ").split(",")]
            close = _close_match(str(found), options)
        message = f"is {shorten(found)}; allowed: {expected}" + (f"; did you mean '{close}'?" if close else "")
    elif kind in _SHOW_INPUT and not isinstance(error.get("input"), dict | list):
        message = f"{message} (found {shorten(error.get('input'))})"
    return message, kind.replace("_", "-")


def _close_match(word: str, options: list[str]) -> str | None:
    """The option ``word`` was probably meant to be; a word far longer than any option is no typo of one."""
    if len(word) > 2 * max((len(o) for o in options), default=0) + 10:
        return None
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def _short_message(error: Any) -> str:
    """Pydantic's message with the user's value, where it quotes it, cut to a prefix and its length.

    A model's own error ("'{v}' is not a known step type") quotes the value through its context; the
    rest of the message (what is allowed) is the model's and stays whole.
    """
    message = str(error["msg"])
    found = error.get("input")
    if not isinstance(found, str) or len(found) <= QUOTE_CHARS:
        return message
    quoted = [found] + [v for v in (error.get("ctx") or {}).values()
                        if isinstance(v, str) and len(v) > QUOTE_CHARS and v in found]
    for value in quoted:
        if value in message:
            message = message.replace(value, f"{value[:QUOTE_CHARS]}… ({len(value):,} characters)")
    return message


def validate_document(
    data: Any, file: str, line: int, doc_index: int, locator: Locator
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
        problems.append((("apiVersion",), f"is {shorten(api_version)}; this tool reads apiVersion: {API_VERSION}",
                         "api-version"))
    if kind not in KINDS:
        close = _close_match(str(kind), list(KINDS))
        hint = f"; did you mean '{close}'?" if close else ""
        problems.append((("kind",), f"is {shorten(kind)}{hint}; allowed kinds: {', '.join(KINDS)}", "kind"))
    name = data.get("metadata", {}).get("name") if isinstance(data.get("metadata"), dict) else None
    if isinstance(name, str) and len(name) > QUOTE_CHARS:
        name = f"{name[:QUOTE_CHARS]}…"
    object_id = f"{kind}/{name}" if kind in KINDS and isinstance(name, str) else ""
    if object_id and kind == "TaskSequence":
        deep = _too_deep_group(data)
        if deep is not None:
            problems.append((deep, f"groups nest more than {MAX_GROUP_DEPTH} deep here; a task sequence may nest "
                             f"at most {MAX_GROUP_DEPTH} groups (real sequences use a few); move the inner steps "
                             "to a child task sequence (RunTaskSequence)", "depth"))
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
    findings = []
    seen: set[tuple[Any, str]] = set()
    for path, message, rule in problems:
        if (path, message) in seen:
            continue
        seen.add((path, message))
        source = where
        if path:
            loc = locator.locate(doc_index, path, line)
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


def _too_deep_group(data: dict[str, Any]) -> tuple[str | int, ...] | None:
    """The path of the first group, in reading order, nested more than MAX_GROUP_DEPTH deep, if any.

    Runs before validation (a sequence of a hundred nested groups validates, then breaks applying) on
    documents already held to MAX_YAML_DEPTH, so the recursion stays shallow.
    """
    spec = data.get("spec")

    def first(steps: Any, path: tuple[str | int, ...], depth: int) -> tuple[str | int, ...] | None:
        for index, step in enumerate(steps if isinstance(steps, list) else ()):
            if isinstance(step, dict) and "group" in step:
                if depth > MAX_GROUP_DEPTH:
                    return (*path, index)
                found = first(step.get("steps"), (*path, index, "steps"), depth + 1)
                if found is not None:
                    return found
        return None

    return first(spec.get("steps"), ("spec", "steps"), 1) if isinstance(spec, dict) else None


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
