"""Safe, fast YAML reading with the guarantees a manifest repository needs.

The fast path is PyYAML's C loader (libyaml) with two cheap additions: duplicate keys are errors
(PyYAML silently keeps the last one, which hides mistakes in reviews) and alias expansion is bounded
(a "billion laughs" document would otherwise explode when validated). Line numbers of individual
fields are only needed when something is wrong, so they are found lazily by composing the file
again (:class:`Locator`, one document at a time), never on the fast path. Nesting is bounded too
(:func:`too_deep`): every later stage (validation, JSON, XML, comparison) walks a manifest recursively.
"""

from __future__ import annotations

import io
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import Finding, Severity, Source, shorten
from reconciler.source.yamlwriter import dump as dump  # manifests are written there; kept importable here

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Most expanded nodes a document may reach through aliases. Real manifests use a handful.
MAX_EXPANDED_NODES = 200_000

#: Deepest nesting of mappings and lists in a manifest. The deepest real task sequence in the corpus (four nested
#: groups with conditions) nests 15 levels. Later stages break near 200: pydantic stops reading a manifest's JSON
#: there (a sequence of ~100 nested groups validated, then failed to apply) and the comparison and XML writers
#: recurse per level. 64 leaves every real sequence four times its depth and stays far below what breaks.
MAX_YAML_DEPTH = 64

_CONTAINERS = (dict, list, tuple)  # tuple: the pairs of !!omap and !!pairs


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class _ManifestLoader(_Loader):  # type: ignore[misc, valid-type]
    """C loader that refuses duplicate keys and alias bombs and records document start lines."""

    check_aliases = False

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.document_lines: list[int] = []

    def construct_document(self, node: yaml.Node) -> Any:
        if self.check_aliases:
            _check_expansion(node)
        self.document_lines.append(node.start_mark.line + 1)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        if len(set(keys)) != len(keys):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                    if key in seen and key != "<<":
                        first = seen[key].start_mark.line + 1
                        raise YamlProblem(
                            f"duplicate key {shorten(key)} (first defined on line {first}); each key may appear once",
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                        )
                    seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_ManifestLoader.add_constructor("tag:yaml.org,2002:map", _ManifestLoader.construct_yaml_map)


def _check_expansion(root: yaml.Node) -> None:
    """Count the nodes a document expands to, following aliases (shared nodes), with memoisation."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlProblem("recursive alias: an anchor refers to itself", node.start_mark.line + 1)
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
        active.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise YamlProblem(
                f"aliases expand this document to more than {MAX_EXPANDED_NODES:,} nodes "
                "(an alias bomb); write the values out or use fewer nested aliases",
                node.start_mark.line + 1,
            )
        sizes[key] = total
        return total

    size(root)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    data: Any
    line: int  # 1-based line where the document starts
    index: int  # position of the document in the file


def decode(raw: bytes, file: str) -> str:
    """Decode UTF-8 (with or without BOM); an invalid byte is reported with its line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlProblem(
            f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8",
            line,
        ) from None


def load_documents(text: str | bytes) -> Iterator[YamlDocument]:
    """Yield each document of a YAML stream; problems are raised as :class:`YamlProblem`.

    Bytes (already checked to be UTF-8) are parsed faster by libyaml than str.
    """
    loader = _ManifestLoader(text)
    if isinstance(text, bytes):
        loader.check_aliases = b"&" in text and b"*" in text
    else:
        loader.check_aliases = "&" in text and "*" in text
    index = 0
    try:
        while loader.check_data():
            data = loader.get_data()
            yield YamlDocument(data, loader.document_lines[-1], index)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "malformed YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise YamlProblem(
            f"malformed YAML: {problem}{context}",
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"malformed YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem("YAML nesting is too deep to read") from None
    except ValueError as exc:  # a plain scalar that resolves to a number or date Python cannot hold
        raise _unreadable_value(text, index, exc) from None
    finally:
        loader.dispose()


def _unreadable_value(text: str | bytes, doc_index: int, exc: ValueError) -> YamlProblem:
    """Which scalar of document ``doc_index`` made construction fail (2024-02-30, a 5,000-digit number)."""
    constructor = yaml.constructor.SafeConstructor()
    readers = {"tag:yaml.org,2002:int": ("number", constructor.construct_yaml_int),
               "tag:yaml.org,2002:timestamp": ("date", constructor.construct_yaml_timestamp)}
    try:
        documents = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError:
        documents = []
    stack = [documents[doc_index]] if doc_index < len(documents) and documents[doc_index] is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in readers:
                continue
            what, read = readers[node.tag]
            try:
                read(node)
            except ValueError as problem:
                reason = f"{len(node.value):,} digits" if what == "number" else str(problem)
                return YamlProblem(f"{shorten(node.value)} cannot be read as a {what} ({reason}); quote it to keep "
                                   "it as text", node.start_mark.line + 1, node.start_mark.column + 1)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            stack.extend(reversed([part for pair in node.value for part in pair]))
    return YamlProblem(f"a value cannot be read: {shorten(str(exc))}")


def problem_finding(problem: YamlProblem, file: str) -> Finding:
    return Finding(Severity.ERROR, Source(file, problem.line, problem.column), problem.message, rule="yaml")


def too_deep(data: Any, limit: int = MAX_YAML_DEPTH) -> bool:
    """Whether ``data`` nests mappings and lists deeper than ``limit``.

    Runs on every document, so it is a level-by-level sweep without recursion or paths; where the deep
    node sits is found only when there is one (:meth:`Locator.deeper_than`).
    """
    level = [data] if isinstance(data, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [child for node in level for child in (node.values() if type(node) is dict else node)
                 if type(child) in _CONTAINERS]
    return False


# -- lazy location of a field path -------------------------------------------------------------


class Locator:
    """Where fields sit in one file, composing only the document asked about, when first asked.

    Locations are only needed to report something, so nothing is composed on the fast path. Given the
    line its document starts on (every loaded object knows it), one document is composed from there,
    not the whole file: a file of a thousand deployments, each with a warning, costs one pass over the
    file in all, not one per warning. Only the text is kept (as UTF-8, a byte per character for the ASCII
    manifests are), so a Locator is small.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._raw: bytes | None = None
        self._lines: array[int] | None = None  # byte offset of each line's start
        self._last: tuple[int, yaml.Node | None] | None = None  # the document composed last, by start line
        self._documents: list[yaml.Node | None] | None = None

    def release(self) -> None:
        """Drop the composed nodes kept (the text stays): the next questions are about another file."""
        self._last = None
        self._documents = None

    @property
    def documents(self) -> list[yaml.Node | None]:
        """Every document of the file, composed once (for a file given without document start lines)."""
        if self._documents is None:
            try:
                self._documents = list(yaml.compose_all(self.text, Loader=_Loader))
            except (yaml.YAMLError, RecursionError):
                self._documents = []
        return self._documents

    def _document(self, doc_index: int, line: int | None) -> tuple[yaml.Node | None, int]:
        """(document ``doc_index``, how many lines its marks are shifted by)."""
        if line is not None:
            if self._last is not None and self._last[0] == line:
                return self._last[1], line - 1
            if self._raw is None:
                self._raw = self.text.encode("utf-8")
                self._lines = array("q", [0])
                self._lines.extend(m.end() for m in re.finditer(b"\n", self._raw))
            assert self._lines is not None
            if 1 <= line <= len(self._lines):
                stream = io.BytesIO(self._raw)  # shares the bytes; reading starts at the document's line
                stream.seek(self._lines[line - 1])
                loader = _Loader(stream)
                try:
                    node = loader.get_node() if loader.check_node() else None
                except (yaml.YAMLError, RecursionError):
                    node = None  # a directive the document needs sits above it: compose the whole file
                finally:
                    loader.dispose()
                if node is not None:
                    self._last = (line, node)
                    return node, line - 1
        documents = self.documents
        return (documents[doc_index] if doc_index < len(documents) else None), 0

    def locate(self, doc_index: int, path: tuple[str | int, ...], line: int | None = None
               ) -> tuple[int, int] | None:
        """(line, column), 1-based, of the deepest node of ``path`` in document ``doc_index``.

        ``line`` is where that document starts, if known: then only the document is composed.
        """
        node, shift = self._document(doc_index, line)
        if node is None:
            return None
        best = node.start_mark
        for part in path:
            nxt: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == part:
                        best = k.start_mark
                        nxt = v
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                nxt = node.value[part]
                best = nxt.start_mark
            if nxt is None:
                break
            node = nxt
        return best.line + 1 + shift, best.column + 1

    def deeper_than(self, doc_index: int, limit: int = MAX_YAML_DEPTH, line: int | None = None
                    ) -> tuple[int, int, tuple[str | int, ...]] | None:
        """(line, column, field path) of the first mapping or list, in reading order, nested below ``limit``."""
        root, shift = self._document(doc_index, line)
        stack: list[tuple[yaml.Node, int, tuple[str | int, ...]]] = [(root, 1, ())] if root is not None else []
        while stack:
            node, depth, path = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                continue
            if depth > limit:
                return node.start_mark.line + 1 + shift, node.start_mark.column + 1, path
            if isinstance(node, yaml.SequenceNode):
                children = [(child, depth + 1, (*path, i)) for i, child in enumerate(node.value)]
            else:
                children = [(value, depth + 1, (*path, key.value if isinstance(key, yaml.ScalarNode) else "?"))
                            for key, value in node.value]
            stack.extend(reversed(children))
        return None


def locate(text: str, doc_index: int, path: tuple[str | int, ...]) -> tuple[int, int] | None:
    """(line, column), 1-based, of the deepest node of ``path`` in document ``doc_index`` of ``text``.

    Composes the whole text: to locate several fields of one file, keep a :class:`Locator`.
    """
    return Locator(text).locate(doc_index, path)
