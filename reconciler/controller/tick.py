"""One controller tick: read the ref and the site, plan, apply or report. Level-triggered and repeatable.

A tick reads the whole desired and live state every time and carries nothing between ticks that the
state store does not also hold, except what lets it skip work: when the ref points at the commit
already reconciled and nobody wrote to the site since, there is nothing to look at.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.apply.executor import ActionResult
from reconciler.config import Config, SecretsPolicy, default_config, default_policy
from reconciler.errors import ReconcilerError, TransientError
from reconciler.lease import LeaseKeeper, held_by, holder_id
from reconciler.notify import Notifier, notices_for
from reconciler.pipeline import ApplyOptions, Outcome, Pass, PlanOptions, Stage
from reconciler.plan.actions import Action, Plan, Reason, Verb
from reconciler.plan.planner import MAX_DELETE_PERCENT
from reconciler.site import Site
from reconciler.source.cache import ParseCache
from reconciler.source.git import GitRepository, load_revision
from reconciler.source.select import Provenance
from reconciler.state import Pause, StateStore

log = logging.getLogger("reconciler.controller")


@dataclass
class ControllerConfig:
    repo: str
    ref: str = "main"
    path: str = "manifests"
    self_heal: bool = True
    prune: bool = False
    max_delete: float = MAX_DELETE_PERCENT
    lease_seconds: float = 30.0
    secrets_base: Path = Path("manifests")
    cache_dir: Path = Path(".reconcile")
    #: Interval ticks read the secrets too (a rotation shows nowhere else), so they always plan in full.
    refresh_secrets: bool = False
    #: reconcile.yaml of the local manifests folder (secrets policy); None: the defaults for secrets_base
    settings: Config | None = None

    def secrets_policy(self) -> SecretsPolicy:
        return self.settings.secrets if self.settings is not None else default_policy(self.secrets_base)


@dataclass
class TickResult:
    outcome: str  # ok | skipped | drift | error | blocked | failed | standby | stopped
    sha: str | None = None
    duration: float = 0.0
    actions: int = 0
    applied: int = 0
    failed: int = 0
    error: str | None = None
    objects: dict[str, str] = field(default_factory=dict)
    #: per object with an action: what the action changes (verb and field paths), for the log and notices
    details: dict[str, str] = field(default_factory=dict)
    #: high-risk deployments this tick applied, as ``Kind/name: why``
    high_risk: list[str] = field(default_factory=list)
    #: objects this tick's plan found drifted (self-heal then reverts them, and ``objects`` says synced)
    drifted: list[str] = field(default_factory=list)
    #: the tick failed on a TransientError (busy, timeout): the loop retries with back-off, at least retry_after
    transient: bool = False
    retry_after: float | None = None
    #: the pause in force (who, when, why): the tick reported and applied nothing
    paused: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "sha": self.sha, "duration": round(self.duration, 4),
                "actions": self.actions, "applied": self.applied, "failed": self.failed, "error": self.error,
                "paused": self.paused}


class Controller:
    def __init__(self, config: ControllerConfig, site: Site, state: StateStore) -> None:
        self.config = config
        self.site = site
        self.state = state
        self.holder = holder_id()
        # Renewed in the background as well as every tick and between actions: one action or one plan of a
        # large estate may outlast the lease.
        self.keeper = LeaseKeeper(state, site.site_code, "controller", config.lease_seconds, self.holder)
        self.last_sha: str | None = None
        self.last_outcome: str | None = None
        self.stop_requested = False
        self.on_action: Callable[[ActionResult], None] = lambda item: None
        #: where notices of changes of state go (``--notify``, ``notifications:``); None: nowhere
        self.notifier: Notifier | None = None
        #: the web view a notice links to
        self.link: str | None = None
        #: the pause read at the last tick (``reconcile controller pause``): while set, ticks apply nothing
        self.paused: Pause | None = None
        self.cache = ParseCache(config.cache_dir / "parse-cache.db")

    def close(self) -> None:
        self.cache.close()

    def has_lease(self) -> bool:
        return self.keeper.acquire() is not None

    def lease_id(self) -> str | None:
        lease = self.keeper.lease
        return lease.lease_id if lease is not None else None

    def release(self) -> None:
        self.keeper.release()

    def standby(self, sha: str | None = None, **counts: Any) -> TickResult:
        """A tick that found the lease held by another writer: it reads nothing and writes nothing."""
        holder = held_by(self.state.lease_holder(self.site.site_code))
        return TickResult("standby", sha, error=f"the lease is held by {holder}", **counts)

    def resolve(self) -> str:
        return GitRepository(self.config.repo, self.config.cache_dir).resolve(self.config.ref).sha

    def tick(self, force: bool = False) -> TickResult:
        start = time.monotonic()
        try:
            result = self._tick(force)
        except TransientError as exc:
            result = TickResult("error", self.last_sha, error=str(exc), transient=True, retry_after=exc.retry_after)
        except ReconcilerError as exc:
            result = TickResult("error", self.last_sha, error=str(exc))
        except Exception as exc:  # the site or Git being unreachable is reported, not a crash
            log.exception("tick failed")
            result = TickResult("error", self.last_sha, error=f"{type(exc).__name__}: {exc}")
        result.duration = time.monotonic() - start
        if self.paused is not None and result.paused is None:
            result.paused = self.paused.to_json()
        self._notify(result)
        if result.outcome == "standby":
            # Controllers of one site share its store (one PostgreSQL for several hosts): a standby's tick is kept
            # under its own key, so that `reconcile status` and the web view keep showing what the writer did.
            self.state.put_status(f"standby:{self.holder}", {**result.to_json(), "at": time.time()})
            return result
        # Every tick, skipped or not, is when the site was last known to match (or not) the ref.
        self.state.put_status("checked", {"at": time.time(), "sha": result.sha, "outcome": result.outcome})
        if result.outcome != "skipped":
            self.last_outcome = result.outcome
            self.state.put_status("tick", {**result.to_json(), "at": time.time(), "ref": self.config.ref,
                                           "holder": self.holder})
            if result.objects:
                self.state.put_status("objects", result.objects)
        return result

    def _notify(self, result: TickResult) -> None:
        """Hand the changes of state since the last tick to the notifier (it never blocks); a notice is never
        worth failing a tick for, so a store too busy to say what the last tick was is skipped."""
        if self.notifier is None or result.outcome in ("skipped", "standby"):
            return
        try:
            previous, objects = self.state.get_status("tick"), self.state.get_status("objects")
        except TransientError as exc:
            log.warning("notifications: the state store is busy (%s); this tick's changes are not notified", exc)
            return
        for notice in notices_for(previous, objects, result.outcome, result.objects, site=self.site.site_code,
                                  ref=self.config.ref, commit=result.sha, error=result.error, details=result.details,
                                  high_risk=result.high_risk, drifted=result.drifted, link=self.link):
            self.notifier.notify(notice)

    def _tick(self, force: bool) -> TickResult:
        pause = self.state.paused(self.site.site_code)
        if (pause is None) != (self.paused is None):
            force = True  # paused or resumed since the last tick: what was only reported may now be applied
        self.paused = pause
        if pause is not None and self.keeper.lease is not None:
            # A paused controller leaves the site to a person: a one-shot apply or a rollback can take the lease.
            self.keeper.release()
        heal = self.config.self_heal and pause is None
        if heal and not self.has_lease():
            # A standby does nothing but wait for the writer's lease to expire. The lease is taken before the
            # site is read, so a one-shot apply and a tick never both plan to apply at once.
            self.last_sha = None
            return self.standby()
        repo = GitRepository(self.config.repo, self.config.cache_dir)
        revision = repo.resolve(self.config.ref)
        live_changed = self.site.changed_since_read()
        if not force and revision.sha == self.last_sha and not live_changed and self.last_outcome in ("ok", "drift"):
            return TickResult("skipped", revision.sha)
        settings = self.config.settings or default_config(self.config.secrets_base)
        desired = load_revision(repo, revision, self.config.path, self.cache,
                                max_file_bytes=settings.limits.max_manifest_bytes)
        step = Pass(self.site, self.state, settings, self.config.secrets_base, self.keeper if heal else None)
        plan, stopped = step.plan(desired, PlanOptions(prune=self.config.prune, max_delete=self.config.max_delete,
                                                       refresh_secrets=self.config.refresh_secrets))
        self.last_sha = revision.sha
        if stopped is not None and stopped.stage is Stage.INVALID:
            first = stopped.findings[0]
            # Nothing can be applied until the branch is fixed: no object is "synced" with its head.
            held = {key: "blocked" for key in self.state.get_status("objects") or {}}
            return TickResult("error", revision.sha, objects=held, error=f"{first.render()} ({len(stopped.findings)} "
                              "error(s)); the site is left as it is")
        if stopped is not None and stopped.stage is Stage.LEASE_HELD:
            self.last_sha = None
            return self.standby(revision.sha)
        assert plan is not None
        objects = object_status(desired, plan)
        details = object_details(plan)
        drifted_keys = [key for key, status in objects.items() if status == "drifted"]
        if plan.blocked:
            first = plan.blocked[0]
            return TickResult("blocked", revision.sha, actions=len(plan.actions), objects=objects, details=details,
                              drifted=drifted_keys,
                              error=f"{len(plan.blocked)} blocked item(s): {first.ref}: {first.message}")
        if not heal:
            drifted = any(a.reason is Reason.DRIFT or a.verb is Verb.REDISTRIBUTE_CONTENT for a in plan.actions)
            return TickResult("drift" if drifted else "ok", revision.sha, actions=len(plan.actions), objects=objects,
                              details=details, drifted=drifted_keys,
                              paused=pause.to_json() if pause is not None else None)
        provenance = Provenance(self.config.ref, revision.sha, f"{self.config.repo}:{self.config.path}")
        outcome = step.apply(plan, provenance, ApplyOptions(progress=lambda item, index, total: self.on_action(item),
                                                            should_stop=lambda: self.stop_requested))
        result = self._result(outcome, revision.sha, objects)
        result.details, result.drifted = details, drifted_keys
        if outcome.result is not None:
            result.high_risk = [f"{item.action.ref}: {risk_text(item.action)}" for item in outcome.result.results
                                if item.outcome == "applied" and item.action.risk is not None]
        return result

    def _result(self, outcome: Outcome, sha: str, objects: dict[str, str]) -> TickResult:
        """What a tick's pass came to, as the controller reports it."""
        plan = outcome.plan
        assert plan is not None
        actions = len(plan.actions)
        if outcome.stage is Stage.IN_SYNC:
            return TickResult("ok", sha, objects=objects)
        if outcome.stage is Stage.LEASE_LOST:
            # The lease was unlocked, or lapsed and was taken, while this plan was made: another writer may have
            # changed the site since it was read, so the plan is not applied.
            self.last_sha = None
            if self.state.lease_holder(self.site.site_code) is not None:
                standby = self.standby(sha, actions=actions, objects=objects)
                if outcome.message:  # the store refused a write of this writer (fencing): say so in the log
                    standby.error = f"{outcome.message} ({standby.error})"
                return standby
            return TickResult("error", sha, actions=actions, objects=objects,
                              error="the lease was lost while planning (unlocked, or it lapsed); nothing was "
                                    "applied; the next tick plans again")
        if outcome.stage is not Stage.APPLIED or outcome.result is None:
            self.last_sha = None
            return TickResult("failed", sha, actions=actions, objects=objects, error=outcome.message)
        result = outcome.result
        applied, failed = len(result.of("applied")), len(result.of("failed"))
        for item in result.results:
            key = str(item.action.ref)
            objects[key] = "synced" if item.outcome == "applied" and objects.get(key) != "failed" else "failed"
        state = "stopped" if result.stopped else ("failed" if failed or result.of("skipped") else "ok")
        if state != "ok":
            self.last_sha = None  # look again next tick
        error = result.of("failed")[0].message if failed else None
        if result.stopped and not self.stop_requested:
            error = (f"the lease was lost mid-apply (unlocked, or it lapsed); {actions - len(result.results)}"
                     " action(s) were left to the writer that holds it now")
        return TickResult(state, sha, actions=actions, applied=applied, failed=failed, objects=objects, error=error)


def change_fields(action: Action) -> list[str]:
    """The field paths an action changes, steps by their names: what a log line or a notice names."""
    return [c.path for c in action.changes] + [f"step {s.display_path}" for s in action.step_changes]


def object_details(plan: Plan) -> dict[str, str]:
    """Per object with an action: ``UpdateTaskSequence (drift): description, step Configure > Record``."""
    out: dict[str, str] = {}
    for action in plan.actions:
        fields = change_fields(action)
        shown = ", ".join(fields[:8]) + (f", … {len(fields) - 8} more" if len(fields) > 8 else "")
        out[str(action.ref)] = f"{action.verb.value} ({action.reason.value})" + (f": {shown}" if shown else "")
    return out


def risk_text(action: Action) -> str:
    risk = action.risk
    assert risk is not None
    return (f"{'; '.join(risk.reasons)}; collection {risk.collection_name!r} ({risk.collection_id}), "
            f"{risk.member_count} members")


def object_status(desired: Any, plan: Plan) -> dict[str, str]:
    """Per object: synced, out of sync (Git moved), drifted (the site moved), blocked."""
    status = {o.key: "synced" for o in desired.objects}
    for action in plan.actions:
        key = str(action.ref)
        drifted = action.reason is Reason.DRIFT or action.verb is Verb.REDISTRIBUTE_CONTENT
        status[key] = "drifted" if drifted else "out of sync"
    for blocked in plan.blocked:
        status[str(blocked.ref)] = "blocked"
    return dict(sorted(status.items()))
