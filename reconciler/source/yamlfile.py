"""Safe, fast YAML reading with the guarantees a manifest repository needs.

The fast path is PyYAML's C loader (libyaml) with two cheap additions: duplicate keys are errors
(PyYAML silently keeps the last one, which hides mistakes in reviews) and alias expansion is bounded
(a "billion laughs" document would otherwise explode when validated). Line numbers of individual
fields are only needed when something is wrong, so they are found lazily by composing the file
again (:func:`locate`), never on the fast path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import Finding, Severity, Source

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Most expanded nodes a document may reach through aliases. Real manifests use a handful.
MAX_EXPANDED_NODES = 200_000


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
                            f"duplicate key {key!r} (first defined on line {first}); each key may appear once",
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
    finally:
        loader.dispose()


def problem_finding(problem: YamlProblem, file: str) -> Finding:
    return Finding(Severity.ERROR, Source(file, problem.line, problem.column), problem.message, rule="yaml")


# -- lazy location of a field path -------------------------------------------------------------


def locate(text: str, doc_index: int, path: tuple[str | int, ...]) -> tuple[int, int] | None:
    """Return (line, column), 1-based, of the deepest node of ``path`` in document ``doc_index``.

    Only called when there is something to report, so it may be slow: it composes the document again.
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError:
        return None
    if doc_index >= len(nodes) or nodes[doc_index] is None:
        return None
    node: yaml.Node = nodes[doc_index]
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
    return best.line + 1, best.column + 1


# -- writing -----------------------------------------------------------------------------------


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Manifests people read: block style for multi-line text (scripts), insertion order kept."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump(data: Any, *, explicit_start: bool = False) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110,
                     explicit_start=explicit_start)
