"""A known step's typed ``settings`` ⇄ its ``<defaultVarList>`` entries.

ConfigMgr keeps every setting of a step as a ``<variable name="OSD…" property="…">text</variable>``; the
step type table (:mod:`reconciler.models.steptypes`) says which property is which setting. Reading takes
an entry as a typed setting only when the table would write back the same variable name, hidden flag and
text; everything else stays verbatim in ``properties``. Both directions live here so that a property is
read and written by the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.models.steptypes import ListProp, StepType
from reconciler.tsxml.dynamic_rules import typed_rules, write_rules
from reconciler.tsxml.references import PackageResolver
from reconciler.tsxml.secrets import SecretText
from reconciler.tsxml.values import NotCanonical, text_value, typed_value

#: Gives the ``{"valueFrom": …}`` a secret found at (step name, property) becomes.
SecretRef = Callable[[str, str], dict[str, Any]]


@dataclass
class StepVariable:
    """One ``<defaultVarList>`` entry as read: task sequence variable name, property, hidden flag, text."""

    name: str | None
    property: str | None
    hidden: bool
    text: str


def secret_properties(known: StepType, variables: list[StepVariable]) -> set[str]:
    """Properties of this step whose values are secrets, including a Set Variable with a hidden value."""
    props = {p.property for p in known.props if p.kind == "secret"}
    if known.name == "SetVariable" and any(
        v.property == "DoNotShowVariableValue" and v.text.lower() == "true" for v in variables
    ):
        props.add("VariableValue")
    return props


def read_settings(known: StepType, variables: list[StepVariable], where: str,
                  secret_ref: SecretRef) -> tuple[dict[str, Any], list[StepVariable]]:
    """The typed settings of a step of a known type, and the entries that stay verbatim."""
    by_prop: dict[str, StepVariable] = {}
    duplicates: set[str] = set()
    for var in variables:
        if var.property is None:
            continue
        if var.property in by_prop:
            duplicates.add(var.property)
        by_prop[var.property] = var
    consumed: set[int] = set()
    settings: dict[str, Any] = {}
    secret_props = secret_properties(known, variables)

    for prop in known.props:
        var = by_prop.get(prop.property)
        if var is None or prop.property in duplicates:
            continue
        if var.name != prop.variable or var.hidden != prop.hidden:
            continue
        if prop.kind == "rules":
            rules = typed_rules(var.text, lambda n: secret_ref(where, f"rule {n}"))
            if rules is None:
                continue
            settings[prop.field] = rules
            consumed.add(id(var))
            continue
        if prop.property in secret_props:
            settings[prop.field] = "" if not var.text else secret_ref(where, prop.property)
            consumed.add(id(var))
            continue
        try:
            value = typed_value(prop, var.text)
        except NotCanonical:
            continue
        settings[prop.field] = value
        consumed.add(id(var))

    for lp in known.lists:
        items = _read_list(lp, by_prop, duplicates)
        if items is None:
            continue
        values, used = items
        settings[lp.field] = values
        consumed.update(used)

    return settings, [v for v in variables if id(v) not in consumed]


def _read_list(lp: ListProp, by_prop: dict[str, StepVariable],
               duplicates: set[str]) -> tuple[list[Any], set[int]] | None:
    """A numbered list (``OSDPartitions0Type``, ``OSDPartitions1Type``, … and a count), all or nothing."""
    pattern = re.compile(rf"^{re.escape(lp.prefix)}(0|[1-9][0-9]*)(.+)$")
    suffixes = {p.property: p for p in lp.items}
    found: dict[int, dict[str, StepVariable]] = {}
    for prop_name, var in by_prop.items():
        m = pattern.match(prop_name)
        if m and m.group(2) in suffixes:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = var
    if not found or set(found) != set(range(len(found))):
        return None
    used: set[int] = set()
    values = []
    for i in range(len(found)):
        item: dict[str, Any] = {}
        for suffix, var in found[i].items():
            p = suffixes[suffix]
            expected_name = f"{lp.variable_prefix}{i}{suffix}"
            if var.property in duplicates or var.hidden != p.hidden or var.name != expected_name:
                return None
            try:
                item[p.field] = typed_value(p, var.text)
            except NotCanonical:
                return None
            used.add(id(var))
        values.append(item)
    for count in lp.counts:
        var = by_prop.get(count.property)
        if var is None or var.name != count.variable or var.hidden != count.hidden or var.text != str(len(found)):
            return None
        used.add(id(var))
    return values, used


def write_variables(known: StepType | None, node: dict[str, Any], resolve: PackageResolver,
                    secrets: SecretText) -> list[tuple[str | None, str | None, bool, str]]:
    """The ``<defaultVarList>`` entries of a step (name, property, hidden, text): settings, then verbatim ones."""
    out: list[tuple[str | None, str | None, bool, str]] = []
    settings = node.get("settings") or {}
    if known is not None:
        for prop in known.props:
            value = settings.get(prop.field)
            if value is None:
                continue
            text = (write_rules(value, secrets) if prop.kind == "rules"
                    else text_value(prop, value, resolve, secrets))
            out.append((prop.variable, prop.property, prop.hidden, text))
        for lp in known.lists:
            items = settings.get(lp.field)
            if not items:
                continue
            for i, item in enumerate(items):
                for p in lp.items:
                    if item.get(p.field) is not None:
                        out.append((f"{lp.variable_prefix}{i}{p.property}", f"{lp.prefix}{i}{p.property}",
                                    p.hidden, text_value(p, item[p.field], resolve)))
            for count in lp.counts:
                out.append((count.variable, count.property, count.hidden, str(len(items))))
    for raw in node.get("properties") or ():
        text = secrets(raw["valueFrom"]) if raw.get("valueFrom") is not None else (raw.get("value") or "")
        out.append((raw.get("variable"), raw.get("property"), bool(raw.get("hidden")), text))
    return out
