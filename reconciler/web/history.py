"""The history the web view shows, read from the state store's audit trail: applies, each object's actions,
high-risk acknowledgements, refusals and pauses (:mod:`reconciler.audit` writes them, secrets already masked).

Only the newest ``window`` events are read: a controller that has run for a year holds far more than a page
needs, and the pages say how far back they look.
"""

from __future__ import annotations

from typing import Any

from reconciler.state import AuditEvent, AuditQuery, StateBackend
from reconciler.web.estate import ApplyRecord, AuditRecord, History, ObjectEvent

#: Audit events read for the history page and each object's history.
DEFAULT_WINDOW = 10_000


def _apply(event: AuditEvent) -> ApplyRecord:
    provenance: dict[str, Any] = event.detail.get("provenance") or {}
    return ApplyRecord(at=event.at, apply_id=event.apply_id or "", plan_id=event.plan_id or "",
                       ref=str(provenance.get("ref") or ""), sha=str(provenance.get("sha") or ""),
                       source=str(provenance.get("source") or ""), who=event.actor,
                       planned=dict(event.detail.get("planned") or {}), result=dict(event.detail.get("outcome") or {}),
                       outcome=event.outcome or "")


def read_history(state: StateBackend, window: int = DEFAULT_WINDOW) -> History:
    """The newest ``window`` audit events: applies newest first, each object's actions with the commit and actor of
    their apply, and every other event (high-risk, refused, pause, resume) for the audit table."""
    events = state.audit_events(AuditQuery(limit=window))
    applies = {e.apply_id: _apply(e) for e in events if e.event == "apply" and e.apply_id}
    by_object: dict[str, list[ObjectEvent]] = {}
    audits: list[AuditRecord] = []
    for event in events:
        if event.event == "apply":
            continue
        if event.event == "action" and event.object:
            owner = applies.get(event.apply_id or "")
            detail = event.detail
            by_object.setdefault(event.object, []).append(ObjectEvent(
                at=event.at, apply_id=event.apply_id or "", plan_id=event.plan_id or "",
                action=str(detail.get("verb") or ""), reason=str(detail.get("reason") or ""),
                outcome=event.outcome or "", message=str(detail.get("message") or ""),
                changes=len(detail.get("changes") or ()) + len(detail.get("step_changes") or ()),
                sha=owner.sha if owner else "", ref=owner.ref if owner else "", who=event.actor))
            continue
        audits.append(AuditRecord(at=event.at, event=event.event, actor=event.actor, object=event.object or "",
                                  outcome=event.outcome or "", apply_id=event.apply_id or "",
                                  plan_id=event.plan_id or "", detail=dict(event.detail)))
    return History(applies=tuple(sorted(applies.values(), key=lambda a: a.at, reverse=True)),
                   by_object={k: tuple(reversed(v)) for k, v in by_object.items()},
                   audits=tuple(reversed(audits)), window=window)
