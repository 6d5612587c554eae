"""Guardrails: each rule trips on a manifest and says where, which rule, and what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.apply.executor import ApplyRefused, apply_plan
from reconciler.effective import effective_variables
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import ContentState, DeploymentRecord, PackageType
from reconciler.source.loader import load
from reconciler.state import StateStore
from tests.conftest import CliRun, run_cli

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
OS_STEPS = [{"name": "Apply", "type": "ApplyOperatingSystemImage",
             "settings": {"image": {"package": "Windows 11 23H2 x64"}, "index": 1}}]
TOOL_STEPS = [{"name": "Run", "type": "RunCommandLine",
               "settings": {"commandLine": "cmd /c echo", "package": {"package": "OSD Tools"}}}]


def ts(name: str, steps: list[dict], **spec: Any) -> dict:
    return {**HEAD, "kind": "TaskSequence", "metadata": {"name": name},
            "spec": {"name": f"TS {name}", "steps": steps, **spec}}


def deployment(name: str, sequence: str, collection: dict, **spec: Any) -> dict:
    return {**HEAD, "kind": "TaskSequenceDeployment", "metadata": {"name": name},
            "spec": {"taskSequence": sequence, "collection": collection, **spec}}


def runs(console_name: str) -> list[dict]:
    """The steps of a parent that runs one child sequence, called by its console name."""
    return [{"name": "Run child", "type": "RunTaskSequence", "settings": {"taskSequence": {"package": console_name}}}]


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests = root / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.site = EmbeddedSite(root / ".reconcile" / "site.db")
        add_demo_inventory(self.site)
        self.state = StateStore(root / ".reconcile" / "state.db")

    def write(self, *docs: dict, name: str = "estate.yaml") -> Path:
        path = self.manifests / name
        path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
        return path

    def plan(self, **options: Any):  # type: ignore[no-untyped-def]
        desired = load(self.manifests)
        assert not desired.findings, [f.render() for f in desired.findings]
        return make_plan(desired, self.site.read(), self.state, **options)

    def apply(self, **options: Any):  # type: ignore[no-untyped-def]
        wait = options.pop("wait_for_content", None)
        notice = options.pop("notice", None)
        return apply_plan(self.plan(**options), self.site, self.state, self.manifests, wait_for_content=wait,
                          notice=notice)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> CliRun:
        return run_cli(*args, cwd=self.root, env={"NO_COLOR": "1", **(env or {})})


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w
    w.site.close()
    w.state.close()


def rules(plan: Any) -> dict[str, Any]:
    return {b.rule: b for b in plan.blocked}


def test_required_os_deployment_to_all_systems_is_blocked_without_override(world: World) -> None:
    world.write(ts("install", OS_STEPS, type="InstallOperatingSystem"),
                deployment("install-all", "install", {"id": "SMS00001"}, purpose="Required",
                           highRisk={"acknowledge": True}))
    blocked = rules(world.plan())["high-risk-built-in"]
    assert "All Systems" in blocked.message and "no override" in blocked.message
    assert blocked.source.file.endswith("estate.yaml") and blocked.source.line and blocked.path == "spec.collection"
    result = world.cli("manifests", "--yes")
    assert result.returncode == 1 and "high-risk deployment cannot target the built-in collection" in result.stdout
    assert not world.site.read().task_sequences  # nothing applied


def test_all_unknown_computers_is_allowed_and_flagged(world: World) -> None:
    world.write(ts("install", OS_STEPS, type="InstallOperatingSystem"),
                deployment("install-unknown", "install", {"id": "SMS000US"}, purpose="Required",
                           availableTo="MediaAndPxe"))
    plan = world.plan()
    assert not plan.blocked
    create = next(a for a in plan.actions if a.ref.name == "install-unknown")
    assert create.risk is not None and create.risk.collection_id == "SMS000US"


def test_available_deployment_is_not_high_risk(world: World) -> None:
    world.write(ts("install", OS_STEPS, type="InstallOperatingSystem"),
                deployment("install-all", "install", {"id": "SMS00001"}, purpose="Available"))
    plan = world.plan()
    assert not plan.blocked and all(a.risk is None for a in plan.actions)


def test_a_collection_larger_than_the_default_size_needs_acknowledgement(world: World) -> None:
    world.site.set_verification_settings(default_size=20)
    docs = [ts("install", OS_STEPS, type="InstallOperatingSystem"),
            deployment("pilot", "install", {"name": "OSD Pilot"}, purpose="Required")]
    world.write(*docs)
    blocked = rules(world.plan())["high-risk-size"]
    assert "25 members" in blocked.message and "default size for high-risk deployments (20)" in blocked.message
    assert "spec.highRisk.acknowledge: true" in blocked.message and blocked.path == "spec.highRisk.acknowledge"
    docs[1]["spec"]["highRisk"] = {"acknowledge": True}
    world.write(*docs)
    plan = world.plan()
    risk = next(a.risk for a in plan.actions if a.ref.name == "pilot")
    assert risk.acknowledged and risk.member_count == 25 and risk.needs_acknowledgement


def test_a_collection_larger_than_the_maximum_size_is_blocked(world: World) -> None:
    world.site.set_verification_settings(default_size=10, maximum_size=50)
    world.write(ts("install", OS_STEPS, type="InstallOperatingSystem"),
                deployment("prod", "install", {"name": "OSD Production Workstations"}, purpose="Required",
                           highRisk={"acknowledge": True}))
    blocked = rules(world.plan())["high-risk-maximum-size"]
    assert "80 members" in blocked.message and "maximum size" in blocked.message


def test_collections_with_site_systems_are_blocked_or_need_acknowledgement(world: World) -> None:
    docs = [ts("upgrade", OS_STEPS, type="UpgradeOperatingSystem"),
            deployment("servers", "upgrade", {"name": "OSD Servers"}, purpose="Required")]
    world.write(*docs)
    assert "contains site system servers" in rules(world.plan())["high-risk-site-systems"].message
    world.site.set_verification_settings(site_systems="warn")
    assert "spec.highRisk.acknowledge" in rules(world.plan())["high-risk-site-systems"].message
    docs[1]["spec"]["highRisk"] = {"acknowledge": True}
    world.write(*docs)
    assert not world.plan().blocked


def test_required_high_impact_sequence_is_high_risk_and_audited(world: World) -> None:
    world.write(ts("module", TOOL_STEPS, highImpact={"enabled": True}),
                deployment("lab", "module", {"name": "OSD Lab"}, purpose="Required"))
    plan = world.plan()
    risk = next(a.risk for a in plan.actions if a.ref.name == "lab")
    assert risk.reasons == ("Required deployment of a high-impact task sequence",)
    result = apply_plan(plan, world.site, world.state, world.manifests)
    assert result.ok
    audit = [e for e in world.state.journal(plan.plan_id) if e.phase == "audit"]
    assert len(audit) == 1 and audit[0].object == "TaskSequenceDeployment/lab"
    assert audit[0].detail["member_count"] == 12 and audit[0].detail["who"] and audit[0].detail["when"]


def test_high_risk_is_marked_in_text_json_and_markdown(world: World) -> None:
    world.write(ts("install", OS_STEPS, type="InstallOperatingSystem"),
                deployment("pilot", "install", {"name": "OSD Pilot"}, purpose="Required"))
    text = world.cli("manifests", "--dry-run").stdout
    assert "⚠ HIGH RISK" in text and "has 25 members" in text
    doc = json.loads(world.cli("manifests", "--dry-run", "--output", "json").stdout)
    risk = next(a["high_risk"] for a in doc["actions"] if a["name"] == "pilot")
    assert risk["member_count"] == 25 and risk["collection_name"] == "OSD Pilot"
    markdown = world.cli("manifests", "--dry-run", "--output", "markdown").stdout
    assert "high-risk deployment(s)" in markdown.split("| create |")[0]


def test_run_from_distribution_point_needs_package_share(world: World) -> None:
    docs = [ts("install", OS_STEPS, type="InstallOperatingSystem"),
            deployment("lab", "install", {"name": "OSD Lab"}, content={"access": "RunFromDistributionPoint"})]
    world.write(*docs)
    blocked = rules(world.plan())["run-from-dp-share"]
    assert "Windows 11 23H2 x64" in blocked.message and blocked.path == "spec.content.access"
    docs[0] = ts("tools", TOOL_STEPS)
    docs[1]["spec"]["taskSequence"] = "tools"
    world.write(*docs)
    assert not world.plan().blocked  # OSD Tools has its package share enabled


def test_deployment_of_a_sequence_with_an_unresolved_reference_is_blocked(world: World) -> None:
    steps = [{"name": "Run", "type": "RunCommandLine",
              "settings": {"commandLine": "x", "package": {"package": "No Such Package"}}}]
    world.write(ts("broken", steps), deployment("lab", "broken", {"name": "OSD Lab"}))
    found = rules(world.plan())
    assert "No Such Package" in found["reference"].message
    assert "waits for TaskSequence/broken" in found["dependency"].message


def test_content_not_installed_warns_and_wait_for_content_waits(world: World) -> None:
    docs = [ts("tools", TOOL_STEPS),
            {**HEAD, "kind": "ContentDistribution", "metadata": {"name": "tools-content"},
             "spec": {"taskSequence": "tools", "distributionPoints": ["DP01.corp.contoso.com"]}},
            deployment("lab", "tools", {"name": "OSD Lab"})]
    world.write(*docs)
    tools = next(p.id for p in world.site.read().packages.values() if p.name == "OSD Tools")
    world.site.set_content_state(tools, "DP01.corp.contoso.com", ContentState.INSTALL_PENDING, 0)
    plan = world.plan()
    assert [w.rule for w in plan.warnings] == ["content-not-installed"]
    assert "--wait-for-content" in plan.warnings[0].message

    notices: list[str] = []

    def content_arrives_while_the_apply_waits(message: str) -> None:
        notices.append(message)
        if len(notices) == 1:  # the distribution point finishes the copy, as it would in the console
            with EmbeddedSite(world.site.path) as other:
                other.set_content_state(tools, "DP01.corp.contoso.com", ContentState.INSTALLED, 1)

    result = world.apply(wait_for_content=30, notice=content_arrives_while_the_apply_waits)
    assert result.ok, [(r.action.ref.name, r.outcome, r.message) for r in result.results]
    assert notices and all("TaskSequenceDeployment/lab: waiting for content " + tools in n for n in notices)
    assert len(world.site.read().deployments) == 1


def test_wait_for_content_gives_up_after_its_timeout(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS),
                {**HEAD, "kind": "ContentDistribution", "metadata": {"name": "tools-content"},
                 "spec": {"taskSequence": "tools", "distributionPoints": ["DP01.corp.contoso.com"]}},
                deployment("lab", "tools", {"name": "OSD Lab"}))
    tools = next(p.id for p in world.site.read().packages.values() if p.name == "OSD Tools")
    world.site.set_content_state(tools, "DP01.corp.contoso.com", ContentState.INSTALL_PENDING, 0)
    result = world.apply(wait_for_content=0.3)
    failed = result.of("failed")
    assert len(failed) == 1 and "still not installed" in failed[0].message
    assert not world.site.read().deployments


def test_missing_secret_at_apply_applies_nothing(world: World) -> None:
    world.write(ts("join", [{"name": "Join", "type": "JoinDomainOrWorkgroup",
                             "settings": {"domain": "corp.contoso.com",
                                          "password": {"valueFrom": {"env": "OSD_GUARDRAIL_JOIN_SECRET"}}}}]))
    os.environ.pop("OSD_GUARDRAIL_JOIN_SECRET", None)
    with pytest.raises(ApplyRefused, match=r"estate.yaml:1 environment variable OSD_GUARDRAIL_JOIN_SECRET is not "
                                           r"set, needed by TaskSequence/join \(step 'Join', DomainPassword\)"):
        world.apply()
    assert not world.site.read().task_sequences
    os.environ["OSD_GUARDRAIL_JOIN_SECRET"] = "Pa55-join-secret"
    try:
        assert world.apply().ok
        (stored,) = world.site.read().task_sequences.values()
        assert "Pa55-join-secret" not in stored.sequence  # kept sealed, as ConfigMgr keeps it encrypted
        assert stored.id and world.site.holds_secret(stored.id, "DomainPassword", "Pa55-join-secret")
        assert world.plan().actions == []
    finally:
        del os.environ["OSD_GUARDRAIL_JOIN_SECRET"]


def test_a_changed_secret_reference_is_detected_and_shown_as_sensitive(world: World) -> None:
    var = {"name": "OSDSecret", "hidden": True, "valueFrom": {"env": "OSD_GUARDRAIL_ONE"}}
    doc = {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab"},
           "spec": {"collection": {"name": "OSD Lab"}, "variables": [var]}}
    world.write(doc)
    os.environ.update(OSD_GUARDRAIL_ONE="first-value-1", OSD_GUARDRAIL_TWO="second-value-2")
    assert world.apply().ok and world.plan().actions == []
    var["valueFrom"] = {"env": "OSD_GUARDRAIL_TWO"}
    world.write(doc)
    plan = world.plan()
    change = plan.actions[0].changes[0]
    assert change.sensitive and change.path == "variables.OSDSecret" and plan.actions[0].reason.value == "secret"


def test_variables_precedence_computer_beats_collection_and_priority_decides(world: World) -> None:
    world.write(
        {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "pilot"},
         "spec": {"collection": {"name": "OSD Pilot"}, "priority": 2,
                  "variables": [{"name": "OSDRing", "value": "pilot"}, {"name": "osdtimezone", "value": "pilot-tz"},
                                {"name": "OSDPin", "hidden": True, "valueFrom": {"env": "OSD_X"}}]}},
        {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab"},
         "spec": {"collection": {"name": "OSD Lab"}, "priority": 7,
                  "variables": [{"name": "OSDRing", "value": "lab"}, {"name": "OSDTimeZone", "value": "lab-tz"}]}},
        {**HEAD, "kind": "ComputerVariables", "metadata": {"name": "pc"},
         "spec": {"computer": {"name": "LAB-PC-042"}, "variables": [{"name": "OSDTIMEZONE", "value": "pc-tz"}]}})
    _, variables = effective_variables("lab-pc-042", load(world.manifests), world.site.read())
    by_name = {v.name.casefold(): v for v in variables}
    assert by_name["osdtimezone"].value == "pc-tz" and len(by_name["osdtimezone"].overridden) == 2
    assert by_name["osdring"].value == "pilot" and by_name["osdring"].overridden[0].value == "lab"
    assert by_name["osdpin"].value == "(sensitive)"
    shown = world.cli("vars", "effective", "--computer", "LAB-PC-042").stdout
    assert "OSDTIMEZONE = pc-tz" in shown and "overrides 'lab-tz'" in shown and "(sensitive)" in shown


def test_the_1000_variable_limit_counts_live_and_desired(world: World) -> None:
    pilot = next(c.id for c in world.site.read().collections.values() if c.name == "OSD Pilot")
    world.site.set_collection_variables(pilot, 3, [(f"Live{i}", "x", False) for i in range(600)])
    world.write({**HEAD, "kind": "ComputerVariables", "metadata": {"name": "pc"},
                 "spec": {"computer": {"name": "LAB-PC-042"},
                          "variables": [{"name": f"Mine{i}", "value": "y"} for i in range(401)]}})
    blocked = rules(world.plan())["variable-limit"]
    assert "1001 variables" in blocked.message and "at most 1000" in blocked.message


def test_deleting_a_collection_removes_its_variables_and_the_next_plan_says_so(world: World) -> None:
    world.write({**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab"},
                 "spec": {"collection": {"name": "OSD Lab"}, "variables": [{"name": "OSDA", "value": "1"}]}})
    assert world.apply().ok
    lab = next(c.id for c in world.site.read().collections.values() if c.name == "OSD Lab")
    world.site.delete_collection(lab)
    blocked = rules(world.plan())["collection-deleted"]
    assert f"collection {lab} was deleted in the site" in blocked.message and "1 variable(s)" in blocked.message


def test_prune_never_deletes_a_sequence_that_is_still_deployed(world: World) -> None:
    world.write(ts("module", TOOL_STEPS))
    assert world.apply().ok
    ts_id = next(iter(world.site.read().task_sequences))
    lab = next(c.id for c in world.site.read().collections.values() if c.name == "OSD Lab")
    world.site.create_deployment(DeploymentRecord(id=None, name="console-made", package_id=ts_id, collection_id=lab))
    world.write(ts("other", TOOL_STEPS))
    blocked = rules(world.plan(prune=True, max_delete=100))["prune-in-use"]
    assert "still deployed by" in blocked.message and "console-made" in blocked.message


def test_a_plan_deleting_too_much_is_blocked_unless_raised(world: World) -> None:
    world.write(*[ts(f"m{i}", TOOL_STEPS) for i in range(4)])
    assert world.apply().ok
    world.write(ts("m0", TOOL_STEPS))
    blocked = rules(world.plan(prune=True))["max-delete"]
    assert "deletes 3 of 4 managed objects (75%)" in blocked.message and "--max-delete 75" in blocked.message
    assert not world.plan(prune=True, max_delete=75).blocked


def test_one_blocked_item_applies_nothing_at_all(world: World) -> None:
    world.write(ts("fine", TOOL_STEPS), ts("install", OS_STEPS, type="InstallOperatingSystem"),
                deployment("fine-lab", "fine", {"name": "OSD Lab"}),
                deployment("all", "install", {"id": "SMS00001"}, purpose="Required"))
    plan = world.plan()
    assert len(plan.blocked) == 1 and len(plan.actions) >= 3
    with pytest.raises(ApplyRefused, match="1 blocked item"):
        apply_plan(plan, world.site, world.state, world.manifests)
    live = world.site.read()
    assert not live.task_sequences and not live.deployments and not live.content
    assert world.state.journal() == []
    result = world.cli("manifests", "--yes")
    assert result.returncode == 1 and not world.site.read().task_sequences


def test_site_settings_command_shows_and_sets(world: World) -> None:
    world.site.close()
    assert "default size:  100" in world.cli("site", "settings").stdout
    out = world.cli("site", "settings", "--default-size", "50", "--maximum-size", "500", "--site-systems", "warn")
    assert out.returncode == 0 and "maximum size:  500" in out.stdout
    bad = world.cli("site", "settings", "--maximum-size", "10")
    assert bad.returncode == 2 and "must be larger than the default size" in bad.stderr
    world.site = EmbeddedSite(world.root / ".reconcile" / "site.db")
    assert world.site.verification_settings().site_systems == "warn"


def test_packages_without_share_exist_in_demo() -> None:
    assert PackageType.OPERATING_SYSTEM_IMAGE.value == "OperatingSystemImage"


def test_a_failure_skips_its_dependents_and_the_others_go_on(world: World) -> None:
    world.write(ts("broken", TOOL_STEPS, bootImage={"package": "Boot image (x64)"}),
                deployment("broken-lab", "broken", {"name": "OSD Lab"}),
                ts("fine", TOOL_STEPS), deployment("fine-lab", "fine", {"name": "OSD Lab"}))
    plan = world.plan()
    boot = next(p.id for p in world.site.read().packages.values() if p.name == "Boot image (x64)")
    world.site.delete_package(boot)  # removed in the console between plan and apply
    result = apply_plan(plan, world.site, world.state, world.manifests)
    outcomes = {(r.action.ref.name, r.outcome) for r in result.results}
    assert ("broken", "failed") in outcomes and ("broken-lab", "skipped") in outcomes
    assert ("fine", "applied") in outcomes and ("fine-lab", "applied") in outcomes
    assert "boot image" in next(r.message for r in result.results if r.outcome == "failed")


def test_a_sequence_over_two_megabytes_is_blocked_at_plan_time(world: World) -> None:
    # 300 steps of 8 KB command lines: about 2.4 MB of sequence XML, which the site would refuse mid-apply.
    steps = [{"name": f"Run {i}", "type": "RunCommandLine", "settings": {"commandLine": "x" * 8192}}
             for i in range(300)]
    world.write(ts("huge", steps), deployment("lab", "huge", {"name": "OSD Lab"}))
    found = rules(world.plan())
    assert "2 MB" in found["sequence-size"].message and "child task sequences" in found["sequence-size"].message
    assert found["sequence-size"].path == "spec.steps" and found["sequence-size"].source.line
    assert "waits for TaskSequence/huge" in found["dependency"].message
    result = world.cli("manifests", "--yes")
    assert result.returncode == 1 and "ConfigMgr refuses a sequence over" in result.stdout
    assert not world.site.read().task_sequences


def test_content_deleted_in_the_console_blocks_the_sequence_and_its_deployments(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}))
    assert world.apply().ok and world.plan().actions == []
    (tools,) = [p.id for p in world.site.read().packages.values() if p.name == "OSD Tools"]
    world.site.delete_package(tools)
    found = rules(world.plan())
    assert "OSD Tools" in found["reference"].message and found["reference"].source.line
    assert "waits for TaskSequence/tools" in found["dependency"].message


def test_a_child_sequence_deleted_in_the_console_is_recreated_and_its_parent_follows(world: World) -> None:
    run_child = runs("TS child")
    world.write(ts("child", TOOL_STEPS), ts("parent", run_child))
    assert world.apply().ok and world.plan().actions == []
    (old_id,) = [t.id for t in world.site.read().task_sequences.values() if t.name == "TS child"]
    world.site.delete_task_sequence(old_id)
    plan = world.plan()
    assert {(a.verb.value, a.ref.name) for a in plan.actions} == {("CreateTaskSequence", "child"),
                                                                  ("UpdateTaskSequence", "parent")}
    assert world.apply().ok
    live = world.site.read().task_sequences.values()
    (new_id,) = [t.id for t in live if t.name == "TS child"]
    (parent,) = [t for t in live if t.name == "TS parent"]
    assert new_id != old_id and new_id in parent.references and old_id not in parent.references
    assert world.plan().actions == []


PARTITION = {"name": "Partition", "type": "FormatAndPartitionDisk",
             "settings": {"diskNumber": 0, "partitions": [{"volumeName": "OS", "type": "Primary", "fileSystem": "NTFS",
                                                             "size": 100, "sizeUnits": "Percent"}]}}


def test_editing_a_sequence_to_wipe_disks_blocks_when_a_deployment_would_become_unsafe(world: World) -> None:
    world.write(ts("inventory", TOOL_STEPS),
                deployment("inventory-all", "inventory", {"id": "SMS00001"}, purpose="Required"))
    assert world.apply().ok and world.plan().actions == []
    world.write(ts("inventory", [*TOOL_STEPS, PARTITION]),
                deployment("inventory-all", "inventory", {"id": "SMS00001"}, purpose="Required"))
    plan = world.plan()
    blocked = rules(plan)["high-risk-built-in"]
    assert blocked.ref.name == "inventory-all" and "the change to TaskSequence/inventory" in blocked.message
    assert blocked.source.line
    result = world.cli("manifests", "--yes")
    assert result.returncode == 1
    (live,) = world.site.read().task_sequences.values()
    assert "PartitionDisk" not in live.sequence  # the sequence was not changed either


def test_a_parent_running_a_child_that_wipes_disks_is_high_risk(world: World) -> None:
    run_child = runs("TS wipe")
    world.write(ts("wipe", [PARTITION]), ts("parent", run_child),
                deployment("parent-all", "parent", {"id": "SMS00001"}, purpose="Required"))
    assert rules(world.plan())["high-risk-built-in"].ref.name == "parent-all"


def test_a_collection_grown_past_the_maximum_after_apply_is_a_warning(world: World) -> None:
    world.write(ts("install", OS_STEPS, type="InstallOperatingSystem"),
                deployment("install-lab", "install", {"name": "OSD Lab"}, purpose="Required",
                           highRisk={"acknowledge": True}))
    assert world.apply().ok
    (lab,) = [c.id for c in world.site.read().collections.values() if c.name == "OSD Lab"]
    world.site.set_verification_settings(maximum_size=1000)
    world.site.set_collection_members(lab, 50_000)
    plan = world.plan()
    assert plan.actions == [] and not plan.blocked
    (warning,) = [w for w in plan.warnings if w.rule == "high-risk-maximum-size"]
    assert warning.ref.name == "install-lab" and "50000 members" in warning.message


def content(name: str, sequence: str, groups: list[str]) -> dict:
    return {**HEAD, "kind": "ContentDistribution", "metadata": {"name": name},
            "spec": {"taskSequence": sequence, "distributionPointGroups": groups}}


def test_prune_keeps_content_that_a_deployed_sequence_still_needs(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}),
                content("tools-content", "tools", ["HQ DPs"]))
    assert world.apply().ok
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}))
    plan = world.plan(prune=True, max_delete=100)
    assert not [a for a in plan.actions if a.verb.value == "RemoveContent" and a.write.package_id]
    (kept,) = [w for w in plan.warnings if w.rule == "content-in-use"]
    assert "TaskSequence/tools" in kept.message and "3 DP(s)" in kept.message
    assert world.apply(prune=True, max_delete=100).ok
    (tools,) = [p.id for p in world.site.read().packages.values() if p.name == "OSD Tools"]
    assert len([k for k in world.site.read().content if k[0] == tools]) == 3  # still on the HQ DPs


def test_a_dp_group_dropped_from_a_distribution_is_cleaned_up_only_with_prune(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), content("tools-content", "tools", ["HQ DPs", "Branch DPs"]))
    assert world.apply().ok
    world.write(ts("tools", TOOL_STEPS), content("tools-content", "tools", ["HQ DPs"]))
    plan = world.plan()
    assert plan.actions == [] and [w for w in plan.warnings if w.rule == "content-not-targeted"]
    pruning = world.plan(prune=True)
    (remove,) = pruning.actions
    assert remove.verb.value == "RemoveContent" and list(remove.write.dps) == ["DP03.branch.contoso.com"]
    assert not pruning.blocked  # narrowing is not a deletion of a managed object
    assert world.apply(prune=True).ok
    (tools,) = [p.id for p in world.site.read().packages.values() if p.name == "OSD Tools"]
    assert sorted(dp for p, dp in world.site.read().content if p == tools) == [
        "CM01.corp.contoso.com", "DP01.corp.contoso.com", "DP02.corp.contoso.com"]
    assert world.plan(prune=True).actions == [] and not world.plan().warnings


def test_the_max_delete_hint_names_a_threshold_that_passes(world: World) -> None:
    world.write(*[ts(f"m{i}", TOOL_STEPS) for i in range(7)])
    assert world.apply().ok
    world.write(*[ts(f"m{i}", TOOL_STEPS) for i in range(6)])
    blocked = rules(world.plan(prune=True))["max-delete"]
    assert "(14%)" in blocked.message and "--max-delete 15 or higher" in blocked.message
    assert not world.plan(prune=True, max_delete=15).blocked


def test_a_creation_an_interrupted_apply_did_not_record_is_taken_over_not_blocked(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}))
    assert world.apply().ok
    # The state a kill -9 leaves between the site's write and the ownership record: an intent (naming the
    # deployment's target, which had no deployment when it was written), no outcome.
    (lab,) = [c.id for c in world.site.read().collections.values() if c.name == "OSD Lab"]
    world.state.disown("TaskSequenceDeployment", "lab")
    world.state.intent("killed-plan", "CreateDeployment", "TaskSequenceDeployment/lab",
                       {"match": f"tools|{lab}", "existing": []})
    plan = world.plan()
    assert not plan.blocked
    (adopt,) = plan.actions
    assert adopt.verb.value == "Adopt" and "interrupted apply" in adopt.summary
    assert world.apply().ok
    assert len(world.site.read().deployments) == 1 and world.plan().actions == []
    assert "TaskSequenceDeployment/lab" not in world.state.pending()


def test_a_lease_left_by_a_killed_process_does_not_lock_the_site(world: World) -> None:
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert world.state.acquire_lease("PS1", f"{socket.gethostname()}:{dead.pid}", 3600)
    assert world.state.lease_holder("PS1") is None  # nobody holds it any more
    assert world.state.acquire_lease("PS1", f"{socket.gethostname()}:{os.getpid()}", 60)
    assert not world.state.acquire_lease("PS1", "another-host:1", 60)  # a live holder keeps it


def test_content_names_compare_without_case_as_in_the_console(world: World) -> None:
    steps = [{"name": "Run", "type": "RunCommandLine",
              "settings": {"commandLine": "cmd /c echo", "package": {"package": "osd TOOLS"}}}]
    world.write(ts("tools", steps))
    plan = world.plan()
    assert not plan.blocked
    (tools,) = [p.id for p in world.site.read().packages.values() if p.name == "OSD Tools"]
    assert tools in plan.actions[0].write.record.sequence


def test_the_content_warning_says_when_distribution_is_already_under_way(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), content("tools-content", "tools", ["Branch DPs"]),
                deployment("lab", "tools", {"name": "OSD Lab"}))
    assert "this plan distributes it" in next(w.message for w in world.plan().warnings
                                               if w.rule == "content-not-installed")
    (tools,) = [p.id for p in world.site.read().packages.values() if p.name == "OSD Tools"]
    world.site.set_content_state(tools, "DP03.branch.contoso.com", ContentState.INSTALL_PENDING)
    warning = next(w.message for w in world.plan().warnings if w.rule == "content-not-installed")
    assert "its distribution is still in progress" in warning


def test_a_new_metadata_name_for_the_same_sequence_is_a_takeover_not_a_duplicate(world: World) -> None:
    world.write(ts("alpha", TOOL_STEPS), deployment("lab", "alpha", {"name": "OSD Lab"}))
    assert world.apply().ok
    (ts_id,) = world.site.read().task_sequences
    renamed = ts("beta", TOOL_STEPS)
    renamed["spec"]["name"] = "TS alpha"  # the console name stays
    world.write(renamed, deployment("lab", "beta", {"name": "OSD Lab"}))
    plan = world.plan(prune=True, max_delete=100)
    assert [(a.verb.value, a.ref.name) for a in plan.actions] == [("Adopt", "beta")]
    assert "from TaskSequence/alpha" in plan.actions[0].summary and not plan.orphans
    assert world.apply(prune=True, max_delete=100).ok
    live = world.site.read()
    assert list(live.task_sequences) == [ts_id] and len(live.deployments) == 1
    assert world.state.owned_id("TaskSequence", "beta") == ts_id
    assert world.state.owned_id("TaskSequence", "alpha") is None
    assert world.plan(prune=True).actions == []


def test_a_console_name_differing_only_in_case_is_the_same_name(world: World) -> None:
    from reconciler.site.records import TaskSequenceRecord

    world.site.create_task_sequence(TaskSequenceRecord(id=None, name="Console TS",
                                                       sequence='<sequence version="3.10" />'))
    doc = ts("console", TOOL_STEPS)
    doc["spec"]["name"] = "console ts"
    world.write(doc)
    assert rules(world.plan())["unowned"].message.startswith("a task sequence named 'console ts' already exists")


def applied_parent_and_renamed_child(world: World) -> dict:
    """A parent calling 'TS child' is applied; the child manifest returned is renamed in the console."""
    world.write(ts("child", TOOL_STEPS), ts("parent", runs("TS child")))
    assert world.apply().ok
    child = ts("child", TOOL_STEPS)
    child["spec"]["name"] = "TS child renamed"
    return child


def test_renaming_a_child_sequence_its_parent_calls_by_name_is_blocked_at_the_parent(world: World) -> None:
    run_child = runs("TS child")
    child = applied_parent_and_renamed_child(world)
    world.write(child, ts("parent", run_child))
    blocked = rules(world.plan())["reference"]
    assert blocked.ref.name == "parent" and "renames to 'TS child renamed'" in blocked.message
    assert blocked.path == "spec.steps[0].settings.taskSequence.package" and blocked.source.line
    run_child[0]["settings"]["taskSequence"]["package"] = "TS child renamed"  # the parent follows
    world.write(child, ts("parent", run_child))
    assert not world.plan().blocked and world.apply().ok and world.plan().actions == []


def test_a_sequence_edit_that_breaks_an_unchanged_run_from_dp_deployment_is_blocked(world: World) -> None:
    run_from_dp = deployment("lab", "tools", {"name": "OSD Lab"}, content={"access": "RunFromDistributionPoint"})
    world.write(ts("tools", TOOL_STEPS), run_from_dp)
    assert world.apply().ok  # OSD Tools is on a package share
    world.write(ts("tools", [*TOOL_STEPS, *OS_STEPS]), run_from_dp)  # the OS image is not
    blocked = rules(world.plan())["run-from-dp-share"]
    assert blocked.ref.name == "lab" and "the change to TaskSequence/tools" in blocked.message


def test_a_variable_added_to_an_existing_set_reads_none_to_value(world: World) -> None:
    from io import StringIO

    from reconciler.render.plan import render_text

    doc = {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "lab"},
           "spec": {"collection": {"name": "OSD Lab"}, "variables": [{"name": "OSDRing", "value": "lab"}]}}
    world.write(doc)
    first = StringIO()
    render_text(world.plan(), first)
    assert 'variables.OSDRing: "lab"' in first.getvalue() and "(none)" not in first.getvalue()  # a creation
    assert world.apply().ok
    doc["spec"]["variables"].append({"name": "OSDBitLocker", "value": "false"})
    world.write(doc)
    second = StringIO()
    render_text(world.plan(), second)
    assert 'variables.OSDBitLocker: (none) → "false"' in second.getvalue()


def test_a_parent_changed_in_the_same_plan_still_may_not_call_a_child_by_its_old_name(world: World) -> None:
    child = applied_parent_and_renamed_child(world)
    world.write(child, ts("parent", runs("TS child"), description="edited too"))
    assert rules(world.plan())["reference"].ref.name == "parent"
