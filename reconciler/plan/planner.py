"""From desired state, live state and the state store to a Plan.

Reads only: the planner never touches the site. Objects whose fingerprints match what was last
applied on both sides are in sync without further work, so a plan with nothing to do costs little
more than reading the manifests.
"""

from __future__ import annotations

import difflib
import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from reconciler.collector import paused
from reconciler.diff.compare import field_changes
from reconciler.diff.normalize import (
    PENDING,
    Resolver,
    Unresolved,
    deployment_canonical,
    deployment_record,
    fingerprint,
    record_fingerprint,
    ts_canonical,
    ts_properties,
    ts_record,
    ts_references,
)
from reconciler.effective import effective_count
from reconciler.errors import ReconcilerError, Source
from reconciler.models import TaskSequence, iter_steps
from reconciler.plan.actions import Action, Blocked, FieldChange, ObjectRef, Plan, Reason, Verb
from reconciler.plan.policies import evaluate_high_risk, run_from_dp_violations
from reconciler.rules import ObjectFacts, live_deploys_os, step_path
from reconciler.secrets import SecretReader, SecretUnavailable
from reconciler.site.records import (
    MAX_SEQUENCE_BYTES,
    ContentState,
    DeploymentRecord,
    LiveState,
    LiveVariable,
    TaskSequenceRecord,
)
from reconciler.source.loader import DesiredState, LoadedObject, format_path
from reconciler.state import Applied, StateStore
from reconciler.tsxml.sequence import reference_ids, step_secret_refs
from reconciler.validate import MAX_VARIABLES_PER_COMPUTER

log = logging.getLogger("reconciler.plan")

MANAGED_KINDS = ("TaskSequence", "TaskSequenceDeployment", "ContentDistribution", "CollectionVariables",
                 "ComputerVariables")

#: Order of actions: creations and updates by kind, then deletions in reverse.
_PHASE = {
    Verb.ADOPT: 0, Verb.CREATE_TASK_SEQUENCE: 1, Verb.UPDATE_TASK_SEQUENCE: 1, Verb.ENABLE_TASK_SEQUENCE: 1,
    Verb.DISABLE_TASK_SEQUENCE: 1, Verb.MOVE_TASK_SEQUENCE: 1,
    Verb.DISTRIBUTE_CONTENT: 2, Verb.REDISTRIBUTE_CONTENT: 2,
    Verb.CREATE_DEPLOYMENT: 3, Verb.UPDATE_DEPLOYMENT: 3, Verb.REPLACE_DEPLOYMENT: 3,
    Verb.SET_VARIABLES: 4,
    Verb.REMOVE_VARIABLES: 5, Verb.DELETE_DEPLOYMENT: 6, Verb.REMOVE_CONTENT: 7, Verb.DELETE_TASK_SEQUENCE: 8,
}
_KIND_ORDER = {k: i for i, k in enumerate(MANAGED_KINDS)}
_IN_VERB_ORDER = {v: i for i, v in enumerate(Verb)}
_FAILED_STATES = {ContentState.INSTALL_FAILED, ContentState.REMOVAL_FAILED}


def spec_fingerprint(obj: LoadedObject) -> str:
    return obj.fingerprint or fingerprint(obj.manifest.spec.model_dump_json(by_alias=True))


def live_variables_fingerprint(variables: Iterable[LiveVariable], precedence: int | None = None) -> str:
    return fingerprint([precedence, [(v.name, v.value, v.masked) for v in variables]])


def _unmasked_secrets(variables: list[Any], live: tuple[LiveVariable, ...]) -> bool:
    """Whether a value read from a secret source sits unmasked on the site.

    Earlier versions wrote a ``valueFrom`` value in clear when ``hidden: false`` was given (or left out);
    such a set is compared field by field, so the value is written again, masked.
    """
    sources = {v.name.casefold() for v in variables if v.value_from is not None}
    return bool(sources) and any(not v.masked and v.name.casefold() in sources for v in live)


class _Planner:
    def __init__(self, desired: DesiredState, live: LiveState, state: StateStore, adopt: bool, prune: bool,
                 targets: tuple[str, ...], secrets: SecretReader | None = None) -> None:
        self.desired = desired
        self.secrets = secrets
        self.live = live
        self.state = state
        self.resolver = Resolver(live)
        self.owned = state.owned()
        self.applied = state.applied()
        self.plan = Plan(plan_id=uuid.uuid4().hex[:12], site_code=live.site_code, adopt=adopt, prune=prune,
                         targets=targets)
        self.targets = set(targets)
        self.ts_records: dict[str, TaskSequenceRecord] = {}
        self.ts_ids: dict[str, str | None] = {}  # metadata.name -> live id (None while being created)
        self.ts_blocked: set[str] = set()
        self.owned_live_ids = {(k, i) for (k, _), i in self.owned.items()}
        #: unfinished intents of interrupted applies, by object: a live match may be its own unrecorded creation
        self.pending = state.pending_intents()
        present = {(o.kind, o.name) for o in desired.objects}
        #: (kind, live ID) → the metadata.name owning it that no manifest has any more (a rename's old name)
        self.orphan_owners = {(k, i): n for (k, n), i in self.owned.items() if (k, n) not in present}
        #: live objects a renamed manifest takes over in this plan: not orphans of their old name
        self.taken_over: set[tuple[str, str]] = set()
        self.sequences = {o.name: o for o in desired.of_kind("TaskSequence")}
        self._child_names: tuple[dict[str, str], dict[str, str]] | None = None
        self._effective: dict[str, ObjectFacts] = {}

    # -- helpers ---------------------------------------------------------------------------------

    def interrupted_creation(self, ref: ObjectRef, match: str, candidates: list[str]) -> str | None:
        """The unmanaged live object that an interrupted apply of ``ref`` created, taken over without --adopt.

        Only the very object its intent made qualifies (see ``PendingIntent.made``): an intent left behind
        by a run whose outcome was never written must not hand over a namesake that appeared later.
        """
        intent = self.pending.get(str(ref))
        return intent.made(match, candidates) if intent is not None else None

    def wanted(self, obj: LoadedObject) -> bool:
        return not self.targets or obj.key in self.targets

    def block(self, obj: LoadedObject, path: tuple[str | int, ...], message: str, rule: str) -> None:
        self.plan.blocked.append(Blocked(ObjectRef(obj.kind, obj.name), message, self.desired.locate(obj, path),
                                         format_path(path), rule))

    def add(self, action: Action) -> None:
        self.plan.actions.append(action)

    def reason(self, kind: str, name: str, desired_fp: str) -> Reason:
        last = self.applied.get((kind, name))
        return Reason.CHANGED if last is None or last.desired_fp != desired_fp else Reason.DRIFT

    def in_sync(self, kind: str, name: str, desired_fp: str, live_fp: str) -> bool:
        last: Applied | None = self.applied.get((kind, name))
        return last is not None and last.desired_fp == desired_fp and last.live_fp == live_fp

    def rotated(self, obj: LoadedObject, current: dict[str, tuple[str, str]], path: tuple[str | int, ...]
                ) -> list[str] | None:
        """Keys of ``current`` whose secret no longer matches the hash stored at the last apply.

        ``current`` maps a key (a variable name, or the reference itself) to its reference (``env:NAME``,
        ``file:PATH``) and the stored hash. Only with ``--refresh-secrets``: a plan otherwise never reads a
        secret. None when a value cannot be read; the object is then blocked.
        """
        if self.secrets is None or not current:
            return []
        changed = []
        for key, (ref_text, stored) in sorted(current.items()):
            kind, _, name = ref_text.partition(":")
            try:
                value = self.secrets({kind: name})
            except SecretUnavailable as exc:
                self.block(obj, path, f"{exc}; --refresh-secrets reads every secret the object uses", "secret")
                return None
            if not stored or self.state.secret_hash(value, self.secrets.hash_key) != stored:  # no hash: never written
                changed.append(key)
        return changed

    def references_exist(self, record: TaskSequenceRecord) -> bool:
        """Whether everything a live sequence points at is still on the site.

        Content, a boot image or a child sequence deleted in the console leave the sequence itself
        unchanged, so its fingerprint says "in sync"; only this check sends it back through resolution,
        where the reference is re-resolved by name or reported as blocked.
        """
        live = self.live
        if record.boot_image_id and record.boot_image_id not in live.packages:
            return False
        return all(r in live.packages or r in live.task_sequences for r in record.references if "/" not in r)

    # -- task sequences -------------------------------------------------------------------------

    def task_sequences(self) -> None:
        by_console_name: dict[str, list[str]] = defaultdict(list)  # without case, as the site compares names
        for ts_id, rec in self.live.task_sequences.items():
            by_console_name[rec.name.casefold()].append(ts_id)
        for obj in self.desired.of_kind("TaskSequence"):
            ref = ObjectRef(obj.kind, obj.name)
            desired_fp = spec_fingerprint(obj)
            owned_id = self.owned.get((obj.kind, obj.name))
            live = self.live.task_sequences.get(owned_id) if owned_id else None
            rotated: list[str] = []
            if live is not None:
                self.ts_ids[obj.name] = owned_id
                last = self.applied.get((obj.kind, obj.name))
                if self.secrets is not None and last is not None:
                    found = self.rotated(obj, {r: (r, h) for r, h in last.secrets.items() if not r.startswith("@")},
                                         ("spec", "steps"))
                    if found is None:
                        self.ts_blocked.add(obj.name)
                        continue
                    rotated = found
                if not rotated and self.in_sync(obj.kind, obj.name, desired_fp,
                                                record_fingerprint(live, self.state.salt)) \
                        and self.references_exist(live):
                    self.ts_records[obj.name] = live
                    continue
            try:
                ts: TaskSequence = obj.manifest  # type: ignore[assignment]
                record = ts_record(ts, self.resolver, self.console_ids())
            except Unresolved as exc:
                self.ts_blocked.add(obj.name)
                self.block(obj, exc.path, exc.message, "reference")
                continue
            size = len(record.sequence.encode("utf-8"))
            if size > MAX_SEQUENCE_BYTES:
                self.ts_blocked.add(obj.name)
                self.block(obj, ("spec", "steps"), f"the sequence XML would be {size:,} bytes; ConfigMgr refuses a "
                           f"sequence over {MAX_SEQUENCE_BYTES:,} bytes (2 MB): move groups into child task "
                           "sequences (RunTaskSequence steps)", "sequence-size")
                continue
            self.ts_records[obj.name] = record
            if not self.wanted(obj):
                continue
            params: dict[str, Any] = {"record": record, "desired_fp": desired_fp}
            depends: tuple[ObjectRef, ...] = ()
            if PENDING in record.sequence:
                # A child sequence this plan creates: apply renders the XML again once it has an ID.
                children = self.console_names()
                pending = sorted({children[n] for n in children if f'"{PENDING}{n}"' in record.sequence})
                depends = tuple(ObjectRef("TaskSequence", n) for n in pending)
                params.update(deferred=True, manifest=ts)
            if live is None:
                candidates = [i for i in by_console_name.get(record.name.casefold(), ())
                              if ("TaskSequence", i) not in self.owned_live_ids]
                renamed = [i for i in by_console_name.get(record.name.casefold(), ())
                           if ("TaskSequence", i) in self.orphan_owners]
                if not candidates and not owned_id and len(renamed) == 1:
                    # metadata.name changed, console name kept: the same sequence under a new Git identity.
                    old_name = self.orphan_owners[("TaskSequence", renamed[0])]
                    self.taken_over.add(("TaskSequence", renamed[0]))
                    live = self.live.task_sequences[renamed[0]]
                    self.ts_ids[obj.name] = renamed[0]
                    self.add(Action(Verb.ADOPT, ref, Reason.ADOPT, renamed[0], source=obj.source,
                                    params={"desired_fp": desired_fp, "renamed_from": old_name},
                                    summary=f"take over {renamed[0]} from TaskSequence/{old_name} "
                                            "(metadata.name changed)"))
                elif candidates:
                    # Also when the managed sequence was deleted in the console: a namesake is not it.
                    made = None if self.plan.adopt else self.interrupted_creation(ref, record.name.casefold(),
                                                                                   candidates)
                    if made is not None:
                        candidates = [made]
                    elif not self.plan.adopt:
                        self.ts_blocked.add(obj.name)
                        self.block(obj, ("spec", "name"),
                                   f"a task sequence named {record.name!r} already exists ({', '.join(candidates)}) "
                                   "and is not managed by this tool; rerun with --adopt to take it over, or rename",
                                   "unowned")
                        continue
                    if len(candidates) > 1:
                        self.ts_blocked.add(obj.name)
                        self.block(obj, ("spec", "name"), f"{len(candidates)} task sequences are named "
                                   f"{record.name!r} ({', '.join(candidates)}); adopt needs exactly one", "unowned")
                        continue
                    live = self.live.task_sequences[candidates[0]]
                    self.ts_ids[obj.name] = candidates[0]
                    self.add(Action(Verb.ADOPT, ref, Reason.ADOPT, candidates[0], source=obj.source,
                                    params={"desired_fp": desired_fp},
                                    summary=f"take over {candidates[0]} ({record.name!r})"
                                    + (" (made by an interrupted apply)" if made else "")))
                else:
                    self.ts_ids[obj.name] = None
                    reason = Reason.DRIFT if owned_id else Reason.NEW
                    changes = _created_fields(ts_canonical(record))
                    # Namesakes known now; apply refuses to act on one that appears after this plan.
                    params["unowned_at_plan"] = candidates
                    # What an interrupted run of this creation will be recognised by (PendingIntent.made).
                    params["match"] = record.name.casefold()
                    params["existing"] = sorted(by_console_name.get(record.name.casefold(), ()))
                    self.add(Action(Verb.CREATE_TASK_SEQUENCE, ref, reason, None, changes, depends, obj.source,
                                    params=params, summary=record.name))
                    continue
            secret_changes = self.step_secret_changes(obj, record, rotated)
            if secret_changes:
                params["secrets_changed"] = True
            self.compare_task_sequence(obj, record, live, desired_fp, params, depends, secret_changes)

    def step_secret_changes(self, obj: LoadedObject, record: TaskSequenceRecord, rotated: list[str]) -> list[str]:
        """Secret references of the steps whose value the site may not hold: moved, new, or rotated.

        The live sequence cannot show a password (a real site never returns it), so the references
        recorded at the last apply, in step order, are what a plan compares with.
        """
        wanted = step_secret_refs(record.sequence)
        if not wanted:
            return []
        last = self.applied.get((obj.kind, obj.name))
        if last is None:
            # Taken over (export, --adopt), never written by this tool: the site holds values it has not seen.
            # Only --refresh-secrets, which reads them, may replace them.
            return sorted(set(wanted)) if self.secrets is not None else []
        stored = last.secrets
        if "@refs" in stored:
            before = list(stored["@refs"])
            same = before == wanted
        else:  # recorded before step order was kept: compare the references alone
            before = sorted(k for k in stored if not k.startswith("@"))
            same = before == sorted(set(wanted))
        changed = set(rotated) & set(wanted)
        if self.secrets is not None:
            changed |= {r for r in wanted if r not in stored}  # no hash to compare with: write what is read
        if not same:
            moved = set(wanted) ^ set(before)
            changed |= (moved & set(wanted)) or set(wanted)
        return sorted(changed)

    def renamed_children(self) -> None:
        """Parents still calling a child sequence by the console name this plan renames it away from.

        The parent itself does not change, so nothing else would look at it until the next edit of it,
        and then the reference would no longer resolve.
        """
        renames = {a.live_id: (c.before, c.after) for a in self.plan.actions
                   if a.verb is Verb.UPDATE_TASK_SEQUENCE for c in a.changes if c.path == "name" and a.live_id}
        if not renames:
            return
        for obj in self.desired.of_kind("TaskSequence"):
            record = self.ts_records.get(obj.name)
            if record is None or not set(record.references or reference_ids(record.sequence)) & set(renames):
                continue
            for path, node in iter_steps(obj.manifest.spec.steps):  # type: ignore[union-attr]
                if getattr(node, "type", None) != "RunTaskSequence":
                    continue
                called = getattr(node.settings.task_sequence, "package", None)  # type: ignore[union-attr]
                for old, new in renames.values():
                    if called is not None and called == old:
                        self.ts_blocked.add(obj.name)
                        self.block(obj, (*step_path(path), "settings", "taskSequence", "package"),
                                   f"runs the child sequence {old!r}, which this plan renames to {new!r}; refer to "
                                   "it by its new console name (or by name: its metadata.name)", "reference")

    def console_names(self) -> dict[str, str]:
        """Console name → metadata.name of every desired task sequence."""
        return {o.facts.console_name or "": o.name for o in self.desired.of_kind("TaskSequence")}

    def console_ids(self) -> dict[str, str | None]:
        """Console name → live ID (None when this plan creates it) of every desired task sequence."""
        out: dict[str, str | None] = {}
        for console, name in self.console_names().items():
            live_id = self.owned.get(("TaskSequence", name))
            out[console] = live_id if live_id in self.live.task_sequences else None
        return out

    def compare_task_sequence(self, obj: LoadedObject, record: TaskSequenceRecord, live: TaskSequenceRecord,
                              desired_fp: str, params: dict[str, Any], depends: tuple[ObjectRef, ...] = (),
                              rotated: list[str] | None = None) -> None:
        ref = ObjectRef(obj.kind, obj.name)
        if record.sequence == live.sequence:
            before, after = ts_properties(live), ts_properties(record)
        else:
            before, after = ts_canonical(live), ts_canonical(record)
        if before == after and not rotated:
            return
        reason = Reason.ADOPT if live.id not in {i for (k, _), i in self.owned.items() if k == obj.kind} and \
            self.plan.adopt else self.reason(obj.kind, obj.name, desired_fp)
        if before == after:
            reason = Reason.SECRET
        changes = field_changes(before, after)
        enable = [c for c in changes if c.path == "enabled"]
        move = [c for c in changes if c.path == "folder"]
        rest = tuple(c for c in changes if c.path not in ("enabled", "folder")) + tuple(
            FieldChange(f"secrets.{r}", "(sensitive)", "(sensitive)", True) for r in rotated or ())
        if rest:
            self.add(Action(Verb.UPDATE_TASK_SEQUENCE, ref, reason, live.id, rest, depends, obj.source, params,
                            summary=record.name))
        if move:
            self.add(Action(Verb.MOVE_TASK_SEQUENCE, ref, reason, live.id, tuple(move), source=obj.source,
                            params={**params, "folder": record.folder},
                            summary=f"{live.folder or '(root)'} → {record.folder or '(root)'}"))
        if enable:
            verb = Verb.ENABLE_TASK_SEQUENCE if record.enabled else Verb.DISABLE_TASK_SEQUENCE
            self.add(Action(verb, ref, reason, live.id, tuple(enable), source=obj.source, params=params,
                            summary=record.name))

    # -- content --------------------------------------------------------------------------------

    def content(self) -> None:
        for obj in self.desired.of_kind("ContentDistribution"):
            spec = obj.manifest.spec  # type: ignore[union-attr]
            ref = ObjectRef(obj.kind, obj.name)
            ts_ref = ObjectRef("TaskSequence", spec.task_sequence)
            if spec.task_sequence in self.ts_blocked:
                self.block(obj, ("spec", "taskSequence"), f"waits for TaskSequence/{spec.task_sequence}, "
                           "which is blocked", "dependency")
                continue
            record = self.ts_records.get(spec.task_sequence)
            if record is None or not self.wanted(obj):
                continue
            dps = self.target_dps(obj)
            if dps is None:
                continue
            pairs = []
            for package_id in self.content_of(record):
                package = self.live.packages.get(package_id)
                if package is None:
                    continue  # a blocked reference, reported with the task sequence
                lacking, failed = [], []
                for dp in dps:
                    status = self.live.content.get((package_id, dp))
                    pairs.append([package_id, dp])
                    if status is None or status.state in (ContentState.REMOVAL_PENDING,
                                                          ContentState.REMOVAL_RETRYING):
                        lacking.append(dp)
                    elif status.state in _FAILED_STATES or (status.state is ContentState.INSTALLED
                                                             and status.installed_version < package.source_version):
                        failed.append(dp)  # in progress (pending, retrying, updating) is left to finish
                if lacking:
                    self.add(Action(Verb.DISTRIBUTE_CONTENT, ref, Reason.CONTENT, package_id,
                                    (FieldChange("distributionPoints", None, lacking),), (ts_ref,), obj.source,
                                    {"package": package_id, "dps": lacking},
                                    f"{package_id} ({package.name}) to {len(lacking)} DP(s)"))
                if failed:
                    changes = tuple(
                        FieldChange(f"distributionPoints.{dp}", _status_text(self.live.content[(package_id, dp)]),
                                    f"installed, version {package.source_version}") for dp in failed)
                    self.add(Action(Verb.REDISTRIBUTE_CONTENT, ref, Reason.CONTENT, package_id, changes, (ts_ref,),
                                    obj.source, {"package": package_id, "dps": failed},
                                    f"{package_id} ({package.name}) on {len(failed)} DP(s)"))
            self.content_pairs[obj.name] = pairs
            self.ts_dps.setdefault(spec.task_sequence, set()).update(dps)

    content_pairs: dict[str, list[list[str]]]
    ts_dps: dict[str, set[str]]

    def child_sequence(self, ref: str) -> tuple[str | None, TaskSequenceRecord | None]:
        """What a sequence's reference points at when it is a sequence: its metadata.name (None for one no
        manifest describes) and its record; (None, None) for content.

        ``ref`` is a live ID or ``PENDING:<console name>`` of a child this plan creates. The maps are built
        once, after every sequence is planned, so lookups stay linear in the estate.
        """
        if self._child_names is None:
            self._child_names = ({r.name: n for n, r in self.ts_records.items()},
                                 {i: n for n in self.ts_records if (i := self.ts_ids.get(n))})
        by_console, by_id = self._child_names
        name = by_console.get(ref[len(PENDING):]) if ref.startswith(PENDING) else by_id.get(ref)
        return name, (self.ts_records.get(name) if name else self.live.task_sequences.get(ref))

    def content_of(self, record: TaskSequenceRecord, seen: frozenset[str] = frozenset()) -> list[str]:
        """Packages a sequence needs on its DPs; a child sequence contributes its own content, not itself."""
        out: list[str] = []
        for ref in ts_references(record):
            _, child = self.child_sequence(ref)
            if child is not None or ref.startswith(PENDING):
                key = child.name if child else ref
                if child is not None and key not in seen:
                    out.extend(self.content_of(child, seen | {key}))
                continue
            out.append(ref)
        return list(dict.fromkeys(out))

    def target_dps(self, obj: LoadedObject) -> list[str] | None:
        spec = obj.manifest.spec  # type: ignore[union-attr]
        dps: dict[str, None] = {}
        known = {d.casefold(): d for d in self.live.distribution_points}
        ok = True
        for i, name in enumerate(spec.distribution_points):
            if name.casefold() not in known:
                self.block(obj, ("spec", "distributionPoints", i),
                           f"distribution point {name!r} does not exist in site {self.live.site_code}", "reference")
                ok = False
            else:
                dps[known[name.casefold()]] = None
        groups = {g.casefold(): g for g in self.live.dp_groups}
        for i, name in enumerate(spec.distribution_point_groups):
            group = groups.get(name.casefold())
            if group is None:
                self.block(obj, ("spec", "distributionPointGroups", i),
                           f"distribution point group {name!r} does not exist in site {self.live.site_code}",
                           "reference")
                ok = False
                continue
            for dp in self.live.dp_groups[group].members:
                dps[known.get(dp.casefold(), dp)] = None
        for i, coll_ref in enumerate(spec.collections):
            try:
                collection = self.resolver.collection(coll_ref, ("spec", "collections", i))
            except Unresolved as exc:
                self.block(obj, exc.path, exc.message, "reference")
                ok = False
                continue
            associated = [g for g in self.live.dp_groups.values() if collection.id in g.collections]
            if not associated:
                self.block(obj, ("spec", "collections", i), f"collection {collection.name!r} has no associated "
                           "distribution point groups", "reference")
                ok = False
            for group in associated:
                for dp in group.members:
                    dps[known.get(dp.casefold(), dp)] = None
        return sorted(dps) if ok else None

    # -- deployments ----------------------------------------------------------------------------

    def effective_facts(self, ts_obj: LoadedObject) -> ObjectFacts:
        """A sequence's facts, counting what its child sequences do: a child's disk wipe runs in the parent."""
        facts = ts_obj.facts
        if facts.deploys_os:
            return facts
        if ts_obj.name in self._effective:
            return self._effective[ts_obj.name]
        record = self.ts_records.get(ts_obj.name)
        seen: set[str] = set()
        pending = [record] if record is not None else []
        result = facts
        while pending and result is facts:
            current = pending.pop()
            for ref in ts_references(current):
                if ref in seen:
                    continue
                seen.add(ref)
                name, child = self.child_sequence(ref)
                if child is None:
                    continue
                if self.sequences[name].facts.deploys_os if name else live_deploys_os(child):
                    result = replace(facts, deploys_os=True)
                    break
                pending.append(child)
        self._effective[ts_obj.name] = result
        return result

    def recheck_unchanged(self, obj: LoadedObject, ts_obj: LoadedObject, live: DeploymentRecord,
                          changing: set[str]) -> None:
        """Rules a deployment must keep meeting though it does not change itself.

        A sequence edited to partition a disk makes its Required deployments high risk, a sequence given
        a package without a package share breaks run-from-DP, and a collection grows after an
        acknowledgement: the deployment's fingerprint shows none of it. The manifest is only built
        when a rule can apply, so an unchanged estate stays cheap to plan.
        """
        violations = []
        collection = self.live.collections.get(live.collection_id)
        if live.offer_type == 0 and collection is not None:  # only Required deployments can be high risk
            facts = self.effective_facts(ts_obj)
            if facts.deploys_os or facts.high_impact:
                violations += evaluate_high_risk(obj.manifest, facts, collection,  # type: ignore[arg-type]
                                                 self.live.verification)[1]
        if ts_obj.name in changing:
            content = self.content_of(self.ts_records[ts_obj.name])
            packages = [self.live.packages[p] for p in content if p in self.live.packages]
            violations += run_from_dp_violations(obj.manifest, packages)  # type: ignore[arg-type]
            for violation in violations:
                self.block(obj, violation.path, f"the change to TaskSequence/{ts_obj.name} makes this deployment "
                           f"break a rule: {violation.message}", violation.rule)
            return
        for violation in violations:
            self.plan.warnings.append(Blocked(
                ObjectRef(obj.kind, obj.name), f"deployed as it is, but it breaks a rule now: {violation.message}",
                self.desired.locate(obj, violation.path), format_path(violation.path), violation.rule))

    def deployments(self) -> None:
        sequences = self.sequences
        changing = {a.ref.name for a in self.plan.actions if a.ref.kind == "TaskSequence"}
        by_target: dict[tuple[str, str], list[str]] = defaultdict(list)
        for dep_id, rec in self.live.deployments.items():
            by_target[(rec.package_id, rec.collection_id)].append(dep_id)
        for obj in self.desired.of_kind("TaskSequenceDeployment"):
            ts_name_ref = obj.facts.task_sequence or ""
            ref = ObjectRef(obj.kind, obj.name)
            ts_ref = ObjectRef("TaskSequence", ts_name_ref)
            ts_obj = sequences.get(ts_name_ref)
            if ts_obj is None:
                continue  # reported by validation
            if ts_name_ref in self.ts_blocked:
                self.block(obj, ("spec", "taskSequence"), f"waits for TaskSequence/{ts_name_ref}, "
                           "which is blocked", "dependency")
                continue
            owned_id = self.owned.get((obj.kind, obj.name))
            live = self.live.deployments.get(owned_id) if owned_id else None
            if live is not None and live.package_id == self.ts_ids.get(ts_name_ref) and self.wanted(obj) \
                    and self.in_sync(obj.kind, obj.name, spec_fingerprint(obj),
                                     record_fingerprint(live, self.state.salt)):
                self.recheck_unchanged(obj, ts_obj, live, changing)
                continue  # unchanged on both sides since the last apply
            spec = obj.manifest.spec  # type: ignore[union-attr]
            try:
                collection = self.resolver.collection(spec.collection, ("spec", "collection"))
            except Unresolved as exc:
                self.block(obj, exc.path, exc.message, "reference")
                continue
            if not self.wanted(obj):
                continue
            desired_fp = spec_fingerprint(obj)
            ts_id = self.ts_ids.get(spec.task_sequence)
            if ts_id is None and not self.wanted(ts_obj):
                self.block(obj, ("spec", "taskSequence"), f"TaskSequence/{ts_name_ref} is not on the site yet and "
                           f"is not among the --target objects; add --target TaskSequence/{ts_name_ref}",
                           "dependency")
                continue
            owned_id = self.owned.get((obj.kind, obj.name))
            live = self.live.deployments.get(owned_id) if owned_id else None
            live_fp = record_fingerprint(live, self.state.salt) if live is not None else ""
            if live is not None and live.package_id == ts_id and self.in_sync(obj.kind, obj.name, desired_fp, live_fp):
                self.recheck_unchanged(obj, ts_obj, live, changing)
                continue
            ts_name = ts_obj.facts.console_name or ""
            record = deployment_record(obj.manifest, ts_id or "", ts_name, collection,  # type: ignore[arg-type]
                                       ts_obj.facts.deploys_os)
            risk, violations = evaluate_high_risk(obj.manifest, self.effective_facts(ts_obj),  # type: ignore[arg-type]
                                                  collection, self.live.verification)
            content = self.content_of(self.ts_records[spec.task_sequence])
            packages = [self.live.packages[p] for p in content if p in self.live.packages]
            violations += run_from_dp_violations(obj.manifest, packages)  # type: ignore[arg-type]
            if violations:
                for violation in violations:
                    self.block(obj, violation.path, violation.message, violation.rule)
                continue
            waiting = self.content_warning(obj, spec.task_sequence, packages)
            params = {"record": record, "desired_fp": desired_fp, "task_sequence": spec.task_sequence,
                      "risk": risk, "wait_for": waiting,
                      # what an interrupted run of a creation will be recognised by (PendingIntent.made)
                      "match": f"{spec.task_sequence}|{collection.id}",
                      "existing": sorted(by_target.get((ts_id, collection.id), ())) if ts_id else []}
            if live is None:
                candidates = [i for i in by_target.get((ts_id or "", collection.id), ())
                              if ("TaskSequenceDeployment", i) not in self.owned_live_ids]
                made = None if self.plan.adopt else self.interrupted_creation(ref, params["match"], candidates)
                if candidates:
                    if made is not None:
                        candidates = [made]
                    elif not self.plan.adopt:
                        self.block(obj, ("spec", "collection"),
                                   f"{ts_name!r} is already deployed to {collection.name!r} ({candidates[0]}) by a "
                                   "deployment this tool does not manage; rerun with --adopt to take it over",
                                   "unowned")
                        continue
                    live = self.live.deployments[candidates[0]]
                    self.add(Action(Verb.ADOPT, ref, Reason.ADOPT, live.id, (), (ts_ref,), obj.source,
                                 {"desired_fp": desired_fp},
                                 f"take over {live.id}" + (" (made by an interrupted apply)" if made else "")))
                else:
                    params["unowned_at_plan"] = candidates  # apply refuses one that appears after this plan
                    self.add(Action(Verb.CREATE_DEPLOYMENT, ref, Reason.DRIFT if owned_id else Reason.NEW, None,
                                    _created_fields(deployment_canonical(record)), (ts_ref,), obj.source, params,
                                    f"{ts_name} to {collection.name}", risk))
                    continue
            if (live.package_id, live.collection_id) != (record.package_id, record.collection_id):
                changes = (FieldChange("collection", live.collection_id, record.collection_id),) \
                    if live.collection_id != record.collection_id else ()
                if live.package_id != record.package_id:
                    changes += (FieldChange("taskSequence", live.package_id, record.package_id or "(new)"),)
                self.add(Action(Verb.REPLACE_DEPLOYMENT, ref, self.reason(obj.kind, obj.name, desired_fp), live.id,
                                changes, (ts_ref,), obj.source, params,
                                "the task sequence or collection of a deployment cannot change in place", risk))
                continue
            before, after = deployment_canonical(live), deployment_canonical(record)
            if before != after:
                self.add(Action(Verb.UPDATE_DEPLOYMENT, ref, self.reason(obj.kind, obj.name, desired_fp), live.id,
                                field_changes(before, after), (ts_ref,), obj.source, params,
                                f"{ts_name} to {collection.name}", risk))

    def content_warning(self, obj: LoadedObject, ts_name: str, packages: list[Any]) -> list[list[str]]:
        """Warn when content is not yet on any DP the sequence is distributed to; returns what to wait for."""
        dps = self.ts_dps.get(ts_name, set())
        waiting: list[list[str]] = []
        missing = []
        for package in packages:
            installed = [dp for dp in dps if (s := self.live.content.get((package.id, dp))) is not None
                         and s.state is ContentState.INSTALLED and s.installed_version >= package.source_version]
            if not installed:
                missing.append(package)
                waiting.append([package.id, *sorted(dps)])
        if missing:
            listing = ", ".join(f"{p.id} ({p.name})" for p in missing[:5]) + (" …" if len(missing) > 5 else "")
            sending = {a.params.get("package") for a in self.plan.actions
                       if a.verb in (Verb.DISTRIBUTE_CONTENT, Verb.REDISTRIBUTE_CONTENT)}
            where = ("no ContentDistribution targets a DP for it" if not dps
                     else "this plan distributes it" if any(p.id in sending for p in missing)
                     else "its distribution is still in progress")
            self.plan.warnings.append(Blocked(
                ObjectRef(obj.kind, obj.name),
                f"content is not yet installed on any targeted distribution point ({where}): {listing}; clients "
                "cannot run the deployment until it is (apply with --wait-for-content to wait for it)",
                self.desired.locate(obj, ("spec", "taskSequence")), "spec.taskSequence", "content-not-installed"))
        return waiting if dps else []

    # -- variables ------------------------------------------------------------------------------

    def variables(self) -> None:
        for obj in self.desired.of_kind("CollectionVariables"):
            spec = obj.manifest.spec  # type: ignore[union-attr]
            try:
                collection = self.resolver.collection(spec.collection, ("spec", "collection"))
            except Unresolved as exc:
                owned_id = self.owned.get((obj.kind, obj.name))
                if owned_id and owned_id not in self.live.collections:
                    last = self.applied.get((obj.kind, obj.name))
                    count = (last.extra.get("count") if last else None) or "its"
                    self.block(obj, exc.path, (
                        f"collection {owned_id} was deleted in the site, and ConfigMgr deleted {count} variable(s) "
                        "with it; recreate the collection, point this manifest at another one, or delete the "
                        "manifest (--prune then forgets the variables)"), "collection-deleted")
                else:
                    self.block(obj, exc.path, exc.message, "reference")
                continue
            if collection.built_in:
                self.block(obj, ("spec", "collection"), f"{collection.name!r} ({collection.id}) is a built-in "
                           "collection; built-in collections cannot hold variables", "built-in")
                continue
            if not self.wanted(obj):
                continue
            live = self.live.collection_settings.get(collection.id)
            self.variable_set(obj, "collection", collection.id, collection.name, spec.variables, spec.priority,
                              live.variables if live else (), live.precedence if live else None)
        by_computer: dict[int, list[LoadedObject]] = defaultdict(list)
        for obj in self.desired.of_kind("ComputerVariables"):
            spec = obj.manifest.spec  # type: ignore[union-attr]
            try:
                computer = self.resolver.computer(spec.computer, ("spec", "computer"))
            except Unresolved as exc:
                self.block(obj, exc.path, exc.message, "reference")
                continue
            if self.wanted(obj):
                by_computer[computer.resource_id].append(obj)
        for resource_id, objs in by_computer.items():
            objs.sort(key=lambda o: o.name)
            count = effective_count(self.live.computers[resource_id], self.desired, self.live)
            if count > MAX_VARIABLES_PER_COMPUTER:
                self.block(objs[0], ("spec", "variables"), (
                    f"computer {self.live.computers[resource_id].name!r} would get {count} variables from its "
                    f"collections and computer variables (live and in Git); ConfigMgr allows at most "
                    f"{MAX_VARIABLES_PER_COMPUTER}"), "variable-limit")
                continue
            variables = [v for o in objs for v in o.manifest.spec.variables]  # type: ignore[union-attr]
            live = self.live.machine_settings.get(resource_id)
            self.variable_set(objs[0], "computer", resource_id, self.live.computers[resource_id].name, variables,
                              None, live.variables if live else (), None, also=[o.name for o in objs[1:]])

    def variable_set(self, obj: LoadedObject, scope: str, target: Any, target_name: str, variables: list[Any],
                     priority: int | None, live: tuple[LiveVariable, ...], live_priority: int | None,
                     also: list[str] | None = None) -> None:
        ref = ObjectRef(obj.kind, obj.name)
        desired_fp = fingerprint([spec_fingerprint(obj), target, also or []])
        live_fp = live_variables_fingerprint(live, live_priority)
        last = self.applied.get((obj.kind, obj.name))
        last_secrets: dict[str, Any] = last.secrets if last else {}
        # A stored hash counts only while its variable still reads from the same source.
        sources = {v.name.casefold(): str(v.value_from) for v in variables if v.value_from is not None}
        found = self.rotated(obj, {k: (v["ref"], v.get("hash", "")) for k, v in last_secrets.items()
                                   if sources.get(k) == v.get("ref")}, ("spec", "variables"))
        if found is None:
            return
        rotated = set(found)
        if not rotated and self.in_sync(obj.kind, obj.name, desired_fp, live_fp) and not _unmasked_secrets(
                variables, live):
            return
        owned_id = self.owned.get((obj.kind, obj.name))
        match = f"{scope}:{target}"  # what an interrupted run of this write is recognised by (PendingIntent.made)
        if owned_id is None and live and not self.plan.adopt \
                and self.interrupted_creation(ref, match, [live_fp]) is None:
            self.block(obj, ("spec", scope), f"{scope} {target_name!r} already has {len(live)} variable(s) that this "
                       "tool does not manage; rerun with --adopt to take them over", "unowned")
            return
        live_by_name = {v.name.casefold(): v for v in live}
        changes: list[FieldChange] = []
        desired_names = set()
        for var in variables:
            key = var.name.casefold()
            desired_names.add(key)
            current = live_by_name.get(key)
            if var.hidden or var.value_from is not None:
                ref_text = str(var.value_from)
                if current is None or not current.masked or last_secrets.get(key, {}).get("ref") != ref_text \
                        or current.name != var.name or key in rotated:
                    changes.append(FieldChange(f"variables.{var.name}", "(sensitive)" if current else None,
                                               "(sensitive)", True))
            elif current is None or current.value != var.value or current.masked or current.name != var.name:
                changes.append(FieldChange(f"variables.{var.name}",
                                           None if current is None else ("(sensitive)" if current.masked
                                                                         else current.value), var.value))
        for key, current in live_by_name.items():
            if key not in desired_names:
                changes.append(FieldChange(f"variables.{current.name}",
                                           "(sensitive)" if current.masked else current.value, None, current.masked))
        if priority is not None and live_priority != priority and (live or variables):
            changes.append(FieldChange("priority", live_priority, priority))
        if not changes:
            if owned_id is None and live and self.plan.adopt:
                # The live variables are already as wanted: adopting them changes who owns them, not the site.
                self.add(Action(Verb.ADOPT, ref, Reason.ADOPT, str(target), source=obj.source,
                                params={"desired_fp": desired_fp},
                                summary=f"take over the {len(live)} variable(s) of {scope} {target_name!r}"))
            return
        reason = Reason.NEW if owned_id is None and not live else (
            Reason.ADOPT if owned_id is None else self.reason(obj.kind, obj.name, desired_fp))
        if owned_id is not None and all(c.sensitive and c.before is not None for c in changes):
            reason = Reason.SECRET  # only hidden values changed: their source, or (--refresh-secrets) their value
        self.add(Action(Verb.SET_VARIABLES, ref, reason, str(target), tuple(changes), source=obj.source,
                        params={"scope": scope, "target": target, "priority": priority or 9, "match": match,
                                "existing": [live_fp] if live else [],
                                "variables": [v.model_dump(by_alias=True, exclude_none=True) for v in variables],
                                "desired_fp": desired_fp, "also": also or []},
                        summary=f"{len(variables)} variable(s) on {scope} {target_name!r}"))

    # -- orphans --------------------------------------------------------------------------------

    def still_used(self, ref: ObjectRef, ts_id: str, leaving: set[str]) -> bool:
        """--prune never deletes a sequence that is still deployed or still run as a child sequence."""
        users = [d for d_id, d in self.live.deployments.items() if d.package_id == ts_id and d_id not in leaving]
        parents = [t for t in self.live.task_sequences.values()
                   if t.id != ts_id and ts_id in t.references
                   and self.state_owner(t.id) not in self.pruned_sequences()]
        if not users and not parents:
            return False
        why = []
        if users:
            why.append("deployed by " + ", ".join(f"{d.id} ({d.name})" for d in users[:3]))
        if parents:
            why.append("run as a child by " + ", ".join(f"{t.id} ({t.name})" for t in parents[:3]))
        self.plan.blocked.append(Blocked(ref, (
            f"--prune would delete task sequence {ts_id}, but it is still {' and '.join(why)}; delete or change "
            "those first (deployments not managed here are never deleted)"), None, "", "prune-in-use"))
        return True

    def state_owner(self, live_id: str | None) -> str | None:
        for (kind, name), owned_id in self.owned.items():
            if kind == "TaskSequence" and owned_id == live_id:
                return name
        return None

    def pruned_sequences(self) -> set[str]:
        present = {o.name for o in self.desired.of_kind("TaskSequence")}
        return {name for (kind, name) in self.owned if kind == "TaskSequence" and name not in present}

    def delete_threshold(self, max_delete: float) -> None:
        """A plan that deletes more than ``max_delete`` percent of the managed objects is blocked."""
        verbs = (Verb.DELETE_TASK_SEQUENCE, Verb.DELETE_DEPLOYMENT, Verb.REMOVE_VARIABLES, Verb.REMOVE_CONTENT)
        deletions = list(dict.fromkeys(a.ref for a in self.plan.actions
                                       if a.verb in verbs and not a.params.get("keep_ownership")))
        managed = len(self.owned)
        if not deletions or not managed:
            return
        share = 100.0 * len(deletions) / managed
        if share > max_delete:
            self.plan.blocked.append(Blocked(deletions[0], (
                f"this plan deletes {len(deletions)} of {managed} managed objects ({share:.0f}%), more than "
                f"--max-delete {max_delete:g}%; review the deletions, then rerun with --max-delete "
                f"{math.ceil(share)} or higher"), None, "", "max-delete"))

    def content_in_use(self, leaving: set[str]) -> dict[str, set[str]]:
        """Package → the sequences that still need it: every desired one, and every live one still deployed."""
        out: dict[str, set[str]] = defaultdict(set)
        for name, record in self.ts_records.items():
            for package_id in self.content_of(record):
                out[package_id].add(f"TaskSequence/{name}")
        deployed = {d.package_id for i, d in self.live.deployments.items() if i not in leaving}
        for ts_id in deployed:
            record = self.live.task_sequences.get(ts_id)
            if record is not None:
                for package_id in ts_references(record):
                    out[package_id].add(f"{ts_id} ({record.name})")
        return out

    def narrowed_content(self) -> None:
        """Content a ContentDistribution put on DPs it no longer targets (a DP group dropped from it)."""
        wanted = {tuple(p) for v in self.content_pairs.values() for p in v}
        for obj in self.desired.of_kind("ContentDistribution"):
            if obj.name not in self.content_pairs or not self.wanted(obj):
                continue
            applied = self.applied.get((obj.kind, obj.name))
            previous = applied.extra.get("pairs", []) if applied else []
            by_package: dict[str, list[str]] = defaultdict(list)
            for package_id, dp in previous:
                if (package_id, dp) not in wanted and (package_id, dp) in self.live.content:
                    by_package[package_id].append(dp)
            ref = ObjectRef(obj.kind, obj.name)
            for package_id, dps in sorted(by_package.items()):
                if self.plan.prune:
                    self.add(Action(Verb.REMOVE_CONTENT, ref, Reason.ORPHAN, package_id,
                                    (FieldChange("distributionPoints", dps, None),), source=obj.source,
                                    params={"package": package_id, "dps": dps, "keep_ownership": True},
                                    summary=f"{package_id} from {len(dps)} DP(s) no longer targeted"))
                else:
                    self.plan.warnings.append(Blocked(ref, (
                        f"{package_id} stays on {', '.join(dps)}, which this ContentDistribution no longer targets; "
                        "run with --prune to remove it"), obj.source, "spec", "content-not-targeted"))

    def orphans(self) -> None:
        present = {(o.kind, o.name) for o in self.desired.objects}
        # Deployments this plan deletes (orphans under --prune, replacements aside): the others still count.
        leaving = {live_id for (kind, name), live_id in self.owned.items()
                   if kind == "TaskSequenceDeployment" and (kind, name) not in present and self.plan.prune
                   and (not self.targets or f"{kind}/{name}" in self.targets)}
        needed_by = self.content_in_use(leaving) if self.plan.prune else {}
        needed = {p for p, users in needed_by.items() if users}
        self.narrowed_content()
        # A computer's variables are owned by every manifest that contributes to them.
        for (kind, name), live_id in sorted(self.owned.items(), key=lambda i: (_KIND_ORDER.get(i[0][0], 9), i[0][1])):
            if (kind, name) in present or kind not in MANAGED_KINDS or (kind, live_id) in self.taken_over:
                continue
            if self.targets and f"{kind}/{name}" not in self.targets:
                continue
            ref = ObjectRef(kind, name)
            if not self.plan.prune:
                self.plan.orphans.append(ref)
                continue
            if kind == "TaskSequence" and live_id in self.live.task_sequences:
                if self.still_used(ref, live_id, leaving):
                    continue
                self.add(Action(Verb.DELETE_TASK_SEQUENCE, ref, Reason.ORPHAN, live_id,
                                summary=self.live.task_sequences[live_id].name))
            elif kind == "TaskSequenceDeployment" and live_id in self.live.deployments:
                self.add(Action(Verb.DELETE_DEPLOYMENT, ref, Reason.ORPHAN, live_id,
                                summary=self.live.deployments[live_id].name))
            elif kind == "ContentDistribution":
                pairs = (self.applied.get((kind, name)) or Applied("", "", {}, {})).extra.get("pairs", [])
                wanted = {tuple(p) for v in self.content_pairs.values() for p in v}
                by_package: dict[str, list[str]] = defaultdict(list)
                for package_id, dp in pairs:
                    if (package_id, dp) not in wanted and (package_id, dp) in self.live.content:
                        by_package[package_id].append(dp)
                for package_id in sorted(set(by_package) & needed):
                    # No other ContentDistribution keeps it anywhere: removing it strands what still runs it.
                    users = ", ".join(sorted(needed_by[package_id])[:3])
                    self.plan.warnings.append(Blocked(ref, (
                        f"--prune keeps {package_id} on {len(by_package.pop(package_id))} DP(s): {users} still "
                        "needs it and no ContentDistribution targets it elsewhere"), None, "", "content-in-use"))
                for package_id, dps in sorted(by_package.items()):
                    self.add(Action(Verb.REMOVE_CONTENT, ref, Reason.ORPHAN, package_id,
                                    (FieldChange("distributionPoints", dps, None),),
                                    params={"package": package_id, "dps": dps},
                                    summary=f"{package_id} from {len(dps)} DP(s)"))
                if not by_package:
                    self.add(Action(Verb.REMOVE_CONTENT, ref, Reason.ORPHAN, None, params={"package": None, "dps": []},
                                    summary="nothing left to remove"))
            elif kind in ("CollectionVariables", "ComputerVariables"):
                gone = (live_id not in self.live.collections if kind == "CollectionVariables"
                        else int(live_id) not in self.live.computers)
                self.add(Action(Verb.REMOVE_VARIABLES, ref, Reason.ORPHAN, live_id,
                                params={"scope": "collection" if kind == "CollectionVariables" else "computer",
                                        "target": live_id if kind == "CollectionVariables" else int(live_id),
                                        "gone": gone},
                                summary=f"variables of {live_id}" + (" (already gone with it)" if gone else "")))
            else:
                self.add(Action(Verb.DELETE_DEPLOYMENT if kind == "TaskSequenceDeployment" else
                                Verb.DELETE_TASK_SEQUENCE, ref, Reason.ORPHAN, live_id,
                                summary="already gone from the site", params={"gone": True}))


def _created_fields(canonical: dict[str, Any], top: bool = True) -> tuple[FieldChange, ...]:
    out = []
    for key, value in canonical.items():
        if key == "steps":
            steps = value or []
            out.append(FieldChange("steps", None, f"{_count_steps(steps)} step(s) in {len(steps)} top-level item(s)"))
        elif isinstance(value, dict):
            out.extend(FieldChange(f"{key}.{c.path}", None, c.after) for c in _created_fields(value, top=False))
        elif value not in (None, "", False, [], {}, ()) or (top and key == "enabled"):
            out.append(FieldChange(key, None, value))  # a sequence created disabled says so
    return tuple(out)


def _count_steps(nodes: list[dict[str, Any]]) -> int:
    return sum(_count_steps(n.get("steps") or []) if "group" in n else 1 for n in nodes)


def _status_text(status: Any) -> str:
    return f"{status.state.name.lower().replace('_', ' ')}, version {status.installed_version}"


#: Default --max-delete: the share of managed objects one plan may delete.
MAX_DELETE_PERCENT = 10.0


class IncompleteManifests(ReconcilerError):
    """Some manifests could not be read: a plan without them would treat their objects as gone."""


class UnknownTarget(ReconcilerError):
    """A ``--target`` names no manifest and no managed object: a typo would otherwise plan nothing."""


def resolve_targets(targets: Iterable[str], desired: DesiredState, state: StateStore) -> tuple[str, ...]:
    """``--target`` values as ``Kind/name``, the kind spelled as the manifests spell it (any case accepted)."""
    kinds = {k.casefold(): k for k in MANAGED_KINDS}
    known = {o.key for o in desired.objects} | {f"{k}/{n}" for (k, n) in state.owned()}
    out = []
    for target in targets:
        kind, _, name = target.partition("/")
        if not name or kind.casefold() not in kinds:
            raise UnknownTarget(f"--target {target!r}: use KIND/NAME, KIND one of {', '.join(sorted(kinds.values()))}")
        key = f"{kinds[kind.casefold()]}/{name}"
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise UnknownTarget(f"--target {target!r} matches no manifest and no managed object"
                                + (f"; did you mean {close[0]!r}?" if close else ""))
        out.append(key)
    return tuple(out)


def make_plan(desired: DesiredState, live: LiveState, state: StateStore, *, adopt: bool = False,
              prune: bool = False, targets: Iterable[str] = (), max_delete: float = MAX_DELETE_PERCENT,
              secrets: SecretReader | None = None) -> Plan:
    """Plan what makes the site equal to the manifests. Reads only.

    With ``secrets`` (``--refresh-secrets``) the plan also reads each secret the managed objects use and
    compares its keyed hash with the one stored at the last apply, so a rotated password behind an
    unchanged ``valueFrom`` becomes an update; without it, a plan never reads a secret.
    """
    if desired.unread:
        # A file that could not be read defines objects the plan cannot see: planning would call them orphans.
        listing = ", ".join(desired.unread[:3]) + (" …" if len(desired.unread) > 3 else "")
        raise IncompleteManifests(f"{len(desired.unread)} manifest file(s) or folder(s) could not be read "
                                  f"({listing}); no plan is made from an incomplete set, so nothing is pruned")
    with paused():
        return _make_plan(desired, live, state, adopt, prune, tuple(targets), max_delete, secrets)


def _make_plan(desired: DesiredState, live: LiveState, state: StateStore, adopt: bool, prune: bool,
               targets: tuple[str, ...], max_delete: float, secrets: SecretReader | None) -> Plan:
    planner = _Planner(desired, live, state, adopt, prune, tuple(targets), secrets)
    planner.content_pairs = {}
    planner.ts_dps = {}
    planner.task_sequences()
    planner.renamed_children()
    planner.content()
    planner.deployments()
    planner.variables()
    planner.orphans()
    planner.delete_threshold(max_delete)
    plan = planner.plan
    log.debug("plan %s: %d action(s), %d blocked, %d warning(s), %d orphan(s)", plan.plan_id, len(plan.actions),
              len(plan.blocked), len(plan.warnings), len(plan.orphans))
    plan.content_pairs = planner.content_pairs
    # An interrupted run's intent on an object this plan has nothing to do for is finished (or moot): applying
    # the plan resolves it. One this plan acts on is resolved by that action's own outcome.
    touched = {str(a.ref) for a in plan.actions} | {str(b.ref) for b in plan.blocked}
    plan.settles = {obj: intent.plan_id for obj, intent in sorted(planner.pending.items())
                    if obj not in touched and (not targets or obj in targets)}
    plan.actions.sort(key=lambda a: (_PHASE[a.verb], _KIND_ORDER.get(a.ref.kind, 9), a.ref.name,
                                     _IN_VERB_ORDER[a.verb], str(a.params.get("package", ""))))
    plan.blocked.sort(key=lambda b: (b.source.file if b.source else "", b.source.line or 0 if b.source else 0))
    return plan


__all__ = ["Source", "make_plan"]
