"""Validation: every rule trips with a message naming file, line, field and what is allowed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import Finding, Severity
from reconciler.source.loader import load
from reconciler.validate import has_errors, validate

HEAD = "apiVersion: configmgr.gitops.io/v1alpha1\n"

TS = HEAD + textwrap.dedent("""\
    kind: TaskSequence
    metadata: {name: win11-install}
    spec:
      name: Windows 11 - Install
      type: InstallOperatingSystem
      steps:
        - name: Apply Operating System
          type: ApplyOperatingSystemImage
          settings: {image: {id: PS100012}, index: 3}
    """)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def findings_for(tmp_path: Path, *docs: str) -> list[Finding]:
    for i, doc in enumerate(docs):
        write(tmp_path, f"m{i}.yaml", doc)
    return validate(load(tmp_path))


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def deployment(extra: str, ts: str = "win11-install") -> str:
    return HEAD + textwrap.dedent(f"""\
        kind: TaskSequenceDeployment
        metadata: {{name: win11-pilot}}
        spec:
          taskSequence: {ts}
          collection: {{name: OSD Pilot}}
        """) + textwrap.indent(textwrap.dedent(extra), "  ")


def test_valid_set_has_no_errors(tmp_path: Path) -> None:
    found = findings_for(tmp_path, TS, deployment("purpose: Required\n"))
    assert not has_errors(found), [f.render() for f in found]


def test_unknown_field_suggests_the_close_name_with_line_and_column(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS.replace("type: InstallOperatingSystem", "typ: InstallOperatingSystem")))
    assert len(found) == 1
    f = found[0]
    assert f.path == "spec.typ"
    assert f.source.file.endswith("m0.yaml") and f.source.line == 6 and f.source.column == 3
    assert "did you mean 'type'?" in f.message
    assert f.object == "TaskSequence/win11-install"


def test_unknown_setting_of_a_typed_step_is_located(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS.replace("index: 3", "indx: 3")))
    assert found[0].path == "spec.steps[0].settings.indx"
    assert "did you mean 'index'?" in found[0].message
    assert found[0].source.line == 10


def test_all_errors_are_reported_in_one_run(tmp_path: Path) -> None:
    bad = TS.replace("type: InstallOperatingSystem", "type: Install").replace("index: 3", "index: three")
    found = errors(findings_for(tmp_path, bad, deployment("purpose: Requird\n")))
    assert {f.path for f in found} >= {"spec.type", "spec.steps[0].settings.index", "spec.purpose"}


def test_enum_error_lists_what_is_allowed(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS, deployment("purpose: Requird\n")))
    assert "allowed: 'Available' or 'Required'" in found[0].message
    assert "did you mean 'Required'" in found[0].message


def test_unknown_task_sequence_reference(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS, deployment("purpose: Available\n", ts="win11-instal")))
    assert found[0].path == "spec.taskSequence" and found[0].rule == "reference"
    assert "did you mean 'win11-install'" in found[0].message


def test_duplicate_names_per_kind(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS, TS))
    assert found[0].rule == "unique-name" and found[0].path == "metadata.name"


def test_notification_needs_high_impact_and_three_texts(tmp_path: Path) -> None:
    base = TS.replace("  type: InstallOperatingSystem\n", "  type: InstallOperatingSystem\n  highImpact: {HI}\n")
    no_flag = base.replace("{HI}", "{notification: {headline: H, body: [a, b, c]}}")
    assert "only shown for a high-impact" in errors(findings_for(tmp_path, no_flag))[0].message
    two = base.replace("{HI}", "{enabled: true, notification: {headline: H, body: [a, b]}}")
    assert "exactly three" in errors(findings_for(tmp_path, two))[0].message
    long = base.replace("{HI}", "{enabled: true, notification: {headline: " + "x" * 256 + ", body: [a, b, c]}}")
    found = errors(findings_for(tmp_path, long))
    assert found[0].path == "spec.highImpact.notification.headline" and "255" in found[0].message


def test_wake_up_packets_only_for_required(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS, deployment("purpose: Available\nsendWakeUpPackets: true\n")))
    assert found[0].rule == "wake-up-needs-required" and found[0].path == "spec.sendWakeUpPackets"
    assert found[0].source.line == 8


def test_console_rules_of_one_deployment_are_all_reported_at_once(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS, deployment(
        "sendWakeUpPackets: true\navailableTo: MediaAndPxe\ncontent: {access: DownloadAllBeforeStart}\n")))
    assert {(f.rule, f.path) for f in found} == {("wake-up-needs-required", "spec.sendWakeUpPackets"),
                                                 ("download-all-media-pxe", "spec.content.access")}


def test_metered_download_after_deadline_not_for_os_deployment(tmp_path: Path) -> None:
    extra = "purpose: Required\nallowMeteredDownloadAfterDeadline: true\n"
    found = errors(findings_for(tmp_path, TS, deployment(extra)))
    assert found[0].rule == "metered-os" and found[0].path == "spec.allowMeteredDownloadAfterDeadline"
    assert found[0].source.line == 8


def test_download_all_before_start_not_for_media_and_pxe(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS, deployment(
        "availableTo: ClientsMediaAndPxe\ncontent: {access: DownloadAllBeforeStart}\n")))
    assert "not offered when the deployment is available to media and PXE" in found[0].message


def test_internet_clients_not_for_os_deployment(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, TS, deployment("userExperience: {allowOnInternetClients: true}\n")))
    assert found[0].rule == "internet-os"


def test_schedules_for_media_and_pxe_are_a_warning(tmp_path: Path) -> None:
    found = findings_for(tmp_path, TS, deployment(
        "availableTo: MediaAndPxe\nschedule: {assignments: [{event: AsSoonAsPossible}]}\n"))
    assert not has_errors(found)
    warning = next(f for f in found if f.severity is Severity.WARNING)
    assert warning.rule == "schedule-media-pxe" and "ignored" in warning.message


def computer_vars(name: str, n: int, computer: str = "LAB-PC-042") -> str:
    variables = "\n".join(f"    - {{name: Var{name}{i}, value: v}}" for i in range(n))
    return HEAD + f"kind: ComputerVariables\nmetadata: {{name: {name}}}\nspec:\n  computer: {{name: {computer}}}\n" \
        f"  variables:\n{variables}\n"


def test_at_most_1000_variables_per_computer_across_manifests(tmp_path: Path) -> None:
    found = errors(findings_for(tmp_path, computer_vars("a", 600), computer_vars("b", 401, "lab-pc-042")))
    assert found[0].rule == "variable-limit" and "1001 variables" in found[0].message
    assert not errors(findings_for(tmp_path / "ok" if (tmp_path / "ok").mkdir() is None else tmp_path,
                                   computer_vars("a", 600), computer_vars("b", 400)))


def test_variable_names_and_hidden_values(tmp_path: Path) -> None:
    doc = HEAD + textwrap.dedent("""\
        kind: CollectionVariables
        metadata: {name: pilot}
        spec:
          collection: {name: OSD Pilot}
          priority: 5
          variables:
            - {name: 1Bad, value: x}
            - {name: _SMSTSReadOnly, value: x}
            - {name: OSDAdminPassword, hidden: true, value: hunter2}
        """)
    found = errors(findings_for(tmp_path, doc))
    messages = {f.path: f.message for f in found}
    assert "not a valid variable name" in messages["spec.variables[0].name"]
    assert "read-only" in messages["spec.variables[1].name"]
    assert "plaintext" in messages["spec.variables[2]"] and "hunter2" not in messages["spec.variables[2]"]


def test_variable_names_are_case_insensitive(tmp_path: Path) -> None:
    doc = HEAD + textwrap.dedent("""\
        kind: CollectionVariables
        metadata: {name: pilot}
        spec:
          collection: {name: OSD Pilot}
          variables:
            - {name: osdtimezone, value: a}
            - {name: OSDTimeZone, value: b}
        """)
    found = errors(findings_for(tmp_path, doc))
    assert found[0].path == "spec.variables[1].name" and "case-insensitive" in found[0].message


def test_plaintext_password_in_a_step_is_rejected(tmp_path: Path) -> None:
    doc = TS + textwrap.indent(textwrap.dedent("""\
        - name: Join
          type: JoinDomainOrWorkgroup
          settings: {domain: corp.example.com, password: hunter2}
        """), "    ")
    found = errors(findings_for(tmp_path, doc))
    assert found[0].path == "spec.steps[1].settings.password"
    assert "valueFrom" in found[0].message and "hunter2" not in found[0].message


def test_generic_step_types_are_named(tmp_path: Path) -> None:
    doc = TS + "    - {name: Gather, type: BDD_Gather, action: cscript.exe ZTIGather.wsf}\n"
    found = findings_for(tmp_path, doc)
    note = next(f for f in found if f.rule == "generic-step")
    assert "BDD_Gather" in note.message and note.severity is Severity.INFO


@pytest.mark.parametrize(("content", "expected"), [
    (b"a: [1, 2\n", "malformed YAML"),
    (b"\xff\xfe\x00bad", "not valid UTF-8"),
    (b"- just\n- a list\n", "must be a mapping"),
    (b"apiVersion: v1\nkind: TaskSequence\napiVersion: v2\n", "duplicate key 'apiVersion'"),
    (b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n", "apiVersion"),
    (b"!!python/object:os.system {}\n", "malformed YAML"),
])
def test_bad_files_give_clear_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "bad.yaml").write_bytes(content)
    found = errors(validate(load(tmp_path)))
    assert found and expected in found[0].message
    assert found[0].source.file.endswith("bad.yaml")


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    found = errors(validate(load(tmp_path)))  # expanded, the document would hold 9**10 nodes: no return
    assert "alias bomb" in found[0].message


def test_findings_render_as_json(tmp_path: Path) -> None:
    from io import StringIO

    from reconciler.render.findings import render_json

    write(tmp_path, "m.yaml", TS.replace("index: 3", "indx: 3"))
    state = load(tmp_path)
    out = StringIO()
    render_json(state, validate(state), out)
    doc = json.loads(out.getvalue())
    assert doc["format_version"] == "2" and doc["valid"] is False
    assert doc["findings"][0]["line"] == 10 and doc["findings"][0]["path"] == "spec.steps[0].settings.indx"


def test_a_reference_to_an_invalid_sequence_is_not_called_undefined(tmp_path: Path) -> None:
    broken = TS.replace("  type: InstallOperatingSystem\n", "  type: InstallOperatingSystem\n  colour: red\n")
    found = errors(findings_for(tmp_path, broken, deployment("purpose: Available\n")))
    assert [f.rule for f in found] == ["unknown-field"]  # only the sequence's own error


def test_option_settings_are_held_to_the_values_the_console_offers(tmp_path: Path) -> None:
    step = ("    - name: Partition\n      type: FormatAndPartitionDisk\n"
            "      settings: {partitionStyle: GTP, partitions: [{type: Primry, sizeUnits: Percent}]}\n")
    disk = TS.replace("  steps:\n", "  steps:\n" + step)
    assert step in disk
    found = errors(findings_for(tmp_path, disk))
    assert {f.path for f in found} == {"spec.steps[0].settings.partitionStyle",
                                       "spec.steps[0].settings.partitions[0].type"}
    assert any("'GPT'" in f.message and "'MBR'" in f.message for f in found)


def test_a_console_spelling_outside_the_options_is_kept_verbatim() -> None:
    from reconciler.tsxml.compare import canonical_sequence
    from reconciler.tsxml.sequence import read_sequence, write_sequence
    from tests.conftest import CORPUS

    path = CORPUS / "ts-xml" / "microsoft__configmgr-hub__objects__TaskSequence__Windows10_-_Build_and_Capture.xml"
    xml = path.read_text(encoding="utf-8")
    assert "PRIMARY" in xml
    read = read_sequence(xml)
    assert "PRIMARY" in str(read.spec)  # not corrected to Primary
    again = write_sequence(read.spec, resolve=lambda ref: str(ref.get("id")))
    assert canonical_sequence(again) == canonical_sequence(xml)
