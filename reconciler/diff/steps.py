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

Field changes inside a node (:func:`node_fields`) are addressed relative to it, by the manifest's
field names, and values are never shortened here (that is a renderer's choice). Where a value has
no names (the operands of a condition, the partitions of a disk), an index addresses it inside
its named field; a node is never addressed by index.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterator
from difflib import SequenceMatcher
from itertools import pairwise
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from reconciler.diff.changes import PATH_SEPARATOR, FieldChange, StepChange, StepOp
from reconciler.models.steptypes import BY_NAME, BY_XML_TYPE, is_secret_property
from reconciler.tsxml.conditions import build_raw
from reconciler.tsxml.xmltext import serialize

Node = dict[str, Any]
Key = tuple[bool, str, str | None]

#: The path of the one change that stands for XML the codec keeps verbatim (``attributes`` and
#: ``extraElements`` of a node): its values are that XML as text, so no codec key reaches a plan.
RAW_XML = "raw XML"

#: Keys holding XML kept verbatim inside a value (a condition's unknown expression variables, a
#: dynamic variable rule's unknown elements, an OS condition's attributes): a difference inside one
#: is reported as a change of the value that holds it, never by a path through it.
_VERBATIM = frozenset({"extra", "attributes", "extraElements", "children"})

#: The order in which a node's field changes are listed: as the README and manifests write them.
_FIELD_ORDER = ("type", "description", "disabled", "continueOnError", "expanded", "condition", "runIn",
                "successCodes", "retryCount", "runFromNet", "timeout", "startIn", "settings", "properties",
                "action")
_NOT_FIELDS = frozenset({"group", "name", "steps", "attributes", "extraElements"})

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


def node_fields(before: Node, after: Node, *, opaque_references: bool = False) -> tuple[FieldChange, ...]:
    """Field changes between two versions of one node (its children aside), with paths relative to it.

    * Every changed leaf is one change with a dotted path: ``disabled``, ``settings.diskNumber``,
      ``settings.partitions[1].size``. A key set on one side only is one change of its whole value
      (``None`` stands for "not set"). Lists of plain values (``successCodes``) and lists whose length
      changed are one change of the whole list, because an index into them names nothing after an
      insertion; lists of mappings of the same length are compared item by item.
    * ``condition``: when its shape is the same (the same operators and kinds of expressions, the same
      number of operands) the changed values are reported one by one (``condition.variable.value``,
      ``condition.or[1].wmi.query``), which is what a reviewer needs to see among many operands; when
      the shape changed (an operand added, ``and`` turned ``or``), a leaf-by-leaf list would pair
      unrelated operands, so it is one ``condition`` change with the whole trees before and after.
    * ``properties`` of a generic step are addressed by property name (``properties[CommandLine].value``)
      when both sides hold the same properties in the same order; otherwise the list is one change.
    * XML the codec keeps verbatim (``attributes``, ``extraElements``) is one ``raw XML`` change whose
      values are that XML as text. A group's name is the ``name`` change although YAML writes ``group:``.
    * A change is ``sensitive`` when its path is, holds or lies inside a secret-bearing field of the node
      (:func:`sensitive_paths`), whether its values are references or not: renderers mask it.
    """
    return _Differ(opaque_references).fields(before, after)


def sensitive_paths(node: Node) -> frozenset[str]:
    """Paths (as in field changes) of a node's fields that hold secrets, for renderers that show a node.

    A typed step's password, product key and PIN settings, a Set Task Sequence Variable value hidden
    with ``doNotShowValue``, a dynamic variable marked ``secret``, and ``properties`` entries whose
    name ConfigMgr (or the step's type) uses for a secret.
    """
    out: set[str] = set()
    step_type = node.get("type")
    known = BY_NAME.get(step_type or "") or BY_XML_TYPE.get(step_type or "")
    settings = node.get("settings") if isinstance(node.get("settings"), dict) else {}
    raw = [e for e in node.get("properties") or () if isinstance(e, dict)]
    hidden_value = any(e.get("property") == "DoNotShowVariableValue" and str(e.get("value", "")).lower() == "true"
                       for e in raw)
    secret_props: set[str] = set()
    if known is not None:
        for prop in known.props:
            if prop.kind == "secret":
                out.add(f"settings.{prop.field}")
                secret_props.add(prop.property)
        if known.name == "SetVariable" and (settings.get("doNotShowValue") or hidden_value):
            out.add("settings.value")
            secret_props.add("VariableValue")
        rules = settings.get("rules")
        for i, rule in enumerate(rules if isinstance(rules, list) else ()):
            for j, var in enumerate((rule.get("variables") or ()) if isinstance(rule, dict) else ()):
                if isinstance(var, dict) and var.get("secret"):
                    out.add(f"settings.rules[{i}].variables[{j}]")
    xml_type = known.xml_type if known is not None else step_type
    for entry in raw:
        name = _property_id(entry)
        prop = entry.get("property") or entry.get("variable") or ""
        if name is not None and (prop in secret_props or is_secret_property(xml_type, prop)):
            out.add(f"properties[{name}]")
    return frozenset(out)


# -- identity ------------------------------------------------------------------------------------


def _is_group(node: Node) -> bool:
    return "group" in node


def _name(node: Node) -> str:
    return str(node["group"] if "group" in node else node.get("name", ""))


def _key(node: Node) -> Key:
    if "group" in node:
        return (True, str(node["group"]), None)
    return (False, str(node.get("name", "")), node.get("type"))


def _children(node: Node) -> list[Node]:
    return node.get("steps") or [] if "group" in node else []


def _property_id(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    name = entry.get("property") or entry.get("variable")
    return str(name) if name else None


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
            names = [_name(n) for n in siblings]
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


def _is_reference(value: dict[str, Any]) -> bool:
    """``{"valueFrom": {...}}``: a reference to a secret is one value, never a path to walk into."""
    return len(value) == 1 and "valueFrom" in value


def _mask_references(value: Any) -> Any:
    if isinstance(value, dict):
        if "valueFrom" in value:
            return {**value, "valueFrom": None}
        return {k: _mask_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_references(v) for v in value]
    return value


def _shape(value: Any) -> Any:
    """What a condition is made of, without its values: operators, expression kinds, operand counts.

    Verbatim parts (unknown expression variables, OS condition attributes) belong to the shape, so a
    difference in them is reported as a change of the whole condition, never by a path through them.
    """
    if isinstance(value, dict):
        return tuple(sorted((k, json.dumps(v, sort_keys=True, default=str) if k in _VERBATIM else _shape(v))
                            for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_shape(v) for v in value)
    return type(value).__name__


def _raw_xml(node: Node) -> str | None:
    """The XML a node keeps verbatim, as text: its other attributes, then its other elements."""
    parts = [f"{k}={quoteattr(str(v))}" for k, v in (node.get("attributes") or {}).items()]
    for raw in node.get("extraElements") or ():
        holder = Element("holder")
        build_raw(holder, raw)
        parts.append(serialize(holder[0], indent=None))
    return " ".join(parts) or None


# -- alignment of siblings -----------------------------------------------------------------------


#: Myers' algorithm finds a longest common subsequence in time that grows with the square of the
#: number of differences; past this many inserted plus removed nodes in one list, a rewrite that
#: large is aligned by difflib's longest-block heuristic instead (fast, not always the longest).
_MAX_EDITS = 600


def _align(before: list[Node], after: list[Node]) -> list[tuple[int, int]]:
    """Matched (before index, after index) pairs of one level, increasing on both sides."""
    if not before or not after:
        return []
    kb = [_key(n) for n in before]
    ka = [_key(n) for n in after]
    nb, na = len(kb), len(ka)
    limit = min(nb, na)
    head = 0
    while head < limit and kb[head] == ka[head]:
        head += 1
    tail = 0
    while tail < limit - head and kb[nb - 1 - tail] == ka[na - 1 - tail]:
        tail += 1
    pairs = [(k, k) for k in range(head)]
    middle_b, middle_a = kb[head:nb - tail], ka[head:na - tail]
    if middle_b and middle_a:
        found = _lcs(middle_b, middle_a, _MAX_EDITS)
        if found is None:
            # autojunk off: in a long list, a name used in more than 1% of the steps is not noise.
            matcher = SequenceMatcher(None, middle_b, middle_a, autojunk=False)
            found = [(block.a + k, block.b + k) for block in matcher.get_matching_blocks() for k in range(block.size)]
        pairs.extend((head + i, head + j) for i, j in found)
    pairs.extend((nb - tail + k, na - tail + k) for k in range(tail))
    _slide(pairs, before, after, kb, ka)
    return pairs


def _lcs(a: list[Key], b: list[Key], max_edits: int) -> list[tuple[int, int]] | None:
    """A longest common subsequence by Myers' O(ND) algorithm, or None past ``max_edits`` differences.

    A longest one, not merely long: difflib's longest-block-first heuristic can match a run of steps
    with a copy of it far away (sequences repeat blocks of the same steps) and then report everything
    between as moved.
    """
    n, m = len(a), len(b)
    v: dict[int, int] = {1: 0}
    trace: list[dict[int, int]] = []
    for d in range(min(n + m, max_edits) + 1):
        trace.append(v)
        current: dict[int, int] = {}
        for k in range(-d, d + 1, 2):
            x = v[k + 1] if k == -d or (k != d and v[k - 1] < v[k + 1]) else v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            current[k] = x
            if x >= n and y >= m:
                return _backtrack(trace, current, n, m)
        v = current
    return None


def _backtrack(trace: list[dict[int, int]], last: dict[int, int], n: int, m: int) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    x, y = n, m
    for d in range(len(trace) - 1, -1, -1):
        previous = trace[d]  # the furthest points of round d - 1
        k = x - y
        if d == 0:
            start_x = 0
        else:
            down = k == -d or (k != d and previous[k - 1] < previous[k + 1])
            prev_k = k + 1 if down else k - 1
            prev_x = previous[prev_k]
            start_x = prev_x if down else prev_x + 1
        while x > start_x:  # the diagonal run of matches that ended this round
            x -= 1
            y -= 1
            pairs.append((x, y))
        if d:
            x, y = prev_x, prev_x - prev_k
    pairs.reverse()
    return pairs


def _slide(pairs: list[tuple[int, int]], before: list[Node], after: list[Node], kb: list[Key],
           ka: list[Key]) -> None:
    """Move each pure insertion or removal along the run of equal keys around it to where most
    matched nodes are identical (ties keep the subsequence's choice)."""
    t = 0
    while t <= len(pairs):
        pi, pj = pairs[t - 1] if t else (-1, -1)
        ni, nj = pairs[t] if t < len(pairs) else (len(before), len(after))
        removed, inserted = ni - pi - 1, nj - pj - 1
        if inserted and not removed:
            _slide_hunk(pairs, t, pj + 1, nj, ka, 1, before, after)
        elif removed and not inserted:
            _slide_hunk(pairs, t, pi + 1, ni, kb, 0, before, after)
        t += 1


def _slide_hunk(pairs: list[tuple[int, int]], t: int, start: int, end: int, keys: list[Key], side: int,
                before: list[Node], after: list[Node]) -> None:
    other = 1 - side
    length = end - start
    up = 0
    while t - up - 1 >= 0:
        k = up + 1
        pair = pairs[t - k]
        if pair[side] != start - k or pair[other] != pairs[t - 1][other] - (k - 1) or keys[start - k] != keys[end - k]:
            break
        up = k
    down = 0
    while t + down < len(pairs):
        pair = pairs[t + down]
        if pair[side] != end + down or pair[other] != pairs[t][other] + down or keys[start + down] != keys[end + down]:
            break
        down += 1
    if not up and not down:
        return
    window = pairs[t - up:t + down]

    def shifted(d: int) -> list[tuple[int, int]]:
        out = []
        for k, pair in enumerate(window):
            pos = pair[side]
            if k < up and d < 0 and up - k <= -d:
                pos += length
            elif k >= up and d > 0 and k - up < d:
                pos -= length
            out.append((pair[0], pos) if side else (pos, pair[1]))
        return out

    def score(candidate: list[tuple[int, int]]) -> int:
        return sum(1 for i, j in candidate if before[i] == after[j])

    best, best_score = 0, score(window)
    for d in sorted(range(-up, down + 1), key=abs):
        if d and (s := score(shifted(d))) > best_score:
            best, best_score = d, s
    if best:
        pairs[t - up:t + down] = shifted(best)


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
        self.path = (*parent_path, _name(node))
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


class _Differ:
    def __init__(self, opaque_references: bool) -> None:
        self.opaque = opaque_references
        self.pool: tuple[list[_Slot], list[_Slot]] = ([], [])
        self.levels: list[_Level] = []
        self._signatures: dict[int, str] = {}
        self.places = _Places()

    # -- equality ----------------------------------------------------------------------------------

    def same(self, x: Any, y: Any) -> bool:
        if x == y:
            return True
        return self.opaque and _mask_references(x) == _mask_references(y)

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
        level.pairs = _align(before, after)
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
                level.sub[j] = self.level(_children(b), _children(a), (*b_path, _name(b)), (*a_path, _name(a)),
                                          (*b_loc, i), (*a_loc, j))
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
            inserted.sublevel = self.level(_children(b), _children(a), removed.path, inserted.path, removed.loc,
                                           inserted.loc)

    def _drop_children(self, slot: _Slot) -> None:
        for child in slot.children or ():
            child.dropped = True
            self._drop_children(child)

    def pair_moves(self) -> bool:
        inserted: dict[Key, list[_Slot]] = {}
        for slot in sorted((s for s in self.pool[1] if s.free), key=lambda s: s.loc):
            inserted.setdefault(_key(slot.node), []).append(slot)
        if not inserted:
            return False
        taken: dict[Key, int] = {}
        paired = False
        for slot in sorted((s for s in self.pool[0] if s.free), key=lambda s: s.loc):
            if not slot.free:
                continue
            key = _key(slot.node)
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
        joined = _monotone(rs, ins, lambda s: None if _is_group(s.node) else _name(s.node))
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
                    [(x, s) for x, s in enumerate(sub_r) if x not in taken_r and _is_group(s.node)],
                    [(y, s) for y, s in enumerate(sub_s) if y not in taken_s and _is_group(s.node)],
                    renamed)
                out += [(r0 + 1 + x, s0 + 1 + y) for x, y in groups]
        for x, y in out:
            self.join(rs[x], ins[y], StepOp.CHANGED)
        return bool(out)

    def _rename_signature(self, slot: _Slot) -> str | None:
        """Steps renamed in place: same type, same everything else."""
        if _is_group(slot.node):
            return None
        cached = self._signatures.get(id(slot.node))
        if cached is None:
            rest = {k: v for k, v in slot.node.items() if k != "name"}
            if self.opaque:
                rest = _mask_references(rest)
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
        kb, ka = [_key(n) for n in _children(b)], [_key(n) for n in _children(a)]
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
                if slot.free and slot.children is None and _is_group(slot.node):
                    kids = _children(slot.node)
                    slot.children = [self.slot(side, kids, k, slot.path, slot.loc, slot) for k in range(len(kids))]
                    opened = opened or bool(kids)
        return opened

    # -- field changes --------------------------------------------------------------------------------

    def fields(self, b: Node, a: Node) -> tuple[FieldChange, ...]:
        out: list[FieldChange] = []
        if _name(b) != _name(a):
            out.append(FieldChange("name", _name(b), _name(a)))
        keys = b.keys() | a.keys()
        for key in [*(k for k in _FIELD_ORDER if k in keys), *sorted(keys - _NOT_FIELDS - set(_FIELD_ORDER))]:
            x, y = b.get(key), a.get(key)
            if self.same(x, y):
                continue
            if key == "condition":
                if x is None or y is None or _shape(x) != _shape(y):
                    out.append(FieldChange("condition", x, y))
                else:
                    self.leaves("condition", x, y, out)
            elif key == "properties":
                self.properties(x, y, out)
            else:
                self.leaves(key, x, y, out)
        if not (self.same(b.get("attributes"), a.get("attributes"))
                and self.same(b.get("extraElements"), a.get("extraElements"))):
            out.append(FieldChange(RAW_XML, _raw_xml(b), _raw_xml(a)))
        if not out:
            return ()
        secret = sensitive_paths(b) | sensitive_paths(a)
        if secret:
            out = [FieldChange(c.path, c.before, c.after, True) if _touches(c.path, secret) else c for c in out]
        return tuple(out)

    def leaves(self, path: str, x: Any, y: Any, out: list[FieldChange]) -> None:
        if self.same(x, y):
            return
        if isinstance(x, dict) and isinstance(y, dict) and not _is_reference(x) and not _is_reference(y):
            if any(not self.same(x.get(k), y.get(k)) for k in _VERBATIM if k in x or k in y):
                out.append(FieldChange(path, x, y))
                return
            for key in [*y, *(k for k in x if k not in y)]:
                if key in x and key in y and key != "valueFrom":
                    self.leaves(f"{path}.{key}", x[key], y[key], out)
                elif not self.same(x.get(key), y.get(key)):
                    out.append(FieldChange(f"{path}.{key}", x.get(key), y.get(key)))
            return
        if (isinstance(x, list) and isinstance(y, list) and len(x) == len(y)
                and all(isinstance(v, dict) for v in x) and all(isinstance(v, dict) for v in y)):
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                self.leaves(f"{path}[{i}]", u, v, out)
            return
        out.append(FieldChange(path, x, y))

    def properties(self, x: Any, y: Any, out: list[FieldChange]) -> None:
        if not isinstance(x, list) or not isinstance(y, list):
            out.append(FieldChange("properties", x, y))
            return
        names = [_property_id(e) for e in x]
        if names != [_property_id(e) for e in y] or None in names or len(set(names)) != len(names):
            out.append(FieldChange("properties", x, y))
            return
        for name, u, v in zip(names, x, y, strict=True):
            self.leaves(f"properties[{name}]", u, v, out)

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
                        StepOp.CHANGED, (*level.a_path, _name(node)), _is_group(node), _step_type(node),
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
            op, slot.path, _is_group(slot.node), node_type, where(slot.siblings, slot.index, slot.path[:-1]),
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


def _touches(path: str, secret: frozenset[str]) -> bool:
    for s in secret:
        if path == s or path.startswith((s + ".", s + "[")) or s.startswith((path + ".", path + "[")):
            return True
    return False


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


def iter_nodes(steps: list[Node], loc: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Node]]:
    """Every node of a tree with its location (indexes into the ``steps`` lists), in document order."""
    for i, node in enumerate(steps):
        here = (*loc, i)
        yield here, node
        if "group" in node:
            yield from iter_nodes(node.get("steps") or [], here)
