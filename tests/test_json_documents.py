"""Every --output json document: a format_version, snake_case keys, and the schema reconcile crds publishes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.render.schemas import DOCUMENTS
from tests.conftest import REPO, run_cli
from tests.test_scope import SECRETS

#: Keys whose value is a map of data (object names, counts by kind, operations, classes), not of field names.
DATA_MAPS = {"objects", "counts", "paths", "instance_methods", "summary", "planned", "result", "detail", "options",
             "changes_by_kind"}
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def camel_keys(node: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not SNAKE.match(str(key)):
                found.append(f"{path}.{key}")
            if key not in DATA_MAPS:
                found += camel_keys(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            found += camel_keys(item, f"{path}[]")
    return found


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("documents")
    shutil.copytree(REPO / "manifests", root / "manifests")
    (root / "manifests" / "secrets").mkdir(exist_ok=True)
    (root / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text("secret\n")
    assert run_cli("--yes", cwd=root, env=SECRETS).returncode == 0
    return root


COMMANDS = {
    "validate.schema.json": ["validate"],
    "status.schema.json": ["status"],
    "history.schema.json": ["history"],
    "audit.schema.json": ["audit"],
    "site-show.schema.json": ["site", "show"],
    "site-check.schema.json": ["site", "check"],
    "vars-effective.schema.json": ["vars", "effective", "--computer", "LAB-PC-042"],
    "prestage.schema.json": ["prestage", "Windows 11 23H2 - Install", "--out", "listing.pkgx", "--force"],
}


def test_every_published_document_schema_is_tested() -> None:
    assert set(COMMANDS) | {"review.schema.json"} == set(DOCUMENTS)


@pytest.mark.parametrize("schema_file", sorted(COMMANDS))
def test_each_json_document_has_a_format_version_snake_case_keys_and_matches_its_schema(
        estate: Path, schema_file: str) -> None:
    result = run_cli(*COMMANDS[schema_file], "--output", "json", cwd=estate, env=SECRETS)
    assert result.returncode == 0, result
    document = json.loads(result.stdout)
    assert isinstance(document, dict) and isinstance(document.get("format_version"), str)
    assert camel_keys(document) == []
    schema = json.loads((REPO / "crds" / schema_file).read_text())
    jsonschema.validate(document, schema)


def test_the_plan_document_has_snake_case_keys(estate: Path) -> None:
    document = json.loads(run_cli("plan", "--output", "json", cwd=estate, env=SECRETS).stdout)
    assert document["format_version"] == "1.3" and camel_keys(document) == []
