"""What "the same sequence" means: a canonical form of task sequence XML.

Two documents are the same sequence when they have the same groups, steps and sub-sequences in the
same order, with the same attributes, conditions, actions, variables and references. What carries
no meaning for the task sequence engine is ignored: formatting and indentation, the order of
attributes, of ``<defaultVarList>`` entries, of expression variables and of ``<referenceList>``
entries, ``disable``/``continueOnError`` written as ``"false"`` (MDT) versus left out (ConfigMgr),
and the values of secrets, which are never carried over.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from reconciler.models.steptypes import BY_XML_TYPE, is_secret_property
from reconciler.tsxml.instance import find_sequence_text
from reconciler.tsxml.xmltext import parse

_FALSE_DEFAULTS = ("disable", "continueOnError")


def _attrs(el: Element) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(
        (k, v) for k, v in el.attrib.items() if not (k in _FALSE_DEFAULTS and v.lower() == "false")
    ))


def _generic(el: Element) -> Any:
    return (el.tag, _attrs(el), (el.text or "").strip() if len(el) else (el.text or ""),
            tuple(_generic(c) for c in el))


def _condition(el: Element) -> Any:
    def operand(op: Element) -> Any:
        if op.tag == "expression":
            return ("expression", op.get("type"),
                    tuple(sorted((v.get("name") or "", v.text or "") for v in op)))
        if op.tag == "operator":
            return ("operator", op.get("type"), tuple(operand(c) for c in op))
        return _generic(op)

    return tuple(operand(c) for c in el)


def _rules(text: str, mask: bool | str = True) -> Any:
    """Comparable rules. ``mask`` blanks secret values; ``"presence"`` keeps only whether one is set."""
    try:
        root = parse(text.strip())
    except Exception:
        return ("unparsed", text)
    out = []
    for rule in root:
        parts = []
        for part in rule:
            if part.tag == "condition":
                parts.append(("condition", _condition(part)))
            elif part.tag == "Variables":
                parts.append(("variables", tuple(
                    (v.get("Name"), v.get("IsSecret"), _rule_value(v, mask)) for v in part)))
            else:
                parts.append(_generic(part))
        out.append(tuple(parts))
    return tuple(out)


def _rule_value(variable: Element, mask: bool | str) -> str:
    value = variable.text or ""
    if not mask or (variable.get("IsSecret") or "").lower() != "true":
        return value
    return ("set" if value else "") if mask == "presence" else ""


def same_rules(a: str, b: str) -> bool:
    """Whether two rule texts hold the same rules, a secret's value counting only as set or empty.

    The codec turns every set secret into a ``valueFrom`` reference and never keeps its value, so a
    secret's text must not decide whether the rules can be read as typed settings.
    """
    return _rules(a, mask="presence") == _rules(b, mask="presence")


def _step(el: Element) -> Any:
    step_type = el.get("type")
    variables = []
    secrets: list[str] = []
    var_list = [v for c in el if c.tag == "defaultVarList" for v in c]
    hidden_value = step_type == "SMS_TaskSequence_SetVariableAction" and any(
        v.get("property") == "DoNotShowVariableValue" and (v.text or "").lower() == "true" for v in var_list
    )
    for v in var_list:
        prop = v.get("property") or ""
        text = v.text or ""
        secret = is_secret_property(step_type, prop or v.get("name") or "") or (
            hidden_value and prop == "VariableValue")
        if secret:
            if text:
                secrets.append(text)
            text = ""
        elif prop == "Rules":
            text = _rules(text)  # type: ignore[assignment]
        variables.append((prop, v.get("name") or "", v.get("hidden") or "", text))
    action = None
    others = []
    condition = None
    for child in el:
        if child.tag == "action":
            action = child.text or ""
        elif child.tag == "condition":
            condition = _condition(child)
        elif child.tag != "defaultVarList":
            others.append(_generic(child))
    if action is not None:
        for secret in secrets:
            action = action.replace(secret, "")
    return (el.tag, _attrs(el), condition, action, tuple(sorted(variables, key=repr)), tuple(sorted(others, key=repr)))


def _node(el: Element) -> Any:
    if el.tag == "group":
        condition = None
        children = []
        others = []
        for child in el:
            if child.tag == "condition":
                condition = _condition(child)
            elif child.tag in ("group", "step", "subtasksequence"):
                children.append(_node(child))
            else:
                others.append(_generic(child))
        return ("group", _attrs(el), condition, tuple(children), tuple(sorted(others, key=repr)))
    return _step(el)


def canonical_sequence(xml: str | bytes | Element) -> Any:
    """A comparable form of a ``<sequence>``; equal forms mean the same sequence."""
    root = parse(xml) if not isinstance(xml, Element) else xml
    if root.tag == "INSTANCE":
        root = parse(find_sequence_text(root)[0])
    refs: set[Any] = set()
    globals_ = []
    nodes = []
    for child in root:
        if child.tag == "referenceList":
            refs |= {tuple(sorted((k, v.upper() if k == "package" else v) for k, v in r.attrib.items()))
                     for r in child}
        elif child.tag == "globalVarList":
            globals_.extend((v.get("name"), v.get("property"), v.text or "") for v in child)
        else:
            nodes.append(_node(child))
    return (_attrs(root), tuple(sorted(refs)), tuple(sorted(globals_, key=repr)), tuple(nodes))


def known_step_types() -> set[str]:
    return set(BY_XML_TYPE)
