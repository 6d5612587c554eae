"""Secrets inside task sequence XML: the markers a site record holds, filling them, sealing them.

A manifest never holds a secret, only where it comes from (``valueFrom``). XML made for a site record
carries a marker ``{{secret:env:NAME}}`` in each secret's place, which the applier replaces with the value
at apply time only (:func:`fill_secrets`); XML for a plan, a conversion or an export leaves secrets empty,
as ConfigMgr's ``ExportXml`` does. A site keeps what it was given only sealed (:func:`seal_secrets`), the
way ConfigMgr never gives a password back. These functions work on the XML text so that the applier, the
planner and the site need no step model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from xml.etree.ElementTree import Element

from reconciler.errors import CodecError
from reconciler.models.steptypes import STEP_ELEMENTS, is_secret_property
from reconciler.secrets import describe
from reconciler.tsxml.xmltext import parse, serialize

#: How a writer fills a secret's place, given its ``valueFrom`` source: empty, a marker, or the value.
SecretText = Callable[[dict[str, Any]], str]
SECRET_MARKER = re.compile(r"\{\{secret:(env|file):([^}]*)\}\}")


def no_secrets(source: dict[str, Any]) -> str:
    """XML for a plan's display, a conversion or an export: secrets stay empty, as ConfigMgr's ExportXml."""
    return ""


def secret_marker(source: dict[str, Any]) -> str:
    """XML for a site record: a marker the applier replaces with the value, read at apply time only."""
    return "{{secret:" + describe(source) + "}}"


def fill_secrets(xml: str, value_of: Callable[[str, str], str]) -> str:
    """Replace secret markers by their values (``value_of(kind, name)``), escaping inside dynamic rules."""
    if "{{secret:" not in xml:
        return xml
    root = parse(xml)
    for var in root.iter("variable"):
        text = var.text or ""
        if "{{secret:" not in text:
            continue
        inner = var.get("property") == "Rules"

        def value(match: re.Match[str], inner: bool = inner) -> str:
            found = value_of(match.group(1), match.group(2))
            if inner:
                return found.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            return found

        var.text = SECRET_MARKER.sub(value, text)
    return serialize(root, indent=None)


def secret_references(xml: str) -> list[tuple[str, str]]:
    """The sources (``("env", NAME)`` / ``("file", PATH)``) whose values a record's markers stand for."""
    return sorted(set(SECRET_MARKER.findall(xml)))


def secret_marker_sites(xml: str) -> dict[str, str]:
    """Where each secret marker sits (``env:NAME`` → ``step 'Join', DomainPassword``), for messages."""
    if "{{secret:" not in xml:
        return {}
    sites: dict[str, str] = {}
    for step in _steps(parse(xml)):
        for var in step.iter("variable"):
            for kind, name in SECRET_MARKER.findall(var.text or ""):
                field = var.get("property") or var.get("name") or "value"
                sites.setdefault(f"{kind}:{name}", f"step {step.get('name')!r}, {field}")
    return sites


#: Cheap test before parsing: every secret property name holds one of these (see is_secret_property).
_MAY_HOLD_SECRET = re.compile(r"password|productkey|pin|issecret|donotshowvariablevalue", re.IGNORECASE)


def seal_secrets(xml: str, seal: Callable[[str], str]) -> str:
    """The sequence with every secret value replaced by ``seal(value)``; the same text when it holds none.

    Secrets are what the codec treats as secrets: step passwords, product keys and PINs, a Set Variable
    step's hidden value, and dynamic variables marked ``IsSecret``. Empty values stay empty. A site uses
    this to keep them the way ConfigMgr does: never readable back.
    """
    if not _MAY_HOLD_SECRET.search(xml):
        return xml
    root = parse(xml)
    changed = False
    for step in _steps(root):
        step_type = step.get("type")
        var_list = [v for c in step if c.tag == "defaultVarList" for v in c if v.tag == "variable"]
        hidden_value = step_type == "SMS_TaskSequence_SetVariableAction" and any(
            v.get("property") == "DoNotShowVariableValue" and (v.text or "").lower() == "true" for v in var_list)
        for var in var_list:
            text = var.text or ""
            prop = var.get("property") or ""
            if not text:
                continue
            if is_secret_property(step_type, prop or var.get("name") or "") or (
                    hidden_value and prop == "VariableValue"):
                sealed = seal(text)
            elif prop == "Rules" and "issecret" in text.lower():
                sealed = _seal_rules(text, seal)
            else:
                continue
            if sealed != text:
                var.text = sealed
                changed = True
    return serialize(root, indent=None) if changed else xml


def _seal_rules(text: str, seal: Callable[[str], str]) -> str:
    try:
        root = parse(text.strip(), where="SetDynamicVariables rules")
    except CodecError:
        return text  # rules the codec cannot read hold no secret it knows of
    changed = False
    for var in root.iter("Variable"):
        if (var.get("IsSecret") or "").lower() == "true" and var.text:
            sealed = seal(var.text)
            changed = changed or sealed != var.text
            var.text = sealed
    if not changed:
        return text
    return serialize(root, indent=None) + ("\n" if text.endswith("\n") else "")


def step_secret_refs(xml: str) -> list[str]:
    """Every secret marker as ``env:NAME`` / ``file:PATH``, in step order (a swap of two is a change)."""
    return [f"{kind}:{name}" for kind, name in SECRET_MARKER.findall(xml)]


def _steps(root: Element) -> Iterator[Element]:
    """Every step, whichever element it is written as (a generic step may be a <subtasksequence>)."""
    return (el for el in root.iter() if el.tag in STEP_ELEMENTS)
