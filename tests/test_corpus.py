"""Every real task sequence in the corpus survives XML → manifest → XML unchanged."""

from __future__ import annotations

import re

import pytest
import yaml

from reconciler.convert import manifest_to_xml, xml_to_manifest
from reconciler.models import TaskSequence
from reconciler.models.steptypes import is_secret_property
from reconciler.source.yamlfile import dump
from reconciler.tsxml.compare import canonical_sequence
from reconciler.tsxml.sequence import find_sequence_text
from reconciler.tsxml.xmltext import parse
from tests.conftest import corpus_xml_files, corpus_zip_objects

CASES = [(p.name, p.read_bytes()) for p in corpus_xml_files()] + corpus_zip_objects()


def test_corpus_is_present() -> None:
    assert len(corpus_xml_files()) >= 30
    assert len(corpus_zip_objects()) >= 10


def _by_id(ref: dict) -> str:
    return ref["id"]


@pytest.mark.parametrize(("name", "raw"), CASES, ids=[c[0][:80] for c in CASES])
def test_xml_to_manifest_to_xml_is_the_same_sequence(name: str, raw: bytes) -> None:
    converted = xml_to_manifest(raw, where=name)
    # Through YAML text, as an administrator's repository holds it.
    text = dump(converted.manifest)
    ts = TaskSequence.model_validate(yaml.safe_load(text))
    regenerated = manifest_to_xml(ts, resolve=_by_id)
    assert canonical_sequence(regenerated) == canonical_sequence(raw)
    again = TaskSequence.model_validate(xml_to_manifest(regenerated, where=name).manifest)
    assert again.spec.steps == ts.spec.steps
    assert again.spec.global_variables == ts.spec.global_variables
    assert again.spec.xml == ts.spec.xml


def _secret_values(raw: bytes) -> list[str]:
    root = parse(raw)
    if root.tag == "INSTANCE":
        root = parse(find_sequence_text(root)[0])
    values = []
    for step in root.iter():
        if step.tag not in ("step", "subtasksequence"):
            continue
        for var in step.iter("variable"):
            if var.text and is_secret_property(step.get("type"), var.get("property") or ""):
                values.append(var.text)
        for var in step.iter("variable"):
            if var.get("property") == "Rules" and var.text:
                values += re.findall(r'IsSecret="true">([^<]+)<', var.text)
    return values


@pytest.mark.parametrize(("name", "raw"), CASES, ids=[c[0][:80] for c in CASES])
def test_no_secret_reaches_the_manifest(name: str, raw: bytes) -> None:
    converted = xml_to_manifest(raw, where=name)
    text = dump(converted.manifest)
    for secret in _secret_values(raw):
        assert secret not in text


def test_run_task_sequence_survives_as_subtasksequence() -> None:
    raw = next(p for p in corpus_xml_files() if "Download_Pkg_Content_Cache" in p.name).read_bytes()
    converted = xml_to_manifest(raw)
    steps = converted.manifest["spec"]["steps"]
    child = next(s for s in steps if s.get("type") == "RunTaskSequence")
    assert child["settings"]["taskSequence"] == {"id": "OPC00230"}
    xml = manifest_to_xml(TaskSequence.model_validate(converted.manifest))
    assert "<subtasksequence " in xml
    assert '<reference package="OPC00230" program="*" />' in xml


def test_mdt_steps_without_type_survive() -> None:
    raw = next(p for p in corpus_xml_files() if "PSDClient.xml" in p.name).read_bytes()
    converted = xml_to_manifest(raw)
    ts = TaskSequence.model_validate(converted.manifest)
    xml = manifest_to_xml(ts)
    untyped_before = len([e for e in parse(raw).iter("step") if "type" not in e.attrib])
    untyped_after = len([e for e in parse(xml).iter("step") if "type" not in e.attrib])
    assert untyped_before == untyped_after > 0
    assert ts.spec.xml.version == "3.00"


def test_dynamic_variable_rules_become_structured_rules() -> None:
    raw = next(p for p in corpus_xml_files() if "ModelSupportTS" in p.name).read_bytes()
    text = dump(xml_to_manifest(raw).manifest)
    assert "W10X64DRIVERPACKAGE" in text
    assert "&lt;Rules" not in text and "<Rules>" not in text
    doc = yaml.safe_load(text)
    rules = [s for s in _walk(doc["spec"]["steps"]) if s.get("type") == "SetDynamicVariables"]
    assert rules and rules[0]["settings"]["rules"][0]["condition"]["variable"]["operator"] == "like"


def _walk(nodes: list[dict]) -> list[dict]:
    out = []
    for node in nodes:
        out.append(node)
        out += _walk(node.get("steps") or [])
    return out


def test_password_in_xml_becomes_value_from_reference() -> None:
    raw = b"""<sequence version="3.10"><step type="SMS_TaskSequence_ApplyNetworkSettingsAction" name="Join"
      description="" runIn="WinPE" successCodeList="0" retryCount="0" runFromNet="false">
      <action>osdnetsettings.exe configure</action><defaultVarList>
      <variable name="OSDDomainName" property="DomainName">corp.example.com</variable>
      <variable name="OSDJoinAccount" property="DomainUsername">CORP\\join</variable>
      <variable name="OSDJoinPassword" property="DomainPassword">S3cr3t!Pa55</variable>
      </defaultVarList></step></sequence>"""
    converted = xml_to_manifest(raw)
    text = dump(converted.manifest)
    assert "S3cr3t!Pa55" not in text
    step = converted.manifest["spec"]["steps"][0]
    env = step["settings"]["password"]["valueFrom"]["env"]
    assert converted.secrets[0].env == env
    xml = manifest_to_xml(TaskSequence.model_validate(converted.manifest))
    assert "S3cr3t!Pa55" not in xml
    assert canonical_sequence(xml) == canonical_sequence(raw)
