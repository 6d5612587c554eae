"""The field changes inside one node of a step tree, and which of its fields hold secrets.

Field changes inside a node (:func:`node_fields`) are addressed relative to it, by the manifest's
field names, and values are never shortened here (that is a renderer's choice). Where a value has
no names (the operands of a condition, the partitions of a disk), an index addresses it inside
its named field; a node is never addressed by index.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from reconciler.diff.changes import FieldChange
from reconciler.diff.stepnodes import Node, node_name
from reconciler.models.steptypes import BY_NAME, BY_XML_TYPE, is_secret_property
from reconciler.tsxml.conditions import build_raw
from reconciler.tsxml.xmltext import serialize

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
    return FieldComparison(opaque_references).fields(before, after)


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


class FieldComparison:
    """Field changes between two versions of a node; the step differ compares matched nodes through it."""

    def __init__(self, opaque_references: bool) -> None:
        self.opaque = opaque_references

    def same(self, x: Any, y: Any) -> bool:
        if x == y:
            return True
        return self.opaque and mask_references(x) == mask_references(y)

    def fields(self, b: Node, a: Node) -> tuple[FieldChange, ...]:
        out: list[FieldChange] = []
        if node_name(b) != node_name(a):
            out.append(FieldChange("name", node_name(b), node_name(a)))
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


def _property_id(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    name = entry.get("property") or entry.get("variable")
    return str(name) if name else None


def _is_reference(value: dict[str, Any]) -> bool:
    """``{"valueFrom": {...}}``: a reference to a secret is one value, never a path to walk into."""
    return len(value) == 1 and "valueFrom" in value


def mask_references(value: Any) -> Any:
    """The value with every ``valueFrom`` emptied, for comparisons in which references are opaque."""
    if isinstance(value, dict):
        if "valueFrom" in value:
            return {**value, "valueFrom": None}
        return {k: mask_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_references(v) for v in value]
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


def _touches(path: str, secret: frozenset[str]) -> bool:
    for s in secret:
        if path == s or path.startswith((s + ".", s + "[")) or s.startswith((path + ".", path + "[")):
            return True
    return False
