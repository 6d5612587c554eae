"""The codec keeps what a sequence was written as: the element of each step, and scripts as block text."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.cli import cli
from reconciler.convert import manifest_to_xml, xml_to_manifest
from reconciler.models import TaskSequence
from reconciler.models.steps import GenericStep
from reconciler.source.yamlfile import dump, load_documents
from reconciler.source.yamlwriter import literal_block_exact
from reconciler.tsxml.compare import canonical_sequence
from reconciler.tsxml.sequence import derive_references, read_sequence, seal_secrets, write_sequence
from tests.conftest import corpus_xml_files, corpus_zip_objects

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


# -- multi-line text in YAML ------------------------------------------------------------------------

CORPUS = [(p.name, p.read_bytes()) for p in corpus_xml_files()] + corpus_zip_objects()
LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


def _multi_line_scalars(text: str) -> Iterator[yaml.ScalarNode]:
    stack = [yaml.compose(text, Loader=yaml.SafeLoader)]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if "\n" in node.value:
                yield node
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for _, v in node.value)


def test_every_multi_line_text_of_the_corpus_is_a_block_that_loads_back_equal() -> None:
    blocks = quoted = 0
    for name, raw in CORPUS:
        manifest = xml_to_manifest(raw, where=name).manifest
        text = dump(manifest)
        for loader in LOADERS:
            assert yaml.load(text, Loader=loader) == manifest, (name, loader)
        assert [d.data for d in load_documents(text)] == [manifest], name
        for node in _multi_line_scalars(text):
            if literal_block_exact(node.value):
                assert node.style == "|", (name, node.value[:80])
                blocks += 1
            else:
                # Only text YAML cannot carry in a block stays quoted; in the corpus that is one MDT step
                # description with CR LF line breaks (a YAML reader turns every line break into LF).
                assert "\r" in node.value, (name, node.value[:80])
                assert node.style == '"'
                quoted += 1
    assert blocks >= 45 and quoted == 1


block_text = st.text(st.sampled_from([" ", "\t", "\n", "a", "#", "-", ":", "é", "\u2019", "|", "'", '"', "…",
                                      "\U0001f600", "\r", "\x85", "\u2028", "\x07", "\ufeff"]), max_size=24)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(block_text.filter(lambda t: "\n" in t), min_size=1, max_size=3), st.integers(0, 3))
def test_multi_line_text_loads_back_equal_and_is_a_block_whenever_it_can_be(texts: list[str], depth: int) -> None:
    data: object = {"script": texts[0], "more": [{"action": t} for t in texts[1:]]}
    for _ in range(depth):
        data = {"steps": [data]}
    text = dump(data)
    for loader in LOADERS:
        assert yaml.load(text, Loader=loader) == data
    for node in _multi_line_scalars(text):
        assert (node.style == "|") == literal_block_exact(node.value), (node.value, text)


def test_convert_writes_a_script_with_trailing_spaces_and_a_leading_blank_line_as_a_block(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = "\n# Check the volume   \n$v = Get-Volume \n\tif ($v) {\n  Write-Host ok\n}\n"
    encoded = base64.b64encode(b"\xff\xfe" + script.replace("\n", "\r\n").encode("utf-16-le")).decode()
    source = tmp_path / "ts.xml"
    source.write_text(
        '<sequence version="3.10"><step type="SMS_TaskSequence_RunPowerShellScriptAction" name="Check" '
        'description="" runIn="FullOS" successCodeList="0 3010" retryCount="0" runFromNet="false">'
        '<action>osdrunpowershellscript.exe</action><defaultVarList>'
        '<variable name="OSDRunPowerShellScriptSourceScript" property="SourceScript">'
        f'{encoded}</variable><variable name="OSDRunPowerShellScriptExecutionPolicy" property="ExecutionPolicy">'
        'Bypass</variable></defaultVarList></step></sequence>')
    result = CliRunner().invoke(cli, ["convert", str(source)])
    assert result.exit_code == 0, result.output
    assert "script: |2\n" in result.stdout
    assert "\\n" not in result.stdout
    assert yaml.safe_load(result.stdout)["spec"]["steps"][0]["settings"]["script"] == script
