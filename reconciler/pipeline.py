"""One pass of the job: load → validate → lease → plan → review → apply → record.

The command line (``reconcile``, ``reconcile plan``, ``reconcile apply FILE``) and the controller's tick
run the same function; they differ only in what they do at its edges: where the manifests come from,
how a plan is shown and confirmed, and what the outcome becomes (an exit code, a tick's status).
Everything between is here once, so a rule added to the pass holds for every way of running it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from reconciler.apply.executor import ActionResult, ApplyRefused, ApplyResult, apply_plan, settle_pending
from reconciler.config import Config
from reconciler.errors import Finding, Severity
from reconciler.lease import LeaseHeld, LeaseKeeper, held_by
from reconciler.plan.actions import Plan
from reconciler.plan.document import PlanInputs, SavedPlan, SavedPlanError
from reconciler.plan.planner import MAX_DELETE_PERCENT, make_plan, resolve_targets
from reconciler.secrets import reader as secret_reader
from reconciler.site import Site
from reconciler.source.loader import DesiredState
from reconciler.source.select import Provenance
from reconciler.state import StateStore
from reconciler.validate import has_errors, validate


class Stage(StrEnum):
    """Where a pass ended."""

    INVALID = "invalid"  # the manifests have errors: no plan
    LEASE_HELD = "lease-held"  # another writer holds the site's lease: nothing read
    BLOCKED = "blocked"  # the plan has blocked items: nothing applied
    PLANNED = "planned"  # a plan only (dry run, or a saved plan written)
    IN_SYNC = "in-sync"  # nothing to do
    DECLINED = "declined"  # the plan was not confirmed
    LEASE_LOST = "lease-lost"  # the lease was lost between planning and applying: nothing applied
    REFUSED = "refused"  # apply refused the plan whole before the first write (secrets, the site moved)
    APPLIED = "applied"  # applied (see the result for failures)


@dataclass(frozen=True, slots=True)
class PlanOptions:
    adopt: bool = False
    prune: bool = False
    targets: tuple[str, ...] = ()
    max_delete: float = MAX_DELETE_PERCENT
    #: read every secret the managed objects use and compare its keyed hash (--refresh-secrets)
    refresh_secrets: bool = False


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    wait_for_content: float | None = None
    progress: Callable[[ActionResult, int, int], None] | None = None
    notice: Callable[[str], None] | None = None
    should_stop: Callable[[], bool] | None = None


@dataclass
class Outcome:
    stage: Stage
    findings: list[Finding] = field(default_factory=list)
    plan: Plan | None = None
    result: ApplyResult | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        if self.stage is Stage.APPLIED:
            return self.result is not None and self.result.ok and not self.result.stopped
        return self.stage in (Stage.PLANNED, Stage.IN_SYNC)


@dataclass
class Pass:
    """The site, the state store and the settings one pass works with, and the writer's lease when it writes.

    ``keeper`` is None for a pass that only plans (a dry run never takes the lease); a writer's keeper may
    already hold the lease (a controller keeps it across ticks), and is not released here.
    """

    site: Site
    state: StateStore
    settings: Config
    secrets_base: Path
    keeper: LeaseKeeper | None = None
    #: the lease this pass planned under: applying needs that very lease, not one taken since
    lease_id: str | None = None

    def plan(self, desired: DesiredState, options: PlanOptions) -> tuple[Plan | None, Outcome | None]:
        """Validate and plan; when the pass will write, under the lease taken before the site is read."""
        findings = validate(desired, self.settings)
        if has_errors(findings):
            return None, Outcome(Stage.INVALID, [f for f in findings if f.severity is Severity.ERROR])
        if self.keeper is not None:
            try:
                self.lease_id = self.keeper.take().lease_id
            except LeaseHeld as exc:
                return None, Outcome(Stage.LEASE_HELD, message=str(exc))
        targets = resolve_targets(options.targets, desired, self.state)
        refresh = secret_reader(self.secrets_base, self.settings.secrets, with_key=True) \
            if options.refresh_secrets else None
        plan = make_plan(desired, self.site.read(), self.state, adopt=options.adopt, prune=options.prune,
                         targets=targets, max_delete=options.max_delete, secrets=refresh, paths=self.site.paths(),
                         scope=self.settings.scope)
        if plan.blocked:
            return plan, Outcome(Stage.BLOCKED, plan=plan)
        return plan, None

    def apply(self, plan: Plan, provenance: Provenance, options: ApplyOptions,
              confirm: Callable[[Plan], bool] = lambda plan: True) -> Outcome:
        """Confirm, check the lease is still ours, apply, and record the apply with where it came from."""
        if self.keeper is None:
            raise ValueError("a pass without a lease keeper only plans")
        lease_id = self.lease_id or (self.keeper.lease.lease_id if self.keeper.lease is not None else None)
        if not plan.actions:
            settle_pending(plan, self.state)  # nothing to apply also finishes an interrupted run
            return Outcome(Stage.IN_SYNC, plan=plan)
        if not confirm(plan):
            return Outcome(Stage.DECLINED, plan=plan)
        if lease_id is None or not self.keeper.check(lease_id):
            holder = held_by(self.state.lease_holder(self.site.site_code))
            return Outcome(Stage.LEASE_LOST, plan=plan, message=(
                f"the lease of site {self.site.site_code} was lost while this plan waited (unlocked, or it lapsed); "
                f"it is now held by {holder}; nothing was applied: plan again"))
        keeper = self.keeper

        def stop() -> bool:
            return bool(options.should_stop and options.should_stop()) or not keeper.check(lease_id)

        try:
            result = apply_plan(plan, self.site, self.state, secrets_base=self.secrets_base,
                                policy=self.settings.secrets, progress=options.progress,
                                wait_for_content=options.wait_for_content, notice=options.notice, should_stop=stop)
        except ApplyRefused as exc:
            return Outcome(Stage.REFUSED, plan=plan, message=str(exc))
        applied, failed, skipped = (len(result.of(o)) for o in ("applied", "failed", "skipped"))
        self.state.record_apply(plan.plan_id, provenance.to_json(), plan.counts(),
                                {"applied": applied, "failed": failed, "skipped": skipped})
        return Outcome(Stage.APPLIED, plan=plan, result=result)

    def run(self, desired: DesiredState, provenance: Provenance, options: PlanOptions, apply: ApplyOptions,
            confirm: Callable[[Plan], bool] = lambda plan: True) -> Outcome:
        """The whole pass: plan (under the lease), then confirm and apply. Without a keeper: plan only."""
        plan, stopped = self.plan(desired, options)
        if stopped is not None:
            return stopped
        assert plan is not None
        if self.keeper is None:
            return Outcome(Stage.PLANNED if plan.actions else Stage.IN_SYNC, plan=plan)
        return self.apply(plan, provenance, apply, confirm)


# -- saved plans -------------------------------------------------------------------------------------------


def manifests_digest(desired: DesiredState) -> str:
    """A digest of every manifest a plan read: the same manifests give the same digest, wherever they are."""
    items = sorted((o.kind, o.name, o.fingerprint) for o in desired.objects)
    return hashlib.sha256(json.dumps(items, separators=(",", ":")).encode("utf-8")).hexdigest()


def saved_plan(plan: Plan, desired: DesiredState, provenance: Provenance, site: Site, site_location: str,
               path: str, repo: str | None, options: PlanOptions) -> SavedPlan:
    inputs = PlanInputs(source=provenance.source, ref=provenance.ref, sha=provenance.sha, dirty=provenance.dirty,
                        manifests=manifests_digest(desired), site=site.site_code, site_location=site_location,
                        path=path, repo=repo)
    return SavedPlan(plan=plan, inputs=inputs, created=datetime.now(UTC).isoformat(timespec="seconds"),
                     options={"adopt": options.adopt, "prune": options.prune, "targets": list(options.targets),
                              "max_delete": options.max_delete, "refresh_secrets": options.refresh_secrets})


def inputs_moved(saved: SavedPlan, desired: DesiredState, provenance: Provenance, site: Site) -> list[str]:
    """What changed since a saved plan was made, among what it was made from (the site is checked by apply)."""
    inputs = saved.inputs
    moved = []
    if inputs.site != site.site_code:
        moved.append(f"the plan was made for site {inputs.site}, this is site {site.site_code}")
    if inputs.sha and provenance.sha and inputs.sha != provenance.sha:
        moved.append(f"{inputs.ref or 'the manifests'} moved from commit {inputs.sha[:12]} to {provenance.sha[:12]}")
    if inputs.manifests != manifests_digest(desired):
        moved.append("the manifests are not the ones the plan was made from (a file was added, removed or edited)")
    return moved


def check_saved(saved: SavedPlan, desired: DesiredState, provenance: Provenance, site: Site) -> None:
    moved = inputs_moved(saved, desired, provenance, site)
    if moved:
        raise SavedPlanError(f"plan {saved.plan.plan_id} cannot be applied: {'; '.join(moved)}; nothing was "
                             "applied: plan again")
