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
from typing import Any

from reconciler.actor import Actor, resolve_actor
from reconciler.apply.executor import ActionResult, ApplyRefused, ApplyResult, apply_plan, settle_pending
from reconciler.apply.secrets import SecretsMissing, desired_secret_uses, missing_secrets, plan_secret_uses
from reconciler.audit import apply_events, location, plan_digest, refusal_event
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
from reconciler.state import AuditQuery, LeaseLost, StateStore, new_apply_id
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
    SECRETS_MISSING = "secrets-missing"  # secrets the pass needs cannot be read: listed, nothing printed or applied
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
    #: the apply's own ID (history, audit, rollback), once something was applied
    apply_id: str | None = None

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
    #: who this pass writes for (--actor, RECONCILE_ACTOR, the CI's variables, else the OS user): the audit's "who"
    actor: Actor = field(default_factory=resolve_actor)
    #: the manifests planned (or a saved plan's, checked): where a missing secret is named, by file and line
    desired: DesiredState | None = None
    #: where the manifests came from, for the audit of an attempt refused before apply is reached
    provenance: Provenance | None = None
    #: more of what the apply record says (``saved_plan``: file and digest; ``rollback_of``: an apply ID)
    record: dict[str, Any] = field(default_factory=dict)

    def refuse(self, reason: str, message: str, plan: Plan | None = None, detail: dict[str, Any] | None = None) -> None:
        """Record in the audit trail an attempt to write that was refused before anything was applied.

        Only a pass that writes records one: a dry run that finds a blocked plan attempted nothing.
        """
        if self.keeper is None:
            return
        if plan is not None:
            # A controller meets the same blocked plan on every tick: the first refusal says it all.
            last = self.state.audit_events(AuditQuery(events=("refused",), limit=1))
            if last and last[0].plan_id == plan.plan_id and last[0].detail.get("reason") == reason \
                    and last[0].actor == str(self.actor):
                return
        provenance = self.provenance.to_json() if self.provenance is not None else None
        self.state.record_audit([refusal_event(reason, message, self.actor, plan, provenance, detail)])

    def take_lease(self) -> Outcome | None:
        """Take the site's lease for this pass; the LEASE_HELD outcome (recorded as refused) when another has it."""
        assert self.keeper is not None
        try:
            self.lease_id = self.keeper.take().lease_id
        except LeaseHeld as exc:
            self.refuse("lease", str(exc))
            return Outcome(Stage.LEASE_HELD, message=str(exc))
        return None

    def preflight(self, plan: Plan) -> Outcome | None:
        """Every secret the plan writes, read before anything is shown or applied: all missing ones at once."""
        read = secret_reader(self.secrets_base, self.settings.secrets)
        missing = missing_secrets(plan_secret_uses(plan, self.desired), read)
        if not missing:
            return None
        message = str(SecretsMissing(missing))
        self.refuse("secrets", message, plan, {"missing": [m.to_json() for m in missing]})
        return Outcome(Stage.SECRETS_MISSING, plan=plan, message=message)

    def check_saved(self, saved: SavedPlan, desired: DesiredState, provenance: Provenance) -> None:
        """Refuse (SavedPlanError, recorded) a saved plan whose manifests or site moved since it was made."""
        self.desired, self.provenance = desired, provenance
        try:
            check_saved(saved, desired, provenance, self.site)
        except SavedPlanError as exc:
            self.refuse("saved-plan", str(exc), saved.plan)
            raise

    def plan(self, desired: DesiredState, options: PlanOptions) -> tuple[Plan | None, Outcome | None]:
        """Validate and plan; when the pass will write, under the lease taken before the site is read."""
        self.desired = desired
        findings = validate(desired, self.settings)
        if has_errors(findings):
            return None, Outcome(Stage.INVALID, [f for f in findings if f.severity is Severity.ERROR])
        if self.keeper is not None:
            held = self.take_lease()
            if held is not None:
                return None, held
        targets = resolve_targets(options.targets, desired, self.state)
        refresh = None
        if options.refresh_secrets:
            # Everything --refresh-secrets will read, checked first: every missing secret named in one run.
            refresh = secret_reader(self.secrets_base, self.settings.secrets)
            managed = set(self.state.owned())
            if targets:
                managed &= {tuple(t.split("/", 1)) for t in targets}
            missing = missing_secrets(desired_secret_uses(desired, managed), refresh)
            if missing:
                message = str(SecretsMissing(missing, "--refresh-secrets reads", "nothing was planned"))
                self.refuse("secrets", message, None, {"missing": [m.to_json() for m in missing]})
                return None, Outcome(Stage.SECRETS_MISSING, message=message)
        plan = make_plan(desired, self.site.read(), self.state, adopt=options.adopt, prune=options.prune,
                         targets=targets, max_delete=options.max_delete, secrets=refresh, paths=self.site.paths(),
                         scope=self.settings.scope)
        if plan.blocked:
            self.refuse("blocked", f"the plan has {len(plan.blocked)} blocked item(s): nothing was applied", plan)
            return plan, Outcome(Stage.BLOCKED, plan=plan)
        return plan, None

    def apply(self, plan: Plan, provenance: Provenance, options: ApplyOptions,
              confirm: Callable[[Plan], bool] = lambda plan: True) -> Outcome:
        """Confirm, check the lease is still ours, apply, and record the apply with where it came from."""
        if self.keeper is None:
            raise ValueError("a pass without a lease keeper only plans")
        lease_id = self.lease_id or (self.keeper.lease.lease_id if self.keeper.lease is not None else None)
        self.provenance = provenance
        if not plan.actions:
            settle_pending(plan, self.state)  # nothing to apply also finishes an interrupted run
            return Outcome(Stage.IN_SYNC, plan=plan)
        missing = self.preflight(plan)
        if missing is not None:
            return missing
        if not confirm(plan):
            return Outcome(Stage.DECLINED, plan=plan)
        if lease_id is None or not self.keeper.check(lease_id):
            holder = held_by(self.state.lease_holder(self.site.site_code))
            message = (f"the lease of site {self.site.site_code} was lost while this plan waited (unlocked, or it "
                       f"lapsed); it is now held by {holder}; nothing was applied: plan again")
            self.refuse("lease-lost", message, plan)
            return Outcome(Stage.LEASE_LOST, plan=plan, message=message)
        keeper = self.keeper
        apply_id = new_apply_id()
        digest = plan_digest(plan)  # the plan as confirmed, before apply fills in what it learns

        def stop() -> bool:
            return bool(options.should_stop and options.should_stop()) or not keeper.check(lease_id)

        try:
            result = apply_plan(plan, self.site, self.state, secrets_base=self.secrets_base,
                                policy=self.settings.secrets, progress=options.progress,
                                wait_for_content=options.wait_for_content, notice=options.notice, should_stop=stop,
                                apply_id=apply_id, actor=str(self.actor))
        except ApplyRefused as exc:
            self.refuse("refused", str(exc), plan)
            return Outcome(Stage.REFUSED, plan=plan, message=str(exc))
        except LeaseLost as exc:  # the store refused a journal write: another writer took the site over
            return Outcome(Stage.LEASE_LOST, plan=plan, message=str(exc))
        try:
            self.record_applied(apply_id, plan, provenance, result, digest)
        except LeaseLost as exc:
            return Outcome(Stage.LEASE_LOST, plan=plan, result=result, message=str(exc))
        return Outcome(Stage.APPLIED, plan=plan, result=result, apply_id=apply_id)

    def record_applied(self, apply_id: str, plan: Plan, provenance: Provenance, result: ApplyResult,
                       digest: str) -> None:
        """The apply record (history) and its audit events: who, from which commit and plan, each action's changes."""
        applied, failed, skipped = (len(result.of(o)) for o in ("applied", "failed", "skipped"))
        detail = {**self.record, "plan_digest": digest,
                  "location": location(provenance.source, provenance.sha),
                  "options": {"adopt": plan.adopt, "prune": plan.prune, "targets": list(plan.targets)}}
        self.state.record_apply(plan.plan_id, provenance.to_json(), plan.counts(),
                                {"applied": applied, "failed": failed, "skipped": skipped}, apply_id=apply_id,
                                actor=str(self.actor), detail=detail)
        self.state.record_audit(apply_events(apply_id, plan, ((r.action, r.outcome, r.message) for r in result.results),
                                             self.actor, provenance.to_json(), detail))

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
