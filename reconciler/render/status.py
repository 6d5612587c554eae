"""`reconcile status`: each object's state, cached from a recent tick or planned now, for people and tools."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO

from reconciler.render.schemas import STATUS_FORMAT_VERSION


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_json(document: dict[str, Any], out: TextIO) -> None:
    json.dump({"format_version": STATUS_FORMAT_VERSION, **document}, out, indent=2, default=str)
    out.write("\n")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def render_text(document: dict[str, Any], out: TextIO) -> None:
    tick = document.get("tick") or {}
    out.write(f"last tick: {tick.get('outcome', 'never')}" + (f" at {_when(tick['at'])}" if tick.get("at") else "")
              + (f", commit {str(tick.get('sha'))[:12]}" if tick.get("sha") else "")
              + (f" ({tick['error']})" if tick.get("error") else "") + "\n")
    checked = document.get("checked") or {}
    if checked.get("at"):
        out.write(f"last checked: {_when(checked['at'])} ({checked.get('outcome')})\n")
    age = document.get("cached_age_seconds")
    if document.get("mode") == "live":
        source = document.get("source") or {}
        commit = f" @ {str(document['commit'])[:12]}" if document.get("commit") else ""
        where = f" with {source.get('describe')}{commit} ({source.get('why')})" if source else ""
        cached = (f"; the controller's cached state is {_age(age)} old" if age is not None
                  else "; no controller has checked the site")
        out.write(f"objects: planned now against the site{where}, read-only, no lease{cached}\n")
    else:
        out.write(f"objects: as the controller saw them {_age(age or 0)} ago (cached; --live plans now)\n")
    last = document.get("last_applied") or {}
    apply = document.get("last_apply") or {}
    by = f" (apply {apply.get('apply_id')}, {_when(apply['at'])}, by {apply.get('who')})" if apply.get("at") else ""
    out.write(f"last applied: {last.get('ref') or '-'} @ {(last.get('sha') or '-')[:12]}{by}\n")
    pause = document.get("paused")
    if pause:
        out.write(f"controller: PAUSED by {pause.get('by')} since {_when(pause['at'])}"
                  + (f": {pause['reason']}" if pause.get("reason") else "")
                  + "; it reports drift and applies nothing until 'reconcile controller resume'\n")
    lease = document.get("lease")
    if lease:
        out.write(f"writer: {lease.get('describe') or lease.get('holder')}, lease ID {lease.get('id')}\n")
    if document.get("error"):
        out.write(f"error: {document['error']}\n")
    for key, value in (document.get("objects") or {}).items():
        out.write(f"  {value:<12} {key}\n")
    counts = document.get("summary") or {}
    if counts:
        out.write("summary: " + ", ".join(f"{number} {state}" for state, number in counts.items()) + "\n")
