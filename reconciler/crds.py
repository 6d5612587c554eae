"""JSON Schemas and Kubernetes CustomResourceDefinitions of the manifest kinds, generated from the models.

The JSON Schema is for editors (``# yaml-language-server: $schema=…``) and for tools that check manifests
without this package, so it keeps every constraint pydantic can express. The CRD is for clusters that
store the manifests as custom resources: the API server only accepts a *structural* OpenAPI v3 schema
(no ``$ref``, every node typed, no type-carrying unions), so the CRD schema is a coarser, inlined copy.
Where a union cannot be typed structurally (the step tree, conditions) the CRD keeps the value as-is
and leaves checking it to ``reconcile validate``. The models stay the one place a field is described.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.models import API_VERSION, KINDS, GenericStep, Group, Model
from reconciler.models.steps import TYPED_STEPS
from reconciler.models.steptypes import BY_NAME

GROUP, VERSION = API_VERSION.split("/")
SCHEMA_BASE = f"https://{GROUP}/schemas/{VERSION}"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
GENERATED = "Generated from reconciler/models by 'reconcile crds'; change the models, not this file."


@dataclass(frozen=True, slots=True)
class Names:
    """How kubectl names a kind (``spec.names`` of its CRD)."""

    plural: str
    singular: str
    short_names: tuple[str, ...]


#: Two kinds are already plural nouns; like the core ``Endpoints`` resource, they keep one name for both.
NAMES: dict[str, Names] = {
    "TaskSequence": Names("tasksequences", "tasksequence", ("ts",)),
    "TaskSequenceDeployment": Names("tasksequencedeployments", "tasksequencedeployment", ("tsdeploy", "tsd")),
    "ContentDistribution": Names("contentdistributions", "contentdistribution", ("tscontent",)),
    "CollectionVariables": Names("collectionvariables", "collectionvariables", ("collvars",)),
    "ComputerVariables": Names("computervariables", "computervariables", ("compvars",)),
}
#: ``kubectl get configmgr`` lists every kind at once.
CATEGORY = "configmgr"

PRESERVE = "x-kubernetes-preserve-unknown-fields"
#: Formats the API server validates; it ignores any other (newer versions warn), so those are left out.
K8S_FORMATS = frozenset({
    "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3", "uuid4",
    "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor", "byte", "password",
    "date", "duration", "datetime", "date-time",
})
#: Value validations JSONSchemaProps carries as they are; anything else pydantic writes is translated or dropped.
_VALIDATIONS = ("maximum", "minimum", "multipleOf", "maxLength", "minLength", "pattern", "maxItems", "minItems",
                "maxProperties", "minProperties")
_SCALARS = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


def schema_file(kind: str) -> str:
    return f"{kind.lower()}.schema.json"


def crd_file(kind: str) -> str:
    return f"{kind.lower()}.yaml"


def _description(model: type[Model]) -> str:
    """A kind's own docstring, else the first line of its module's (the kind classes have none of their own)."""
    doc = model.__dict__.get("__doc__") or sys.modules[model.__module__].__doc__ or model.__name__
    return doc.strip().splitlines()[0].replace("``", "")


# --- JSON Schema (editors) -------------------------------------------------------------------------------


def _step_dispatch(options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The step/group union as if/then on ``group`` and ``type``, as the model's discriminator decides.

    Pydantic writes the union as ``oneOf``, but ``GenericStep`` accepts every typed step too, so a valid
    typed step matches two branches and ``oneOf`` rejects it.
    """
    names = {o.get("$ref", "").rsplit("/", 1)[-1] for o in options}
    if not {Group.__name__, GenericStep.__name__} <= names:
        return None
    rules: list[dict[str, Any]] = [{"if": {"required": ["group"]}, "then": {"$ref": f"#/$defs/{Group.__name__}"}}]
    known: list[str] = []
    for name, model in TYPED_STEPS.items():
        if model.__name__ not in names:
            continue
        spellings = [name, BY_NAME[name].xml_type]  # the loader accepts the XML type of a known step too
        known += spellings
        rules.append({"if": {"required": ["type"], "properties": {"type": {"enum": spellings}}},
                      "then": {"$ref": f"#/$defs/{model.__name__}"}})
    rules.append({"if": {"not": {"anyOf": [{"required": ["group"]},
                                           {"required": ["type"], "properties": {"type": {"enum": known}}}]}},
                  "then": {"$ref": f"#/$defs/{GenericStep.__name__}"}})
    return {"type": "object", "allOf": rules}


def _editor_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_editor_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "oneOf" in node and all("$ref" in o for o in node["oneOf"]):
        dispatch = _step_dispatch(node["oneOf"])
        if dispatch is not None:
            return {**{k: v for k, v in node.items() if k != "oneOf"}, **dispatch}
    out = {k: _editor_schema(v) for k, v in node.items()}
    condition = (out.get("properties") or {}).get("condition")
    if isinstance(condition, dict) and "anyOf" in condition:
        # The loader wraps a lone condition into a list, which pydantic's schema does not show.
        lists = [o for o in condition["anyOf"] if o.get("type") == "array"]
        if lists:
            condition["anyOf"] = [lists[0]["items"], *condition["anyOf"]]
    return out


def json_schema(kind: str) -> dict[str, Any]:
    """The editor's schema of a kind: every constraint pydantic can state, ``$defs`` kept for readability."""
    model = KINDS[kind]
    schema = _editor_schema(model.model_json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": DIALECT,
        "$id": f"{SCHEMA_BASE}/{schema_file(kind)}",
        "$comment": GENERATED,
        "title": kind,
        "description": _description(model),
        **{k: v for k, v in schema.items() if k not in ("$schema", "$id", "$comment", "title", "description", "$defs")},
        # after the document's own properties, which a reader looks for first
        **({"$defs": schema["$defs"]} if "$defs" in schema else {}),
    }


# --- Structural OpenAPI v3 schema (CRDs) -----------------------------------------------------------------


def _free_form() -> dict[str, Any]:
    return {PRESERVE: True}


def _free_object() -> dict[str, Any]:
    return {"type": "object", PRESERVE: True}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _value_type(values: list[Any]) -> str | None:
    for name, types in (("boolean", (bool,)), ("integer", (int,)), ("number", (int, float)), ("string", (str,))):
        if values and all(isinstance(v, types) for v in values):
            return name
    return None


def _json_type(node: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """The one JSON type a schema node admits, without converting it (None: several, or any)."""
    node = _resolve(node, defs)
    if isinstance(node.get("type"), str):
        return node["type"]
    if "properties" in node:
        return "object"
    if "const" in node or "enum" in node:
        return _value_type([node["const"]] if "const" in node else node["enum"])
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        types = {_json_type(o, defs) for o in options}
        return types.pop() if len(types) == 1 else None
    return None


def _structural(node: Any, defs: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
    """One node in the structural subset; ``stack`` holds the definitions being inlined, to stop recursion."""
    if node is True or node == {}:
        return _free_form()
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        # A definition inside itself (Group.steps, RawElement.children) is the recursion point.
        out = _free_object() if name in stack else _structural(defs[name], defs, (*stack, name))
    elif "anyOf" in node or "oneOf" in node:
        out = _union(node.get("anyOf") or node["oneOf"], defs, stack)
    elif "allOf" in node:
        # Pydantic writes allOf only around a single $ref; several parts are merged into one node.
        names = tuple(p["$ref"].rsplit("/", 1)[-1] for p in node["allOf"] if "$ref" in p)
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            merged.update(_resolve(part, defs))
        merged.update({k: v for k, v in node.items() if k != "allOf"})
        out = _free_object() if set(names) & set(stack) else _structural(merged, defs, (*stack, *names))
    else:
        out = _typed(node, defs, stack)
    if "default" in node and _default_fits(out, node["default"]):
        out["default"] = node["default"]
    description = node.get("description", out.pop("description", None))  # the field's words over its model's
    head = {k: out.pop(k) for k in ("type", PRESERVE) if k in out}
    if description is not None:
        head["description"] = description
    return {**head, **out}  # type and description first, so the YAML reads like kubectl explain


def _union(options: list[dict[str, Any]], defs: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
    present = [o for o in options if o.get("type") != "null"]
    nullable = len(present) < len(options)
    types = {_json_type(o, defs) for o in present}
    if len(present) == 1:
        out = _structural(present[0], defs, stack)
    elif len(types) == 1 and types <= {"string", "integer", "number", "boolean"}:
        parts = [_structural(o, defs, stack) for o in present]
        out = {"type": parts[0]["type"]}
        if all("enum" in p for p in parts):
            out["enum"] = list(dict.fromkeys(v for p in parts for v in p["enum"]))
    elif types == {"integer", "string"}:
        out = {"x-kubernetes-int-or-string": True}
    elif types == {"object"}:
        out = _free_object()  # differently shaped objects (a step, a condition): kept, checked by the loader
    else:
        out = _free_form()
    if "type" not in out or out.get(PRESERVE):
        # Kept as-is, a value of one described kind (a collection given by name or by ID) keeps its words.
        described = {d for o in present if (d := _resolve(o, defs).get("description"))}
        if len(described) == 1:  # a step tree's many kinds of node have no one description
            out["description"] = described.pop()
    if nullable:
        out["nullable"] = True
        if "enum" in out and None not in out["enum"]:
            out["enum"].append(None)  # OpenAPI 3.0.3: nullable does not widen an enum; null must be listed
    return out


def _typed(node: dict[str, Any], defs: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "const" in node:
        out["enum"] = [node["const"]]
    elif "enum" in node:
        out["enum"] = list(node["enum"])
    kind = node.get("type")
    if not isinstance(kind, str):
        kind = "object" if "properties" in node else _value_type(out.get("enum", []))
    if kind is None:
        return _free_form()
    out["type"] = kind
    if kind == "object":
        additional = node.get("additionalProperties")
        if "properties" in node:
            out["properties"] = {k: _structural(v, defs, stack) for k, v in node["properties"].items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        elif isinstance(additional, dict) and additional:
            out["additionalProperties"] = _structural(additional, defs, stack)
        elif additional is not False:  # additionalProperties: false alone is a closed, empty object
            out[PRESERVE] = True
    elif kind == "array":
        if "prefixItems" in node:
            out["items"] = _union(node["prefixItems"], defs, stack)
        else:
            out["items"] = _structural(node.get("items", {}), defs, stack)
    for key in _VALIDATIONS:
        if key in node:
            out[key] = node[key]
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(node.get(exclusive), int | float) and not isinstance(node[exclusive], bool):
            out[bound] = node[exclusive]  # JSON Schema's number; OpenAPI v3.0 says it with a flag
            out[exclusive] = True
    if node.get("format") in K8S_FORMATS and kind == "string":
        out["format"] = node["format"]
    return out


def _default_fits(schema: dict[str, Any], value: Any) -> bool:
    """Whether a default may go into the CRD: only a scalar of the node's own type.

    The API server writes defaults into the objects it stores; a null or a whole object there would be a
    value the manifest never said (pydantic builds those defaults when it loads the manifest anyway).
    """
    types = _SCALARS.get(schema.get("type", ""))
    if types is None or value is None or (isinstance(value, bool) and schema["type"] != "boolean"):
        return False
    return isinstance(value, types) and ("enum" not in schema or value in schema["enum"])


def crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of a kind, for clusters that keep the manifests as custom resources."""
    model = KINDS[kind]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    spec = _structural(schema["properties"]["spec"], schema.get("$defs", {}), (model.__name__,))
    names = NAMES[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{names.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": list(names.short_names),
                "categories": [CATEGORY],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": _description(model),
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                    },
                }},
            }],
        },
    }


# --- Files -----------------------------------------------------------------------------------------------


#: The schema of the JSON plan (``--output json``), generated from the model that builds the document.
PLAN_SCHEMA_FILE = "plan.schema.json"


def render_files() -> dict[str, str]:
    """Every generated file by name, so writing and checking compare the very same text."""
    files: dict[str, str] = {}
    for kind in KINDS:
        files[schema_file(kind)] = json.dumps(json_schema(kind), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        files[crd_file(kind)] = f"# {GENERATED}\n" + yaml.safe_dump(
            crd(kind), sort_keys=False, allow_unicode=True, width=110
        )
    from reconciler.render.document import plan_schema
    from reconciler.render.schemas import DOCUMENTS, document_schema

    files[PLAN_SCHEMA_FILE] = json.dumps(plan_schema(), indent=2, ensure_ascii=False) + "\n"
    # The other commands' JSON documents (validate, status, history, audit, site show, site check, ...).
    for name in DOCUMENTS:
        files[name] = json.dumps(document_schema(name), indent=2, ensure_ascii=False) + "\n"
    return files


def write_crds(out_dir: Path, check: bool = False) -> list[Path]:
    """Bring ``out_dir`` up to date, or with ``check`` only report what is missing or stale.

    Files that already hold the right text are not rewritten, so a second run writes (and returns) nothing.
    """
    changed: list[Path] = []
    for name, text in render_files().items():
        path = out_dir / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        if not check:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed
