"""``<condition>`` XML ⇄ condition mappings (the YAML shape of :mod:`reconciler.models.conditions`)."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, SubElement

from reconciler.errors import CodecError

#: expression type → (YAML key, {XML variable name: YAML field})
EXPRESSIONS: dict[str, tuple[str, dict[str, str]]] = {
    "SMS_TaskSequence_VariableConditionExpression": (
        "variable", {"Variable": "name", "Operator": "operator", "Value": "value"}),
    "SMS_TaskSequence_WMIConditionExpression": ("wmi", {"Namespace": "namespace", "Query": "query"}),
    "SMS_TaskSequence_FileConditionExpression": ("file", {
        "Path": "path", "Version": "version", "VersionOperator": "versionOperator",
        "DateTime": "dateTime", "DateTimeOperator": "dateTimeOperator"}),
    "SMS_TaskSequence_FolderConditionExpression": ("folder", {
        "Path": "path", "DateTime": "dateTime", "DateTimeOperator": "dateTimeOperator"}),
    "SMS_TaskSequence_RegistryConditionExpression": ("registry", {
        "KeyPath": "keyPath", "Operator": "operator", "Type": "type", "Value": "value", "Data": "data"}),
    "SMS_TaskSequence_SoftwareConditionExpression": ("software", {
        "ProductCode": "productCode", "ProductName": "productName", "UpgradeCode": "upgradeCode",
        "Version": "version", "Operator": "operator"}),
}
BY_KEY = {key: (xml_type, names) for xml_type, (key, names) in EXPRESSIONS.items()}
_REQUIRED = {"variable": ("name", "operator"), "wmi": ("query",), "file": ("path",), "folder": ("path",),
             "registry": ("keyPath",)}


def raw_element(el: Element) -> dict[str, Any]:
    out: dict[str, Any] = {"tag": el.tag}
    if el.attrib:
        out["attributes"] = dict(el.attrib)
    children = list(el)
    if el.text is not None and (el.text.strip() or not children):
        out["text"] = el.text
    if children:
        out["children"] = [raw_element(c) for c in children]
    return out


def build_raw(parent: Element, raw: dict[str, Any]) -> Element:
    el = SubElement(parent, raw["tag"], dict(raw.get("attributes") or {}))
    if raw.get("text") is not None:
        el.text = raw["text"]
    for child in raw.get("children") or ():
        build_raw(el, child)
    return el


def _expression(el: Element) -> dict[str, Any]:
    xml_type = el.get("type", "")
    variables: list[tuple[str, str]] = []
    for var in el:
        if var.tag != "variable" or "name" not in var.attrib:
            raise CodecError(f"unexpected <{var.tag}> inside <expression type=\"{xml_type}\">")
        variables.append((var.attrib["name"], var.text or ""))
    names = [n for n, _ in variables]
    known = EXPRESSIONS.get(xml_type)
    if known is None or len(set(names)) != len(names) or set(el.attrib) != {"type"}:
        return {"expression": {"type": xml_type, "variables": dict(variables)}
                if len(set(names)) == len(names) and set(el.attrib) == {"type"}
                else _raw_expression(el)}
    key, mapping = known
    body: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for name, text in variables:
        if name in mapping:
            body[mapping[name]] = text
        else:
            extra[name] = text
    if any(f not in body for f in _REQUIRED.get(key, ())):
        return {"expression": {"type": xml_type, "variables": dict(variables)}}
    order = list(mapping.values())
    body = {f: body[f] for f in order if f in body}
    if extra:
        body["extra"] = extra
    return {key: body}


def _raw_expression(el: Element) -> dict[str, Any]:
    raise CodecError(f"cannot keep <expression type=\"{el.get('type')}\"> with repeated variables or "
                     f"extra attributes {sorted(set(el.attrib) - {'type'})}")


def read_operand(el: Element) -> dict[str, Any]:
    if el.tag == "expression":
        return _expression(el)
    if el.tag == "operator":
        kind = el.get("type", "")
        if kind not in ("and", "or", "not") or set(el.attrib) != {"type"}:
            raise CodecError(f"unsupported <operator type=\"{kind}\">; expected and, or or not")
        return {kind: [read_operand(c) for c in el]}
    if el.tag == "osConditionGroup":
        body: dict[str, Any] = {}
        attrs = dict(el.attrib)
        if "type" in attrs:
            body["operator"] = attrs.pop("type")
        if attrs:
            body["attributes"] = attrs
        platforms = []
        for child in el:
            if child.tag != "osExpressionGroup":
                raise CodecError(f"unexpected <{child.tag}> inside <osConditionGroup>")
            p_attrs = dict(child.attrib)
            platform: dict[str, Any] = {}
            if "name" in p_attrs:
                platform["name"] = p_attrs.pop("name")
            if p_attrs:
                platform["attributes"] = p_attrs
            if len(child):
                platform["children"] = [raw_element(c) for c in child]
            platforms.append(platform)
        body["platforms"] = platforms
        return {"os": body}
    raise CodecError(f"unsupported <{el.tag}> in a condition")


def read_condition(el: Element) -> Any:
    """``<condition>`` → one condition mapping, or a list when it has several operands (implicit and)."""
    operands = [read_operand(c) for c in el]
    return operands[0] if len(operands) == 1 else operands


def write_operand(parent: Element, cond: dict[str, Any]) -> None:
    (key, body), = cond.items()
    if key in ("and", "or", "not"):
        op = SubElement(parent, "operator", {"type": key})
        for child in body:
            write_operand(op, child)
        return
    if key == "os":
        attrs = {}
        if body.get("operator") is not None:
            attrs["type"] = body["operator"]
        attrs.update(body.get("attributes") or {})
        group = SubElement(parent, "osConditionGroup", attrs)
        for platform in body.get("platforms") or ():
            p_attrs = {}
            if platform.get("name") is not None:
                p_attrs["name"] = platform["name"]
            p_attrs.update(platform.get("attributes") or {})
            p_el = SubElement(group, "osExpressionGroup", p_attrs)
            for raw in platform.get("children") or ():
                build_raw(p_el, raw)
        return
    if key == "expression":
        variables = body.get("variables") or {}
        xml_type = body["type"]
    else:
        xml_type, mapping = BY_KEY[key]
        variables = {xml: body[field] for xml, field in mapping.items() if body.get(field) is not None}
        variables.update(body.get("extra") or {})
    expr = SubElement(parent, "expression", {"type": xml_type})
    # ConfigMgr writes expression variables in name order; the engine reads them by name.
    for name in sorted(variables):
        var = SubElement(expr, "variable", {"name": name})
        var.text = variables[name]


def write_condition(parent: Element, condition: Any) -> None:
    cond_el = SubElement(parent, "condition")
    for operand in condition if isinstance(condition, list) else [condition]:
        write_operand(cond_el, operand)
