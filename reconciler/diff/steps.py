"""Two step trees compared by identity: which groups and steps were inserted, removed, moved or changed.

Both trees are in the manifest's shape (``ts_canonical(record)["steps"]`` gives it for a site's
record): a list of nodes, a group being ``{"group": name, "steps": [...], ...}`` and a step
``{"name": ..., "type": ..., ...}``.

How nodes are matched, and why:

* **By identity, not position.** A node's key is ``(is_group, name, type)``. Siblings are aligned by
  a longest common subsequence of their keys (Myers' algorithm after the common prefix and suffix;
  past 600 differences in one list, difflib's faster heuristic), level by level, and matched groups
  are compared child by child. So a step inserted before another is one insertion, and the step
  after it is still itself, with its own field changes.
* **Duplicate names** ("Restart Computer" several times in one group) align around inserts: the
  subsequence keeps them in order, the n-th with the n-th, and where an insertion or removal could
  sit on either side of a run of equal keys, it is slid to where the most matched nodes are
  identical (the old "Restart Computer" keeps matching itself, the new one is the insertion). Keys
  carry no occurrence number: with one, a "Restart Computer" inserted before the others would
  renumber every later one and each would be compared with its predecessor. Left-over nodes of the
  same key pair off in document order, the n-th removed with the n-th inserted.
* **Moves.** A node no longer matched where it was and a new node of the same key elsewhere (in
  another group, or out of order within its group) are one MOVED change, with its field changes.
  This includes nodes inside a removed or inserted group: wrapping steps in a new group shows the
  group inserted and the steps moved into it, not the steps removed and inserted again.
* **Changes in place.** Left-over nodes at the same place (between the same matched neighbours)
  are one CHANGED node when they are clearly the same node: a step with the same name whose type
  changed (a ``type`` change, with the settings that differ), a step of the same type identical but
  for its name (a ``name`` change), a group whose children are mostly the same (at least half of
  their keys) renamed (a ``name`` change; its children are then compared as usual). Anything else is
  a removal and an insertion: a step renamed *and* edited is shown whole, twice, rather than as a
  rename that might be a different step.

This module holds the tree walk that turns the alignment into StepChanges: a level per pair of sibling
lists, the pairing of what is left over, and the changes in document order. The node and its identity
are :mod:`reconciler.diff.stepnodes`, the alignment of siblings :mod:`reconciler.diff.stepalign`, and the
field changes inside a node, addressed by the manifest's field names (:func:`node_fields`, with which
fields are secret, :func:`sensitive_paths`), :mod:`reconciler.diff.stepfields`.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable
from difflib import SequenceMatcher
from itertools import pairwise

from reconciler.diff.changes import PATH_SEPARATOR, FieldChange, StepChange, StepOp
from reconciler.diff.stepalign import align
from reconciler.diff.stepfields import RAW_XML, FieldComparison, mask_references, node_fields, sensitive_paths
from reconciler.diff.stepnodes import Key, Node, is_group, iter_nodes, node_children, node_key, node_name

#: Gaps larger than this (removed times inserted nodes between the same matched neighbours) are not
#: searched for renamed groups pair by pair: a rewrite that large is shown as removals and insertions.
_GROUP_PAIRING_LIMIT = 2_500


def diff_steps(before: list[Node], after: list[Node], *, opaque_references: bool = False) -> tuple[StepChange, ...]:
    """The changes that turn the step tree ``before`` into ``after``, in document order of ``after``.

    A removed node is listed where it was (before the nodes inserted at that place); a group's own
    change comes before its children's. The result is empty exactly when the trees are equal (with
    ``opaque_references``: equal but for the names inside ``valueFrom`` references).

    ``opaque_references``: set it when both trees come from ``ts_canonical``. The codec reads a
    secret as a placeholder reference named after its step and its order among steps of the same
    name (``OSD_TS_JOIN_DOMAIN_DOMAINPASSWORD``, ``…_2``), so the name carries no information and
    would show a rename or an insertion elsewhere as a changed reference. Set, a reference equals
    any other reference (an empty secret still differs from a set one).
    """
    if before == after:
        return ()
    differ = _Differ(opaque_references)
    root = differ.level(before, after, (), (), (), ())
    differ.pair()
    out: list[StepChange] = []
    differ.emit(root, out)
    return tuple(out)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class _Places:
    """Says where a node is in words; counts names once per sibling list (changes can be many)."""

    def __init__(self) -> None:
        self._lists: dict[int, tuple[list[str], dict[str, list[int]]]] = {}

    def where(self, siblings: list[Node], index: int, parent: tuple[str, ...]) -> str:
        """``after "Apply Operating System" in "Install Operating System"``, ``first at the top level``."""
        place = f'in "{PATH_SEPARATOR.join(parent)}"' if parent else "at the top level"
        if index == 0:
            return f"first {place}"
        known = self._lists.get(id(siblings))
        if known is None:
            names = [node_name(n) for n in siblings]
            positions: dict[str, list[int]] = {}
            for k, name in enumerate(names):
                positions.setdefault(name, []).append(k)
            known = self._lists[id(siblings)] = (names, positions)
        names, positions = known
        before = names[index - 1]
        same = positions[before]
        if len(same) > 1:
            return f'after the {_ordinal(bisect_right(same, index - 1))} "{before}" {place}'
        return f'after "{before}" {place}'


# -- the differ ------------------------------------------------------------------------------------


class _Slot:
    """A node left unmatched by its level's alignment (or inside such a group), waiting for a partner."""

    __slots__ = ("children", "dropped", "fields", "index", "kind", "loc", "locked", "node", "parent", "partner",
                 "path", "siblings", "side", "sublevel")

    def __init__(self, node: Node, side: int, siblings: list[Node], index: int, parent_path: tuple[str, ...],
                 parent_loc: tuple[int, ...], parent: _Slot | None) -> None:
        self.node = node
        self.side = side
        self.siblings = siblings
        self.index = index
        self.path = (*parent_path, node_name(node))
        self.loc = (*parent_loc, index)
        self.parent = parent  # the unmatched group this node is inside, if any
        self.partner: _Slot | None = None
        self.kind: StepOp | None = None
        self.fields: tuple[FieldChange, ...] = ()
        self.sublevel: _Level | None = None
        self.children: list[_Slot] | None = None  # set once the group is opened for its children
        self.locked = False  # a descendant found a partner: the group itself is gone
        self.dropped = False  # inside a group that found a partner: its level speaks for it

    @property
    def free(self) -> bool:
        return self.partner is None and not self.locked and not self.dropped


class _Level:
    """One aligned pair of sibling lists: matched pairs, and the unmatched nodes of each gap between them."""

    __slots__ = ("a_loc", "a_path", "after", "b_loc", "b_path", "before", "fields", "gaps", "pairs", "sub")

    def __init__(self, before: list[Node], after: list[Node], b_path: tuple[str, ...], a_path: tuple[str, ...],
                 b_loc: tuple[int, ...], a_loc: tuple[int, ...]) -> None:
        self.before, self.after = before, after
        self.b_path, self.a_path, self.b_loc, self.a_loc = b_path, a_path, b_loc, a_loc
        self.pairs: list[tuple[int, int]] = []
        self.gaps: list[tuple[list[_Slot], list[_Slot]]] = []  # gaps[t] lies before pairs[t]
        self.fields: dict[int, tuple[FieldChange, ...]] = {}  # by after index
        self.sub: dict[int, _Level] = {}  # matched groups whose children differ, by after index


class _Differ(FieldComparison):
    """One comparison of two trees: its levels, the nodes left unmatched, and the changes they make."""

    def __init__(self, opaque_references: bool) -> None:
        super().__init__(opaque_references)
        self.pool: tuple[list[_Slot], list[_Slot]] = ([], [])
        self.levels: list[_Level] = []
        self._signatures: dict[int, str] = {}
        self.places = _Places()


    def own_same(self, b: Node, a: Node) -> bool:
        """The nodes are equal but for their children."""
        if "group" not in a:
            return self.same(b, a)
        keys = (b.keys() | a.keys()) - {"steps"}
        return all(self.same(b.get(k), a.get(k)) for k in keys)

    # -- levels --------------------------------------------------------------------------------------

    def level(self, before: list[Node], after: list[Node], b_path: tuple[str, ...], a_path: tuple[str, ...],
              b_loc: tuple[int, ...], a_loc: tuple[int, ...]) -> _Level:
        level = _Level(before, after, b_path, a_path, b_loc, a_loc)
        self.levels.append(level)
        level.pairs = align(before, after)
        pi, pj = -1, -1
        for i, j in [*level.pairs, (len(before), len(after))]:
            removed = [self.slot(0, before, k, b_path, b_loc, None) for k in range(pi + 1, i)]
            inserted = [self.slot(1, after, k, a_path, a_loc, None) for k in range(pj + 1, j)]
            level.gaps.append((removed, inserted))
            pi, pj = i, j
        for i, j in level.pairs:
            b, a = before[i], after[j]
            if b is a:
                continue
            if not self.own_same(b, a) and (fields := self.fields(b, a)):
                level.fields[j] = fields
            if "group" in a and b.get("steps") != a.get("steps"):
                level.sub[j] = self.level(node_children(b), node_children(a), (*b_path, node_name(b)),
                                          (*a_path, node_name(a)), (*b_loc, i), (*a_loc, j))
        return level

    def slot(self, side: int, siblings: list[Node], index: int, parent_path: tuple[str, ...],
             parent_loc: tuple[int, ...], parent: _Slot | None) -> _Slot:
        slot = _Slot(siblings[index], side, siblings, index, parent_path, parent_loc, parent)
        self.pool[side].append(slot)
        return slot

    # -- pairing left-over nodes -----------------------------------------------------------------------

    def pair(self) -> None:
        """Moves first (the same key elsewhere), then changes in place, then open unmatched groups."""
        while self.pair_moves() or self.pair_in_place() or self.open_groups():
            pass

    def join(self, removed: _Slot, inserted: _Slot, kind: StepOp) -> None:
        removed.partner, inserted.partner = inserted, removed
        removed.kind = inserted.kind = kind
        for slot in (removed, inserted):
            parent = slot.parent
            while parent is not None and not parent.locked:
                parent.locked = True
                parent = parent.parent
            self._drop_children(slot)
        b, a = removed.node, inserted.node
        if not self.own_same(b, a):
            inserted.fields = self.fields(b, a)
        if "group" in a and "group" in b and b.get("steps") != a.get("steps"):
            inserted.sublevel = self.level(node_children(b), node_children(a), removed.path, inserted.path, removed.loc,
                                           inserted.loc)

    def _drop_children(self, slot: _Slot) -> None:
        for child in slot.children or ():
            child.dropped = True
            self._drop_children(child)

    def pair_moves(self) -> bool:
        inserted: dict[Key, list[_Slot]] = {}
        for slot in sorted((s for s in self.pool[1] if s.free), key=lambda s: s.loc):
            inserted.setdefault(node_key(slot.node), []).append(slot)
        if not inserted:
            return False
        taken: dict[Key, int] = {}
        paired = False
        for slot in sorted((s for s in self.pool[0] if s.free), key=lambda s: s.loc):
            if not slot.free:
                continue
            key = node_key(slot.node)
            candidates = inserted.get(key)
            if not candidates:
                continue
            k = taken.get(key, 0)
            while k < len(candidates) and not candidates[k].free:
                k += 1
            if k < len(candidates):
                self.join(slot, candidates[k], StepOp.MOVED)
                paired = True
                k += 1
            taken[key] = k
        return paired

    def pair_in_place(self) -> bool:
        paired = False
        for level in list(self.levels):
            for removed, inserted in level.gaps:
                if not any(s.free for s in removed) or not any(s.free for s in inserted):
                    continue
                # Pairs made in place in an earlier round stay in order with the new ones.
                where = {id(s): x for x, s in enumerate(removed)}
                kept = [(where[id(s.partner)], y) for y, s in enumerate(inserted)
                        if s.kind is StepOp.CHANGED and s.partner is not None]
                for (r0, s0), (r1, s1) in pairwise([(-1, -1), *kept, (len(removed), len(inserted))]):
                    rs = [s for s in removed[r0 + 1:r1] if s.free]
                    ins = [s for s in inserted[s0 + 1:s1] if s.free]
                    if rs and ins:
                        paired |= self._pair_gap(rs, ins)
        return paired

    def _pair_gap(self, rs: list[_Slot], ins: list[_Slot]) -> bool:
        # A step of the same name whose type changed, then steps renamed, then groups renamed; each
        # in order, so what stays in place keeps its order.
        joined = _monotone(rs, ins, lambda s: None if is_group(s.node) else node_name(s.node))
        out = list(joined)
        bounds = [(-1, -1), *joined, (len(rs), len(ins))]
        for (r0, s0), (r1, s1) in pairwise(bounds):
            sub_r, sub_s = rs[r0 + 1:r1], ins[s0 + 1:s1]
            if not sub_r or not sub_s:
                continue
            renamed = _monotone(sub_r, sub_s, self._rename_signature)
            out += [(r0 + 1 + x, s0 + 1 + y) for x, y in renamed]
            if len(sub_r) * len(sub_s) <= _GROUP_PAIRING_LIMIT:
                taken_r = {x for x, _ in renamed}
                taken_s = {y for _, y in renamed}
                groups = self._pair_groups(
                    [(x, s) for x, s in enumerate(sub_r) if x not in taken_r and is_group(s.node)],
                    [(y, s) for y, s in enumerate(sub_s) if y not in taken_s and is_group(s.node)],
                    renamed)
                out += [(r0 + 1 + x, s0 + 1 + y) for x, y in groups]
        for x, y in out:
            self.join(rs[x], ins[y], StepOp.CHANGED)
        return bool(out)

    def _rename_signature(self, slot: _Slot) -> str | None:
        """Steps renamed in place: same type, same everything else."""
        if is_group(slot.node):
            return None
        cached = self._signatures.get(id(slot.node))
        if cached is None:
            rest = {k: v for k, v in slot.node.items() if k != "name"}
            if self.opaque:
                rest = mask_references(rest)
            cached = json.dumps(rest, sort_keys=True, default=str)
            self._signatures[id(slot.node)] = cached
        return cached

    def _pair_groups(self, rs: list[tuple[int, _Slot]], ins: list[tuple[int, _Slot]],
                     fixed: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Groups renamed in place: at least half of their children's keys in common (or, both empty, the
        same options); pairs cross neither each other nor the pairs already made."""
        out: list[tuple[int, int]] = []
        for x, r in rs:
            for y, s in ins:
                if any((x - fx) * (y - fy) <= 0 for fx, fy in [*fixed, *out]):
                    continue
                if self._group_renamed(r.node, s.node):
                    out.append((x, y))
                    break
        return out

    def _group_renamed(self, b: Node, a: Node) -> bool:
        kb, ka = [node_key(n) for n in node_children(b)], [node_key(n) for n in node_children(a)]
        if not kb and not ka:
            return self.same({k: v for k, v in b.items() if k != "group"}, {k: v for k, v in a.items() if k != "group"})
        return SequenceMatcher(None, kb, ka, autojunk=False).ratio() >= 0.5

    def open_groups(self) -> bool:
        """Let the children of unmatched groups look for partners (steps wrapped in a new group)."""
        if not any(s.free for s in self.pool[0]) or not any(s.free for s in self.pool[1]):
            return False
        opened = False
        for side in (0, 1):
            for slot in list(self.pool[side]):
                if slot.free and slot.children is None and is_group(slot.node):
                    kids = node_children(slot.node)
                    slot.children = [self.slot(side, kids, k, slot.path, slot.loc, slot) for k in range(len(kids))]
                    opened = opened or bool(kids)
        return opened


    # -- output ----------------------------------------------------------------------------------------

    def emit(self, level: _Level, out: list[StepChange]) -> None:
        for t, (removed, inserted) in enumerate(level.gaps):
            for slot in removed:
                if slot.partner is None:
                    out.append(self.change(StepOp.REMOVED, slot, node=slot.node))
            for slot in inserted:
                if slot.partner is None:
                    out.append(self.change(StepOp.INSERTED, slot, node=slot.node))
                    self.emit_inside(slot, out)
                else:
                    self.emit_pair(slot, out)
            if t < len(level.pairs):
                j = level.pairs[t][1]
                node = level.after[j]
                if j in level.fields:
                    out.append(StepChange(
                        StepOp.CHANGED, (*level.a_path, node_name(node)), is_group(node), _step_type(node),
                        self.places.where(level.after, j, level.a_path), fields=level.fields[j],
                        location=(*level.a_loc, j)))
                if j in level.sub:
                    self.emit(level.sub[j], out)

    def emit_pair(self, slot: _Slot, out: list[StepChange]) -> None:
        partner = slot.partner
        assert partner is not None and slot.kind is not None
        if slot.kind is StepOp.MOVED:
            out.append(self.change(StepOp.MOVED, slot, previous=partner))
        elif slot.fields:
            out.append(self.change(StepOp.CHANGED, slot))
        if slot.sublevel is not None:
            self.emit(slot.sublevel, out)

    def change(self, op: StepOp, slot: _Slot, node: Node | None = None, previous: _Slot | None = None) -> StepChange:
        where = self.places.where
        node_type = _step_type(slot.node)
        return StepChange(
            op, slot.path, is_group(slot.node), node_type, where(slot.siblings, slot.index, slot.path[:-1]),
            previous=where(previous.siblings, previous.index, previous.path[:-1]) if previous else None,
            fields=slot.fields, node=node, location=slot.loc,
            previous_location=previous.loc if previous else None, previous_path=previous.path if previous else None)

    def emit_inside(self, slot: _Slot, out: list[StepChange]) -> None:
        """Nodes moved into a group that is itself new."""
        for child in slot.children or ():
            if child.partner is not None:
                self.emit_pair(child, out)
            else:
                self.emit_inside(child, out)


def _step_type(node: Node) -> str | None:
    return None if "group" in node else node.get("type")


def _monotone(rs: list[_Slot], ins: list[_Slot], signature: Callable[[_Slot], str | None]) -> list[tuple[int, int]]:
    """Pairs of equal signatures (None never pairs), greedy in order, crossing no other pair."""
    positions: dict[str, list[int]] = {}
    for y, slot in enumerate(ins):
        sig = signature(slot)
        if sig is not None:
            positions.setdefault(sig, []).append(y)
    out: list[tuple[int, int]] = []
    last = -1
    for x, slot in enumerate(rs):
        sig = signature(slot)
        found = positions.get(sig) if sig is not None else None
        if not found:
            continue
        k = bisect_right(found, last)
        if k < len(found):
            last = found[k]
            out.append((x, last))
    return out


__all__ = ["RAW_XML", "Key", "Node", "diff_steps", "iter_nodes", "node_fields", "sensitive_paths"]
