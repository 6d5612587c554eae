"""JSON Schemas and Kubernetes CustomResourceDefinitions of the manifest kinds, from the models.

The JSON Schema is for editors (``# yaml-language-server: $schema=…``) and for tools that check
manifests without this package. The CRD carries a *structural* OpenAPI v3 schema, as Kubernetes
requires: no ``$ref``, every node typed, unions that cannot be typed structurally kept as objects
that preserve unknown fields (the recursive step tree, the condition tree), ``X | null`` as
``nullable``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from reconciler.models import API_VERSION, KINDS
from reconciler.models.steptypes import STEP_TYPES

GROUP, VERSION = API_VERSION.split("/")
SCHEMA_BASE = "https://configmgr.gitops.io/schemas/v1alpha1"
SHORT_NAMES = {
    "TaskSequence": ["ts"],
    "TaskSequenceDeployment": ["tsdeploy", "tsd"],
    "ContentDistribution": ["tscontent"],
    "CollectionVariables": ["collvars"],
    "ComputerVariables": ["compvars"],
}


def _step_union(defs_prefix: str, options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The step/group union as if/then on ``type`` (pydantic's oneOf would match several step models)."""
    names = [o.get("$ref", "").split("/")[-1] for o in options]
    if "Group" not in names or "GenericStep" not in names:
        return None
    rules: list[dict[str, Any]] = [{"if": {"required": ["group"]}, "then": {"$ref": f"{defs_prefix}Group"}}]
    known: list[str] = []
    for step in STEP_TYPES:
        model = f"{step.name}Step"
        if model in names:
            known += [step.name, step.xml_type]
            rules.append({"if": {"required": ["type"], "properties": {"type": {"enum": [step.name, step.xml_type]}}},
                          "then": {"$ref": f"{defs_prefix}{model}"}})
    rules.append({"if": {"not": {"anyOf": [{"required": ["group"]},
                                           {"required": ["type"], "properties": {"type": {"enum": known}}}]}},
                  "then": {"$ref": f"{defs_prefix}GenericStep"}})
    return {"type": "object", "allOf": rules}


def _rewrite_unions(node: Any) -> Any:
    if isinstance(node, list):
        return [_rewrite_unions(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "oneOf" in node and all("$ref" in o for o in node["oneOf"]):
        replaced = _step_union("#/$defs/", node["oneOf"])
        if replaced is not None:
            return {**{k: v for k, v in node.items() if k not in ("oneOf", "discriminator")}, **replaced}
    out = {k: _rewrite_unions(v) for k, v in node.items()}
    condition = (out.get("properties") or {}).get("condition")
    if isinstance(condition, dict) and "anyOf" in condition:
        # ``condition:`` takes one condition or a list of them (joined by "and").
        arrays = [o for o in condition["anyOf"] if o.get("type") == "array"]
        if arrays:
            condition["anyOf"] = [arrays[0]["items"], *condition["anyOf"]]
    return out


def json_schema(kind: str) -> dict[str, Any]:
    model = KINDS[kind]
    schema = _rewrite_unions(model.model_json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}/{kind.lower()}.schema.json",
        **{k: v for k, v in schema.items() if k not in ("$schema", "$id")},
        "title": kind,
    }


def _deref(node: Any, defs: dict[str, Any], stack: tuple[str, ...]) -> Any:
    """Inline ``$ref``s; a reference back into its own chain becomes a free-form object."""
    if isinstance(node, list):
        return [_deref(n, defs, stack) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        if name in stack:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True, **_keep_docs(extra)}
        target = _deref(copy.deepcopy(defs[name]), defs, (*stack, name))
        return {**target, **_keep_docs(extra)}
    return {k: _deref(v, defs, stack) for k, v in node.items() if k != "$defs"}


def _keep_docs(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k in ("description", "default")}


def _structural(node: Any) -> Any:
    """Rewrite a JSON Schema node into the structural subset Kubernetes accepts."""
    if not isinstance(node, dict):
        return node
    node = dict(node)
    node.pop("title", None)
    node.pop("discriminator", None)
    for key in ("anyOf", "oneOf"):
        if key in node:
            raw = node.pop(key)
            options = [o for o in raw if o != {"type": "null"}]
            nullable = len(options) != len(raw)
            if len(options) == 1:
                merged = {**_structural(options[0]), **_keep_docs(node)}
                if nullable:
                    merged["nullable"] = True
                return merged
            types = {o.get("type") for o in options}
            if len(types) == 1 and None not in types and not types & {"object", "array"}:
                merged = {"type": types.pop(), **_keep_docs(node)}
            else:
                # A union of differently shaped objects (a step, a condition) cannot be structural.
                merged = {"type": "object", "x-kubernetes-preserve-unknown-fields": True, **_keep_docs(node)}
            if nullable:
                merged["nullable"] = True
            return merged
    if "allOf" in node:
        parts = node.pop("allOf")
        for part in parts:
            node = {**_structural(part), **node}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if "properties" in node:
        node["type"] = "object"
        node["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
        if node.get("additionalProperties") is False:
            node.pop("additionalProperties")
    elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _structural(node["additionalProperties"])
    elif node.get("type") == "object" and "additionalProperties" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("type") == "array":
        node["items"] = _structural(node.get("items") or {"type": "object",
                                                           "x-kubernetes-preserve-unknown-fields": True})
    if "type" not in node and "x-kubernetes-preserve-unknown-fields" not in node:
        node = {"type": "object", "x-kubernetes-preserve-unknown-fields": True, **node}
    if node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") != "object":
        node.pop("x-kubernetes-preserve-unknown-fields")
    for key in ("format",):
        if node.get(key) in ("date-time",) and node.get("type") != "string":
            node.pop(key)
    return node


def crd(kind: str) -> dict[str, Any]:
    schema = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    inlined = _deref(schema, schema.get("$defs", {}), (KINDS[kind].__name__,))
    structural = _structural(inlined)
    structural.pop("required", None)
    properties = structural.get("properties", {})
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {"type": "object"}
    plural = kind.lower() + ("es" if kind.endswith("s") else "s")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                      "shortNames": SHORT_NAMES[kind]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": (KINDS[kind].__doc__ or kind).strip().splitlines()[0],
                    "required": ["spec"],
                    "properties": {"apiVersion": properties["apiVersion"], "kind": properties["kind"],
                                   "metadata": properties["metadata"], "spec": properties["spec"]},
                }},
            }],
        },
    }


def render_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for kind in KINDS:
        files[f"{kind.lower()}.schema.json"] = json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"
        files[f"{kind.lower()}.yaml"] = yaml.safe_dump(crd(kind), sort_keys=False, allow_unicode=True, width=110)
    return files


def write_crds(out_dir: Path, check: bool = False) -> list[Path]:
    """Write the files (returns those written), or with ``check`` return the ones missing or stale."""
    out: list[Path] = []
    for name, text in render_files().items():
        path = out_dir / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if check:
            if current != text:
                out.append(path)
            continue
        if current != text:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        out.append(path)
    return out
