"""What one planning pass knows and shares between the planners of each kind.

The planners of task sequences, content, deployments, variables and orphans run in that order over one
``Planning``: the sequences' records and live IDs, what is blocked, and the actions planned so far are
what the later kinds depend on. Nothing here touches the site; the live state is the snapshot read once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from reconciler.diff.changes import FieldChange
from reconciler.diff.normalize import PENDING, Resolver, fingerprint, ts_references
from reconciler.errors import Source
from reconciler.plan.actions import Action, Blocked, ObjectRef, Plan, Reason
from reconciler.rules import ObjectFacts, live_deploys_os
from reconciler.secrets import SecretReader, SecretUnavailable
from reconciler.site.records import ContentStatus, LiveState, LiveVariable, TaskSequenceRecord
from reconciler.source.loader import DesiredState, LoadedObject, format_path
from reconciler.state import Applied, PendingIntent, StateStore

MANAGED_KINDS = ("TaskSequence", "TaskSequenceDeployment", "ContentDistribution", "CollectionVariables",
                 "ComputerVariables")


def spec_fingerprint(obj: LoadedObject) -> str:
    return obj.fingerprint or fingerprint(obj.manifest.spec.model_dump_json(by_alias=True))


def live_variables_fingerprint(variables: Iterable[LiveVariable], precedence: int | None = None) -> str:
    return fingerprint([precedence, [(v.name, v.value, v.masked) for v in variables]])


def content_fingerprint(package_id: str, dps: Iterable[str], status: dict[str, ContentStatus]) -> str:
    """What a content action was planned against: the state and version of the package on each of its DPs."""
    return fingerprint([package_id, [(dp, int(s.state), s.installed_version) if (s := status.get(dp)) else (dp, None)
                                     for dp in sorted(dps)]])


class Planning:
    """One planning pass: the inputs, what the kinds planned so far have learned, and the plan being built."""

    def __init__(self, desired: DesiredState, live: LiveState, state: StateStore, adopt: bool, prune: bool,
                 targets: tuple[str, ...], secrets: SecretReader | None = None) -> None:
        self.desired = desired
        self.secrets = secrets
        self.live = live
        self.state = state
        self.salt = state.salt
        self.resolver = Resolver(live)
        self.owned = state.owned()
        self.applied = state.applied()
        self.plan = Plan(plan_id="", site_code=live.site_code, adopt=adopt, prune=prune, targets=targets)
        self.targets = set(targets)
        self.ts_records: dict[str, TaskSequenceRecord] = {}
        self.ts_ids: dict[str, str | None] = {}  # metadata.name -> live id (None while being created)
        self.ts_blocked: set[str] = set()
        self.owned_live_ids = {(k, i) for (k, _), i in self.owned.items()}
        #: unfinished intents of interrupted applies, by object: a live match may be its own unrecorded creation
        self.pending: dict[str, PendingIntent] = state.pending_intents()
        present = {(o.kind, o.name) for o in desired.objects}
        #: (kind, live ID) → the metadata.name owning it that no manifest has any more (a rename's old name)
        self.orphan_owners = {(k, i): n for (k, n), i in self.owned.items() if (k, n) not in present}
        #: live objects a renamed manifest takes over in this plan: not orphans of their old name
        self.taken_over: set[tuple[str, str]] = set()
        self.sequences = {o.name: o for o in desired.of_kind("TaskSequence")}
        #: (package, DP) pairs each ContentDistribution wants
        self.content_pairs: dict[str, list[list[str]]] = {}
        #: the DPs each task sequence's content goes to, by metadata.name
        self.ts_dps: dict[str, set[str]] = {}
        self._child_names: tuple[dict[str, str], dict[str, str]] | None = None
        self._effective: dict[str, ObjectFacts] = {}

    # -- bookkeeping -----------------------------------------------------------------------------------

    def wanted(self, obj: LoadedObject) -> bool:
        return not self.targets or obj.key in self.targets

    def block(self, obj: LoadedObject, path: tuple[str | int, ...], message: str, rule: str) -> None:
        self.plan.blocked.append(Blocked(ObjectRef(obj.kind, obj.name), message, self.desired.locate(obj, path),
                                         format_path(path), rule))

    def warn(self, obj: LoadedObject, path: tuple[str | int, ...], message: str, rule: str,
             source: Source | None = None) -> None:
        self.plan.warnings.append(Blocked(ObjectRef(obj.kind, obj.name), message,
                                          source or self.desired.locate(obj, path), format_path(path), rule))

    def add(self, action: Action) -> None:
        self.plan.actions.append(action)

    def reason(self, kind: str, name: str, desired_fp: str) -> Reason:
        last = self.applied.get((kind, name))
        return Reason.CHANGED if last is None or last.desired_fp != desired_fp else Reason.DRIFT

    def in_sync(self, kind: str, name: str, desired_fp: str, live_fp: str) -> bool:
        last: Applied | None = self.applied.get((kind, name))
        return last is not None and last.desired_fp == desired_fp and last.live_fp == live_fp

    def interrupted_creation(self, ref: ObjectRef, match: str, candidates: list[str]) -> str | None:
        """The unmanaged live object that an interrupted apply of ``ref`` created, taken over without --adopt.

        Only the very object its intent made qualifies (see ``PendingIntent.made``): an intent left behind
        by a run whose outcome was never written must not hand over a namesake that appeared later.
        """
        intent = self.pending.get(str(ref))
        return intent.made(match, candidates) if intent is not None else None

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

    # -- task sequences and what they reference --------------------------------------------------------

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


def created_fields(canonical: dict[str, Any], top: bool = True) -> tuple[FieldChange, ...]:
    """The fields of an object being created, as a plan lists them (empty values left out)."""
    out = []
    for key, value in canonical.items():
        if key == "steps":
            steps = value or []
            out.append(FieldChange("steps", None, f"{_count_steps(steps)} step(s) in {len(steps)} top-level item(s)"))
        elif isinstance(value, dict):
            out.extend(FieldChange(f"{key}.{c.path}", None, c.after) for c in created_fields(value, top=False))
        elif value not in (None, "", False, [], {}, ()) or (top and key == "enabled"):
            out.append(FieldChange(key, None, value))  # a sequence created disabled says so
    return tuple(out)


def _count_steps(nodes: list[dict[str, Any]]) -> int:
    return sum(_count_steps(n.get("steps") or []) if "group" in n else 1 for n in nodes)
