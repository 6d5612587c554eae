"""Planning task sequences: create, update, enable or disable, move, take over.

A sequence whose manifest and live object both match what was last applied is in sync at the cost of two
fingerprints. Any other is rendered into the record the site would hold and compared with the live one:
its properties field by field, its step tree by identity (inserted, removed, moved and changed steps).
"""

from __future__ import annotations

from collections import defaultdict

from reconciler.diff.normalize import PENDING, Unresolved, record_fingerprint, ts_canonical, ts_record
from reconciler.diff.tasksequence import diff_task_sequence
from reconciler.diff.tsproperties import ts_property_terms
from reconciler.models import TaskSequence, iter_steps
from reconciler.plan.actions import (
    Action,
    Adoption,
    ChildSequence,
    FieldChange,
    Identity,
    ObjectRef,
    Reason,
    TaskSequenceWrite,
    Verb,
)
from reconciler.plan.context import Planning, created_fields, spec_fingerprint
from reconciler.rules import step_path
from reconciler.site.records import MAX_SEQUENCE_BYTES, TaskSequenceRecord
from reconciler.source.loader import LoadedObject
from reconciler.tsxml.sequence import reference_ids, step_secret_refs


def plan_task_sequences(p: Planning) -> None:
    by_console_name: dict[str, list[str]] = defaultdict(list)  # without case, as the site compares names
    for ts_id, rec in p.live.task_sequences.items():
        by_console_name[rec.name.casefold()].append(ts_id)
    for obj in p.desired.of_kind("TaskSequence"):
        ref = ObjectRef(obj.kind, obj.name)
        desired_fp = spec_fingerprint(obj)
        owned_id = p.owned.get((obj.kind, obj.name))
        live = p.live.task_sequences.get(owned_id) if owned_id else None
        rotated: list[str] = []
        if live is not None:
            p.ts_ids[obj.name] = owned_id
            last = p.applied.get((obj.kind, obj.name))
            if p.secrets is not None and last is not None:
                found = p.rotated(obj, {r: (r, h) for r, h in last.secrets.items() if not r.startswith("@")},
                                  ("spec", "steps"))
                if found is None:
                    p.ts_blocked.add(obj.name)
                    continue
                rotated = found
            if not rotated and p.in_sync(obj.kind, obj.name, desired_fp, record_fingerprint(live, p.salt)) \
                    and p.references_exist(live):
                p.ts_records[obj.name] = live
                continue
        try:
            ts: TaskSequence = obj.manifest  # type: ignore[assignment]
            record = ts_record(ts, p.resolver, p.console_ids())
        except Unresolved as exc:
            p.ts_blocked.add(obj.name)
            p.block(obj, exc.path, exc.message, "reference")
            continue
        size = len(record.sequence.encode("utf-8"))
        if size > MAX_SEQUENCE_BYTES:
            p.ts_blocked.add(obj.name)
            p.block(obj, ("spec", "steps"), f"the sequence XML would be {size:,} bytes; ConfigMgr refuses a "
                    f"sequence over {MAX_SEQUENCE_BYTES:,} bytes (2 MB): move groups into child task "
                    "sequences (RunTaskSequence steps)", "sequence-size")
            continue
        p.ts_records[obj.name] = record
        if not p.wanted(obj):
            continue
        children: tuple[ChildSequence, ...] = ()
        if PENDING in record.sequence:
            # A child sequence this plan creates: apply puts its ID in once the child exists.
            names = p.console_names()
            children = tuple(ChildSequence(console_name=c, name=names[c]) for c in sorted(names)
                             if f'"{PENDING}{c}"' in record.sequence)
        depends = tuple(ObjectRef("TaskSequence", c.name) for c in children)
        write = TaskSequenceWrite(record=record, desired_fp=desired_fp, children=children)
        if live is None:
            folded = record.name.casefold()
            candidates = [i for i in by_console_name.get(folded, ()) if ("TaskSequence", i) not in p.owned_live_ids]
            renamed = [i for i in by_console_name.get(folded, ()) if ("TaskSequence", i) in p.orphan_owners]
            if not candidates and not owned_id and len(renamed) == 1:
                # metadata.name changed, console name kept: the same sequence under a new Git identity.
                old_name = p.orphan_owners[("TaskSequence", renamed[0])]
                p.taken_over.add(("TaskSequence", renamed[0]))
                live = p.live.task_sequences[renamed[0]]
                p.ts_ids[obj.name] = renamed[0]
                p.add(Action(Verb.ADOPT, ref, Reason.ADOPT, renamed[0], source=obj.source,
                             write=Adoption(desired_fp=desired_fp, renamed_from=old_name),
                             summary=f"take over {renamed[0]} from TaskSequence/{old_name} (metadata.name changed)",
                             expected=record_fingerprint(live, p.salt)))
            elif candidates:
                # Also when the managed sequence was deleted in the console: a namesake is not it.
                made = None if p.plan.adopt else p.interrupted_creation(ref, folded, candidates)
                if made is not None:
                    candidates = [made]
                elif not p.plan.adopt:
                    p.ts_blocked.add(obj.name)
                    p.block(obj, ("spec", "name"),
                            f"a task sequence named {record.name!r} already exists ({', '.join(candidates)}) and is "
                            "not managed by this tool; rerun with --adopt to take it over, or rename", "unowned")
                    continue
                if len(candidates) > 1:
                    p.ts_blocked.add(obj.name)
                    p.block(obj, ("spec", "name"), f"{len(candidates)} task sequences are named {record.name!r} "
                            f"({', '.join(candidates)}); adopt needs exactly one", "unowned")
                    continue
                live = p.live.task_sequences[candidates[0]]
                p.ts_ids[obj.name] = candidates[0]
                p.add(Action(Verb.ADOPT, ref, Reason.ADOPT, candidates[0], source=obj.source,
                             write=Adoption(desired_fp=desired_fp),
                             summary=f"take over {candidates[0]} ({record.name!r})"
                             + (" (made by an interrupted apply)" if made else ""),
                             expected=record_fingerprint(live, p.salt)))
            else:
                p.ts_ids[obj.name] = None
                # Namesakes known now (none unmanaged); apply refuses to act on one that appears after this plan,
                # and an interrupted run of this creation is recognised by the console name.
                identity = Identity(match=folded, existing=tuple(sorted(by_console_name.get(folded, ()))),
                                    unowned=())
                p.add(Action(Verb.CREATE_TASK_SEQUENCE, ref, Reason.DRIFT if owned_id else Reason.NEW, None,
                             created_sequence_fields(p, record), depends, obj.source,
                             TaskSequenceWrite(record=record, desired_fp=desired_fp, children=children,
                                               identity=identity),
                             summary=record.name))
                continue
        secret_changes = step_secret_changes(p, obj, record, rotated)
        if secret_changes:
            write = TaskSequenceWrite(record=record, desired_fp=desired_fp, children=children, secrets_changed=True)
        compare_task_sequence(p, obj, record, live, write, depends, secret_changes)


def created_sequence_fields(p: Planning, record: TaskSequenceRecord) -> tuple[FieldChange, ...]:
    """The fields of a sequence being created, as the manifest writes them, and the size of its step tree."""
    canonical = ts_canonical(record)
    steps = created_fields({"steps": canonical.get("steps") or []})
    terms = ts_property_terms(record, p.live)
    return tuple(FieldChange(path, None, value) for path, value in terms.items()
                 if value not in (None, "", False, [], {}, ()) or path == "enabled") + steps


def step_secret_changes(p: Planning, obj: LoadedObject, record: TaskSequenceRecord, rotated: list[str]) -> list[str]:
    """Secret references of the steps whose value the site may not hold: moved, new, or rotated.

    The live sequence cannot show a password (a real site never returns it), so the references
    recorded at the last apply, in step order, are what a plan compares with.
    """
    wanted = step_secret_refs(record.sequence)
    if not wanted:
        return []
    last = p.applied.get((obj.kind, obj.name))
    if last is None:
        # Taken over (export, --adopt), never written by this tool: the site holds values it has not seen.
        # Only --refresh-secrets, which reads them, may replace them.
        return sorted(set(wanted)) if p.secrets is not None else []
    stored = last.secrets
    if "@refs" in stored:
        before = list(stored["@refs"])
        same = before == wanted
    else:  # recorded before step order was kept: compare the references alone
        before = sorted(k for k in stored if not k.startswith("@"))
        same = before == sorted(set(wanted))
    changed = set(rotated) & set(wanted)
    if p.secrets is not None:
        changed |= {r for r in wanted if r not in stored}  # no hash to compare with: write what is read
    if not same:
        moved = set(wanted) ^ set(before)
        changed |= (moved & set(wanted)) or set(wanted)
    return sorted(changed)


def compare_task_sequence(p: Planning, obj: LoadedObject, record: TaskSequenceRecord, live: TaskSequenceRecord,
                          write: TaskSequenceWrite, depends: tuple[ObjectRef, ...] = (),
                          rotated: list[str] | None = None) -> None:
    """The actions that bring a live sequence to the record: an update, a move and an enable or disable.

    Enabling and moving are their own actions, as in the console, so a reviewer sees them apart from edits.
    """
    ref = ObjectRef(obj.kind, obj.name)
    diff = diff_task_sequence(live, record, p.live)
    if diff.empty and not rotated:
        return
    owned_ids = {i for (k, _), i in p.owned.items() if k == obj.kind}
    reason = Reason.ADOPT if live.id not in owned_ids and p.plan.adopt else p.reason(obj.kind, obj.name,
                                                                                      write.desired_fp)
    if diff.empty:
        reason = Reason.SECRET
    enable, move, step_changes = diff.enabled, diff.folder, diff.steps
    rest = diff.fields + tuple(FieldChange(f"secrets.{r}", "(sensitive)", "(sensitive)", True) for r in rotated or ())
    expected = record_fingerprint(live, p.salt)
    if rest or step_changes:
        p.add(Action(Verb.UPDATE_TASK_SEQUENCE, ref, reason, live.id, rest, depends, obj.source, write,
                     summary=record.name, step_changes=step_changes, expected=expected))
    if move:
        p.add(Action(Verb.MOVE_TASK_SEQUENCE, ref, reason, live.id, move, source=obj.source, write=write,
                     summary=f"{live.folder or '(root)'} → {record.folder or '(root)'}", expected=expected))
    if enable:
        verb = Verb.ENABLE_TASK_SEQUENCE if record.enabled else Verb.DISABLE_TASK_SEQUENCE
        p.add(Action(verb, ref, reason, live.id, enable, source=obj.source, write=write,
                     summary=record.name, expected=expected))


def renamed_children(p: Planning) -> None:
    """Parents still calling a child sequence by the console name this plan renames it away from.

    The parent itself does not change, so nothing else would look at it until the next edit of it,
    and then the reference would no longer resolve.
    """
    renames = {a.live_id: (c.before, c.after) for a in p.plan.actions
               if a.verb is Verb.UPDATE_TASK_SEQUENCE for c in a.changes if c.path == "name" and a.live_id}
    if not renames:
        return
    for obj in p.desired.of_kind("TaskSequence"):
        record = p.ts_records.get(obj.name)
        if record is None or not set(record.references or reference_ids(record.sequence)) & set(renames):
            continue
        for path, node in iter_steps(obj.manifest.spec.steps):  # type: ignore[union-attr]
            if getattr(node, "type", None) != "RunTaskSequence":
                continue
            called = getattr(node.settings.task_sequence, "package", None)  # type: ignore[union-attr]
            for old, new in renames.values():
                if called is not None and called == old:
                    p.ts_blocked.add(obj.name)
                    p.block(obj, (*step_path(path), "settings", "taskSequence", "package"),
                            f"runs the child sequence {old!r}, which this plan renames to {new!r}; refer to it by "
                            "its new console name (or by name: its metadata.name)", "reference")
