"""A node of a step tree as the manifest writes it, and the identity steps are compared by.

A tree is a list of nodes: a group is ``{"group": name, "steps": [...], ...}``, a step
``{"name": ..., "type": ..., ...}`` (``ts_canonical(record)["steps"]`` gives this shape for a site's
record). A node's identity is ``(is_group, name, type)``: a step keeps it when it moves or its fields
change, so the differ can follow it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Node = dict[str, Any]
Key = tuple[bool, str, str | None]


def is_group(node: Node) -> bool:
    return "group" in node


def node_name(node: Node) -> str:
    return str(node["group"] if "group" in node else node.get("name", ""))


def node_key(node: Node) -> Key:
    if "group" in node:
        return (True, str(node["group"]), None)
    return (False, str(node.get("name", "")), node.get("type"))


def node_children(node: Node) -> list[Node]:
    return node.get("steps") or [] if "group" in node else []


def iter_nodes(steps: list[Node], loc: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Node]]:
    """Every node of a tree with its location (indexes into the ``steps`` lists), in document order."""
    for i, node in enumerate(steps):
        here = (*loc, i)
        yield here, node
        if "group" in node:
            yield from iter_nodes(node.get("steps") or [], here)

