"""The changes the diff stage hands to the planner and the renderers: plain, frozen data.

A change says what differs, addressed by the names a person reads in the manifest; it never says
what to do about it (that is the planner's job) and never how to show it (the renderers'). Secrecy
is a property of the change (``FieldChange.sensitive``), so every renderer masks the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    before: Any = None
    after: Any = None
    sensitive: bool = False


class StepOp(StrEnum):
    """What happened to one node (a group or a step) of a task sequence's step tree."""

    INSERTED = "inserted"
    REMOVED = "removed"
    MOVED = "moved"
    CHANGED = "changed"


#: Joins the names of a node's path for people: "Install Operating System", U+203A, "Enable BitLocker".
PATH_SEPARATOR = " \u203a "


@dataclass(frozen=True, slots=True)
class StepChange:
    """One node of the step tree that was inserted, removed, moved or changed.

    ``path`` names the node from the top of the tree: the names of the groups that hold it, then its
    own name (the old path for a removed node, the new one otherwise). Names are not unique (a
    sequence may hold several "Restart Computer" steps), so ``position`` and ``previous`` say where
    the node is and was in words, naming the sibling before it (with an ordinal when that name
    repeats), and ``location`` / ``previous_location`` give the same places as indexes into the
    ``steps`` lists (top level first), for tools that need to act on them.

    ``fields`` are the changes inside the node (CHANGED, and MOVED nodes that also changed), with
    paths relative to the node: ``condition.variable.value``, ``settings.diskNumber``, ``disabled``,
    ``name`` (a group's name too, although the manifest writes it ``group:``). The node's children are
    never in ``fields``: each child that changed is a StepChange of its own.

    ``node`` is the whole new node of an INSERTED change and the whole old node of a REMOVED one,
    children included, for renderers that show it. A descendant that came from elsewhere (or went
    elsewhere) is inside ``node`` and is also reported as its own MOVED change.
    """

    op: StepOp
    path: tuple[str, ...]
    is_group: bool
    step_type: str | None
    #: where the node is (the old place for a removed node): ``after "Apply Operating System" in "Install
    #: Operating System"``, ``first in "Install Operating System"``, ``first at the top level``
    position: str
    #: MOVED only: where the node was, in the same words, in the old tree
    previous: str | None = None
    fields: tuple[FieldChange, ...] = ()
    node: dict[str, Any] | None = None
    #: indexes into the ``steps`` lists of the new tree (of the old tree for a removed node)
    location: tuple[int, ...] = ()
    #: MOVED only: indexes of the node in the old tree, and its path there
    previous_location: tuple[int, ...] | None = None
    previous_path: tuple[str, ...] | None = None

    @property
    def display_path(self) -> str:
        return PATH_SEPARATOR.join(self.path)

    @property
    def name(self) -> str:
        return self.path[-1]
