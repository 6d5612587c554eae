"""``reconcile status``: each object's real state, from a recent controller tick or from a plan made now.

A controller records what it saw on every tick; that is the site's state only while the controller runs.
After a one-shot apply, once a controller stopped, or when nobody ran one, repeating its last tick would
report an object changed by hand as synced. So status uses the cached tick only while it is recent (its
last check is younger than twice the controller's interval, or 10 minutes when the interval is unknown,
and no apply came after it); otherwise, or with ``--live``, it plans against the site now: read-only,
without the lease, with the manifests the last apply or the controller used (or those named).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.audit import when
from reconciler.config import Config
from reconciler.controller.tick import object_status
from reconciler.errors import ReconcilerError
from reconciler.plan.planner import make_plan
from reconciler.site import Site
from reconciler.source.loader import DesiredState
from reconciler.source.select import load_folder, load_ref
from reconciler.state import AuditQuery, StateBackend
from reconciler.validate import has_errors, validate

#: How old a controller's last check may be when its interval is unknown, for status to repeat it.
DEFAULT_FRESH_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Freshness:
    """Whether the controller's cached view may stand for the site now, and why not."""

    fresh: bool
    age: float | None  # seconds since the controller last checked the site; None: it never did
    reason: str


def freshness(state: StateBackend, now: float | None = None) -> Freshness:
    """Whether the controller's last check is recent enough to report instead of planning now."""
    now = time.time() if now is None else now
    checked = state.get_status("checked") or {}
    at = checked.get("at")
    if not at:
        return Freshness(False, None, "no controller has checked the site")
    age = max(now - float(at), 0.0)
    controller = state.get_status("controller") or {}
    interval = controller.get("interval")
    window = 2 * float(interval) if interval else DEFAULT_FRESH_SECONDS
    applies = state.applies(1)
    if applies and applies[0].at > float(at):
        return Freshness(False, age, f"an apply ({applies[0].apply_id}) came after the controller's last check")
    stopped = controller.get("stopped_at")
    if stopped and float(stopped) >= float(at) and not (controller.get("started_at") or 0) > float(stopped):
        return Freshness(False, age, f"the controller stopped at {when(float(stopped))}")
    if age > window:
        why = f"twice the controller's {float(interval):.0f} s interval" if interval else "10 minutes"
        return Freshness(False, age, f"the controller's last check is {age:.0f} s old, older than {why}")
    return Freshness(True, age, f"the controller checked the site {age:.0f} s ago")


@dataclass(frozen=True, slots=True)
class StatusSource:
    """Which manifests a live status plans with, and why those."""

    folder: Path | None = None
    repo: str | None = None
    ref: str | None = None
    path: str = "manifests"
    why: str = ""

    def describe(self) -> str:
        if self.repo:
            return f"{self.ref or 'HEAD'}:{self.path} of {self.repo}"
        return str(self.folder)

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder) if self.folder else None, "repo": self.repo, "ref": self.ref,
                "path": self.path, "why": self.why}


def status_source(state: StateBackend, path: Path | None, repo: str | None, ref: str | None) -> StatusSource | None:
    """The manifests to plan with: those named; else the controller's branch; else the last apply's; else manifests/."""
    if repo or ref:
        return StatusSource(repo=repo or ".", ref=ref or "HEAD", path=(path or Path("manifests")).as_posix(),
                            why="named on the command line")
    if path is not None:
        return StatusSource(folder=path, why="named on the command line")
    controller = state.get_status("controller") or {}
    if controller.get("repo"):
        return StatusSource(repo=str(controller["repo"]), ref=controller.get("ref") or "main",
                            path=controller.get("path") or "manifests", why="the branch the controller follows")
    applies = state.applies(1)
    if applies:
        detail = applies[0].detail
        where = detail.get("location") or {}
        provenance = detail.get("provenance") or {}
        if where.get("folder") and Path(where["folder"]).is_dir():
            return StatusSource(folder=Path(where["folder"]),
                                why=f"the folder of the last apply ({applies[0].apply_id})")
        if where.get("repo") and provenance.get("ref"):
            return StatusSource(repo=where["repo"], ref=provenance["ref"], path=where.get("path") or "manifests",
                                why=f"the branch of the last apply ({applies[0].apply_id})")
    if Path("manifests").is_dir():
        return StatusSource(folder=Path("manifests"), why="the default folder")
    return None


def load_source(source: StatusSource, settings: Config, cache_dir: Path) -> tuple[DesiredState, str | None]:
    """The manifests of a source and the commit they came from (None for a folder outside Git)."""
    limit = settings.limits.max_manifest_bytes
    if source.repo:
        desired, provenance, _ = load_ref(source.repo, source.ref or "HEAD", source.path, cache_dir,
                                          max_file_bytes=limit)
        return desired, provenance.sha
    assert source.folder is not None
    desired, provenance = load_folder(source.folder, max_file_bytes=limit)
    return desired, provenance.sha


def live_objects(site: Site, state: StateBackend, settings: Config, desired: DesiredState) -> dict[str, Any]:
    """Plan against the site now (read-only, no lease) and say per object: synced, out of sync, drifted, blocked,
    failed (its last applied action failed and it is still not as the manifest says)."""
    findings = validate(desired, settings)
    if has_errors(findings):
        errors = [f for f in findings if f.severity.value == "error"]
        return {"objects": {o.key: "blocked" for o in desired.objects},
                "error": f"the manifests have {len(errors)} error(s); first: {errors[0].render()}"}
    plan = make_plan(desired, site.read(), state, paths=site.paths(), scope=settings.scope)
    objects = object_status(desired, plan)
    for action in plan.actions:
        key = str(action.ref)
        last = state.audit_events(AuditQuery(object=key, events=("action",), limit=1))
        if last and last[0].outcome == "failed":
            objects[key] = "failed"
    return {"objects": dict(sorted(objects.items())), "error": None, "plan_id": plan.plan_id,
            "orphans": [str(o) for o in plan.orphans]}


def summary(objects: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in objects.values():
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


class StatusError(ReconcilerError):
    """Status could not plan against the site (no manifests to plan with)."""
