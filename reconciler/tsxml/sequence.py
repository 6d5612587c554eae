"""Task sequence XML (``<sequence>``) ⇄ the step model.

Reading produces the YAML shape of a TaskSequence spec (``steps``, ``globalVariables``, ``xml``),
which the models then validate; writing takes a validated spec. Both directions are driven by the
step type table, so a property is described once.

Fidelity rules, so that XML → model → XML is the same sequence:

* a property becomes a typed setting only if writing that setting back gives the same text, the same
  variable name and the same ``hidden`` flag; anything else stays verbatim in ``properties``;
* the ``<action>`` command line is omitted when the console would build the same one from the
  settings, and kept verbatim when it differs;
* step attributes that ConfigMgr consoles always write (runIn, successCodeList, retryCount,
  runFromNet) are omitted when they hold the step type's default, and filled in on writing; MDT
  sequences (version 3.00) keep exactly the attributes they had;
* secrets (passwords, product keys, PINs, hidden dynamic variables) never reach the model: an empty
  value stays empty, any other value becomes a ``valueFrom`` reference listed in :class:`ReadResult`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from reconciler.errors import CodecError, UnresolvedReference
from reconciler.models.steptypes import BY_NAME, BY_XML_TYPE, ListProp, Prop, StepType, is_secret_property
from reconciler.secrets import describe
from reconciler.tsxml import conditions as cond_xml
from reconciler.tsxml.xmltext import parse, serialize

CONSOLE_VERSION = "3.10"
MDT_VERSION = "3.00"

PackageResolver = Callable[[dict[str, Any]], str]


def resolve_by_id(ref: dict[str, Any]) -> str:
    """Default resolver: references by ID need no site; references by console name do."""
    if ref.get("id"):
        return str(ref["id"])
    raise UnresolvedReference(
        f"package {ref.get('package')!r} is referenced by console name; writing XML needs its package ID: "
        "use {id: …} or resolve names against a site"
    )


@dataclass
class SecretPlaceholder:
    """A secret found while reading; the model holds ``valueFrom: {env: env}`` in its place."""

    where: str
    property: str
    env: str


@dataclass
class ReadResult:
    spec: dict[str, Any]
    secrets: list[SecretPlaceholder] = field(default_factory=list)


class _NotCanonical(Exception):
    """The text would not be written back identically, so the property stays verbatim."""


# -- values ------------------------------------------------------------------------------------


def _encode_script(script: str) -> str:
    return base64.b64encode(b"\xff\xfe" + script.replace("\n", "\r\n").encode("utf-16-le")).decode("ascii")


def _decode_script(text: str) -> str:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _NotCanonical from None
    if not raw.startswith(b"\xff\xfe") or len(raw) % 2:
        raise _NotCanonical
    try:
        script = raw[2:].decode("utf-16-le")
    except UnicodeDecodeError:
        raise _NotCanonical from None
    # The console editor stores CR LF; YAML shows plain line breaks.
    if "\r" in script.replace("\r\n", ""):
        raise _NotCanonical
    return script.replace("\r\n", "\n")


def _typed(prop: Prop, text: str) -> Any:
    kind = prop.kind
    if prop.choices and text and text not in prop.choices:
        raise _NotCanonical  # another spelling (PRIMARY) is kept verbatim, never corrected
    if kind in ("str", "app", "textsecret"):
        return text
    if kind == "bool":
        if text == prop.true_text:
            return True
        if text == prop.false_text:
            return False
        raise _NotCanonical
    if kind == "int":
        if not re.fullmatch(r"-?(0|[1-9][0-9]*)", text):
            raise _NotCanonical
        return int(text)
    if kind == "codes":
        if not re.fullmatch(r"-?[0-9]+( -?[0-9]+)*", text):
            raise _NotCanonical
        codes = [int(c) for c in text.split(" ")]
        if " ".join(str(c) for c in codes) != text:
            raise _NotCanonical
        return codes
    if kind == "package":
        return "" if text == "" else {"id": text}
    if kind == "script":
        script = _decode_script(text)
        if _encode_script(script) != text:
            raise _NotCanonical
        return script
    raise _NotCanonical


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
    return sorted(set(SECRET_MARKER.findall(xml)))


def secret_marker_sites(xml: str) -> dict[str, str]:
    """Where each secret marker sits (``env:NAME`` → ``step 'Join', DomainPassword``), for messages."""
    if "{{secret:" not in xml:
        return {}
    sites: dict[str, str] = {}
    for step in parse(xml).iter("step"):
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
    for step in root.iter("step"):
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


def _text(prop: Prop, value: Any, resolve: PackageResolver, secrets: SecretText = no_secrets) -> str:
    kind = prop.kind
    if kind == "bool":
        return prop.true_text if value else prop.false_text
    if kind == "int":
        return str(value)
    if kind == "codes":
        return " ".join(str(c) for c in value)
    if kind == "package":
        return "" if value == "" else resolve(value)
    if kind == "script":
        return _encode_script(value)
    if kind == "secret" or isinstance(value, dict):
        return secrets(value["valueFrom"]) if isinstance(value, dict) and value.get("valueFrom") else ""
    return str(value)


# -- dynamic variable rules ----------------------------------------------------------------------


def _read_rules(text: str, secrets: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Typed rules; ``secrets(name)`` gives the ``{"valueFrom": …}`` a secret variable's value becomes."""
    root = parse(text.strip(), where="SetDynamicVariables rules")
    if root.tag != "Rules" or root.attrib:
        raise _NotCanonical
    rules = []
    for rule_el in root:
        if rule_el.tag != "Rule" or rule_el.attrib:
            raise _NotCanonical
        rule: dict[str, Any] = {}
        extra = []
        for part in rule_el:
            if part.tag == "condition" and "condition" not in rule:
                rule["condition"] = cond_xml.read_condition(part)
            elif part.tag == "Variables" and "variables" not in rule and not part.attrib:
                variables = []
                for var in part:
                    if var.tag != "Variable" or set(var.attrib) - {"Name", "IsSecret"} or "Name" not in var.attrib:
                        raise _NotCanonical
                    item: dict[str, Any] = {"name": var.attrib["Name"]}
                    secret_flag = var.attrib.get("IsSecret")
                    if secret_flag not in ("true", "false"):
                        raise _NotCanonical
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
            raise _NotCanonical
        rules.append(rule)
    return rules


def _blank_rule_secrets(text: str) -> tuple[str, list[str]]:
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


def _write_rules(rules: list[dict[str, Any]], secrets: SecretText = no_secrets) -> str:
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


# -- reading ---------------------------------------------------------------------------------------


def _bool_attr(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


@dataclass
class _Var:
    name: str | None
    property: str | None
    hidden: bool
    text: str


class _Reader:
    def __init__(self, console_style: bool) -> None:
        self.console_style = console_style
        self.secrets: list[SecretPlaceholder] = []
        self._env_names: set[str] = set()

    def secret_ref(self, where: str, prop: str) -> dict[str, Any]:
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
            elif el.tag in ("step", "subtasksequence"):
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
            elif child.tag not in ("group", "step", "subtasksequence"):
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
        if el.tag == "subtasksequence" and known is None:
            raise CodecError(f"<subtasksequence type={xml_type!r}> is not a Run Task Sequence step", where=name)
        self._options(el, node, attrs)
        self._step_attributes(known, attrs, node)

        action: str | None = None
        variables: list[_Var] = []
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
                    variables.append(_Var(var.get("name"), var.get("property"), hidden == "true", var.text or ""))
            else:
                extras.append(cond_xml.raw_element(child))
        if extras:
            node["extraElements"] = extras
        if not seen_action:
            raise CodecError("a step without an <action> element is not supported", where=name)

        properties: dict[str, str] = {}
        raw: list[_Var] = variables
        if known is not None:
            settings, raw = self._settings(known, variables, name)
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
                item["value"], found = _blank_rule_secrets(var.text)
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
        generated = _generate_action(known, properties) if known is not None else None
        if action != generated:
            for secret in secret_values:
                if secret:
                    action = action.replace(secret, "")
            node["action"] = action
        if attrs:
            node["attributes"] = attrs
        return node

    def _secret_settings_values(self, known: StepType | None, variables: list[_Var]) -> list[str]:
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
                codes = _typed(Prop("", "", "", "codes"), text)
            except _NotCanonical:
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

    def _settings(self, known: StepType, variables: list[_Var], where: str) -> tuple[dict[str, Any], list[_Var]]:
        by_prop: dict[str, _Var] = {}
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
                try:
                    rules = _read_rules(var.text, lambda n: self.secret_ref(where, f"rule {n}"))
                except (_NotCanonical, CodecError):
                    continue
                from reconciler.tsxml.compare import same_rules

                if not same_rules(_write_rules(rules, secrets=lambda source: "set"), var.text):
                    continue
                settings[prop.field] = rules
                consumed.add(id(var))
                continue
            if prop.property in secret_props:
                settings[prop.field] = "" if not var.text else self.secret_ref(where, prop.property)
                consumed.add(id(var))
                continue
            try:
                value = _typed(prop, var.text)
            except _NotCanonical:
                continue
            settings[prop.field] = value
            consumed.add(id(var))

        for lp in known.lists:
            items = self._list(lp, by_prop, duplicates)
            if items is None:
                continue
            values, used = items
            settings[lp.field] = values
            consumed.update(used)

        return settings, [v for v in variables if id(v) not in consumed]

    def _list(self, lp: ListProp, by_prop: dict[str, _Var], duplicates: set[str]) -> tuple[list[Any], set[int]] | None:
        pattern = re.compile(rf"^{re.escape(lp.prefix)}(0|[1-9][0-9]*)(.+)$")
        suffixes = {p.property: p for p in lp.items}
        found: dict[int, dict[str, _Var]] = {}
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
                    item[p.field] = _typed(p, var.text)
                except _NotCanonical:
                    return None
                used.add(id(var))
            values.append(item)
        for count in lp.counts:
            var = by_prop.get(count.property)
            if var is None or var.name != count.variable or var.hidden != count.hidden or var.text != str(len(found)):
                return None
            used.add(id(var))
        return values, used


def secret_properties(known: StepType, variables: list[_Var]) -> set[str]:
    """Properties of this step whose values are secrets, including a Set Variable with a hidden value."""
    props = {p.property for p in known.props if p.kind == "secret"}
    if known.name == "SetVariable" and any(
        v.property == "DoNotShowVariableValue" and v.text.lower() == "true" for v in variables
    ):
        props.add("VariableValue")
    return props


def _generate_action(known: StepType, properties: dict[str, str]) -> str:
    return known.action(properties) if callable(known.action) else known.action


def find_sequence_text(root: Element, where: str = "") -> tuple[str, dict[str, Any]]:
    """For a console ``object.xml`` (CIM-XML ``INSTANCE``), return the Sequence text and the properties."""
    props: dict[str, Any] = {}
    for p in root:
        name = p.get("NAME")
        if name is None or name.startswith("__"):
            continue
        if p.tag == "PROPERTY":
            value = p.find("VALUE")
            props[name] = None if value is None else (value.text or "")
        elif p.tag == "PROPERTY.ARRAY":
            array = p.find("VALUE.ARRAY")
            props[name] = None if array is None else [v.text or "" for v in array]
    sequence = props.get("Sequence")
    if not sequence:
        raise CodecError("the INSTANCE has no Sequence property (is it an SMS_TaskSequencePackage?)", where=where)
    return sequence, props


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
    reader = _Reader(console_style=version != MDT_VERSION)
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
        elif child.tag not in ("group", "step", "subtasksequence"):
            raise CodecError(f"unsupported <{child.tag}> in <sequence>", where=where)
    spec["steps"] = reader.nodes(root)
    if globals_:
        spec["globalVariables"] = globals_
    derived = derive_references(spec["steps"], resolve=_identity_resolver)
    if references is not None and _ref_set(references) != _ref_set(derived):
        xml["references"] = references
    elif references is None and derived:
        xml["references"] = []
    if xml:
        spec["xml"] = xml
    return ReadResult(spec, reader.secrets)


# -- references ---------------------------------------------------------------------------------


def _identity_resolver(ref: dict[str, Any]) -> str:
    return str(ref.get("id") or ref.get("package"))


def _ref_set(refs: list[dict[str, str]]) -> set[tuple[tuple[str, str], ...]]:
    return {tuple(sorted((k, v.upper() if k == "package" else v) for k, v in r.items())) for r in refs}


def iter_step_nodes(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step (not group) of a step tree in its YAML shape, in document order, as the same dicts."""
    for node in nodes:
        if "group" in node:
            yield from iter_step_nodes(node.get("steps") or [])
        else:
            yield node


def iter_package_refs(steps: list[dict[str, Any]]) -> Any:
    """Yield (step name, field, reference mapping or package ID string) for every content reference."""
    for node in iter_step_nodes(steps):
        known = BY_NAME.get(node.get("type") or "")
        if known is None:
            continue
        settings = node.get("settings") or {}
        for prop in known.props:
            value = settings.get(prop.field)
            if prop.kind == "package" and value:
                yield node["name"], prop.field, value
        if known.name == "DownloadPackageContent" and settings.get("packages"):
            for pid in str(settings["packages"]).split(","):
                if pid.strip():
                    yield node["name"], "packages", {"id": pid.strip()}


def derive_references(steps: list[dict[str, Any]], resolve: PackageResolver) -> list[dict[str, str]]:
    """The ``<referenceList>`` ConfigMgr computes from the steps: packages, child sequences, applications."""
    refs: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(entry: dict[str, str]) -> None:
        key = tuple(sorted(entry.items()))
        if key not in seen:
            seen.add(key)  # type: ignore[arg-type]
            refs.append(entry)

    for node in iter_step_nodes(steps):
        known = BY_NAME.get(node.get("type") or "")
        if known is None:
            continue
        settings = node.get("settings") or {}
        if known.name == "RunTaskSequence" and settings.get("taskSequence"):
            add({"package": resolve(settings["taskSequence"]), "program": "*"})
            continue
        for prop in known.props:
            value = settings.get(prop.field)
            if prop.kind == "package" and value:
                add({"package": resolve(value)})
        if known.name == "DownloadPackageContent" and settings.get("packages"):
            for pid in str(settings["packages"]).split(","):
                if pid.strip():
                    add({"package": pid.strip()})
        if known.name == "InstallApplication" and settings.get("applicationNames"):
            for app in str(settings["applicationNames"]).split(","):
                if app.strip():
                    add({"application": app.strip()})
    return refs


# -- writing ------------------------------------------------------------------------------------


class _Writer:
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
        el = SubElement(parent, known.element if known else "step", attrs)
        if node.get("condition") is not None:
            cond_xml.write_condition(el, node["condition"])

        variables = self.variables(known, node)
        properties = {}
        for _, prop, _, text in variables:
            if prop is not None:
                properties.setdefault(prop, text)
        action = node.get("action")
        if action is None:
            if known is None:
                raise CodecError("a step of a type the product knows only generically needs 'action'",
                                 where=node["name"])
            action = _generate_action(known, properties)
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

    def variables(self, known: StepType | None, node: dict[str, Any]) -> list[tuple[str | None, str | None, bool, str]]:
        out: list[tuple[str | None, str | None, bool, str]] = []
        settings = node.get("settings") or {}
        if known is not None:
            for prop in known.props:
                value = settings.get(prop.field)
                if value is None:
                    continue
                text = (_write_rules(value, self.secrets) if prop.kind == "rules"
                        else _text(prop, value, self.resolve, self.secrets))
                out.append((prop.variable, prop.property, prop.hidden, text))
            for lp in known.lists:
                items = settings.get(lp.field)
                if not items:
                    continue
                for i, item in enumerate(items):
                    for p in lp.items:
                        if item.get(p.field) is not None:
                            out.append((f"{lp.variable_prefix}{i}{p.property}", f"{lp.prefix}{i}{p.property}",
                                        p.hidden, _text(p, item[p.field], self.resolve)))
                for count in lp.counts:
                    out.append((count.variable, count.property, count.hidden, str(len(items))))
        for raw in node.get("properties") or ():
            text = self.secrets(raw["valueFrom"]) if raw.get("valueFrom") is not None else (raw.get("value") or "")
            out.append((raw.get("variable"), raw.get("property"), bool(raw.get("hidden")), text))
        return out


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
    _Writer(console_style=version != MDT_VERSION, resolve=resolve, secrets=secrets).nodes(root, steps)
    return serialize(root, indent=indent)


def reference_ids(xml: str) -> tuple[str, ...]:
    """Package IDs and application names in a sequence's <referenceList> (what SetSequence refreshes)."""
    root = parse(xml)
    out = []
    for ref_list in root.iter("referenceList"):
        for ref in ref_list:
            value = ref.get("package") or ref.get("application")
            if value:
                out.append(value)
    return tuple(out)
