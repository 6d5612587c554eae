"""The generated schemas are current, the CRDs structural, and manifests validate against both."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.crds import crd, json_schema, render_files, write_crds
from reconciler.models import KINDS
from reconciler.render.schemas import DOCUMENTS

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((REPO / "manifests").rglob("*.yaml"))

EXAMPLES = {
    "TaskSequence": r"""
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {name: win11-install, labels: {team: osd}}
spec:
  name: Windows 11 23H2 - Install
  type: InstallOperatingSystem
  folder: OSD/Production
  enabled: true
  bootImage: {package: Boot image (x64)}
  highImpact: {enabled: true, notification: {headline: Confirm, body: [a, b, c]}}
  softwareCenter: {restartRequired: true, downloadSizeMB: 5200, estimatedRunTimeMinutes: 75}
  steps:
    - group: Install Operating System
      steps:
        - name: Partition Disk 0 - UEFI
          type: FormatAndPartitionDisk
          condition: {variable: {name: _SMSTSBootUEFI, operator: equals, value: "true"}}
          settings: {diskNumber: 0, partitions: [{type: EFI, size: 100, sizeUnits: MB}]}
        - name: Join domain
          type: JoinDomainOrWorkgroup
          settings: {domain: corp.example.com, account: 'CORP\svc-join',
                     password: {valueFrom: {env: DOMAIN_JOIN_PASSWORD}}}
""",
    "TaskSequenceDeployment": """
apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequenceDeployment
metadata: {name: win11-install-pilot}
spec:
  taskSequence: win11-install
  collection: {name: OSD Pilot}
  purpose: Required
  availableTo: ClientsMediaAndPxe
  schedule: {availableAt: 2026-12-01T08:00:00Z, utc: true,
             assignments: [{at: 2026-12-05T20:00:00Z, recurrence: {weekly: {day: Friday, everyWeeks: 1}}},
                           {event: AsSoonAsPossible}],
             rerun: IfFailed}
  content: {access: DownloadWhenNeeded, allowRemoteFallback: false}
""",
    "ContentDistribution": """
apiVersion: configmgr.gitops.io/v1alpha1
kind: ContentDistribution
metadata: {name: win11-install-content}
spec: {taskSequence: win11-install, distributionPointGroups: [All DPs]}
""",
    "CollectionVariables": """
apiVersion: configmgr.gitops.io/v1alpha1
kind: CollectionVariables
metadata: {name: osd-pilot-vars}
spec:
  collection: {name: OSD Pilot}
  priority: 5
  variables: [{name: OSDTimeZone, value: W. Europe Standard Time},
              {name: OSDLocalAdminPassword, hidden: true, valueFrom: {env: LOCAL_ADMIN_PASSWORD}}]
""",
    "ComputerVariables": """
apiVersion: configmgr.gitops.io/v1alpha1
kind: ComputerVariables
metadata: {name: lab-pc-042}
spec: {computer: {name: LAB-PC-042}, variables: [{name: OSDComputerName, value: LAB-PC-042}]}
""",
}

#: A value outside an enum, per kind: in spec where the kind has one there, else apiVersion (a const).
WRONG_ENUMS: dict[str, tuple[str, ...]] = {
    "TaskSequence": ("spec", "type"),
    "TaskSequenceDeployment": ("spec", "purpose"),
    "ContentDistribution": ("apiVersion",),
    "CollectionVariables": ("apiVersion",),
    "ComputerVariables": ("apiVersion",),
}
#: A value the CRD schema refuses, per kind (apiVersion and kind are the API server's own business there).
CLUSTER_INVALID: dict[str, tuple[tuple[str, ...], Any]] = {
    "TaskSequence": (("spec", "type"), "Sometimes"),
    "TaskSequenceDeployment": (("spec", "schedule", "rerun"), "Sometimes"),
    "ContentDistribution": (("spec", "distributionPointGroups"), "All DPs"),
    "CollectionVariables": (("spec", "priority"), 10),
    "ComputerVariables": (("spec", "computer", "resourceId"), 0),
}

# --- helpers ---------------------------------------------------------------------------------------------


def as_json(value: Any) -> Any:
    """YAML's datetimes as the strings an editor sees (the JSON Schema speaks of strings only)."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat().replace("+00:00", "Z")
    return value


def example(kind: str) -> dict[str, Any]:
    return as_json(yaml.safe_load(EXAMPLES[kind]))


def errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """``path: message`` for every error, so a test can tell where a document was refused."""
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def editor_errors(doc: dict[str, Any]) -> list[str]:
    return errors(json_schema(doc["kind"]), doc)


def openapi_as_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A structural OpenAPI v3.0 node as JSON Schema, to check documents the way the API server would.

    Unknown fields stay allowed: the API server prunes them rather than refusing them.
    """
    out = {k: v for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k not in ("nullable", "default", "properties", "items",
                                                              "additionalProperties")}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.pop(exclusive, False):
            out[exclusive] = out.pop(bound)
    if "properties" in node:
        out["properties"] = {k: openapi_as_json_schema(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = openapi_as_json_schema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = openapi_as_json_schema(node["additionalProperties"])
    return out


def cluster_errors(doc: dict[str, Any]) -> list[str]:
    return errors(openapi_as_json_schema(crd(doc["kind"])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]), doc)


def with_value(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


#: The keys of Kubernetes' JSONSchemaProps that a v1 CRD may use (``$ref``, ``definitions``,
#: ``patternProperties``, ``dependencies``, ``additionalItems`` and ``id`` are refused; anything else is
#: an unknown field that strict field validation rejects).
JSON_SCHEMA_PROPS = frozenset({
    "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf",
    "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf", "not", "properties",
    "additionalProperties", "externalDocs", "example", "nullable", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-validations",
})
SCALAR_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool}


def carries_type(node: Any) -> bool:
    """Whether a value-validation branch (anyOf, allOf, ...) states a type anywhere inside it."""
    if isinstance(node, list):
        return any(carries_type(n) for n in node)
    if not isinstance(node, dict):
        return False
    children = [v for k, v in node.items() if k != "properties"] + list((node.get("properties") or {}).values())
    return "type" in node or any(carries_type(c) for c in children)


def structural_problems(node: Any, path: str = "") -> list[str]:
    """Kubernetes' rules for a structural schema, as far as a CRD generator can break them."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    problems = [f"{path}: {key} is not a JSONSchemaProps field" for key in node if key not in JSON_SCHEMA_PROPS]
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields") \
            and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if node.get("type") not in (None, "object", "array", "string", "integer", "number", "boolean"):
        problems.append(f"{path}: type {node['type']!r}")
    for key in ("oneOf", "anyOf", "allOf", "not"):
        parts = node.get(key, [])
        for part in parts if isinstance(parts, list) else [parts]:
            if carries_type(part):
                problems.append(f"{path}: {key} carries a type")
    if "additionalProperties" in node and "properties" in node:
        problems.append(f"{path}: additionalProperties beside properties")
    if node.get("uniqueItems"):
        problems.append(f"{path}: uniqueItems: true")
    if "properties" in node and node.get("type") != "object":
        problems.append(f"{path}: properties on a {node.get('type')}")
    if node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") not in (None, "object"):
        problems.append(f"{path}: preserve-unknown-fields on a {node['type']}")
    if re.search(r"\(\?[=!<]|\\[1-9]", node.get("pattern", "")):
        problems.append(f"{path}: pattern needs more than RE2")
    if "default" in node:
        scalar = SCALAR_TYPES.get(node.get("type", ""))
        value = node["default"]
        if scalar is None or not isinstance(value, scalar) or (isinstance(value, bool) and node["type"] != "boolean"):
            problems.append(f"{path}: default {value!r} does not fit type {node.get('type')}")
        elif value not in node.get("enum", [value]):
            problems.append(f"{path}: default {value!r} not in enum")
    if node.get("type") == "array":
        if not isinstance(node.get("items"), dict):
            problems.append(f"{path}: array without one items schema")
        else:
            problems += structural_problems(node["items"], f"{path}[]")
    for name, child in (node.get("properties") or {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}{{*}}")
    return problems


# --- files on disk ---------------------------------------------------------------------------------------


def test_files_in_crds_are_current() -> None:
    assert write_crds(REPO / "crds", check=True) == []


def test_a_modified_or_missing_file_is_reported_stale_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "crds"
    shutil.copytree(REPO / "crds", out)
    (out / "tasksequence.yaml").write_text((out / "tasksequence.yaml").read_text() + "# local edit\n")
    (out / "computervariables.schema.json").unlink()

    stale = write_crds(out, check=True)

    assert sorted(stale) == [out / "computervariables.schema.json", out / "tasksequence.yaml"]
    assert (out / "tasksequence.yaml").read_text().endswith("# local edit\n")
    assert not (out / "computervariables.schema.json").exists()


def test_writing_creates_the_folder_and_a_second_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "new" / "crds"
    written = write_crds(out)
    assert sorted(p.name for p in written) == sorted(render_files())
    assert write_crds(out) == []
    assert write_crds(out, check=True) == []


def test_rendering_is_deterministic_and_in_the_promised_formats() -> None:
    files = render_files()
    assert files == render_files()
    assert sorted(files) == sorted([f"{k.lower()}.schema.json" for k in KINDS] + [f"{k.lower()}.yaml" for k in KINDS]
                                   + ["plan.schema.json", *DOCUMENTS])
    for name, text in files.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), name
        if name.endswith(".json"):
            assert json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n" == text, name
        else:
            assert "&id" not in text and "*id" not in text, f"{name}: YAML anchors"
            assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition", name


# --- CRDs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_crd_is_a_served_stored_namespaced_v1_crd(kind: str) -> None:
    doc = crd(kind)
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["kind"] == "CustomResourceDefinition"
    spec = doc["spec"]
    names = spec["names"]
    assert doc["metadata"]["name"] == f"{names['plural']}.configmgr.gitops.io"
    assert spec["group"] == "configmgr.gitops.io" and spec["scope"] == "Namespaced"
    assert names["kind"] == kind and names["listKind"] == f"{kind}List"
    assert names["singular"] == kind.lower() and names["plural"].startswith(kind.lower())
    dns1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
    for name in (names["plural"], names["singular"], *names["shortNames"], *names.get("categories", [])):
        assert dns1035.match(name), name
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    root = version["schema"]["openAPIV3Schema"]
    assert root["type"] == "object"
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert root["properties"]["metadata"] == {"type": "object"}


def test_short_names_are_unique_across_kinds() -> None:
    short = [s for kind in KINDS for s in crd(kind)["spec"]["names"]["shortNames"]]
    assert len(short) == len(set(short))


@pytest.mark.parametrize("kind", list(KINDS))
def test_crd_schema_is_structural(kind: str) -> None:
    root = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "$schema" not in root and "$id" not in root and "$defs" not in root
    assert structural_problems(root) == []


def test_the_recursive_step_tree_is_kept_as_a_free_form_object() -> None:
    steps = crd("TaskSequence")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["steps"]
    assert steps["type"] == "array"
    assert steps["items"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_optional_fields_are_nullable_and_null_defaults_are_left_out() -> None:
    spec = crd("TaskSequenceDeployment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    schedule = spec["properties"]["schedule"]["properties"]
    assert schedule["availableAt"]["nullable"] is True and schedule["availableAt"]["type"] == "string"
    event = schedule["assignments"]["items"]["properties"]["event"]
    assert event["nullable"] is True and event["enum"][-1] is None
    assert spec["properties"]["purpose"]["default"] == "Available"


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_example_is_accepted_by_the_crd_schema(kind: str) -> None:
    assert cluster_errors(example(kind)) == []


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_wrong_value_is_refused_by_the_crd_schema(kind: str) -> None:
    path, value = CLUSTER_INVALID[kind]
    found = cluster_errors(with_value(example(kind), path, value))
    assert any(e.startswith(".".join(path) + ":") for e in found), found


# --- JSON Schemas ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_json_schema_is_a_valid_2020_12_schema(kind: str) -> None:
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://configmgr.gitops.io/schemas/v1alpha1/{kind.lower()}.schema.json"
    assert schema["title"] == kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_example_is_a_valid_manifest_for_the_models_and_the_json_schema(kind: str) -> None:
    KINDS[kind].model_validate(yaml.safe_load(EXAMPLES[kind]))
    assert editor_errors(example(kind)) == []


@pytest.mark.parametrize("kind", list(KINDS))
def test_json_schema_refuses_an_unknown_field(kind: str) -> None:
    found = editor_errors(with_value(example(kind), ("spec", "colour"), "blue"))
    assert any(e.startswith("spec:") and "'colour' was unexpected" in e for e in found), found


@pytest.mark.parametrize("kind", list(KINDS))
def test_json_schema_refuses_a_wrong_enum_value(kind: str) -> None:
    path = WRONG_ENUMS[kind]
    found = editor_errors(with_value(example(kind), path, "Sometimes"))
    assert any(e.startswith(".".join(path) + ":") for e in found), found


def test_json_schema_checks_steps_by_their_type() -> None:
    doc = example("TaskSequence")
    partition = doc["spec"]["steps"][0]["steps"][0]
    partition["settings"]["diskNumbr"] = 0
    assert any("diskNumbr" in e for e in editor_errors(doc))
    partition["settings"].pop("diskNumbr")
    partition["type"] = "SMS_TaskSequence_PartitionDiskAction"  # the XML type names the same step
    assert editor_errors(doc) == []


def test_json_schema_accepts_one_condition_or_a_list() -> None:
    doc = example("TaskSequence")
    step = doc["spec"]["steps"][0]["steps"][0]
    step["condition"] = [step["condition"], {"not": [{"variable": {"name": "OSDSkip", "operator": "exists"}}]}]
    assert editor_errors(doc) == []
    step["condition"] = {"variable": {"name": "x", "operator": "equals"}, "wmi": {"query": "SELECT 1"}}
    assert editor_errors(doc) != []


def test_json_schema_accepts_a_collection_by_name_alone_as_the_loader_does() -> None:
    doc = with_value(example("TaskSequenceDeployment"), ("spec", "collection"), "OSD Lab")
    KINDS["TaskSequenceDeployment"].model_validate(doc)
    assert editor_errors(doc) == []
    assert cluster_errors(doc) == []
    assert editor_errors(with_value(doc, ("spec", "collection"), 7)) != []


@pytest.mark.parametrize("when", ["2026-12-01T20:00:00", "2026-12-01 20:00", "2026-12-01", "2026-12-01T20:00:00Z",
                                  "2026-12-01T20:00:00+01:00"])
def test_schedule_times_without_an_offset_are_accepted_like_the_site_keeps_them(when: str) -> None:
    doc = with_value(example("TaskSequenceDeployment"), ("spec", "schedule", "availableAt"), when)
    KINDS["TaskSequenceDeployment"].model_validate(doc)
    assert editor_errors(doc) == []
    assert cluster_errors(doc) == []


def test_a_schedule_time_that_is_not_a_time_is_refused_by_both_schemas() -> None:
    doc = with_value(example("TaskSequenceDeployment"), ("spec", "schedule", "availableAt"), "next Tuesday")
    assert any(e.startswith("spec.schedule.availableAt:") for e in editor_errors(doc))
    assert any(e.startswith("spec.schedule.availableAt:") for e in cluster_errors(doc))


# --- the example repository ------------------------------------------------------------------------------


@pytest.mark.skipif(not MANIFESTS, reason="manifests/ holds no *.yaml files yet")
@pytest.mark.parametrize("path", MANIFESTS, ids=[p.relative_to(REPO).as_posix() for p in MANIFESTS])
def test_every_manifest_validates_against_the_schema_of_its_kind(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    for doc in docs:
        assert doc.get("kind") in KINDS, f"{path.name}: unknown kind {doc.get('kind')!r}"
        name = f"{doc['kind']}/{doc.get('metadata', {}).get('name')}"
        assert editor_errors(as_json(doc)) == [], name
        assert cluster_errors(as_json(doc)) == [], name
