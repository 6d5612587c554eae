"""``reconcile history``: applies, newest first, with the commit each came from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TextIO

from reconciler.state import JournalEntry


def render(entries: list[JournalEntry], out: TextIO, output: str = "text") -> None:
    rows = [{
        "time": datetime.fromtimestamp(e.at, UTC).isoformat(timespec="seconds"),
        "plan_id": e.plan_id,
        "ref": e.detail.get("provenance", {}).get("ref"),
        "sha": e.detail.get("provenance", {}).get("sha"),
        "source": e.detail.get("provenance", {}).get("source"),
        "dirty": e.detail.get("provenance", {}).get("dirty", False),
        "planned": e.detail.get("planned", {}),
        "result": e.detail.get("outcome", {}),
        "outcome": e.outcome,
        "who": e.detail.get("who"),
    } for e in entries]
    if output == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    if not rows:
        out.write("No applies recorded yet.\n")
        return
    for row in rows:
        sha = (row["sha"] or "")[:12] or "(not a Git commit)"
        dirty = " +uncommitted changes" if row["dirty"] else ""
        result = row["result"]
        out.write(f"{row['time']}  {row['outcome']:<6}  {row['ref'] or '-'} @ {sha}{dirty}  "
                  f"{result.get('applied', 0)} applied, {result.get('failed', 0)} failed, "
                  f"{result.get('skipped', 0)} skipped  (plan {row['plan_id']}, {row['who']})\n")
