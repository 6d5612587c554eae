"""The plan is data: ordered by dependency, typed and immutable, applied exactly, refused when it is stale."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.executor import SiteMovedSincePlan, apply_plan
from reconciler.diff.changes import PATH_SEPARATOR as SEP
from reconciler.plan.actions import Action, ObjectRef, Reason, TaskSequenceWrite, Verb
from reconciler.plan.document import SavedPlanError, read_saved_plan, write_saved_plan
from reconciler.plan.order import DependencyCycle, order_actions
from reconciler.plan.planner import make_plan
from reconciler.source.loader import load
from reconciler.source.select import Provenance
from tests.test_guardrails import HEAD, TOOL_STEPS, World, content, deployment, runs, ts


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w
    w.site.close()
    w.state.close()


def named(name: str, console: str, steps: list[dict]) -> dict:
    return {**HEAD, "kind": "TaskSequence", "metadata": {"name": name}, "spec": {"name": console, "steps": steps}}


# -- order by dependency -------------------------------------------------------------------------------


def test_a_new_parent_running_a_new_child_named_after_it_applies_in_one_run(world: World) -> None:
    """'A Parent' sorts before 'Z Child': by name alone the parent would be written before its child existed."""
    world.write(named("a-parent", "A Parent", runs("Z Child")), named("z-child", "Z Child", TOOL_STEPS),
                deployment("pilot", "a-parent", {"name": "OSD Lab"}), content("parent-content", "a-parent", ["HQ DPs"]))
    plan = world.plan()
    order = [(a.verb.value, a.ref.name) for a in plan.actions]
    assert order.index(("CreateTaskSequence", "z-child")) < order.index(("CreateTaskSequence", "a-parent"))
    assert order.index(("CreateTaskSequence", "a-parent")) < order.index(("CreateDeployment", "pilot"))
    distribute = next(i for i, (verb, _) in enumerate(order) if verb == "DistributeContent")
    assert distribute < order.index(("CreateDeployment", "pilot"))  # content before the deployment that needs it
    result = apply_plan(plan, world.site, world.state, world.manifests)
    assert result.ok, [(r.action.ref, r.message) for r in result.results if r.outcome != "applied"]
    assert world.plan().actions == []
    parent = world.site.get_task_sequence(world.state.owned_id("TaskSequence", "a-parent") or "")
    child_id = world.state.owned_id("TaskSequence", "z-child")
    assert parent is not None and child_id and child_id in parent.references and "PENDING" not in parent.sequence


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(string.ascii_letters + " ", min_size=3, max_size=20).map(str.strip)
                .filter(lambda s: len(s) >= 3), min_size=2, max_size=5, unique_by=str.casefold))
def test_a_first_apply_of_a_chain_of_new_sequences_succeeds_whatever_their_names(tmp_path_factory: Any,
                                                                                  names: list[str]) -> None:
    """Each sequence runs the next one: creation order must follow the chain, not the alphabet."""
    w = World(tmp_path_factory.mktemp("chain"))
    try:
        docs = []
        for i, console in enumerate(names):
            steps = runs(names[i + 1]) if i + 1 < len(names) else TOOL_STEPS
            docs.append(named(f"ts-{i}", console, steps))
        w.write(*docs)
        result = apply_plan(w.plan(), w.site, w.state, w.manifests)
        assert result.ok, [(r.action.ref, r.message) for r in result.results if r.outcome != "applied"]
        assert w.plan().actions == []
    finally:
        w.site.close()
        w.state.close()


def test_deletions_run_after_changes_and_a_sequence_goes_after_its_deployments(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}), ts("keep", TOOL_STEPS))
    assert world.apply().ok
    world.write(ts("keep", TOOL_STEPS, description="changed"))
    plan = world.plan(prune=True, max_delete=100)
    verbs = [(a.verb.value, a.ref.name) for a in plan.actions]
    assert verbs == [("UpdateTaskSequence", "keep"), ("DeleteDeployment", "lab"), ("DeleteTaskSequence", "tools")]


def test_a_cycle_of_dependencies_names_the_objects_in_order() -> None:
    a, b, c = (ObjectRef("TaskSequence", n) for n in "abc")
    actions = [Action(Verb.CREATE_TASK_SEQUENCE, a, Reason.NEW, depends_on=(b,)),
               Action(Verb.CREATE_TASK_SEQUENCE, b, Reason.NEW, depends_on=(c,)),
               Action(Verb.CREATE_TASK_SEQUENCE, c, Reason.NEW, depends_on=(a,))]
    with pytest.raises(DependencyCycle) as caught:
        order_actions(actions)
    assert str(caught.value) in ("TaskSequence/a -> TaskSequence/b -> TaskSequence/c -> TaskSequence/a",
                                 "TaskSequence/c -> TaskSequence/a -> TaskSequence/b -> TaskSequence/c",
                                 "TaskSequence/b -> TaskSequence/c -> TaskSequence/a -> TaskSequence/b")


def test_two_new_sequences_running_each_other_are_blocked_with_the_circle(world: World) -> None:
    world.write(named("left", "Left", runs("Right")), named("right", "Right", runs("Left")))
    plan = world.plan()
    [blocked] = [b for b in plan.blocked if b.rule == "dependency-cycle"]
    assert "TaskSequence/left" in blocked.message and "TaskSequence/right" in blocked.message


# -- typed, immutable actions ----------------------------------------------------------------------------


def test_actions_are_frozen_and_carry_a_typed_payload_not_a_manifest(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS))
    [create] = world.plan().actions
    assert isinstance(create.write, TaskSequenceWrite) and create.write.record.name == "TS tools"
    with pytest.raises(dataclasses.FrozenInstanceError):
        create.live_id = "PS1FFFFF"  # type: ignore[misc]
    assert not hasattr(create, "params")


def test_the_same_inputs_give_the_same_plan_id(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}))
    first, second = world.plan(), world.plan()
    assert first.plan_id == second.plan_id and len(first.plan_id) == 12
    world.write(ts("tools", TOOL_STEPS, description="other"), deployment("lab", "tools", {"name": "OSD Lab"}))
    assert world.plan().plan_id != first.plan_id


# -- saved plans -----------------------------------------------------------------------------------------


def _saved(world: World, path: Path) -> None:
    from reconciler.pipeline import PlanOptions, saved_plan

    desired = load(world.manifests)
    plan = world.plan()
    write_saved_plan(saved_plan(plan, desired, Provenance(None, None, str(world.manifests)), world.site,
                                str(world.root / ".reconcile" / "site.db"), str(world.manifests), None,
                                PlanOptions()), path)


def test_a_saved_plan_reads_back_to_the_same_typed_plan(world: World) -> None:
    world.write(named("a-parent", "A Parent", runs("Z Child")), named("z-child", "Z Child", TOOL_STEPS),
                deployment("pilot", "a-parent", {"name": "OSD Lab"}),
                {**HEAD, "kind": "CollectionVariables", "metadata": {"name": "pilot-vars"},
                 "spec": {"collection": {"name": "OSD Pilot"}, "variables": [
                     {"name": "OSDSecret", "valueFrom": {"env": "OSD_SAVED_SECRET"}}, {"name": "A", "value": "b"}]}})
    file = world.root / "plan.json"
    _saved(world, file)
    assert b"OSD_SAVED_SECRET" in file.read_bytes()  # the reference, never a value
    saved = read_saved_plan(file)
    assert saved.plan == world.plan()


def test_a_saved_plan_changed_after_it_was_written_is_refused(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS))
    file = world.root / "plan.json"
    _saved(world, file)
    file.write_text(file.read_text().replace("cmd /c echo", "cmd /c format c:"))
    with pytest.raises(SavedPlanError, match="does not match its ID"):
        read_saved_plan(file)


def test_a_plan_whose_objects_moved_on_the_site_is_refused_whole(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), ts("other", TOOL_STEPS))
    assert world.apply().ok
    world.write(ts("tools", TOOL_STEPS, description="one"), ts("other", TOOL_STEPS, description="two"))
    plan = world.plan()
    assert len(plan.actions) == 2
    other = world.state.owned_id("TaskSequence", "other") or ""
    world.site.update_task_sequence(other, dataclasses.replace(world.site.get_task_sequence(other),  # type: ignore
                                                               description="edited in the console"))
    before = world.site.get_task_sequence(world.state.owned_id("TaskSequence", "tools") or "")
    with pytest.raises(SiteMovedSincePlan, match=r"TaskSequence/other \[PS1\w+\]"):
        apply_plan(plan, world.site, world.state, world.manifests)
    assert world.site.get_task_sequence(world.state.owned_id("TaskSequence", "tools") or "") == before


# -- reconcile plan --out / reconcile apply FILE ---------------------------------------------------------


def run(root: Path, *args: str) -> Any:
    """The CLI in-process, in ``root`` (click 8.2+ keeps stderr apart)."""
    from click.testing import CliRunner

    from reconciler.cli import cli

    with contextlib.chdir(root):
        return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"})


def test_plan_is_the_dry_run_and_the_same_inputs_give_the_same_id(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}))
    first = run(world.root, "plan", "--output", "json")
    again = run(world.root, "--dry-run", "--output", "json")
    assert first.exit_code == again.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["plan_id"] == json.loads(again.stdout)["plan_id"]
    assert world.site.read().task_sequences == {}  # a plan changes nothing


def test_a_saved_plan_is_applied_exactly_and_the_next_plan_is_empty(world: World) -> None:
    world.write(named("a-parent", "A Parent", runs("Z Child")), named("z-child", "Z Child", TOOL_STEPS),
                deployment("pilot", "a-parent", {"name": "OSD Lab"}))
    saved = run(world.root, "plan", "--out", "plan.json")
    assert saved.exit_code == 0 and "saved plan" in saved.stderr, saved.stderr
    plan_id = json.loads((world.root / "plan.json").read_text())["plan"]["plan_id"]
    applied = run(world.root, "apply", "plan.json", "--yes")
    assert applied.exit_code == 0, applied.stderr
    assert f"Plan {plan_id}" in applied.stdout and "Apply complete: 3 applied, 0 failed, 0 skipped." in applied.stdout
    assert world.plan().actions == []
    history = world.state.applies(1)
    assert history[0].plan_id == plan_id  # the apply records the very plan that was reviewed


def test_a_saved_plan_is_refused_when_the_manifests_changed_since(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS))
    assert run(world.root, "plan", "--out", "plan.json").exit_code == 0
    world.write(ts("tools", TOOL_STEPS, description="edited after the review"))
    refused = run(world.root, "apply", "plan.json", "--yes")
    assert refused.exit_code == 1
    assert "the manifests are not the ones the plan was made from" in refused.stderr and "nothing was applied" \
        in refused.stderr
    assert world.site.read().task_sequences == {}


def test_a_saved_plan_is_refused_when_the_site_moved_since(world: World) -> None:
    world.write(ts("tools", TOOL_STEPS))
    assert world.apply().ok
    world.write(ts("tools", TOOL_STEPS, description="reviewed change"))
    assert run(world.root, "plan", "--out", "plan.json").exit_code == 0
    ts_id = world.state.owned_id("TaskSequence", "tools") or ""
    live = world.site.get_task_sequence(ts_id)
    assert live is not None
    world.site.update_task_sequence(ts_id, dataclasses.replace(live, description="console edit"))
    refused = run(world.root, "apply", "plan.json", "--yes")
    assert refused.exit_code == 1
    assert f"TaskSequence/tools [{ts_id}]" in refused.stderr and "plan again" in refused.stderr
    assert world.site.get_task_sequence(ts_id).description == "console edit"  # type: ignore[union-attr]


def test_a_file_that_is_not_a_saved_plan_is_one_clear_error(world: World) -> None:
    (world.root / "notes.txt").write_text("hello")
    result = run(world.root, "apply", "notes.txt", "--yes")
    assert result.exit_code == 1 and result.stderr.startswith("error: notes.txt: not a saved plan")
    assert "Traceback" not in result.stderr


# -- the step diff in every format -------------------------------------------------------------------------

BITLOCKER = {"name": "Enable BitLocker", "type": "EnableBitLocker",
             "condition": {"variable": {"name": "OSDBitLocker", "operator": "notEquals", "value": "false"}},
             "settings": {"mode": "TPM", "createRecoveryPassword": "AD"}}
TATTOO = {"name": "Set OSD tattoo variable", "type": "SetVariable",
          "settings": {"variableName": "OSDTattoo", "value": "2026-12"}}


def test_an_inserted_step_and_an_edited_condition_read_by_name_in_text_json_and_markdown(world: World) -> None:
    from reconciler.render.plan import render_markdown, render_text

    group = {"group": "Install Operating System", "steps": [*TOOL_STEPS, BITLOCKER]}
    world.write(ts("win", [group]))
    assert world.apply().ok
    edited = {**BITLOCKER, "condition": {"variable": {"name": "OSDBitLocker", "operator": "equals", "value": "true"}}}
    world.write(ts("win", [{**group, "steps": [*TOOL_STEPS, TATTOO, edited]}]))
    [update] = world.plan().actions
    assert update.changes == () and [c.op.value for c in update.step_changes] == ["inserted", "changed"]
    text, markdown = io.StringIO(), io.StringIO()
    render_text(world.plan(), text)
    render_markdown(world.plan(), markdown)
    for out in (text.getvalue(), markdown.getvalue()):
        assert (f'step (SetVariable) Install Operating System{SEP}Set OSD tattoo variable: inserted after "Run" in '
                '"Install Operating System"') in out
        assert 'settings: {"variableName": "OSDTattoo", "value": "2026-12"}' in out
        assert f"step (EnableBitLocker) Install Operating System{SEP}Enable BitLocker" in out
        assert 'condition.variable.operator: "notEquals" → "equals"' in out
        assert 'condition.variable.value: "false" → "true"' in out
        assert "steps[" not in out and "extra" not in out and "…" not in out
    document = run(world.root, "plan", "--output", "json")
    [action] = json.loads(document.stdout)["actions"]
    inserted, changed = action["step_changes"]
    assert inserted["display_path"] == f"Install Operating System{SEP}Set OSD tattoo variable"
    assert inserted["position"] == 'after "Run" in "Install Operating System"'
    assert [(f["path"], f["before"], f["after"]) for f in changed["fields"]] == [
        ("condition.variable.operator", "notEquals", "equals"), ("condition.variable.value", "false", "true")]


def test_a_long_script_change_is_shown_as_its_changed_lines_never_cut(world: World) -> None:
    from reconciler.render.plan import render_text

    script = "\n".join(f"Write-Output 'line {i}'" for i in range(200))
    step = {"name": "Script", "type": "RunPowerShellScript", "settings": {"script": script,
                                                                         "executionPolicy": "Bypass"}}
    world.write(ts("scripted", [step]))
    assert world.apply().ok
    world.write(ts("scripted", [{**step, "settings": {**step["settings"],
                                                      "script": script.replace("line 150'", "line 150 edited'")}}]))
    out = io.StringIO()
    render_text(world.plan(), out)
    assert "- Write-Output 'line 150'" in out.getvalue() and "+ Write-Output 'line 150 edited'" in out.getvalue()
    assert "line 10'" not in out.getvalue()  # only the changed lines and their neighbours


def test_each_action_carries_how_it_reaches_the_site(world: World) -> None:
    from reconciler.render.plan import render_text

    weekly = {"assignments": [{"at": "2026-12-05T20:00:00", "recurrence": {"weekly": {"day": "Friday"}}}]}
    world.write(ts("tools", TOOL_STEPS), deployment("lab", "tools", {"name": "OSD Lab"}, schedule=weekly))
    paths = {"create_task_sequence": "WinRM", "create_deployment": "REST", "deployment_schedule": "WinRM"}
    plan = make_plan(load(world.manifests), world.site.read(), world.state, paths=paths)
    by_verb = {a.verb.value: a.path for a in plan.actions}
    assert by_verb == {"CreateTaskSequence": "WinRM", "CreateDeployment": "REST + WinRM"}
    out = io.StringIO()
    render_text(plan, out)
    assert "CreateTaskSequence (new) via WinRM" in out.getvalue()
    assert world.plan().actions[0].path == ""  # the embedded file has one way in


def test_what_a_real_site_cannot_hold_is_no_difference() -> None:
    """A real site keeps only ConfigMgr's Type (it sets it from the steps) and answers 0 for unset numbers."""
    from reconciler.diff.tasksequence import diff_task_sequence
    from reconciler.site.records import LiveState, TaskSequenceRecord

    wanted = TaskSequenceRecord(id=None, name="TS", sequence="<sequence/>", ts_type="VirtualHardDisk",
                                download_size_mb=None, run_time_minutes=None, duration=None, category=None)
    live = dataclasses.replace(wanted, id="PS100001", ts_type="", download_size_mb=0, run_time_minutes=0, duration=0,
                               category="")
    assert diff_task_sequence(live, wanted, LiveState("PS1")).empty
    changed = dataclasses.replace(wanted, download_size_mb=5200)
    [field] = diff_task_sequence(live, changed, LiveState("PS1")).fields
    assert (field.path, field.before, field.after) == ("softwareCenter.downloadSizeMB", None, 5200)
    embedded = dataclasses.replace(live, ts_type="Custom")  # a site that holds the console type: compared
    assert [f.path for f in diff_task_sequence(embedded, wanted, LiveState("PS1")).fields] == ["type"]
