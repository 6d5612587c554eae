"""Task sequence XML (``<sequence>``) → the YAML shape of a TaskSequence spec.

Reading produces what a manifest holds (``steps``, ``globalVariables``, ``xml``), which the models then
validate. The rules that make XML → manifest → XML the same sequence:

* a property becomes a typed setting only if writing that setting back gives the same text, the same
  variable name and the same ``hidden`` flag (:mod:`reconciler.tsxml.settings`); anything else stays
  verbatim in ``properties``;
* the ``<action>`` command line is omitted when the console would build the same one from the
  settings, and kept verbatim when it differs;
* step attributes that ConfigMgr consoles always write (runIn, successCodeList, retryCount,
  runFromNet) are omitted when they hold the step type's default; MDT sequences (version 3.00) keep
  exactly the attributes they had (:mod:`reconciler.tsxml.dialect`);
* secrets (passwords, product keys, PINs, hidden dynamic variables) never reach the manifest: an empty
  value stays empty, any other value becomes a ``valueFrom`` reference listed in :class:`ReadResult`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from reconciler.errors import CodecError
from reconciler.models.steptypes import (
    BY_XML_TYPE,
    STEP_ELEMENTS,
    Prop,
    StepType,
    default_element,
    is_secret_property,
)
from reconciler.tsxml import conditions as cond_xml
from reconciler.tsxml.dialect import CONSOLE_VERSION, NODE_ELEMENTS, console_style
from reconciler.tsxml.dynamic_rules import blank_rule_secrets
from reconciler.tsxml.instance import find_sequence_text
from reconciler.tsxml.references import derive_references, reference_set, resolve_as_written
from reconciler.tsxml.settings import StepVariable, read_settings, secret_properties
from reconciler.tsxml.values import NotCanonical, generated_action, typed_value
from reconciler.tsxml.xmltext import parse


@dataclass
class SecretPlaceholder:
    """A secret found while reading; the manifest holds ``valueFrom: {env: env}`` in its place."""

    where: str
    property: str
    env: str


@dataclass
class ReadResult:
    """A spec in its YAML shape, and the secrets whose values it left out."""

    spec: dict[str, Any]
    secrets: list[SecretPlaceholder] = field(default_factory=list)


class _Reader:
    """Reads one sequence's step tree, collecting the secrets it leaves out under unique variable names."""

    def __init__(self, console_style: bool) -> None:
        self.console_style = console_style
        self.secrets: list[SecretPlaceholder] = []
        self._env_names: set[str] = set()

    def secret_ref(self, where: str, prop: str) -> dict[str, Any]:
        """A ``valueFrom`` reference for the secret at step ``where``, property ``prop``, and its placeholder."""
        base = re.sub(r"[^A-Za-z0-9]+", "_", f"{where}_{prop}").strip("_").upper() or "SECRET"
        name = f"OSD_TS_{base}"[:120]  # OSD_: an environment variable the secrets policy allows by default
        n = 2
        candidate = name
        while candidate in self._env_names:
            candidate = f"{name}_{n}"
            n += 1
        self._env_names.add(candidate)
        self.secrets.append(SecretPlaceholder(where, prop, candidate))
        return {"valueFrom": {"env": candidate}}

    # nodes
    def nodes(self, parent: Element) -> list[dict[str, Any]]:
        out = []
        for el in parent:
            if el.tag == "group":
                out.append(self.group(el))
            elif el.tag in STEP_ELEMENTS:
                out.append(self.step(el))
        return out

    def _options(self, el: Element, node: dict[str, Any], attrs: dict[str, str]) -> None:
        if attrs.get("description") is not None:
            description = attrs.pop("description")
            if description:
                node["description"] = description
        for xml_name, key in (("disable", "disabled"), ("continueOnError", "continueOnError")):
            if xml_name in attrs:
                value = attrs.pop(xml_name)
                if value not in ("true", "false"):
                    attrs[xml_name] = value  # unusual spelling: keep verbatim
                elif value == "true":
                    node[key] = True

    def group(self, el: Element) -> dict[str, Any]:
        attrs = dict(el.attrib)
        if "name" not in attrs:
            raise CodecError("a <group> has no name attribute")
        node: dict[str, Any] = {"group": attrs.pop("name")}
        self._options(el, node, attrs)
        if attrs.get("expand") in ("true", "false"):
            node["expanded"] = attrs.pop("expand") == "true"
        extras = []
        for child in el:
            if child.tag == "condition" and "condition" not in node:
                node["condition"] = cond_xml.read_condition(child)
            elif child.tag not in NODE_ELEMENTS:
                extras.append(cond_xml.raw_element(child))
        node["steps"] = self.nodes(el)
        if attrs:
            node["attributes"] = attrs
        if extras:
            node["extraElements"] = extras
        return node

    def step(self, el: Element) -> dict[str, Any]:
        attrs = dict(el.attrib)
        xml_type = attrs.pop("type", None)
        known = BY_XML_TYPE.get(xml_type or "")
        if known is not None and known.element != el.tag:
            known = None
        if "name" not in attrs:
            raise CodecError(f"a <{el.tag}> of type {xml_type!r} has no name attribute")
        name = attrs.pop("name")
        node: dict[str, Any] = {"name": name}
        if known is not None:
            node["type"] = known.name
        elif xml_type is not None:
            node["type"] = xml_type
        if el.tag != default_element(xml_type):
            # Kept so the step is written back as it came: an MDT placeholder of the Run Task Sequence type
            # is a plain <step> (so a generic step, never a child sequence); other types as <subtasksequence>.
            node["element"] = el.tag
        self._options(el, node, attrs)
        self._step_attributes(known, attrs, node)

        action: str | None = None
        variables: list[StepVariable] = []
        extras = []
        seen_action = seen_vars = False
        for child in el:
            if child.tag == "condition" and "condition" not in node:
                node["condition"] = cond_xml.read_condition(child)
            elif child.tag == "action" and not seen_action and not child.attrib and not len(child):
                action = child.text or ""
                seen_action = True
            elif child.tag == "defaultVarList" and not seen_vars and not child.attrib:
                seen_vars = True
                for var in child:
                    if var.tag != "variable" or set(var.attrib) - {"name", "property", "hidden"}:
                        raise CodecError(f"unexpected <{var.tag}> in <defaultVarList>", where=name)
                    hidden = var.get("hidden")
                    if hidden not in (None, "true"):
                        raise CodecError(f"unexpected hidden={hidden!r} on variable {var.get('name')!r}", where=name)
                    variables.append(StepVariable(var.get("name"), var.get("property"), hidden == "true",
                                                  var.text or ""))
            else:
                extras.append(cond_xml.raw_element(child))
        if extras:
            node["extraElements"] = extras
        if not seen_action:
            raise CodecError("a step without an <action> element is not supported", where=name)

        properties: dict[str, str] = {}
        raw: list[StepVariable] = variables
        if known is not None:
            settings, raw = read_settings(known, variables, name, self.secret_ref)
            if settings:
                node["settings"] = settings
        secret_values = []
        raw_out = []
        step_secrets = secret_properties(known, variables) if known is not None else set()
        for var in raw:
            item: dict[str, Any] = {}
            if var.property is not None:
                item["property"] = var.property
            if var.name is not None:
                item["variable"] = var.name
            if var.text and (
                (var.property is not None and var.property in step_secrets)
                or is_secret_property(xml_type, var.property or var.name or "")
            ):
                item.update(self.secret_ref(name, var.property or var.name or "value"))
                secret_values.append(var.text)
            elif var.property == "Rules" and "IsSecret" in var.text:
                # Rules the typed form cannot hold are kept as text, but never with a secret's value in it.
                item["value"], found = blank_rule_secrets(var.text)
                secret_values += found
            else:
                item["value"] = var.text
            if var.hidden:
                item["hidden"] = True
            raw_out.append(item)
        if raw_out:
            node["properties"] = raw_out
        for var in variables:
            if var.property is not None:
                properties.setdefault(var.property, var.text)
        secret_values += self._secret_settings_values(known, variables)
        generated = generated_action(known, properties) if known is not None else None
        if action != generated:
            for secret in secret_values:
                if secret:
                    action = action.replace(secret, "")
            node["action"] = action
        if attrs:
            node["attributes"] = attrs
        return node

    def _secret_settings_values(self, known: StepType | None, variables: list[StepVariable]) -> list[str]:
        if known is None:
            return []
        secret_props = secret_properties(known, variables)
        return [v.text for v in variables if v.property in secret_props and v.text]

    def _step_attributes(self, known: StepType | None, attrs: dict[str, str], node: dict[str, Any]) -> None:
        defaults: dict[str, str | None] = {}
        if self.console_style and known is not None:
            defaults = {"runIn": known.run_in, "successCodeList": known.success_codes,
                        "retryCount": "0", "runFromNet": "false"}
        if "runIn" in attrs and attrs["runIn"] in ("WinPEandFullOS", "WinPE", "FullOS"):
            text = attrs.pop("runIn")
            if text != defaults.get("runIn"):
                node["runIn"] = text
        if "successCodeList" in attrs:
            text = attrs["successCodeList"]
            try:
                codes = typed_value(Prop("", "", "", "codes"), text)
            except NotCanonical:
                codes = None
            if codes is not None:
                attrs.pop("successCodeList")
                if text != defaults.get("successCodeList"):
                    node["successCodes"] = codes
        if "retryCount" in attrs:
            text = attrs["retryCount"]
            if re.fullmatch(r"0|[1-9][0-9]*", text):
                if text != defaults.get("retryCount"):
                    node["retryCount"] = int(text)
                attrs.pop("retryCount")
        if "runFromNet" in attrs and attrs["runFromNet"] in ("true", "false"):
            if attrs["runFromNet"] != defaults.get("runFromNet"):
                node["runFromNet"] = attrs["runFromNet"] == "true"
            attrs.pop("runFromNet")
        if "timeout" in attrs and re.fullmatch(r"0|[1-9][0-9]*", attrs["timeout"]):
            node["timeout"] = int(attrs.pop("timeout"))
        if "startIn" in attrs:
            node["startIn"] = attrs.pop("startIn")


def read_sequence(text: str | bytes, where: str = "") -> ReadResult:
    """Read ``<sequence>`` XML (or a console ``object.xml``) into the YAML shape of a TaskSequence spec."""
    root = parse(text, where=where)
    if root.tag == "INSTANCE":
        sequence_text, _ = find_sequence_text(root, where)
        root = parse(sequence_text, where=f"{where} (Sequence property)")
    if root.tag != "sequence":
        raise CodecError(f"the document element is <{root.tag}>, expected <sequence> or <INSTANCE>", where=where)
    attrs = dict(root.attrib)
    version = attrs.pop("version", None)
    reader = _Reader(console_style=console_style(version))
    spec: dict[str, Any] = {}
    xml: dict[str, Any] = {}
    if version != CONSOLE_VERSION:
        xml["version"] = version if version is not None else ""
    if attrs:
        xml["attributes"] = attrs
    references: list[dict[str, str]] | None = None
    globals_: list[dict[str, Any]] = []
    for child in root:
        if child.tag == "referenceList":
            references = [dict(r.attrib) for r in child if r.tag == "reference"]
            if any(r.tag != "reference" for r in child):
                raise CodecError("unexpected element in <referenceList>", where=where)
        elif child.tag == "globalVarList":
            for var in child:
                if var.tag != "variable" or set(var.attrib) - {"name", "property"}:
                    raise CodecError("unexpected element in <globalVarList>", where=where)
                item = {"name": var.get("name", "")}
                if var.get("property") is not None:
                    item["property"] = var.get("property")
                value = var.text or ""
                if value and is_secret_property(None, var.get("property") or var.get("name") or ""):
                    raise CodecError(f"global variable {item['name']!r} holds a secret; remove it before converting",
                                     where=where)
                item["value"] = value
                globals_.append(item)
        elif child.tag not in NODE_ELEMENTS:
            raise CodecError(f"unsupported <{child.tag}> in <sequence>", where=where)
    spec["steps"] = reader.nodes(root)
    if globals_:
        spec["globalVariables"] = globals_
    derived = derive_references(spec["steps"], resolve=resolve_as_written)
    if references is not None and reference_set(references) != reference_set(derived):
        xml["references"] = references
    elif references is None and derived:
        xml["references"] = []
    if xml:
        spec["xml"] = xml
    return ReadResult(spec, reader.secrets)
