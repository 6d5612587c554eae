"""A TaskSequence spec (YAML shape) → task sequence XML (``<sequence>``).

The inverse of :mod:`reconciler.tsxml.reader`: what the reader left out because the console would write
it anyway (a step type's default attributes, the generated ``<action>``, the derived
``<referenceList>``) is filled in here, in the dialect the spec was read from. Secrets are written as
``secrets(valueFrom)`` says: empty for a plan, a conversion or an export; a marker for a site record.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, SubElement

from reconciler.errors import CodecError
from reconciler.models.steptypes import BY_NAME, default_element
from reconciler.tsxml import conditions as cond_xml
from reconciler.tsxml.dialect import CONSOLE_VERSION, console_style
from reconciler.tsxml.references import PackageResolver, derive_references, resolve_by_id
from reconciler.tsxml.secrets import SecretText, no_secrets
from reconciler.tsxml.settings import write_variables
from reconciler.tsxml.values import generated_action
from reconciler.tsxml.xmltext import serialize


class _Writer:
    """Writes one step tree in one dialect, resolving package references and filling secrets as told."""

    def __init__(self, console_style: bool, resolve: PackageResolver, secrets: SecretText = no_secrets) -> None:
        self.console_style = console_style
        self.resolve = resolve
        self.secrets = secrets

    def options(self, node: dict[str, Any], attrs: dict[str, str]) -> None:
        attrs["description"] = node.get("description", "")
        for key, xml_name in (("disabled", "disable"), ("continueOnError", "continueOnError")):
            if node.get(key):
                attrs[xml_name] = "true"
            elif not self.console_style:
                attrs[xml_name] = "false"

    def nodes(self, parent: Element, nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            if "group" in node:
                self.group(parent, node)
            else:
                self.step(parent, node)

    def group(self, parent: Element, node: dict[str, Any]) -> None:
        attrs = {"name": node["group"]}
        self.options(node, attrs)
        if node.get("expanded") is not None:
            attrs["expand"] = "true" if node["expanded"] else "false"
        attrs.update(node.get("attributes") or {})
        el = SubElement(parent, "group", attrs)
        if node.get("condition") is not None:
            cond_xml.write_condition(el, node["condition"])
        self.nodes(el, node.get("steps") or [])
        for raw in node.get("extraElements") or ():
            cond_xml.build_raw(el, raw)

    def step(self, parent: Element, node: dict[str, Any]) -> None:
        known = BY_NAME.get(node.get("type") or "")
        attrs: dict[str, str] = {}
        if known is not None:
            attrs["type"] = known.xml_type
        elif node.get("type") is not None:
            attrs["type"] = node["type"]
        attrs["name"] = node["name"]
        self.options(node, attrs)
        run_in = node.get("runIn")
        codes = node.get("successCodes")
        retry = node.get("retryCount")
        net = node.get("runFromNet")
        if self.console_style and known is not None:
            run_in = run_in if run_in is not None else known.run_in
            codes_text = " ".join(map(str, codes)) if codes is not None else known.success_codes
            retry = retry if retry is not None else 0
            net = net if net is not None else False
        else:
            codes_text = " ".join(map(str, codes)) if codes is not None else None
        if run_in is not None:
            attrs["runIn"] = run_in
        if codes_text is not None:
            attrs["successCodeList"] = codes_text
        if retry is not None:
            attrs["retryCount"] = str(retry)
        if net is not None:
            attrs["runFromNet"] = "true" if net else "false"
        if node.get("timeout") is not None:
            attrs["timeout"] = str(node["timeout"])
        if node.get("startIn") is not None:
            attrs["startIn"] = node["startIn"]
        attrs.update(node.get("attributes") or {})
        el = SubElement(parent, node.get("element") or default_element(node.get("type")), attrs)
        if node.get("condition") is not None:
            cond_xml.write_condition(el, node["condition"])

        variables = write_variables(known, node, self.resolve, self.secrets)
        properties = {}
        for _, prop, _, text in variables:
            if prop is not None:
                properties.setdefault(prop, text)
        action = node.get("action")
        if action is None:
            if known is None:
                raise CodecError("a step of a type the product knows only generically needs 'action'",
                                 where=node["name"])
            action = generated_action(known, properties)
        action_el = SubElement(el, "action")
        action_el.text = action
        var_list = SubElement(el, "defaultVarList")
        for name, prop, hidden, text in variables:
            attrs = {}
            if name is not None:
                attrs["name"] = name
            if prop is not None:
                attrs["property"] = prop
            if hidden:
                attrs["hidden"] = "true"
            SubElement(var_list, "variable", attrs).text = text
        for raw in node.get("extraElements") or ():
            cond_xml.build_raw(el, raw)


def write_sequence(spec: dict[str, Any], resolve: PackageResolver = resolve_by_id, indent: str | None = "  ",
                   secrets: SecretText = no_secrets) -> str:
    """Write the ``<sequence>`` XML of a TaskSequence spec (YAML shape, as ``model_dump(by_alias=True)``)."""
    xml = spec.get("xml") or {}
    version = xml.get("version", CONSOLE_VERSION)
    root_attrs = {"version": version} if version != "" else {}
    root_attrs.update(xml.get("attributes") or {})
    root = Element("sequence", root_attrs)
    steps = spec.get("steps") or []
    references = xml.get("references")
    if references is None:
        references = derive_references(steps, resolve)
    if references or (xml.get("references") is not None and xml.get("references") != []):
        ref_list = SubElement(root, "referenceList")
        for ref in references:
            SubElement(ref_list, "reference", dict(ref))
    if spec.get("globalVariables"):
        gl = SubElement(root, "globalVarList")
        for var in spec["globalVariables"]:
            attrs = {"name": var["name"]}
            if var.get("property") is not None:
                attrs["property"] = var["property"]
            SubElement(gl, "variable", attrs).text = var.get("value", "")
    _Writer(console_style=console_style(version), resolve=resolve, secrets=secrets).nodes(root, steps)
    return serialize(root, indent=indent)
