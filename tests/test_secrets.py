"""No secret value reaches any output: plans, logs at debug level, journal, state store, site show, exports."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from reconciler.site.embedded import EmbeddedSite
from tests.conftest import CliRun, run_cli

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
SECRETS = {
    "OSD_SCAN_JOIN_PASSWORD": "join-Secret-31415",
    "OSD_SCAN_RUNAS_PASSWORD": "runas-Secret-27182",
    "OSD_SCAN_ADMIN_PASSWORD": "admin-Secret-16180",
    "OSD_SCAN_DYNAMIC_SECRET": "dynamic-Secret-14142",
}
FILE_SECRET = "file-Secret-17320"


def manifests(folder: Path) -> None:
    ts = {**HEAD, "kind": "TaskSequence", "metadata": {"name": "secretive"}, "spec": {
        "name": "Secretive", "steps": [
            {"name": "Join", "type": "JoinDomainOrWorkgroup",
             "settings": {"domain": "corp.contoso.com", "account": "CORP\\join",
                          "password": {"valueFrom": {"env": "OSD_SCAN_JOIN_PASSWORD"}}}},
            {"name": "As user", "type": "RunCommandLine",
             "settings": {"commandLine": "whoami", "runAsUser": True, "userName": "CORP\\svc",
                          "userPassword": {"valueFrom": {"env": "OSD_SCAN_RUNAS_PASSWORD"}}}},
            {"name": "Rules", "type": "SetDynamicVariables", "settings": {"rules": [
                {"variables": [{"name": "Token", "secret": True, "valueFrom": {"env": "OSD_SCAN_DYNAMIC_SECRET"}}]}]}},
        ]}}
    dep = {**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": "secretive-lab"},
           "spec": {"taskSequence": "secretive", "collection": {"name": "OSD Lab"}}}
    coll = {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab"},
            "spec": {"collection": {"name": "OSD Lab"}, "variables": [
                {"name": "OSDAdmin", "hidden": True, "valueFrom": {"env": "OSD_SCAN_ADMIN_PASSWORD"}}]}}
    comp = {**HEAD, "kind": "ComputerVariables", "metadata": {"name": "pc"},
            "spec": {"computer": {"name": "LAB-PC-042"}, "variables": [
                {"name": "OSDFile", "hidden": True, "valueFrom": {"file": "secrets/file.txt"}}]}}
    folder.mkdir()
    (folder / "estate.yaml").write_text(yaml.safe_dump_all([ts, dep, coll, comp], sort_keys=False))
    (folder / "secrets").mkdir()
    (folder / "secrets" / "file.txt").write_text(FILE_SECRET + "\n")


def run(work: Path, *args: str) -> str:
    result = run_cli(*args, "--log-level", "debug", cwd=work, env={**SECRETS, "NO_COLOR": "1"})
    return result.stdout + result.stderr


def test_no_secret_in_any_output_channel(tmp_path: Path) -> None:
    manifests(tmp_path / "manifests")
    outputs = [run(tmp_path, "manifests", "--dry-run", "--output", fmt) for fmt in ("text", "json", "markdown")]
    outputs.append(run(tmp_path, "manifests", "--yes", "--output", "json"))
    assert "Apply complete: 4 applied, 0 failed" in outputs[-1]
    outputs.append(run(tmp_path, "manifests", "--dry-run"))
    assert "No changes" in outputs[-1]
    outputs += [run(tmp_path, "site", "show"), run(tmp_path, "site", "show", "--output", "json"),
                run(tmp_path, "vars", "effective", "--computer", "LAB-PC-042"),
                run(tmp_path, "convert", "--to", "xml", "manifests/estate.yaml"),
                run(tmp_path, "validate", "manifests", "--output", "json")]
    assert " DEBUG " in outputs[3]  # diagnostics at debug level are among what must hold no secret
    stores = [p.read_bytes() for p in (tmp_path / ".reconcile").glob("state.db*")]
    assert stores and any(b"HighRisk" in s or b"intent" in s for s in stores)  # the journal is in there
    site = b"".join(p.read_bytes() for p in (tmp_path / ".reconcile").glob("site.db*"))
    for secret in (*SECRETS.values(), FILE_SECRET):
        for out in outputs:
            assert secret not in out
        for store in stores:
            assert secret.encode() not in store
        assert secret.encode() not in site  # step passwords and masked values are kept sealed, write-only
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as live:
        (ts_id,) = live.read().task_sequences
        assert live.holds_secret(ts_id, "DomainPassword", SECRETS["OSD_SCAN_JOIN_PASSWORD"])
        assert live.holds_secret(ts_id, "SMSTSRunCommandLineUserPassword", SECRETS["OSD_SCAN_RUNAS_PASSWORD"])
        assert live.holds_secret(ts_id, "Token", SECRETS["OSD_SCAN_DYNAMIC_SECRET"])
        assert not live.holds_secret(ts_id, "DomainPassword", "a guess")
        lab = next(c.id for c in live.read().collections.values() if c.name == "OSD Lab")
        assert live.holds_secret(lab, "OSDAdmin", SECRETS["OSD_SCAN_ADMIN_PASSWORD"])
        computer = next(c.resource_id for c in live.read().computers.values() if c.name == "LAB-PC-042")
        assert live.holds_secret(computer, "OSDFile", FILE_SECRET)
    assert "(sensitive)" in outputs[0]


def run_with(work: Path, env: dict[str, str | None], *args: str) -> CliRun:
    return run_cli(*args, cwd=work, env={**env, "NO_COLOR": "1"})


def test_refresh_secrets_turns_a_rotated_value_into_an_update_without_showing_it(tmp_path: Path) -> None:
    manifests(tmp_path / "manifests")
    assert run_with(tmp_path, SECRETS, "manifests", "--yes").returncode == 0
    rotated = {**SECRETS, "OSD_SCAN_JOIN_PASSWORD": "join-Rotated-2718",
               "OSD_SCAN_ADMIN_PASSWORD": "admin-Rotated-1414"}
    (tmp_path / "manifests" / "secrets" / "file.txt").write_text("file-Rotated-1732\n")

    # Without the flag a plan never reads a secret, so it cannot see the rotation.
    quiet = run_with(tmp_path, rotated, "manifests", "--dry-run", "--detailed-exitcode")
    assert quiet.returncode == 0, quiet.stdout

    plan = run_with(tmp_path, rotated, "manifests", "--dry-run", "--refresh-secrets", "--output", "json")
    assert plan.returncode == 0, plan.stderr
    document = json.loads(plan.stdout)
    changed = {(a["kind"], a["name"]): a for a in document["actions"]}
    assert set(changed) == {("TaskSequence", "secretive"), ("CollectionVariables", "lab"),
                            ("ComputerVariables", "pc")}
    assert all(a["reason"] == "secret" for a in changed.values())
    sequence_fields = [c["path"] for c in changed[("TaskSequence", "secretive")]["changes"]]
    assert sequence_fields == ["secrets.env:OSD_SCAN_JOIN_PASSWORD"]  # the run-as and dynamic secrets are unchanged
    text = run_with(tmp_path, rotated, "manifests", "--dry-run", "--refresh-secrets")
    for out in (plan.stdout + plan.stderr, text.stdout + text.stderr):
        for secret in (*SECRETS.values(), *rotated.values(), FILE_SECRET, "file-Rotated-1732"):
            assert secret not in out
    assert "(sensitive)" in text.stdout

    applied = run_with(tmp_path, rotated, "manifests", "--yes", "--refresh-secrets")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        (ts_id,) = site.read().task_sequences
        assert site.holds_secret(ts_id, "DomainPassword", "join-Rotated-2718")
    again = run_with(tmp_path, rotated, "manifests", "--dry-run", "--refresh-secrets", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout


def test_refresh_secrets_refuses_to_plan_naming_a_secret_that_cannot_be_read(tmp_path: Path) -> None:
    manifests(tmp_path / "manifests")
    assert run_with(tmp_path, SECRETS, "manifests", "--yes").returncode == 0
    missing = {**SECRETS, "OSD_SCAN_ADMIN_PASSWORD": None}  # not set in the environment of this run
    result = run_with(tmp_path, missing, "manifests", "--dry-run", "--refresh-secrets")
    assert result.returncode == 1
    assert result.stdout == ""  # no plan is printed without the secrets it would compare
    assert "CollectionVariables/lab" in result.stderr and "OSD_SCAN_ADMIN_PASSWORD is not set" in result.stderr
    assert "manifests/estate.yaml:" in result.stderr and "valueFrom.env" in result.stderr


def test_a_drifted_sequence_with_secrets_shows_no_secret_in_its_plan(tmp_path: Path) -> None:
    """A console edit makes the plan compare the live sequence, which holds the real values, field by field."""
    from dataclasses import replace

    manifests(tmp_path / "manifests")
    assert run_with(tmp_path, SECRETS, "manifests", "--yes").returncode == 0
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        (live,) = site.read().task_sequences.values()
        site.update_task_sequence(live.id, replace(live, description="edited in the console"))
    for output in ("text", "json", "markdown"):
        plan = run_with(tmp_path, SECRETS, "manifests", "--dry-run", "--output", output)
        assert "edited in the console" in plan.stdout
        for secret in SECRETS.values():
            assert secret not in plan.stdout + plan.stderr, output


def test_rules_the_typed_form_cannot_hold_keep_no_secret_value() -> None:
    from reconciler.tsxml.sequence import read_sequence

    rules = ('&lt;Rules&gt;&lt;Rule&gt;&lt;Variables&gt;&lt;Variable Name="Token" IsSecret="true"&gt;dyn-S3cret'
             '&lt;/Variable&gt;&lt;/Variables&gt;&lt;Unknown /&gt;&lt;/Rule&gt;&lt;/Rules&gt;')
    xml = ('<sequence version="3.10"><step type="SMS_TaskSequence_SetDynamicVariablesAction" name="Rules">'
           '<action>OSDSetDynamicVariables.exe</action><defaultVarList><variable name="OSDSetDynamicVariablesRules" '
           f'property="Rules">{rules}</variable></defaultVarList></step></sequence>')
    spec = read_sequence(xml).spec
    (kept,) = spec["steps"][0]["properties"]
    assert "dyn-S3cret" not in json.dumps(spec)
    assert 'Name="Token" IsSecret="true"' in kept["value"] and "<Unknown" in kept["value"]


def test_a_step_password_moved_to_another_source_is_written_to_the_site(tmp_path: Path) -> None:
    manifests(tmp_path / "manifests")
    assert run_with(tmp_path, SECRETS, "manifests", "--yes").returncode == 0
    estate = tmp_path / "manifests" / "estate.yaml"
    estate.write_text(estate.read_text().replace("env: OSD_SCAN_JOIN_PASSWORD", "env: OSD_SCAN_JOIN_NEXT"))
    env = {**SECRETS, "OSD_SCAN_JOIN_NEXT": "join-Next-5772"}
    plan = run_with(tmp_path, env, "manifests", "--dry-run", "--output", "json")
    (action,) = json.loads(plan.stdout)["actions"]
    assert (action["kind"], action["verb"], action["reason"]) == ("TaskSequence", "UpdateTaskSequence", "secret")
    assert [c["path"] for c in action["changes"]] == ["secrets.env:OSD_SCAN_JOIN_NEXT"]
    assert "join-Next-5772" not in plan.stdout + plan.stderr
    applied = run_with(tmp_path, env, "manifests", "--yes")
    assert applied.returncode == 0 and "updated" in applied.stderr, applied.stderr
    with EmbeddedSite(tmp_path / ".reconcile" / "site.db") as site:
        (ts_id,) = site.read().task_sequences
        assert site.holds_secret(ts_id, "DomainPassword", "join-Next-5772")
    assert run_with(tmp_path, env, "manifests", "--dry-run", "--detailed-exitcode").returncode == 0


def test_convert_turns_a_secret_dynamic_variable_into_a_reference(tmp_path: Path) -> None:
    rules = ('&lt;Rules&gt;&lt;Rule&gt;&lt;Variables&gt;&lt;Variable Name="MDMUser" IsSecret="false"&gt;CORP\\mdm'
             '&lt;/Variable&gt;&lt;Variable Name="MDMPassword" IsSecret="true"&gt;dyn-S3cret-2'
             '&lt;/Variable&gt;&lt;/Variables&gt;&lt;/Rule&gt;&lt;/Rules&gt;')
    xml = tmp_path / "dynamic.xml"
    xml.write_text('<sequence version="3.10"><step type="SMS_TaskSequence_SetDynamicVariablesAction" name="Dyn">'
                   '<action>OSDSetDynamicVariables.exe</action><defaultVarList><variable '
                   f'name="OSDSetDynamicVariablesRules" property="Rules">{rules}</variable></defaultVarList></step>'
                   '</sequence>')
    result = run_cli("convert", str(xml))
    assert result.returncode == 0, result.stderr
    (variables,) = [r["variables"] for r in yaml.safe_load(result.stdout)["spec"]["steps"][0]["settings"]["rules"]]
    assert variables[1] == {"name": "MDMPassword", "secret": True, "valueFrom": {"env": "OSD_TS_DYN_RULE_MDMPASSWORD"}}
    assert "dyn-S3cret-2" not in result.stdout + result.stderr and "OSD_TS_DYN_RULE_MDMPASSWORD" in result.stderr
