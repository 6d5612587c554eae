"""``reconcile audit``: the audit trail for people (text, each apply with its actions beneath) and tools (JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO

from reconciler.state import AuditEvent

#: 1: events with at, time, event, actor, apply_id, plan_id, object, outcome and detail.
AUDIT_FORMAT_VERSION = "1"

_SYMBOL = {"new": "+", "orphan": "-"}


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {"seq": event.seq, "at": event.at,
            "time": datetime.fromtimestamp(event.at, UTC).isoformat(timespec="seconds"), "event": event.event,
            "actor": event.actor, "apply_id": event.apply_id, "plan_id": event.plan_id, "object": event.object,
            "outcome": event.outcome, "detail": event.detail}


def render_json(events: list[AuditEvent], out: TextIO) -> None:
    json.dump({"format_version": AUDIT_FORMAT_VERSION, "events": [event_json(e) for e in events]}, out, indent=2,
              ensure_ascii=False, default=str)
    out.write("\n")


def _value(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _change_lines(change: dict[str, Any], indent: str) -> list[str]:
    before, after = change.get("before"), change.get("after")
    if (isinstance(before, str) and "\n" in before) or (isinstance(after, str) and "\n" in after):
        return [f"{indent}{change['path']}: changed (multi-line text; --output json has it whole)"]
    return [f"{indent}{change['path']}: {_value(before)} → {'(removed)' if after is None else _value(after)}"]


def _risk_line(risk: dict[str, Any]) -> str:
    ack = "acknowledged" if risk.get("acknowledged") else (
        "NOT acknowledged" if risk.get("needs_acknowledgement") else "no acknowledgement needed")
    return (f"⚠ HIGH RISK: {'; '.join(risk.get('reasons') or [])}; collection {risk.get('collection_name')!r} "
            f"({risk.get('collection')}) had {risk.get('member_count')} members; {ack}")


def _provenance(detail: dict[str, Any]) -> str:
    provenance = detail.get("provenance") or {}
    sha = (provenance.get("sha") or "")[:12] or "(not a Git commit)"
    dirty = " +uncommitted changes" if provenance.get("dirty") else ""
    return f"{provenance.get('ref') or '-'} @ {sha}{dirty} ({provenance.get('source') or '?'})"


def _apply_lines(event: AuditEvent) -> list[str]:
    detail = event.detail
    counts = detail.get("outcome") or {}
    lines = [f"{_when(event.at)}  apply {event.apply_id or '-'} by {event.actor}: {event.outcome}, "
             f"{counts.get('applied', 0)} applied, {counts.get('failed', 0)} failed, "
             f"{counts.get('skipped', 0)} skipped"]
    plan = f"plan {event.plan_id}"
    if detail.get("plan_digest"):
        plan += f" (sha256 {detail['plan_digest']})"
    lines.append(f"    from {_provenance(detail)}; {plan}")
    saved = detail.get("saved_plan")
    if saved:
        lines.append(f"    saved plan {saved.get('file')} (sha256 {saved.get('sha256')})")
    if detail.get("rollback_of"):
        lines.append(f"    rollback of apply {detail['rollback_of']}")
    return lines


def _action_lines(event: AuditEvent, indent: str = "    ") -> list[str]:
    detail = event.detail
    symbol = _SYMBOL.get(str(detail.get("reason")), "~")
    lines = [f"{indent}{symbol} {event.object} {detail.get('verb')} ({detail.get('reason')}): {event.outcome}"
             + (f" ({detail['message']})" if detail.get("message") and event.outcome != "applied" else "")]
    if detail.get("high_risk"):
        lines.append(f"{indent}    {_risk_line(detail['high_risk'])}")
    for change in detail.get("changes") or []:
        lines.extend(_change_lines(change, indent + "    "))
    for step in detail.get("step_changes") or []:
        lines.append(f"{indent}    {step.get('op')} {'group' if step.get('group') else 'step'} {step.get('path')}")
        for change in step.get("fields") or []:
            lines.extend(_change_lines(change, indent + "        "))
    return lines


def _other_lines(event: AuditEvent) -> list[str]:
    detail = event.detail
    head = f"{_when(event.at)}  {event.event}"
    if event.event == "refused":
        message = str(detail.get("message") or "")
        first, *rest = message.splitlines() or [""]
        lines = [f"{head} ({detail.get('reason')}) by {event.actor}: {first}"]
        lines.extend(f"    {line.strip()}" for line in rest)
        return lines
    if event.event == "high-risk":
        return [f"{head} {event.object} by {event.actor}: collection {detail.get('collection_name')!r} "
                f"({detail.get('collection')}), {detail.get('member_count')} members, "
                f"{'acknowledged' if detail.get('acknowledged') else 'no acknowledgement needed'}"
                + (f", apply {event.apply_id}" if event.apply_id else "")]
    if event.event in ("pause", "resume"):
        reason = detail.get("reason")
        return [f"{head} of the controllers of site {detail.get('site')} by {event.actor}"
                + (f": {reason}" if reason else "")]
    return [f"{head} by {event.actor}: {json.dumps(detail, default=str)}"]


def render_text(events: list[AuditEvent], out: TextIO) -> None:
    """Each apply with its actions beneath it; refusals, high-risk entries and pauses on their own lines."""
    if not events:
        out.write("No audit events recorded for this selection.\n")
        return
    shown = {e.apply_id for e in events if e.event == "apply" and e.apply_id}
    actions: dict[str, list[AuditEvent]] = {}
    for event in events:
        if event.event == "action" and event.apply_id in shown:
            actions.setdefault(str(event.apply_id), []).append(event)
    for event in events:
        if event.event == "apply":
            lines = _apply_lines(event)
            for action in actions.get(str(event.apply_id), []):
                lines.extend(_action_lines(action))
        elif event.event == "action":
            if event.apply_id in shown:
                continue
            lines = [f"{_when(event.at)}  action of apply {event.apply_id} by {event.actor}", *_action_lines(event)]
        else:
            lines = _other_lines(event)
        out.write("\n".join(lines) + "\n")
