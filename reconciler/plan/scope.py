"""The repository's scope: what its manifests may touch on the site (``scope:`` in ``reconcile.yaml``).

An OSD repository must not be able to deploy to any collection of the hierarchy just because a pull
request names one. ``reconcile.yaml`` is read from the local disk, never from the branch, so a pull request
cannot widen its own scope. After every kind is planned, each manifest is checked against the allow-lists:
a task sequence's console folder, the collection of a deployment or of collection variables, and the
distribution points and DP groups content goes to. Anything outside is a blocked item with the manifest's
file:line and field, and the rule it breaks (``reconcile.yaml:7: scope.collections``), so nothing is applied.
Every manifest is checked, changed or not: a scope narrowed after an apply blocks what now lies outside it.

Without a ``scope:`` section nothing is restricted, and the plan header says so. The site's own role-based
administration still applies on a real site: its refusals are reported by the site call that met them.
"""

from __future__ import annotations

from typing import Any

from reconciler.config import SCOPE_LISTS, Scope
from reconciler.diff.normalize import Unresolved
from reconciler.plan.context import Planning
from reconciler.source.desired import LoadedObject

#: What a plan says when ``reconcile.yaml`` has no ``scope:`` section.
UNRESTRICTED = ("no scope in reconcile.yaml: these manifests may use any console folder, collection, distribution "
                "point and DP group the site's role-based administration lets the account use")


def scope_summary(scope: Scope | None) -> dict[str, Any]:
    """The scope as the plan document carries it: every list (None: not restricted) and the file it is from."""
    if scope is None:
        return {"restricted": False, "file": None, **{_snake(n): None for n in SCOPE_LISTS}}
    return {"restricted": True, "file": str(scope.file),
            **{_snake(n): list(v) if v is not None else None for n, v in scope.lists().items()}}


def describe_scope(summary: dict[str, Any] | None) -> str:
    """One line for a plan header or ``site check``: the lists, or that there is no scope."""
    if not summary or not summary.get("restricted"):
        return UNRESTRICTED
    parts = []
    for name in SCOPE_LISTS:
        values = summary.get(_snake(name))
        if values is not None:
            parts.append(f"{name} {', '.join(values) if values else '(none)'}")
    others = [n for n in SCOPE_LISTS if summary.get(_snake(n)) is None]
    text = "; ".join(parts) if parts else "no list (nothing restricted)"
    return f"{summary['file']}: {text}" + (f"; any {', '.join(others)}" if others and parts else "")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _fold(text: str) -> str:
    return text.casefold().strip()


def _folder(text: str | None) -> str:
    """A console path folded for comparison: ``\\`` and ``/`` alike, no leading or trailing separator."""
    return "/".join(p for p in (text or "").replace("\\", "/").split("/") if p).casefold()


def folder_allowed(folder: str | None, allowed: tuple[str, ...]) -> bool:
    """A folder is in scope when it is an allowed folder or below one (``/`` allows the whole tree)."""
    wanted = _folder(folder)
    for entry in allowed:
        root = _folder(entry)
        if not root or wanted == root or wanted.startswith(root + "/"):
            return True
    return False


def plan_scope(p: Planning, scope: Scope | None) -> None:
    """Block every manifest that reaches outside the scope; record the scope on the plan for its header."""
    p.plan.scope = scope_summary(scope)
    if scope is None:
        return
    for obj in p.desired.objects:
        if not p.wanted(obj):
            continue
        if obj.kind == "TaskSequence":
            _check_folder(p, obj, scope)
        elif obj.kind in ("TaskSequenceDeployment", "CollectionVariables"):
            _check_collection(p, obj, scope)
        elif obj.kind == "ContentDistribution":
            _check_content(p, obj, scope)


def _listing(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "(none)"


def _check_folder(p: Planning, obj: LoadedObject, scope: Scope) -> None:
    if scope.folders is None:
        return
    folder = obj.manifest.spec.folder  # type: ignore[union-attr]
    if folder_allowed(folder, scope.folders):
        return
    shown = f"folder {folder!r}" if folder else "the console's root folder (spec.folder is not set)"
    p.block(obj, ("spec", "folder"), f"{shown} is outside this repository's scope ({scope.rule('folders')}: "
            f"{_listing(scope.folders)}); move the task sequence into one of them, or widen the scope",
            "scope-folders")


def _check_collection(p: Planning, obj: LoadedObject, scope: Scope) -> None:
    if scope.collections is None:
        return
    ref = obj.manifest.spec.collection  # type: ignore[union-attr]
    path = ("spec", "collection")
    allowed = {_fold(c) for c in scope.collections}
    try:
        found = p.resolver.collection(ref, path)
        names, shown = {_fold(found.name), _fold(found.id)}, f"collection {found.name!r} ({found.id})"
    except Unresolved:  # the kind's planner already blocked it as missing; the scope still applies as written
        written = ref.name or ref.id or ""
        names, shown = {_fold(written)}, f"collection {written!r}"
    if names & allowed:
        return
    what = "a deployment" if obj.kind == "TaskSequenceDeployment" else "collection variables"
    p.block(obj, path, f"{shown} is outside this repository's scope ({scope.rule('collections')}: "
            f"{_listing(scope.collections)}); {what} may target only those collections", "scope-collections")


def _check_content(p: Planning, obj: LoadedObject, scope: Scope) -> None:
    dps, groups = scope.distribution_points, scope.distribution_point_groups
    if dps is None and groups is None:
        return
    allowed_groups = {_fold(g) for g in groups or ()}
    member_of_allowed = {_fold(m) for g in p.live.dp_groups.values() if _fold(g.name) in allowed_groups
                         for m in g.members}
    allowed_dps = {_fold(d) for d in dps or ()} | member_of_allowed
    rules = " and ".join(scope.rule(n) for n, v in (("distributionPoints", dps), ("distributionPointGroups", groups))
                         if v is not None)

    def dp_ok(name: str) -> bool:
        return _fold(name) in allowed_dps

    def group_ok(name: str) -> bool:
        if _fold(name) in allowed_groups:
            return True
        live = next((g for g in p.live.dp_groups.values() if _fold(g.name) == _fold(name)), None)
        # A group not listed is in scope only when every DP it holds is: content goes to all its members.
        return live is not None and bool(live.members) and all(dp_ok(m) for m in live.members)

    spec = obj.manifest.spec  # type: ignore[union-attr]
    for i, dp in enumerate(spec.distribution_points):
        if not dp_ok(dp):
            p.block(obj, ("spec", "distributionPoints", i), f"distribution point {dp!r} is outside this "
                    f"repository's scope ({rules}); content may go only to the DPs and DP groups listed there",
                    "scope-distribution-points")
    for i, group in enumerate(spec.distribution_point_groups):
        if not group_ok(group):
            p.block(obj, ("spec", "distributionPointGroups", i), f"DP group {group!r} is outside this "
                    f"repository's scope ({rules}); content may go only to the DPs and DP groups listed there",
                    "scope-distribution-point-groups")
    for i, ref in enumerate(spec.collections):
        try:
            collection = p.resolver.collection(ref, ("spec", "collections", i))
        except Unresolved:
            continue  # blocked as missing by the content planner
        for group in sorted(g.name for g in p.live.dp_groups.values() if collection.id in g.collections):
            if not group_ok(group):
                p.block(obj, ("spec", "collections", i), f"collection {collection.name!r} sends content to its "
                        f"DP group {group!r}, which is outside this repository's scope ({rules})",
                        "scope-distribution-point-groups")
