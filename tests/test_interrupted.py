"""An apply killed mid-action: the next run finishes its intent, and takes over only what it created.

The state a kill -9 leaves is written the way the executor writes it (an intent naming what its creation
will be recognised by, the site's write, the created ID journaled) and then left without an outcome.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from reconciler.apply.executor import apply_plan
from reconciler.cli import cli
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import TaskSequenceRecord
from reconciler.source.loader import load
from reconciler.state import PendingIntent, StateStore

HEAD = {"apiVersion": "configmgr.gitops.io/v1alpha1"}
STEPS = [{"name": "Run", "type": "RunCommandLine",
          "settings": {"commandLine": "cmd /c echo", "package": {"package": "OSD Tools"}}}]


def ts(name: str, console: str) -> dict:
    return {**HEAD, "kind": "TaskSequence", "metadata": {"name": name}, "spec": {"name": console, "steps": STEPS}}


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests = root / "manifests"
        self.manifests.mkdir()
        self.site = EmbeddedSite(root / "site.db")
        add_demo_inventory(self.site)
        self.state = StateStore(root / "state.db")

    def write(self, *docs: dict) -> None:
        (self.manifests / "estate.yaml").write_text(yaml.safe_dump_all(list(docs), sort_keys=False))

    def plan(self, **options: Any):  # type: ignore[no-untyped-def]
        return make_plan(load(self.manifests), self.site.read(), self.state, **options)

    def apply(self, **options: Any):  # type: ignore[no-untyped-def]
        return apply_plan(self.plan(**options), self.site, self.state, self.manifests)

    def console_create(self, name: str) -> str:
        """A task sequence made in the console (or by an interrupted apply, before anything was recorded)."""
        return self.site.create_task_sequence(TaskSequenceRecord(id=None, name=name,
                                                                 sequence='<sequence version="3.10" />'))

    def killed_create(self, obj: str, console: str, *, created: bool) -> str:
        """What `kill -9` leaves after the site created the sequence: the intent (and the created ID), no outcome."""
        existing = [t.id for t in self.site.find_task_sequences(console) if t.id]
        self.state.intent("killed-plan", "CreateTaskSequence", obj, {"match": console.casefold(),
                                                                     "existing": existing})
        made = self.console_create(console)
        if created:
            self.state.created("killed-plan", "CreateTaskSequence", obj, made)
        return made


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w
    w.site.close()
    w.state.close()


def outcomes(state: StateStore, obj: str) -> list[str | None]:
    return [e.outcome for e in state.journal() if e.object == obj and e.phase == "outcome"]


def test_an_unfinished_intent_with_nothing_left_to_do_is_resolved_by_the_next_apply(world: World) -> None:
    world.write(ts("alpha", "Alpha"))
    assert world.apply().ok
    # Killed after its last write and before its outcome: the next plan finds nothing to do for it.
    world.state.intent("killed-plan", "UpdateTaskSequence", "TaskSequence/alpha", {"live_id": None})
    plan = world.plan()
    assert plan.actions == [] and plan.settles == {"TaskSequence/alpha": "killed-plan"}
    with contextlib.chdir(world.root):
        dry = CliRunner().invoke(cli, ["manifests", "--dry-run", "--site", "site.db", "--state", "state.db"])
        assert dry.exit_code == 0 and world.state.pending() == {"TaskSequence/alpha"}  # a dry run writes nothing
        result = CliRunner().invoke(cli, ["manifests", "--yes", "--site", "site.db", "--state", "state.db"])
    assert result.exit_code == 0, result.output
    assert world.state.pending() == set()
    (resolved,) = [e for e in world.state.journal() if e.outcome == "resolved"]
    assert resolved.plan_id == "killed-plan" and resolved.object == "TaskSequence/alpha"
    assert resolved.detail["resolved_by"] != "killed-plan"


def test_a_targeted_plan_resolves_only_the_intents_of_its_targets(world: World) -> None:
    world.write(ts("alpha", "Alpha"), ts("beta", "Beta"))
    assert world.apply().ok
    for obj in ("TaskSequence/alpha", "TaskSequence/beta"):
        world.state.intent("killed-plan", "UpdateTaskSequence", obj)
    assert world.apply(targets=("TaskSequence/alpha",)).ok
    assert world.state.pending() == {"TaskSequence/beta"}


def test_an_interrupted_create_is_taken_over_without_adopt(world: World) -> None:
    world.write(ts("beta", "Beta"))
    made = world.killed_create("TaskSequence/beta", "Beta", created=False)  # killed before the ID was journaled
    plan = world.plan()
    (adopt,) = [a for a in plan.actions if a.verb.value == "Adopt"]
    assert not plan.blocked and adopt.live_id == made and "made by an interrupted apply" in adopt.summary
    assert world.apply().ok
    assert world.state.owned_id("TaskSequence", "beta") == made and world.state.pending() == set()
    assert [t.id for t in world.site.read().task_sequences.values() if t.name == "Beta"] == [made]


def test_after_recovery_a_namesake_that_appears_later_is_not_taken_over_without_adopt(world: World) -> None:
    world.write(ts("beta", "Beta"))
    assert world.apply().ok
    # The run was killed after everything but its outcome: the row the audit saw survive recovery.
    world.state.intent("killed-plan", "CreateTaskSequence", "TaskSequence/beta", {"match": "beta", "existing": []})
    assert world.apply().ok and world.state.pending() == set()  # recovery resolves it
    # Later the managed sequence is deleted in the console and an unrelated one is named like it.
    world.site.delete_task_sequence(world.state.owned_id("TaskSequence", "beta") or "")
    stranger = world.console_create("Beta")
    plan = world.plan()
    (blocked,) = plan.blocked
    assert blocked.rule == "unowned" and stranger in blocked.message and "--adopt" in blocked.message
    assert world.site.get_task_sequence(stranger).sequence == '<sequence version="3.10" />'  # untouched
    (adopt,) = [a for a in world.plan(adopt=True).actions if a.verb.value == "Adopt"]
    assert adopt.live_id == stranger


def test_an_old_intent_hands_over_only_the_very_object_it_created(world: World) -> None:
    world.write(ts("beta", "Beta"))
    made = world.killed_create("TaskSequence/beta", "Beta", created=True)
    world.site.delete_task_sequence(made)  # the one it made is gone; an unrelated namesake appears
    stranger = world.console_create("Beta")
    plan = world.plan()
    assert [b.rule for b in plan.blocked] == ["unowned"] and stranger in plan.blocked[0].message
    assert world.state.owned_id("TaskSequence", "beta") is None


def test_a_namesake_that_was_there_before_the_interrupted_create_is_not_taken_over(world: World) -> None:
    world.write(ts("beta", "Beta"))
    before = world.console_create("Beta")
    world.state.intent("killed-plan", "CreateTaskSequence", "TaskSequence/beta",
                       {"match": "beta", "existing": [before]})  # killed before the site created anything
    plan = world.plan()
    assert [b.rule for b in plan.blocked] == ["unowned"] and before in plan.blocked[0].message


def test_an_intent_that_created_nothing_takes_over_nothing(world: World) -> None:
    world.write(ts("beta", "Beta"))
    stranger = world.console_create("Beta")
    world.state.intent("killed-plan", "DeleteTaskSequence", "TaskSequence/beta", {"live_id": "PS1FFFFF"})
    world.state.intent("older-version", "CreateDeployment", "TaskSequenceDeployment/x")  # no recognition at all
    plan = world.plan()
    assert [b.rule for b in plan.blocked] == ["unowned"] and stranger in plan.blocked[0].message


def test_a_renamed_creation_does_not_take_over_the_new_names_namesake(world: World) -> None:
    world.write(ts("beta", "Beta"))
    world.killed_create("TaskSequence/beta", "Beta", created=False)
    world.write(ts("beta", "Gamma"))  # the console name changed in Git since the interrupted run
    stranger = world.console_create("Gamma")
    plan = world.plan()
    assert [b.rule for b in plan.blocked] == ["unowned"] and stranger in plan.blocked[0].message


def test_an_unfinished_intent_keeps_what_existed_before_anything_was_made(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    obj = "TaskSequence/beta"
    state.intent("one", "CreateTaskSequence", obj, {"match": "beta", "existing": ["PS100001"]})
    state.intent("two", "Adopt", obj, {"live_id": "PS100002"})  # the takeover, killed too
    state.intent("three", "CreateTaskSequence", obj, {"match": "beta", "existing": ["PS100001", "PS100002"]})
    intent = state.pending_intent(obj)
    assert intent is not None and intent.plan_id == "three" and intent.existing == ("PS100001",)
    assert intent.made("beta", ["PS100001", "PS100002"]) == "PS100002"
    state.outcome("four", "CreateTaskSequence", obj, "skipped", "a dependency failed")  # never ran: still pending
    assert state.pending() == {obj}
    state.created("five", "CreateTaskSequence", obj, "PS100003")
    assert state.pending_intent(obj).made("beta", ["PS100002", "PS100003"]) == "PS100003"  # type: ignore[union-attr]
    state.intent("six", "CreateTaskSequence", obj, {"match": "gamma", "existing": []})  # another name: anew
    assert state.pending_intent(obj).existing == () and state.pending_intent(obj).created is None  # type: ignore[union-attr]
    state.outcome("six", "CreateTaskSequence", obj, "applied")
    assert state.pending() == set()
    state.close()


def test_an_intent_killed_before_the_site_changed_gets_an_outcome_when_the_same_plan_runs_again(
        tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    obj = "TaskSequence/beta"
    detail = {"match": "beta", "existing": []}
    state.intent("same-digest", "CreateTaskSequence", obj, detail)  # killed here: nothing reached the site
    state.intent("same-digest", "CreateTaskSequence", obj, detail)  # the same inputs: the same plan, the same ID
    state.created("same-digest", "CreateTaskSequence", obj, "PS100001")
    state.outcome("same-digest", "CreateTaskSequence", obj, "applied")
    phases = [e.phase for e in state.journal() if e.object == obj]
    state.close()
    assert phases.count("intent") == phases.count("outcome"), phases  # every intent, the killed one too, has one


@pytest.mark.parametrize(("intent", "candidates", "made"), [
    (PendingIntent("o", "p", "a", 0, "beta", (), None), ["A"], "A"),
    (PendingIntent("o", "p", "a", 0, "beta", ("A",), None), ["A", "B"], "B"),
    (PendingIntent("o", "p", "a", 0, "beta", (), None), ["A", "B"], None),  # two new ones: cannot tell
    (PendingIntent("o", "p", "a", 0, "beta", (), "A"), ["B"], None),  # not the one it journaled
    (PendingIntent("o", "p", "a", 0, "beta", (), "A"), ["A", "B"], "A"),
    (PendingIntent("o", "p", "a", 0, "gamma", (), None), ["A"], None),  # made under another name
    (PendingIntent("o", "p", "a", 0, None, None, None), ["A"], None),  # recorded nothing to recognise it by
])
def test_what_an_interrupted_intent_made(intent: PendingIntent, candidates: list[str], made: str | None) -> None:
    assert intent.made("beta", candidates) == made
