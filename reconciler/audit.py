"""The audit trail: who changed the site, from which commit and plan, what each action changed, what was refused.

Change management asks of every change to a site: who made it, from what, what exactly changed, was a
high-risk deployment acknowledged, and what was attempted and refused. The journal answers how far an
apply got (it is write-ahead, for recovery); the audit trail answers those questions, one event per
apply, per action, per high-risk acknowledgement, per refusal and per pause, in the state store
(:meth:`~reconciler.state.StateBackend.record_audit`). Changes are stored as the plan shows them, with
secrets already ``(sensitive)``: no value that a plan would mask ever reaches it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.actor import Actor
from reconciler.diff.changes import FieldChange, StepChange
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Action, Plan
from reconciler.plan.document import plan_sha256
from reconciler.state import AuditEvent, AuditQuery, StateBackend

SENSITIVE = "(sensitive)"

#: Why an attempt was refused, as ``reconcile audit`` names it.
REFUSALS = {
    "blocked": "the plan has blocked items",
    "saved-plan": "the saved plan no longer matches the manifests or the site",
    "lease": "another writer holds the site's lease",
    "lease-lost": "the lease was lost before the first write",
    "secrets": "secrets the plan writes cannot be read",
    "refused": "apply refused the plan before the first write",
    "controller": "a self-healing controller follows the branch",
    "rollback": "the apply cannot be rolled back",
}


class AuditQueryError(ReconcilerError):
    """An ``reconcile audit`` option that cannot be read (a date or duration, an object)."""


# -- what an apply came from -----------------------------------------------------------------------------------


def location(source: str, sha: str | None) -> dict[str, str]:
    """Where an apply's manifests live, absolute, so a rollback from another folder finds that commit again.

    A Git ref's source is ``REPO:PATH`` (REPO a folder or a URL); a folder inside a Git working copy is
    recorded as that repository and the folder's path in it. A folder outside Git has only its path.
    """
    if sha and ":" in source and not Path(source).exists():
        repo, _, path = source.rpartition(":")
        if repo and "://" not in repo and not repo.startswith("git@"):
            repo = str(Path(repo).resolve())
        return {"repo": repo, "path": path}
    folder = Path(source)
    found: dict[str, str] = {"folder": str(folder.resolve())}
    try:
        import git

        repo = git.Repo(folder if folder.is_dir() else folder.parent, search_parent_directories=True)
        root = Path(repo.working_tree_dir or "").resolve()
        found.update({"repo": str(root), "path": folder.resolve().relative_to(root).as_posix() or "."})
    except Exception:  # not in a Git working copy (or no git at all): the folder is all there is
        pass
    return found


def plan_digest(plan: Plan) -> str:
    """The whole SHA-256 of the plan's content; its ID is the first 12 digits, kept short for people."""
    return plan_sha256(plan)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- changes, masked ---------------------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.loads(json.dumps(value, default=str))


def change_json(change: FieldChange) -> dict[str, Any]:
    """A field change as the audit keeps it: a sensitive one only says that it changed."""
    if change.sensitive:
        return {"path": change.path, "before": None if change.before is None else SENSITIVE,
                "after": None if change.after is None else SENSITIVE, "sensitive": True}
    return {"path": change.path, "before": _value(change.before), "after": _value(change.after)}


def step_change_json(change: StepChange) -> dict[str, Any]:
    return {"op": change.op.value, "path": change.display_path, "type": change.step_type,
            "group": change.is_group, "position": change.position, "previous": change.previous,
            "fields": [change_json(f) for f in change.fields]}


def _risk(action: Action) -> dict[str, Any] | None:
    return action.risk.to_json() if action.risk is not None else None


# -- events -----------------------------------------------------------------------------------------------------


def apply_events(apply_id: str, plan: Plan, results: Iterable[tuple[Action, str, str]], actor: Actor,
                 provenance: dict[str, Any], detail: dict[str, Any], at: float | None = None) -> list[AuditEvent]:
    """One ``apply`` event and one ``action`` event per action run (applied, failed or skipped)."""
    at = time.time() if at is None else at
    results = list(results)
    counts = {o: sum(1 for _, outcome, _ in results if outcome == o) for o in ("applied", "failed", "skipped")}
    outcome = "ok" if not counts["failed"] and not counts["skipped"] and len(results) == len(plan.actions) \
        else "failed" if counts["failed"] or counts["skipped"] else "stopped"
    events = [AuditEvent(at=at, event="apply", actor=str(actor), apply_id=apply_id, plan_id=plan.plan_id,
                         outcome=outcome, detail={**detail, "provenance": provenance, "planned": plan.counts(),
                                                  "outcome": counts, "actor": actor.to_json(),
                                                  "options": {"adopt": plan.adopt, "prune": plan.prune,
                                                              "targets": list(plan.targets)}})]
    for action, result, message in results:
        events.append(AuditEvent(
            at=at, event="action", actor=str(actor), apply_id=apply_id, plan_id=plan.plan_id, object=str(action.ref),
            outcome=result, detail={"verb": action.verb.value, "reason": action.reason.value, "live_id": action.live_id,
                                    "summary": action.summary, "message": message,
                                    "source": str(action.source) if action.source else None,
                                    "changes": [change_json(c) for c in action.changes],
                                    "step_changes": [step_change_json(s) for s in action.step_changes],
                                    "high_risk": _risk(action)}))
    return events


def refusal_event(reason: str, message: str, actor: Actor, plan: Plan | None = None,
                  provenance: dict[str, Any] | None = None, detail: dict[str, Any] | None = None) -> AuditEvent:
    """An attempt to write that was refused before anything was applied."""
    extra: dict[str, Any] = {"reason": reason, "message": message, "actor": actor.to_json(), **(detail or {})}
    if provenance is not None:
        extra["provenance"] = provenance
    if plan is not None:
        extra["planned"] = plan.counts()
        if plan.blocked:
            extra["blocked"] = [{"object": str(b.ref), "message": b.message, "rule": b.rule,
                                 "source": str(b.source) if b.source else None} for b in plan.blocked]
    return AuditEvent(at=time.time(), event="refused", actor=str(actor), plan_id=plan.plan_id if plan else None,
                      outcome="refused", detail=extra)


# -- reading ----------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: a duration back from now (``90m``, ``24h``, ``7d``, ``2w``) or a date (``2026-05-01``,
    ``2026-05-01T10:00``, with or without a UTC offset; a date without one is UTC)."""
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2).lower()]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        shown = text if len(text) <= 40 else f"{text[:40]!r}… ({len(text)} characters)"
        raise AuditQueryError(f"--since {shown} is neither a date (2026-05-01, 2026-05-01T10:00Z) nor a duration "
                              "(90m, 24h, 7d, 2w)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_object(text: str) -> str:
    kind, slash, name = text.partition("/")
    if not slash or not kind or not name:
        shown = text if len(text) <= 40 else f"{text[:40]!r}… ({len(text)} characters)"
        raise AuditQueryError(f"--object {shown} is not KIND/NAME (for example TaskSequence/windows-11-install)")
    return f"{kind}/{name}"


def read_audit(state: StateBackend, since: float | None = None, obj: str | None = None,
               limit: int | None = None) -> list[AuditEvent]:
    return state.audit_events(AuditQuery(since=since, object=obj, limit=limit))


def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
