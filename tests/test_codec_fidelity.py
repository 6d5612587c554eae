"""The codec keeps what a sequence was written as: the element of each step, and scripts as block text."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from reconciler.cli import cli
from reconciler.convert import manifest_to_xml, xml_to_manifest
from reconciler.models import TaskSequence
from reconciler.models.steps import GenericStep
from reconciler.source.yamlfile import dump
from reconciler.tsxml.compare import canonical_sequence
from reconciler.tsxml.sequence import derive_references, read_sequence, seal_secrets, write_sequence

#: MDT templates put a placeholder for a child sequence as a plain <step> of the Run Task Sequence type.
MDT_PLACEHOLDER = """<sequence version="3.00" name="Client">
  <group name="State Restore" disable="false" continueOnError="false" description="" expand="true">
    <step type="SMS_TaskSequence_SubTasksequence" name="Run child" disable="false" continueOnError="false"
          description="">
      <action>cscript.exe "%SCRIPTROOT%\\ZTIChild.wsf"</action>
      <defaultVarList>
        <variable name="OSDSubTasksequencePackageID" property="TsPackageID">PS100230</variable>
      </defaultVarList>
    </step>
    <action />
  </group>
</sequence>"""


def _round_trip(xml: str) -> tuple[dict, str]:
    """XML → manifest → YAML text → manifest → XML, as `convert` and a repository hold it."""
    manifest = xml_to_manifest(xml).manifest
    ts = TaskSequence.model_validate(yaml.safe_load(dump(manifest)))
    return manifest, manifest_to_xml(ts)


def test_a_placeholder_step_of_the_run_task_sequence_type_stays_a_step() -> None:
    manifest, back = _round_trip(MDT_PLACEHOLDER)
    step = manifest["spec"]["steps"][0]["steps"][0]
    assert step["type"] == "SMS_TaskSequence_SubTasksequence"
    assert step["element"] == "step"
    assert "<subtasksequence" not in back
    assert '<step type="SMS_TaskSequence_SubTasksequence" name="Run child"' in back
    assert canonical_sequence(back) == canonical_sequence(MDT_PLACEHOLDER)


def test_a_placeholder_is_a_generic_step_and_refers_to_no_child_sequence() -> None:
    manifest = xml_to_manifest(MDT_PLACEHOLDER).manifest
    ts = TaskSequence.model_validate(manifest)
    step = ts.spec.steps[0].steps[0]  # type: ignore[union-attr]
    assert type(step) is GenericStep
    assert step.step_type is None
    assert derive_references(manifest["spec"]["steps"], resolve=lambda ref: ref["id"]) == []
    assert "<referenceList>" not in manifest_to_xml(ts)


def test_a_real_run_task_sequence_step_records_no_element() -> None:
    xml = ('<sequence version="3.10"><subtasksequence type="SMS_TaskSequence_SubTasksequence" name="Child">'
           '<action>SubTasksequence.exe</action><defaultVarList>'
           '<variable name="OSDSubTasksequencePackageID" property="TsPackageID">PS100230</variable>'
           '</defaultVarList></subtasksequence></sequence>')
    manifest, back = _round_trip(xml)
    step = manifest["spec"]["steps"][0]
    assert step["type"] == "RunTaskSequence" and "element" not in step
    assert "<subtasksequence " in back


def test_a_step_of_another_type_written_as_subtasksequence_keeps_its_element() -> None:
    xml = ('<sequence version="3.10"><subtasksequence type="BDD_Placeholder" name="Odd" description="">'
           '<action>cscript.exe x.wsf</action><defaultVarList /></subtasksequence></sequence>')
    manifest, back = _round_trip(xml)
    assert manifest["spec"]["steps"][0]["element"] == "subtasksequence"
    assert canonical_sequence(back) == canonical_sequence(xml)


def test_an_element_equal_to_the_default_of_the_type_is_not_kept() -> None:
    spec = {"name": "x", "steps": [
        {"name": "Child", "type": "SMS_TaskSequence_SubTasksequence", "element": "subtasksequence",
         "settings": {"taskSequence": {"id": "PS100230"}}},
        {"name": "Cmd", "type": "BDD_Gather", "element": "step", "action": "cscript.exe g.wsf"},
    ]}
    ts = TaskSequence.model_validate({"apiVersion": "configmgr.gitops.io/v1alpha1", "kind": "TaskSequence",
                                      "metadata": {"name": "x"}, "spec": spec})
    assert [s.element for s in ts.spec.steps] == [None, None]  # type: ignore[union-attr]
    assert ts.spec.steps[0].type == "RunTaskSequence"  # type: ignore[union-attr]


def test_a_typed_step_under_another_element_is_refused_with_the_way_to_keep_it() -> None:
    with pytest.raises(ValidationError, match="SMS_TaskSequence_SubTasksequence"):
        TaskSequence.model_validate({"apiVersion": "configmgr.gitops.io/v1alpha1", "kind": "TaskSequence",
                                     "metadata": {"name": "x"}, "spec": {"name": "x", "steps": [
                                         {"name": "Child", "type": "RunTaskSequence", "element": "step",
                                          "settings": {"taskSequence": {"id": "PS100230"}}}]}})


def test_a_site_seals_a_password_in_a_step_written_as_subtasksequence() -> None:
    spec = read_sequence('<sequence version="3.10"><subtasksequence type="BDD_Connect" name="Map">'
                         '<action>net use</action><defaultVarList>'
                         '<variable name="P" property="Password">hunter2</variable>'
                         '</defaultVarList></subtasksequence></sequence>').spec
    written = write_sequence(spec, secrets=lambda source: "plain-secret-value")
    assert "plain-secret-value" in written
    assert "plain-secret-value" not in seal_secrets(written, lambda value: "sealed")


def test_convert_cli_keeps_the_placeholder_element(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "ts.xml"
    source.write_text(MDT_PLACEHOLDER)
    converted = CliRunner().invoke(cli, ["convert", str(source)])
    assert converted.exit_code == 0, converted.output
    manifest_file = tmp_path / "ts.yaml"
    manifest_file.write_text(converted.stdout)
    back = CliRunner().invoke(cli, ["convert", "--to", "xml", str(manifest_file)])
    assert back.exit_code == 0, back.output
    assert "<subtasksequence" not in back.stdout
    assert canonical_sequence(back.stdout) == canonical_sequence(MDT_PLACEHOLDER)
