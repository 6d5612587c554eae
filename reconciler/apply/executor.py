"""Apply a plan: journal, re-check, mutate, record.

Every action writes its intent to the journal before it touches the site and its outcome after.
Before mutating it re-reads the live object, so a repeated or resumed apply never creates a second
object: an object a killed run created but did not record is found again by its console name
(task sequences) or its target (deployments) and taken over instead of created twice. A failed
action skips the actions that depend on it; independent actions go on.

This module holds the run: preflight (everything that can refuse the whole plan), the loop that journals
each action's intent and outcome, and the table from verb to handler. The handlers are in one module per
kind (:mod:`~reconciler.apply.tasksequences`, :mod:`~reconciler.apply.deployments`,
:mod:`~reconciler.apply.content`, :mod:`~reconciler.apply.variables`, :mod:`~reconciler.apply.adoption`);
the check that nothing moved since the plan is in :mod:`~reconciler.apply.fingerprints`, the secrets read
before the first write in :mod:`~reconciler.apply.secrets`, and how a creation of a killed run is told
from anyone else's object in :mod:`~reconciler.apply.interrupted`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply import adoption, content, deployments, tasksequences, variables
from reconciler.apply.errors import ApplyRefused, SiteChangedSincePlan, SiteMovedSincePlan
from reconciler.apply.fingerprints import planned_against_moved, variables_fingerprint
from reconciler.apply.interrupted import recognition
from reconciler.apply.secrets import read_secrets, resolve_secret
from reconciler.config import SecretsPolicy
from reconciler.diff.normalize import fingerprint
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Action, ObjectRef, Plan, Verb
from reconciler.secrets import reader
from reconciler.site import Site
from reconciler.state import StateStore

log = logging.getLogger("reconciler.apply")


@dataclass
class ActionResult:
    action: Action
    outcome: str  # applied | failed | skipped
    message: str = ""


@dataclass
class ApplyResult:
    plan_id: str
    results: list[ActionResult] = field(default_factory=list)
    stopped: bool = False  # a stop was asked for; the actions left run next time

    def of(self, outcome: str) -> list[ActionResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def ok(self) -> bool:
        return not self.of("failed") and not self.of("skipped")


class Executor:
    """One run of a plan, and what its handlers share: the plan, the site, the state store, the secrets."""

    def __init__(self, plan: Plan, site: Site, state: StateStore, secrets_base: Path,
                 progress: Callable[[ActionResult, int, int], None] | None = None,
                 wait_for_content: float | None = None, notice: Callable[[str], None] | None = None,
                 policy: SecretsPolicy | None = None, apply_id: str | None = None, actor: str | None = None) -> None:
        self.plan = plan
        #: this apply's own ID, on every journal entry it writes (a plan's ID repeats when it is applied again)
        self.apply_id = apply_id
        #: who applies, as the audit of a high-risk deployment names them
        self.actor = actor
        self.site = site
        self.state = state
        self.secrets = reader(secrets_base, policy)
        self.progress = progress
        self.wait_for_content = wait_for_content
        self.should_stop: Callable[[], bool] = lambda: False
        self.notice = notice or (lambda message: None)
        self.secret_values: dict[tuple[str, str], str] = {}
        self.step_secrets: dict[tuple[str, str], str] = {}

    def preflight(self) -> None:
        """Everything that can refuse the whole apply happens here, before the site is touched."""
        if self.plan.blocked:
            raise ApplyRefused(f"the plan has {len(self.plan.blocked)} blocked item(s); nothing was applied")
        moved = planned_against_moved(self.plan, self.site, self.state)
        if moved:
            listing = "; ".join(moved[:10]) + (f"; and {len(moved) - 10} more" if len(moved) > 10 else "")
            raise SiteMovedSincePlan(f"the site changed since the plan was made: {listing}; nothing was applied: "
                                     "plan again")
        # Every secret is read, and its value checked, before the first write (see reconciler.apply.secrets).
        self.step_secrets, self.secret_values = read_secrets(self.plan, self.secrets)

    def run(self) -> ApplyResult:
        self.preflight()
        settle_pending(self.plan, self.state)
        result = ApplyResult(self.plan.plan_id)
        failed: set[ObjectRef] = set()
        total = len(self.plan.actions)
        for index, action in enumerate(self.plan.actions, 1):
            if self.should_stop():
                log.info("stopping before %s: %d action(s) left for the next run", action.ref, total - index + 1)
                result.stopped = True
                break
            blockers = [d for d in action.depends_on if d in failed]
            if action.ref in failed or blockers:
                failed.add(action.ref)
                why = f"skipped: {blockers[0] if blockers else action.ref} failed"
                self.state.outcome(self.plan.plan_id, action.verb.value, str(action.ref), "skipped", why,
                                   apply_id=self.apply_id)
                item = ActionResult(action, "skipped", why)
            else:
                log.debug("%s: %s (%s) intent, live id %s", action.ref, action.verb.value, action.reason.value,
                          action.live_id)
                self.state.intent(self.plan.plan_id, action.verb.value, str(action.ref),
                                  {"live_id": action.live_id, "summary": action.summary,
                                   **recognition(action, self.site, self.state)}, apply_id=self.apply_id)
                try:
                    message = self.execute(action)
                except ReconcilerError as exc:
                    failed.add(action.ref)
                    self.state.outcome(self.plan.plan_id, action.verb.value, str(action.ref), "failed", str(exc),
                                       apply_id=self.apply_id)
                    item = ActionResult(action, "failed", str(exc))
                else:
                    self.state.outcome(self.plan.plan_id, action.verb.value, str(action.ref), "applied", None,
                                       {"result": message}, apply_id=self.apply_id)
                    item = ActionResult(action, "applied", message)
            log.info("%s: %s %s%s", action.ref, action.verb.value, item.outcome,
                     f" ({item.message})" if item.message else "")
            result.results.append(item)
            if self.progress:
                self.progress(item, index, total)
        content.record_content_ownership(self, failed)
        return result

    def execute(self, action: Action) -> str:
        return HANDLERS[action.verb](self, action)


#: The function that applies each verb; it gets the run and the action and says what it did.
HANDLERS: dict[Verb, Callable[[Executor, Action], str]] = {
    Verb.CREATE_TASK_SEQUENCE: tasksequences.create_task_sequence,
    Verb.UPDATE_TASK_SEQUENCE: tasksequences.update_task_sequence,
    Verb.ENABLE_TASK_SEQUENCE: tasksequences.enable_task_sequence,
    Verb.DISABLE_TASK_SEQUENCE: tasksequences.disable_task_sequence,
    Verb.MOVE_TASK_SEQUENCE: tasksequences.move_task_sequence,
    Verb.DELETE_TASK_SEQUENCE: tasksequences.delete_task_sequence,
    Verb.DISTRIBUTE_CONTENT: content.distribute_content,
    Verb.REDISTRIBUTE_CONTENT: content.redistribute_content,
    Verb.REMOVE_CONTENT: content.remove_content,
    Verb.CREATE_DEPLOYMENT: deployments.create_deployment,
    Verb.UPDATE_DEPLOYMENT: deployments.update_deployment,
    Verb.REPLACE_DEPLOYMENT: deployments.replace_deployment,
    Verb.DELETE_DEPLOYMENT: deployments.delete_deployment,
    Verb.SET_VARIABLES: variables.set_variables,
    Verb.REMOVE_VARIABLES: variables.remove_variables,
    Verb.ADOPT: adoption.adopt,
}


def settle_pending(plan: Plan, state: StateStore) -> int:
    """Resolve the unfinished intents this plan supersedes: objects it has nothing left to do for.

    A run killed after its last write and before its outcome leaves an intent that the next plan finds
    nothing to do for. Left pending, it would stay forever; this records its outcome in the journal and
    clears it. Runs whenever a plan is applied, also one with no actions.
    """
    settled = 0
    for obj, intent_plan in sorted(plan.settles.items()):
        if state.settle(obj, intent_plan, plan.plan_id, "superseded: a later plan had nothing left to do for it"):
            log.info("%s: the unfinished action of plan %s is resolved: nothing was left to do", obj, intent_plan)
            settled += 1
    return settled


def apply_plan(plan: Plan, site: Site, state: StateStore, secrets_base: Path = Path("."),
               progress: Callable[[ActionResult, int, int], None] | None = None,
               wait_for_content: float | None = None, notice: Callable[[str], None] | None = None,
               should_stop: Callable[[], bool] | None = None, policy: SecretsPolicy | None = None,
               apply_id: str | None = None, actor: str | None = None) -> ApplyResult:
    """Apply every action of the plan (refused whole when anything is blocked).

    ``secrets_base`` is the manifests folder; ``policy`` says where secrets may come from (by default the
    folder's ``secrets/`` and environment variables starting with OSD_ or RECONCILE_SECRET_). ``apply_id`` is
    written on every journal entry of this run, ``actor`` into the audit of a high-risk deployment.
    """
    executor = Executor(plan, site, state, secrets_base, progress, wait_for_content, notice, policy, apply_id, actor)
    if should_stop is not None:
        executor.should_stop = should_stop
    return executor.run()


__all__ = ["HANDLERS", "ActionResult", "ApplyRefused", "ApplyResult", "Executor", "SiteChangedSincePlan",
           "SiteMovedSincePlan", "apply_plan", "fingerprint", "planned_against_moved", "resolve_secret",
           "settle_pending", "variables_fingerprint"]
