"""The generated schemas are current, the CRDs structural, and every example manifest validates."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.crds import crd, json_schema, write_crds
from reconciler.models import KINDS
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "manifests").rglob("*.yaml"))


def test_files_on_disk_are_current() -> None:
    assert write_crds(REPO / "crds", check=True) == []


def test_a_stale_file_is_reported(tmp_path: Path) -> None:
    shutil.copytree(REPO / "crds", tmp_path / "crds")
    (tmp_path / "crds" / "tasksequence.yaml").write_text("stale\n")
    assert write_crds(tmp_path / "crds", check=True) == [tmp_path / "crds" / "tasksequence.yaml"]


def _check_structural(node: Any, path: str = "") -> None:
    assert isinstance(node, dict), path
    assert "$ref" not in node, path
    for key in ("oneOf", "anyOf", "allOf", "not"):
        assert key not in node, f"{path}: {key}"
    assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
    assert not ("additionalProperties" in node and "properties" in node), path
    for name, child in (node.get("properties") or {}).items():
        _check_structural(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        _check_structural(node["additionalProperties"], f"{path}{{}}")
    if node.get("type") == "array":
        _check_structural(node["items"], f"{path}[]")


@pytest.mark.parametrize("kind", list(KINDS))
def test_crd_is_a_structural_v1_crd(kind: str) -> None:
    doc = crd(kind)
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1" and doc["kind"] == "CustomResourceDefinition"
    version = doc["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert doc["spec"]["names"]["kind"] == kind
    _check_structural(version["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_json_schema_is_valid(kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema(kind))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat().replace("+00:00", "Z")
    return value


def validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema(kind), format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(REPO)) for p in EXAMPLES])
def test_example_manifests_validate_against_the_schemas(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        errors = list(validator(doc["kind"]).iter_errors(_jsonable(doc)))
        assert not errors, [e.message for e in errors[:3]]


def test_schema_rejects_unknown_fields_and_wrong_values() -> None:
    base = {"apiVersion": "configmgr.gitops.io/v1alpha1", "kind": "TaskSequenceDeployment",
            "metadata": {"name": "x"}, "spec": {"taskSequence": "x", "collection": {"name": "C"}}}
    assert not list(validator("TaskSequenceDeployment").iter_errors(base))
    bad = json.loads(json.dumps(base))
    bad["spec"]["purpose"] = "Sometimes"
    bad["spec"]["colour"] = "blue"
    messages = [e.message for e in validator("TaskSequenceDeployment").iter_errors(bad)]
    assert any("Sometimes" in m for m in messages) and any("colour" in m for m in messages)
