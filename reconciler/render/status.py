"""`reconcile status`: what the controller last saw, for people (text) and tools (JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_json(document: dict[str, Any], out: TextIO) -> None:
    json.dump(document, out, indent=2, default=str)
    out.write("\n")


def render_text(document: dict[str, Any], out: TextIO) -> None:
    tick = document.get("tick") or {}
    out.write(f"last tick: {tick.get('outcome', 'never')}" + (f" at {_when(tick['at'])}" if tick.get("at") else "")
              + (f", commit {str(tick.get('sha'))[:12]}" if tick.get("sha") else "")
              + (f" ({tick['error']})" if tick.get("error") else "") + "\n")
    checked = document.get("checked") or {}
    if checked.get("at"):
        out.write(f"last checked: {_when(checked['at'])} ({checked.get('outcome')})\n")
    last = document.get("last_applied") or {}
    out.write(f"last applied: {last.get('ref') or '-'} @ {(last.get('sha') or '-')[:12]}\n")
    lease = document.get("lease")
    if lease:
        out.write(f"writer: {lease.get('describe') or lease.get('holder')}, lease ID {lease.get('id')}\n")
    for key, value in (document.get("objects") or {}).items():
        out.write(f"  {value:<12} {key}\n")
