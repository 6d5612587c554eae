"""The executor applies every verb a plan can hold, each through the handler of its kind."""

from __future__ import annotations

from reconciler.apply.executor import HANDLERS
from reconciler.plan.actions import Verb


def test_every_verb_a_plan_can_hold_has_a_handler() -> None:
    assert set(HANDLERS) == set(Verb)


def test_each_handler_lives_in_the_module_of_its_kind() -> None:
    kinds = {"TASK_SEQUENCE": "tasksequences", "CONTENT": "content", "DEPLOYMENT": "deployments",
             "VARIABLES": "variables", "ADOPT": "adoption"}
    for verb, handler in HANDLERS.items():
        module = next(m for suffix, m in kinds.items() if verb.name.endswith(suffix))
        assert handler.__module__ == f"reconciler.apply.{module}", (verb, handler)
