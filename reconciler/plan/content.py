"""Planning content: each ContentDistribution puts the content its sequence references on its DPs.

Content a DP lacks is distributed, content that failed or holds an older version is redistributed,
content still in progress is left to finish. Content a distribution no longer targets is removed only
with ``--prune``; without it a warning says where it stays.
"""

from __future__ import annotations

from collections import defaultdict

from reconciler.diff.content import content_gaps
from reconciler.diff.normalize import Unresolved
from reconciler.plan.actions import Action, ContentWrite, FieldChange, ObjectRef, Reason, Verb
from reconciler.plan.context import Planning, content_fingerprint
from reconciler.site.records import ContentStatus
from reconciler.source.loader import LoadedObject


def _status_text(status: ContentStatus) -> str:
    return f"{status.state.name.lower().replace('_', ' ')}, version {status.installed_version}"


def status_on(p: Planning, package_id: str) -> dict[str, ContentStatus]:
    """The package's state per DP, as the site's content status answers it (the snapshot of this plan)."""
    return {dp: s for (pkg, dp), s in p.live.content.items() if pkg == package_id}


def plan_content(p: Planning) -> None:
    status_by_package: dict[str, dict[str, ContentStatus]] = defaultdict(dict)
    for (package_id, dp), status in p.live.content.items():
        status_by_package[package_id][dp] = status
    for obj in p.desired.of_kind("ContentDistribution"):
        spec = obj.manifest.spec  # type: ignore[union-attr]
        ref = ObjectRef(obj.kind, obj.name)
        ts_ref = ObjectRef("TaskSequence", spec.task_sequence)
        if spec.task_sequence in p.ts_blocked:
            p.block(obj, ("spec", "taskSequence"), f"waits for TaskSequence/{spec.task_sequence}, which is blocked",
                    "dependency")
            continue
        record = p.ts_records.get(spec.task_sequence)
        if record is None or not p.wanted(obj):
            continue
        dps = target_dps(p, obj)
        if dps is None:
            continue
        pairs = []
        for package_id in p.content_of(record):
            package = p.live.packages.get(package_id)
            if package is None:
                continue  # a blocked reference, reported with the task sequence
            status = status_by_package.get(package_id, {})
            pairs.extend([package_id, dp] for dp in dps)
            lacking, failed = content_gaps(package, dps, status)
            if lacking:
                p.add(Action(Verb.DISTRIBUTE_CONTENT, ref, Reason.CONTENT, package_id,
                             (FieldChange("distributionPoints", None, lacking),), (ts_ref,), obj.source,
                             ContentWrite(package_id=package_id, dps=tuple(lacking)),
                             f"{package_id} ({package.name}) to {len(lacking)} DP(s)",
                             expected=content_fingerprint(package_id, lacking, status)))
            if failed:
                changes = tuple(FieldChange(f"distributionPoints.{dp}", _status_text(status[dp]),
                                            f"installed, version {package.source_version}") for dp in failed)
                p.add(Action(Verb.REDISTRIBUTE_CONTENT, ref, Reason.CONTENT, package_id, changes, (ts_ref,),
                             obj.source, ContentWrite(package_id=package_id, dps=tuple(failed)),
                             f"{package_id} ({package.name}) on {len(failed)} DP(s)",
                             expected=content_fingerprint(package_id, failed, status)))
        p.content_pairs[obj.name] = pairs
        p.ts_dps.setdefault(spec.task_sequence, set()).update(dps)


def target_dps(p: Planning, obj: LoadedObject) -> list[str] | None:
    """The DPs a distribution targets: by name, through DP groups, and through collections' DP groups."""
    spec = obj.manifest.spec  # type: ignore[union-attr]
    dps: dict[str, None] = {}
    known = {d.casefold(): d for d in p.live.distribution_points}
    ok = True
    for i, name in enumerate(spec.distribution_points):
        if name.casefold() not in known:
            p.block(obj, ("spec", "distributionPoints", i),
                    f"distribution point {name!r} does not exist in site {p.live.site_code}", "reference")
            ok = False
        else:
            dps[known[name.casefold()]] = None
    groups = {g.casefold(): g for g in p.live.dp_groups}
    for i, name in enumerate(spec.distribution_point_groups):
        group = groups.get(name.casefold())
        if group is None:
            p.block(obj, ("spec", "distributionPointGroups", i),
                    f"distribution point group {name!r} does not exist in site {p.live.site_code}", "reference")
            ok = False
            continue
        for dp in p.live.dp_groups[group].members:
            dps[known.get(dp.casefold(), dp)] = None
    for i, coll_ref in enumerate(spec.collections):
        try:
            collection = p.resolver.collection(coll_ref, ("spec", "collections", i))
        except Unresolved as exc:
            p.block(obj, exc.path, exc.message, "reference")
            ok = False
            continue
        associated = [g for g in p.live.dp_groups.values() if collection.id in g.collections]
        if not associated:
            p.block(obj, ("spec", "collections", i), f"collection {collection.name!r} has no associated "
                    "distribution point groups", "reference")
            ok = False
        for group in associated:
            for dp in group.members:
                dps[known.get(dp.casefold(), dp)] = None
    return sorted(dps) if ok else None


def narrowed_content(p: Planning) -> None:
    """Content a ContentDistribution put on DPs it no longer targets (a DP group dropped from it)."""
    wanted = {tuple(pair) for v in p.content_pairs.values() for pair in v}
    for obj in p.desired.of_kind("ContentDistribution"):
        if obj.name not in p.content_pairs or not p.wanted(obj):
            continue
        applied = p.applied.get((obj.kind, obj.name))
        previous = applied.extra.get("pairs", []) if applied else []
        by_package: dict[str, list[str]] = defaultdict(list)
        for package_id, dp in previous:
            if (package_id, dp) not in wanted and (package_id, dp) in p.live.content:
                by_package[package_id].append(dp)
        ref = ObjectRef(obj.kind, obj.name)
        for package_id, dps in sorted(by_package.items()):
            if p.plan.prune:
                p.add(Action(Verb.REMOVE_CONTENT, ref, Reason.ORPHAN, package_id,
                             (FieldChange("distributionPoints", dps, None),), source=obj.source,
                             write=ContentWrite(package_id=package_id, dps=tuple(dps), keep_ownership=True),
                             summary=f"{package_id} from {len(dps)} DP(s) no longer targeted",
                             expected=content_fingerprint(package_id, dps, status_on(p, package_id))))
            else:
                p.warn(obj, ("spec",), f"{package_id} stays on {', '.join(dps)}, which this ContentDistribution no "
                       "longer targets; run with --prune to remove it", "content-not-targeted", source=obj.source)
