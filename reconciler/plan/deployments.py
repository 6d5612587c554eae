"""Planning deployments: create, update, replace, take over, and the rules a deployment must keep meeting.

A deployment's task sequence and collection cannot change in place on a site: such a change is a
replace (delete, then create). A deployment waits for its task sequence (and that sequence's content)
to be written first, and is blocked while its sequence is.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from reconciler.diff.deployment import deployment_changes, deployment_terms, diff_deployment
from reconciler.diff.normalize import Unresolved, deployment_record, record_fingerprint
from reconciler.plan.actions import Action, Adoption, DeploymentWrite, FieldChange, Identity, ObjectRef, Reason, Verb
from reconciler.plan.context import Planning, spec_fingerprint
from reconciler.plan.policies import evaluate_high_risk, run_from_dp_violations
from reconciler.site.records import ContentState, DeploymentRecord
from reconciler.source.loader import LoadedObject


def plan_deployments(p: Planning) -> None:
    sequences = p.sequences
    changing = {a.ref.name for a in p.plan.actions if a.ref.kind == "TaskSequence"}
    by_target: dict[tuple[str, str], list[str]] = defaultdict(list)
    for dep_id, rec in p.live.deployments.items():
        by_target[(rec.package_id, rec.collection_id)].append(dep_id)
    # Content goes out before the deployment that needs it: a client told to run would find nothing.
    distributions: dict[str, list[ObjectRef]] = defaultdict(list)
    for cd in p.desired.of_kind("ContentDistribution"):
        distributions[cd.facts.task_sequence or ""].append(ObjectRef(cd.kind, cd.name))
    for obj in p.desired.of_kind("TaskSequenceDeployment"):
        ts_name_ref = obj.facts.task_sequence or ""
        ref = ObjectRef(obj.kind, obj.name)
        ts_ref = ObjectRef("TaskSequence", ts_name_ref)
        ts_obj = sequences.get(ts_name_ref)
        if ts_obj is None:
            continue  # reported by validation
        if ts_name_ref in p.ts_blocked:
            p.block(obj, ("spec", "taskSequence"), f"waits for TaskSequence/{ts_name_ref}, which is blocked",
                    "dependency")
            continue
        owned_id = p.owned.get((obj.kind, obj.name))
        live = p.live.deployments.get(owned_id) if owned_id else None
        if live is not None and live.package_id == p.ts_ids.get(ts_name_ref) and p.wanted(obj) \
                and p.in_sync(obj.kind, obj.name, spec_fingerprint(obj), record_fingerprint(live, p.salt)):
            recheck_unchanged(p, obj, ts_obj, live, changing)
            continue  # unchanged on both sides since the last apply
        spec = obj.manifest.spec  # type: ignore[union-attr]
        try:
            collection = p.resolver.collection(spec.collection, ("spec", "collection"))
        except Unresolved as exc:
            p.block(obj, exc.path, exc.message, "reference")
            continue
        if not p.wanted(obj):
            continue
        desired_fp = spec_fingerprint(obj)
        ts_id = p.ts_ids.get(spec.task_sequence)
        if ts_id is None and not p.wanted(ts_obj):
            p.block(obj, ("spec", "taskSequence"), f"TaskSequence/{ts_name_ref} is not on the site yet and is not "
                    f"among the --target objects; add --target TaskSequence/{ts_name_ref}", "dependency")
            continue
        live_fp = record_fingerprint(live, p.salt) if live is not None else ""
        if live is not None and live.package_id == ts_id and p.in_sync(obj.kind, obj.name, desired_fp, live_fp):
            recheck_unchanged(p, obj, ts_obj, live, changing)
            continue
        ts_name = ts_obj.facts.console_name or ""
        record = deployment_record(obj.manifest, ts_id or "", ts_name, collection,  # type: ignore[arg-type]
                                   ts_obj.facts.deploys_os)
        risk, violations = evaluate_high_risk(obj.manifest, p.effective_facts(ts_obj),  # type: ignore[arg-type]
                                              collection, p.live.verification)
        content = p.content_of(p.ts_records[spec.task_sequence])
        packages = [p.live.packages[i] for i in content if i in p.live.packages]
        violations += run_from_dp_violations(obj.manifest, packages)  # type: ignore[arg-type]
        if violations:
            for violation in violations:
                p.block(obj, violation.path, violation.message, violation.rule)
            continue
        waiting = content_warning(p, obj, spec.task_sequence, packages)
        depends = (ts_ref, *distributions.get(ts_name_ref, ()))
        # What an interrupted run of a creation will be recognised by (PendingIntent.made).
        match = f"{spec.task_sequence}|{collection.id}"
        existing = tuple(sorted(by_target.get((ts_id, collection.id), ()))) if ts_id else ()
        write = DeploymentWrite(record=record, desired_fp=desired_fp, task_sequence=spec.task_sequence,
                                wait_for=tuple(tuple(w) for w in waiting),
                                identity=Identity(match=match, existing=existing))
        if live is None:
            candidates = [i for i in by_target.get((ts_id or "", collection.id), ())
                          if ("TaskSequenceDeployment", i) not in p.owned_live_ids]
            made = None if p.plan.adopt else p.interrupted_creation(ref, match, candidates)
            if candidates:
                if made is not None:
                    candidates = [made]
                elif not p.plan.adopt:
                    p.block(obj, ("spec", "collection"),
                            f"{ts_name!r} is already deployed to {collection.name!r} ({candidates[0]}) by a "
                            "deployment this tool does not manage; rerun with --adopt to take it over", "unowned")
                    continue
                live = p.live.deployments[candidates[0]]
                p.add(Action(Verb.ADOPT, ref, Reason.ADOPT, live.id, (), depends, obj.source,
                             write=Adoption(desired_fp=desired_fp),
                             summary=f"take over {live.id}" + (" (made by an interrupted apply)" if made else ""),
                             expected=record_fingerprint(live, p.salt)))
            else:
                # apply refuses to act on an unmanaged deployment of that target that appears after this plan
                write = DeploymentWrite(record=record, desired_fp=desired_fp, task_sequence=spec.task_sequence,
                                        wait_for=write.wait_for,
                                        identity=Identity(match=match, existing=existing, unowned=tuple(candidates)))
                terms = deployment_terms(record, p.live)
                fields = tuple(FieldChange(path, None, value) for path, value in terms.items()
                               if value not in (None, "", [], {}, ()))
                p.add(Action(Verb.CREATE_DEPLOYMENT, ref, Reason.DRIFT if owned_id else Reason.NEW, None,
                             fields, depends, obj.source, write,
                             f"{ts_name} to {collection.name}", risk))
                continue
        expected = record_fingerprint(live, p.salt)
        if (live.package_id, live.collection_id) != (record.package_id, record.collection_id):
            changes = deployment_changes(live, record, p.live)
            p.add(Action(Verb.REPLACE_DEPLOYMENT, ref, p.reason(obj.kind, obj.name, desired_fp), live.id,
                         changes, depends, obj.source, write,
                         "the task sequence or collection of a deployment cannot change in place", risk,
                         expected=expected))
            continue
        changes = diff_deployment(live, record, p.live)
        if changes:
            p.add(Action(Verb.UPDATE_DEPLOYMENT, ref, p.reason(obj.kind, obj.name, desired_fp), live.id,
                         changes, depends, obj.source, write,
                         f"{ts_name} to {collection.name}", risk, expected=expected))


def recheck_unchanged(p: Planning, obj: LoadedObject, ts_obj: LoadedObject, live: DeploymentRecord,
                      changing: set[str]) -> None:
    """Rules a deployment must keep meeting though it does not change itself.

    A sequence edited to partition a disk makes its Required deployments high risk, a sequence given
    a package without a package share breaks run-from-DP, and a collection grows after an
    acknowledgement: the deployment's fingerprint shows none of it. The manifest is only built
    when a rule can apply, so an unchanged estate stays cheap to plan.
    """
    violations = []
    collection = p.live.collections.get(live.collection_id)
    if live.offer_type == 0 and collection is not None:  # only Required deployments can be high risk
        facts = p.effective_facts(ts_obj)
        if facts.deploys_os or facts.high_impact:
            violations += evaluate_high_risk(obj.manifest, facts, collection,  # type: ignore[arg-type]
                                             p.live.verification)[1]
    if ts_obj.name in changing:
        content = p.content_of(p.ts_records[ts_obj.name])
        packages = [p.live.packages[i] for i in content if i in p.live.packages]
        violations += run_from_dp_violations(obj.manifest, packages)  # type: ignore[arg-type]
        for violation in violations:
            p.block(obj, violation.path, f"the change to TaskSequence/{ts_obj.name} makes this deployment break a "
                    f"rule: {violation.message}", violation.rule)
        return
    for violation in violations:
        p.warn(obj, violation.path, f"deployed as it is, but it breaks a rule now: {violation.message}",
               violation.rule)


def content_warning(p: Planning, obj: LoadedObject, ts_name: str, packages: list[Any]) -> list[list[str]]:
    """Warn when content is not yet on any DP the sequence is distributed to; returns what to wait for."""
    dps = p.ts_dps.get(ts_name, set())
    waiting: list[list[str]] = []
    missing = []
    for package in packages:
        installed = [dp for dp in dps if (s := p.live.content.get((package.id, dp))) is not None
                     and s.state is ContentState.INSTALLED and s.installed_version >= package.source_version]
        if not installed:
            missing.append(package)
            waiting.append([package.id, *sorted(dps)])
    if missing:
        listing = ", ".join(f"{pkg.id} ({pkg.name})" for pkg in missing[:5]) + (" …" if len(missing) > 5 else "")
        sending = {a.write.package_id for a in p.plan.actions
                   if a.verb in (Verb.DISTRIBUTE_CONTENT, Verb.REDISTRIBUTE_CONTENT)
                   and hasattr(a.write, "package_id")}
        where = ("no ContentDistribution targets a DP for it" if not dps
                 else "this plan distributes it" if any(pkg.id in sending for pkg in missing)
                 else "its distribution is still in progress")
        p.warn(obj, ("spec", "taskSequence"),
               f"content is not yet installed on any targeted distribution point ({where}): {listing}; clients "
               "cannot run the deployment until it is (apply with --wait-for-content to wait for it)",
               "content-not-installed")
    return waiting if dps else []
