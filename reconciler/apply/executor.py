"""Apply a plan: journal, re-check, mutate, record.

Every action writes its intent to the journal before it touches the site and its outcome after.
Before mutating it re-reads the live object, so a repeated or resumed apply never creates a second
object: an object a killed run created but did not record is found again by its console name
(task sequences) or its target (deployments) and taken over instead of created twice. A failed
action skips the actions that depend on it; independent actions go on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reconciler.config import SecretsPolicy
from reconciler.diff.normalize import PENDING, fingerprint, record_fingerprint, ts_canonical
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import (
    Action,
    Adoption,
    ContentWrite,
    DeploymentWrite,
    ObjectRef,
    Plan,
    TaskSequenceWrite,
    VariablesRemoval,
    VariablesWrite,
    Verb,
)
from reconciler.plan.context import content_fingerprint, live_variables_fingerprint
from reconciler.secrets import HashKeyError, SecretReader, SecretUnavailable, describe, reader
from reconciler.site import Site
from reconciler.site.records import ContentState, DeploymentRecord, TaskSequenceRecord
from reconciler.state import StateStore, who
from reconciler.tsxml.sequence import fill_secrets, secret_marker_sites, secret_references, step_secret_refs

log = logging.getLogger("reconciler.apply")


class ApplyRefused(ReconcilerError):
    """The plan cannot be applied at all (blocked items, secrets missing); nothing was changed."""


class SiteChangedSincePlan(ReconcilerError):
    """An object the plan did not see appeared on the site before its action ran; the action did nothing."""


class SiteMovedSincePlan(ApplyRefused):
    """Objects the plan would touch changed on the site after it was made; nothing was applied."""


def _appeared(action: Action, found: list[str]) -> list[str]:
    """Unmanaged live objects with the identity of an object the plan creates, which the plan did not see.

    The planner blocks (or adopts) a creation whose identity is taken when it plans, and records the
    namesakes it knew of; one found now and not then was made since the plan (a console, another writer).
    """
    identity = getattr(action.write, "identity", None)
    if identity is None or identity.unowned is None:  # a replace's creation: its old deployment was the one it knew
        return []
    seen = set(identity.unowned)
    return [i for i in found if i not in seen]


#: Actions that make a live object (or a target's variable set) a killed run could leave unrecorded.
_CREATES = (Verb.CREATE_TASK_SEQUENCE, Verb.CREATE_DEPLOYMENT, Verb.REPLACE_DEPLOYMENT, Verb.SET_VARIABLES)


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


def resolve_secret(read: SecretReader, source: dict[str, Any], who: str = "this plan") -> str:
    """Read a valueFrom source at apply time; the value goes to the site and nowhere else.

    The reader holds the secrets policy, so a plan made elsewhere (a controller following a commit, an
    old plan) cannot read a file outside the secrets folder or an environment variable off the allow-list.
    """
    try:
        return read(source)
    except SecretUnavailable as exc:
        raise ApplyRefused(f"{exc}; {who} needs it; nothing was applied") from None


class Executor:
    def __init__(self, plan: Plan, site: Site, state: StateStore, secrets_base: Path,
                 progress: Callable[[ActionResult, int, int], None] | None = None,
                 wait_for_content: float | None = None, notice: Callable[[str], None] | None = None,
                 policy: SecretsPolicy | None = None) -> None:
        self.plan = plan
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
        # Every secret is read, and its value checked (characters XML cannot hold, ConfigMgr's length limit),
        # before the first write: a bad one refuses the whole apply instead of failing it halfway.
        moved = planned_against_moved(self.plan, self.site, self.state)
        if moved:
            listing = "; ".join(moved[:10]) + (f"; and {len(moved) - 10} more" if len(moved) > 10 else "")
            raise SiteMovedSincePlan(f"the site changed since the plan was made: {listing}; nothing was applied: "
                                     "plan again")
        for action in self.plan.actions:
            at = f" at {action.source}" if action.source else ""
            if isinstance(action.write, TaskSequenceWrite):
                record = action.write.record
                sites = secret_marker_sites(record.sequence)
                for kind, name in secret_references(record.sequence):
                    log.debug("%s: reading the secret from %s %s", action.ref, kind, name)
                    source = {"env": name} if kind == "env" else {"file": name}
                    needed_by = f"{action.ref} ({sites.get(f'{kind}:{name}', 'a step')}){at}"
                    self.step_secrets[(kind, name)] = resolve_secret(self.secrets, source, needed_by)
            if not isinstance(action.write, VariablesWrite):
                continue
            for var in action.write.variables:
                if var.value_from:
                    needed_by = f"{action.ref} (variable {var.name}){at}"
                    value = resolve_secret(self.secrets, var.value_from, needed_by)
                    self.secret_values[(str(action.ref), var.name)] = value
        if self.step_secrets or self.secret_values:
            try:
                self.secrets.hash_key  # noqa: B018 - made or read now, not after the first write
            except HashKeyError as exc:
                raise ApplyRefused(f"{exc}; nothing was applied") from None

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
                self.state.outcome(self.plan.plan_id, action.verb.value, str(action.ref), "skipped", why)
                item = ActionResult(action, "skipped", why)
            else:
                log.debug("%s: %s (%s) intent, live id %s", action.ref, action.verb.value, action.reason.value,
                          action.live_id)
                self.state.intent(self.plan.plan_id, action.verb.value, str(action.ref),
                                  {"live_id": action.live_id, "summary": action.summary, **self._recognition(action)})
                try:
                    message = self.execute(action)
                except ReconcilerError as exc:
                    failed.add(action.ref)
                    self.state.outcome(self.plan.plan_id, action.verb.value, str(action.ref), "failed", str(exc))
                    item = ActionResult(action, "failed", str(exc))
                else:
                    self.state.outcome(self.plan.plan_id, action.verb.value, str(action.ref), "applied", None,
                                       {"result": message})
                    item = ActionResult(action, "applied", message)
            log.info("%s: %s %s%s", action.ref, action.verb.value, item.outcome,
                     f" ({item.message})" if item.message else "")
            result.results.append(item)
            if self.progress:
                self.progress(item, index, total)
        self.record_content_ownership(failed)
        return result

    # -- handlers --------------------------------------------------------------------------------

    def execute(self, action: Action) -> str:
        handler = getattr(self, "do_" + action.verb.name.lower())
        return handler(action)

    def _record_ts(self, action: Action, ts_id: str) -> None:
        live = self.site.get_task_sequence(ts_id)
        if live is not None:
            hashes = {}
            if isinstance(action.write, TaskSequenceWrite):
                record = action.write.record
                hashes = {f"{k}:{n}": self.state.secret_hash(self.step_secrets[(k, n)], self.secrets.hash_key)
                          for k, n in secret_references(record.sequence) if (k, n) in self.step_secrets}
                if hashes:
                    hashes["@refs"] = step_secret_refs(record.sequence)  # type: ignore[assignment]
            self.state.record_applied(action.ref.kind, action.ref.name, _desired_fp(action),
                                      record_fingerprint(live, self.state.salt), hashes)

    def _with_secrets(self, record: TaskSequenceRecord) -> TaskSequenceRecord:
        """The record as written to the site: secret markers replaced by the values read at preflight."""
        if "{{secret:" not in record.sequence:
            return record
        from dataclasses import replace

        def value_of(kind: str, name: str) -> str:
            if (kind, name) not in self.step_secrets:
                source = {"env": name} if kind == "env" else {"file": name}
                self.step_secrets[(kind, name)] = resolve_secret(self.secrets, source)
            return self.step_secrets[(kind, name)]

        return replace(record, sequence=fill_secrets(record.sequence, value_of))

    def _owned_id(self, ref: ObjectRef) -> str | None:
        return self.state.owned_id(ref.kind, ref.name)

    def do_adopt(self, action: Action) -> str:
        assert action.live_id
        assert isinstance(action.write, Adoption)
        if action.write.renamed_from:  # one live object, one owner: the old name lets go
            self.state.disown(action.ref.kind, action.write.renamed_from)
        self.state.own(action.ref.kind, action.ref.name, action.live_id)
        if action.ref.kind == "TaskSequence":
            self._record_ts(action, action.live_id)
        return f"now managing {action.live_id}"

    def _record(self, action: Action) -> TaskSequenceRecord:
        """The record to write, with the IDs of the child sequences this plan created filled in.

        A parent that runs a child created by the same plan refers to it as ``PENDING:<console name>``;
        the child's action ran first (it is a dependency), so its ID is known now.
        """
        write = action.write
        assert isinstance(write, TaskSequenceWrite)
        record = write.record
        if not write.children:
            return record
        sequence = record.sequence
        for child in write.children:
            child_id = self.state.owned_id("TaskSequence", child.name)
            if child_id is None:
                raise ReconcilerError(f"runs TaskSequence/{child.name} ({child.console_name!r}), which is not on "
                                      "the site: its creation did not succeed")
            # The marker stands as an attribute value or as an element's text, escaped as XML escapes it.
            for written in {escape(child.console_name), escape(child.console_name, {'"': "&quot;"})}:
                sequence = re.sub(f'(?<=[">]){re.escape(PENDING + written)}(?=["<])', child_id, sequence)
        from dataclasses import replace

        return replace(record, sequence=sequence,
                       references=tuple(r for r in record.references if not r.startswith(PENDING)))

    def _recognition(self, action: Action) -> dict[str, Any]:
        """What lets a later run recognise what this action creates, should this run be killed first.

        The planner's match (console name, deployment target, variable target) and every live object that
        matches it now, so that none of them can ever be taken for this action's creation.
        """
        identity = getattr(action.write, "identity", None)
        if identity is None or action.verb not in _CREATES:
            return {}  # an update or a delete creates nothing a later run could take over
        existing = set(identity.existing)
        write = action.write
        if isinstance(write, TaskSequenceWrite):
            existing.update(t.id for t in self.site.find_task_sequences(write.record.name) if t.id)
        elif isinstance(write, DeploymentWrite):
            ts_id = self.state.owned_id("TaskSequence", write.task_sequence)
            if ts_id:
                existing.update(d.id for d in self.site.find_deployments(ts_id, write.record.collection_id) if d.id)
        elif isinstance(write, VariablesWrite):
            existing.update(fp for fp in [self._variables_fingerprint(write.scope, write.target)] if fp)
        return {"match": identity.match, "existing": sorted(existing)}

    def _made_by_interrupted(self, action: Action, candidates: list[str]) -> str | None:
        """The unmanaged live object an earlier, interrupted run of this very action created, if any."""
        intent = self.state.pending_intent(str(action.ref))
        identity = getattr(action.write, "identity", None)
        return intent.made(identity.match, candidates) if intent is not None and identity is not None else None

    def do_create_task_sequence(self, action: Action) -> str:
        record = self._record(action)
        ts_id = self._owned_id(action.ref)
        if ts_id and self.site.get_task_sequence(ts_id) is not None:
            return self.do_update_task_sequence(action, ts_id)
        # A killed run may have created it without recording ownership: find it by console name.
        leftovers = [t for t in self.site.find_task_sequences(record.name)
                     if not self.state.is_owned("TaskSequence", t.id)]
        appeared = _appeared(action, [t.id for t in leftovers if t.id])
        if appeared:
            raise SiteChangedSincePlan(
                f"a task sequence named {record.name!r} ({', '.join(appeared)}) appeared on the site after this plan "
                "was made and is not managed by this tool; it was left as it is: the site changed since the plan, "
                "plan again")
        if leftovers:
            # Only the object an interrupted run of this action made is taken over; any other is not ours.
            ts_id = self._made_by_interrupted(action, [t.id for t in leftovers if t.id])
            if ts_id is None:
                raise ReconcilerError(
                    f"a task sequence named {record.name!r} ({', '.join(t.id or '' for t in leftovers)}) is on the "
                    "site and not managed by this tool; it was left as it is: rerun with --adopt to take it over, "
                    "or rename")
            self.state.own(action.ref.kind, action.ref.name, ts_id)
            return self.do_update_task_sequence(action, ts_id)
        ts_id = self.site.create_task_sequence(self._with_secrets(record))
        self.state.created(self.plan.plan_id, action.verb.value, str(action.ref), ts_id)
        self.state.own(action.ref.kind, action.ref.name, ts_id)
        self._record_ts(action, ts_id)
        return f"created {ts_id}"

    def do_update_task_sequence(self, action: Action, ts_id: str | None = None) -> str:
        ts_id = ts_id or self._owned_id(action.ref) or action.live_id
        record = self._record(action)
        live = self.site.get_task_sequence(ts_id) if ts_id else None
        if live is None:
            raise ReconcilerError(f"task sequence {ts_id} no longer exists; the next plan creates it again")
        secrets_changed = isinstance(action.write, TaskSequenceWrite) and action.write.secrets_changed
        if ts_canonical(live) != ts_canonical(record) or secrets_changed:
            # A password never shows in the canonical form, so a changed one is written on the plan's word.
            self.site.update_task_sequence(ts_id, self._with_secrets(record))
            message = f"updated {ts_id}"
        else:
            message = f"{ts_id} already up to date"
        self._record_ts(action, ts_id)
        return message

    def _patch(self, action: Action, change: Callable[[str], None]) -> str:
        ts_id = self._owned_id(action.ref) or action.live_id
        if not ts_id or self.site.get_task_sequence(ts_id) is None:
            raise ReconcilerError(f"task sequence {ts_id} no longer exists")
        change(ts_id)
        self._record_ts(action, ts_id)
        return ts_id

    def do_enable_task_sequence(self, action: Action) -> str:
        return f"enabled {self._patch(action, lambda i: self.site.set_task_sequence_enabled(i, True))}"

    def do_disable_task_sequence(self, action: Action) -> str:
        return f"disabled {self._patch(action, lambda i: self.site.set_task_sequence_enabled(i, False))}"

    def do_move_task_sequence(self, action: Action) -> str:
        assert isinstance(action.write, TaskSequenceWrite)
        folder = action.write.record.folder
        return f"moved {self._patch(action, lambda i: self.site.move_task_sequence(i, folder))}"

    def do_delete_task_sequence(self, action: Action) -> str:
        ts_id = action.live_id
        if ts_id and self.site.get_task_sequence(ts_id) is not None:
            self.site.delete_task_sequence(ts_id)
        self.state.disown(action.ref.kind, action.ref.name)
        return f"deleted {ts_id}"

    # content
    def do_distribute_content(self, action: Action) -> str:
        write = action.write
        assert isinstance(write, ContentWrite) and write.package_id
        package = write.package_id
        status = self.site.content_status(package)
        lacking = [dp for dp in write.dps if dp not in status
                   or status[dp].state in (ContentState.REMOVAL_PENDING, ContentState.REMOVAL_RETRYING)]
        if lacking:
            self.site.distribute_content(package, lacking)
        return f"{package} distributed to {len(lacking)} DP(s)"

    def do_redistribute_content(self, action: Action) -> str:
        write = action.write
        assert isinstance(write, ContentWrite) and write.package_id
        for dp in write.dps:
            self.site.redistribute_content(write.package_id, dp)
        return f"{write.package_id} redistributed on {len(write.dps)} DP(s)"

    def do_remove_content(self, action: Action) -> str:
        write = action.write
        assert isinstance(write, ContentWrite)
        if write.package_id:
            self.site.remove_content(write.package_id, list(write.dps))
        if not write.keep_ownership:  # a narrowed distribution stays managed
            self.state.disown(action.ref.kind, action.ref.name)
        return "content removed"

    def record_content_ownership(self, failed: set[ObjectRef]) -> None:
        for name, pairs in self.plan.content_pairs.items():
            if ObjectRef("ContentDistribution", name) in failed:
                continue
            self.state.own("ContentDistribution", name, "content")
            self.state.record_applied("ContentDistribution", name, "", "", extra={"pairs": pairs})

    # deployments
    def _deployment_record(self, action: Action) -> DeploymentRecord:
        write = action.write
        assert isinstance(write, DeploymentWrite)
        record = write.record
        ts_id = self.state.owned_id("TaskSequence", write.task_sequence)
        if not ts_id:
            raise ReconcilerError(f"TaskSequence/{write.task_sequence} is not on the site yet")
        if record.package_id != ts_id:
            from dataclasses import replace

            record = replace(record, package_id=ts_id)
        return record

    def _record_deployment(self, action: Action, dep_id: str) -> None:
        live = self.site.get_deployment(dep_id)
        if live is not None:
            self.state.record_applied(action.ref.kind, action.ref.name, _desired_fp(action),
                                      record_fingerprint(live, self.state.salt))

    def _wait_for_content(self, action: Action) -> None:
        """Hold a deployment back until its content is installed on at least one targeted DP (bounded)."""
        waiting = action.write.wait_for if isinstance(action.write, DeploymentWrite) else ()
        if self.wait_for_content is None or not waiting:
            return
        deadline = time.monotonic() + self.wait_for_content
        delay = 0.2
        while True:
            missing = []
            for package_id, *dps in waiting:
                status = self.site.content_status(package_id)
                if not any(dp in status and status[dp].state is ContentState.INSTALLED for dp in dps):
                    missing.append(package_id)
            if not missing:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReconcilerError(f"content {', '.join(missing)} is still not installed on any targeted DP after "
                                      f"{self.wait_for_content:.0f} s; the deployment was not created")
            self.notice(f"{action.ref}: waiting for content {', '.join(missing)} ({left:.0f} s left)")
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)

    def _audit(self, action: Action, dep_id: str) -> None:
        if action.risk is None:
            return
        risk = action.risk
        self.state.audit(self.plan.plan_id, str(action.ref), {
            "who": who(), "when": datetime.now(UTC).isoformat(timespec="seconds"), "deployment": dep_id,
            "collection": risk.collection_id, "collection_name": risk.collection_name,
            "member_count": risk.member_count, "acknowledged": risk.acknowledged, "reasons": list(risk.reasons)})

    def do_create_deployment(self, action: Action) -> str:
        self._wait_for_content(action)
        record = self._deployment_record(action)
        dep_id = self._owned_id(action.ref)
        if dep_id and self.site.get_deployment(dep_id) is not None:
            self.site.update_deployment(dep_id, record)
        else:
            leftovers = [d for d in self.site.find_deployments(record.package_id, record.collection_id)
                         if not self.state.is_owned("TaskSequenceDeployment", d.id)]
            appeared = _appeared(action, [d.id for d in leftovers if d.id])
            if appeared:
                raise SiteChangedSincePlan(
                    f"a deployment of {record.package_id} to {record.collection_id} ({', '.join(appeared)}) appeared "
                    "on the site after this plan was made and is not managed by this tool; it was left as it is: "
                    "the site changed since the plan, plan again")
            if leftovers:
                # Only the deployment an interrupted run of this action made is taken over.
                made = self._made_by_interrupted(action, [d.id for d in leftovers if d.id])
                if made is None:
                    raise ReconcilerError(
                        f"{record.package_id} is already deployed to {record.collection_id} "
                        f"({', '.join(d.id or '' for d in leftovers)}) by a deployment this tool does not manage; "
                        "it was left as it is: rerun with --adopt to take it over")
                dep_id = made
                self.site.update_deployment(dep_id, record)
            else:
                dep_id = self.site.create_deployment(record)
                self.state.created(self.plan.plan_id, action.verb.value, str(action.ref), dep_id)
            self.state.own(action.ref.kind, action.ref.name, dep_id)
        self._record_deployment(action, dep_id)
        self._audit(action, dep_id)
        return f"deployment {dep_id}"

    def do_update_deployment(self, action: Action) -> str:
        record = self._deployment_record(action)
        dep_id = self._owned_id(action.ref) or action.live_id
        if not dep_id or self.site.get_deployment(dep_id) is None:
            raise ReconcilerError(f"deployment {dep_id} no longer exists; the next plan creates it again")
        self.site.update_deployment(dep_id, record)
        self._record_deployment(action, dep_id)
        self._audit(action, dep_id)
        return f"updated {dep_id}"

    def do_replace_deployment(self, action: Action) -> str:
        old = action.live_id
        if old and self.site.get_deployment(old) is not None:
            self.site.delete_deployment(old)
        self.state.disown(action.ref.kind, action.ref.name)
        return f"deleted {old}; " + self.do_create_deployment(action)

    def do_delete_deployment(self, action: Action) -> str:
        if action.live_id and self.site.get_deployment(action.live_id) is not None:
            self.site.delete_deployment(action.live_id)
        self.state.disown(action.ref.kind, action.ref.name)
        return f"deleted {action.live_id}"

    # variables
    def do_set_variables(self, action: Action) -> str:
        write = action.write
        assert isinstance(write, VariablesWrite)
        values: list[tuple[str, str, bool]] = []
        hashes: dict[str, dict[str, str]] = {}
        for var in write.variables:
            if var.value_from:
                value = self.secret_values[(str(action.ref), var.name)]
                hashes[var.name.casefold()] = {"ref": describe(var.value_from),
                                               "hash": self.state.secret_hash(value, self.secrets.hash_key)}
                values.append((var.name, value, True))  # a value read from a secret source is always masked
            else:
                values.append((var.name, var.value or "", var.hidden))
        if write.scope == "collection":
            self.site.set_collection_variables(str(write.target), write.priority, values)
        else:
            self.site.set_computer_variables(int(write.target), values)
        live_fp = self._variables_fingerprint(write.scope, write.target) or live_variables_fingerprint((), None)
        if write.identity is not None:
            self.state.created(self.plan.plan_id, action.verb.value, str(action.ref), live_fp)
        for name in [action.ref.name, *write.also]:
            self.state.own(action.ref.kind, name, str(write.target))
            self.state.record_applied(action.ref.kind, name, write.desired_fp, live_fp, hashes,
                                      {"count": len(values)})
        return f"{len(values)} variable(s) set"

    def _variables_fingerprint(self, scope: str, target: str | int) -> str | None:
        """The fingerprint of the variables the target holds now; None when it holds none."""
        return variables_fingerprint(self.site, scope, target)

    def do_remove_variables(self, action: Action) -> str:
        write = action.write
        assert isinstance(write, VariablesRemoval)
        if write.gone:
            self.state.disown(action.ref.kind, action.ref.name)
            return "the target no longer exists; forgotten"
        if write.scope == "collection":
            self.site.set_collection_variables(str(write.target), 9, [])
        else:
            self.site.set_computer_variables(int(write.target), [])
        self.state.disown(action.ref.kind, action.ref.name)
        return "variables removed"


def _desired_fp(action: Action) -> str:
    return getattr(action.write, "desired_fp", "") or ""


def variables_fingerprint(site: Site, scope: str, target: str | int) -> str | None:
    """The fingerprint of the variables a collection or computer holds now; None when it holds none."""
    if scope == "collection":
        live = site.get_collection_settings(str(target))
        return live_variables_fingerprint(live.variables, live.precedence) if live else None
    machine = site.get_machine_settings(int(target))
    return live_variables_fingerprint(machine.variables, None) if machine else None


def _live_fingerprint(action: Action, site: Site, salt: bytes) -> str:
    """The fingerprint of what an action would touch, as the site holds it now (the planner's terms)."""
    kind = action.ref.kind
    write = action.write
    if isinstance(write, ContentWrite):
        package = write.package_id or ""
        return content_fingerprint(package, write.dps, site.content_status(package) if package else {})
    if kind == "TaskSequence":
        ts = site.get_task_sequence(action.live_id or "")
        return record_fingerprint(ts, salt) if ts is not None else "(gone)"
    if kind == "TaskSequenceDeployment":
        dep = site.get_deployment(action.live_id or "")
        return record_fingerprint(dep, salt) if dep is not None else "(gone)"
    if kind in ("CollectionVariables", "ComputerVariables"):
        scope = "collection" if kind == "CollectionVariables" else "computer"
        target: str | int = action.live_id or ""
        if isinstance(write, VariablesWrite | VariablesRemoval):
            scope, target = write.scope, write.target
        return variables_fingerprint(site, scope, target) or live_variables_fingerprint((), None)
    return ""


def planned_against_moved(plan: Plan, site: Site, state: StateStore) -> list[str]:
    """Every object the plan would touch that is no longer as it was when the plan was made.

    Checked before the first write, so a plan whose inputs moved (a console edit, another writer, a
    saved plan applied later) is refused whole rather than half applied over someone else's change.
    """
    moved: list[str] = []
    seen: set[tuple[str, str | None, str | None]] = set()
    for action in plan.actions:
        if action.expected is None:
            continue
        key = (str(action.ref), action.live_id, action.key)
        if key in seen:
            continue
        seen.add(key)
        if _live_fingerprint(action, site, state.salt) != action.expected:
            live = f" [{action.live_id}]" if action.live_id else ""
            moved.append(f"{action.ref}{live} ({action.verb.value})")
    return moved


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
               should_stop: Callable[[], bool] | None = None, policy: SecretsPolicy | None = None) -> ApplyResult:
    """Apply every action of the plan (refused whole when anything is blocked).

    ``secrets_base`` is the manifests folder; ``policy`` says where secrets may come from (by default the
    folder's ``secrets/`` and environment variables starting with OSD_ or RECONCILE_SECRET_).
    """
    executor = Executor(plan, site, state, secrets_base, progress, wait_for_content, notice, policy)
    if should_stop is not None:
        executor.should_stop = should_stop
    return executor.run()


__all__ = ["ApplyRefused", "ApplyResult", "apply_plan", "fingerprint", "settle_pending"]
