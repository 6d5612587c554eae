"""Set Dynamic Variables rules: the escaped ``<Rules>`` document inside the ``Rules`` property.

The console stores the rules as XML text inside one ``<variable property="Rules">``. They become typed
``rules`` (conditions and variables) only when writing them back holds the same rules; secret variables
(``IsSecret="true"``) never keep their value: a typed rule refers to it with ``valueFrom``, and rules kept
as text have it emptied, as the console's export does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from reconciler.errors import CodecError
from reconciler.tsxml import conditions as cond_xml
from reconciler.tsxml.compare import same_rules
from reconciler.tsxml.secrets import SecretText, no_secrets
from reconciler.tsxml.values import NotCanonical
from reconciler.tsxml.xmltext import parse, serialize


def read_rules(text: str, secrets: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Typed rules; ``secrets(name)`` gives the ``{"valueFrom": …}`` a secret variable's value becomes."""
    root = parse(text.strip(), where="SetDynamicVariables rules")
    if root.tag != "Rules" or root.attrib:
        raise NotCanonical
    rules = []
    for rule_el in root:
        if rule_el.tag != "Rule" or rule_el.attrib:
            raise NotCanonical
        rule: dict[str, Any] = {}
        extra = []
        for part in rule_el:
            if part.tag == "condition" and "condition" not in rule:
                rule["condition"] = cond_xml.read_condition(part)
            elif part.tag == "Variables" and "variables" not in rule and not part.attrib:
                variables = []
                for var in part:
                    if var.tag != "Variable" or set(var.attrib) - {"Name", "IsSecret"} or "Name" not in var.attrib:
                        raise NotCanonical
                    item: dict[str, Any] = {"name": var.attrib["Name"]}
                    secret_flag = var.attrib.get("IsSecret")
                    if secret_flag not in ("true", "false"):
                        raise NotCanonical
                    if secret_flag == "true":
                        item["secret"] = True
                        if var.text:
                            item.update(secrets(var.attrib["Name"]))  # {"valueFrom": {...}}
                        else:
                            item["value"] = ""
                    else:
                        item["value"] = var.text or ""
                    variables.append(item)
                rule["variables"] = variables
            else:
                extra.append(cond_xml.raw_element(part))
        if extra:
            raise NotCanonical
        rules.append(rule)
    return rules


def blank_rule_secrets(text: str) -> tuple[str, list[str]]:
    """Rules text with every secret variable's value emptied (as the console's export does), and those values."""
    try:
        root = parse(text.strip(), where="SetDynamicVariables rules")
    except CodecError:
        return "", [text]  # unreadable text that mentions secrets is not kept at all
    found = []
    for var in root.iter("Variable"):
        if (var.get("IsSecret") or "").lower() == "true" and var.text:
            found.append(var.text)
            var.text = ""
    if not found:
        return text, []
    return serialize(root, indent=None) + ("\n" if text.endswith("\n") else ""), found


def write_rules(rules: list[dict[str, Any]], secrets: SecretText = no_secrets) -> str:
    """The ``Rules`` text of typed rules, as the console writes it (one line, a final line break)."""
    root = Element("Rules")
    for rule in rules:
        rule_el = SubElement(root, "Rule")
        if rule.get("condition") is not None:
            cond_xml.write_condition(rule_el, rule["condition"])
        vars_el = SubElement(rule_el, "Variables")
        for var in rule.get("variables") or ():
            var_el = SubElement(vars_el, "Variable", {"Name": var["name"],
                                                       "IsSecret": "true" if var.get("secret") else "false"})
            if var.get("valueFrom"):
                var_el.text = secrets(var["valueFrom"])
            else:
                var_el.text = "" if var.get("secret") else (var.get("value") or "")
        for raw in rule.get("extra") or ():
            cond_xml.build_raw(rule_el, raw)
    return serialize(root, indent=None) + "\n"


def typed_rules(text: str, secret_ref: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The typed rules of a ``Rules`` text, or None when they would not be written back as the same rules."""
    try:
        rules = read_rules(text, secret_ref)
    except (NotCanonical, CodecError):
        return None
    if not same_rules(write_rules(rules, secrets=lambda source: "set"), text):
        return None
    return rules
