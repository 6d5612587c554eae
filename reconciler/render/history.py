"""``reconcile history``: applies, newest first, each with its apply ID (what ``reconcile rollback`` takes) and the
commit it came from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TextIO

from reconciler.render.schemas import HISTORY_FORMAT_VERSION
from reconciler.state import JournalEntry


def render(entries: list[JournalEntry], out: TextIO, output: str = "text") -> None:
    rows = [{
        "time": datetime.fromtimestamp(e.at, UTC).isoformat(timespec="seconds"),
        "apply_id": e.apply_id,
        "plan_id": e.plan_id,
        "ref": e.detail.get("provenance", {}).get("ref"),
        "sha": e.detail.get("provenance", {}).get("sha"),
        "source": e.detail.get("provenance", {}).get("source"),
        "dirty": e.detail.get("provenance", {}).get("dirty", False),
        "planned": e.detail.get("planned", {}),
        "result": e.detail.get("outcome", {}),
        "outcome": e.outcome,
        "who": e.detail.get("who"),
        "saved_plan": e.detail.get("saved_plan"),
        "rollback_of": e.detail.get("rollback_of"),
    } for e in entries]
    if output == "json":
        json.dump({"format_version": HISTORY_FORMAT_VERSION, "applies": rows}, out, indent=2)
        out.write("\n")
        return
    if not rows:
        out.write("No applies recorded yet.\n")
        return
    for row in rows:
        sha = (row["sha"] or "")[:12] or "(not a Git commit)"
        dirty = " +uncommitted changes" if row["dirty"] else ""
        result = row["result"]
        rollback = f", rollback of {row['rollback_of']}" if row["rollback_of"] else ""
        out.write(f"{row['time']}  {row['apply_id'] or '-':<13}  {row['outcome']:<6}  "
                  f"{row['ref'] or '-'} @ {sha}{dirty}  "
                  f"{result.get('applied', 0)} applied, {result.get('failed', 0)} failed, "
                  f"{result.get('skipped', 0)} skipped  (plan {row['plan_id']}, {row['who']}{rollback})\n")
