"""``reconcile state check`` and ``reconcile site check``: what a store file holds and what is wrong with it."""

from __future__ import annotations

import json
from typing import TextIO

from reconciler.render.schemas import SITE_CHECK_FORMAT_VERSION
from reconciler.storage import FileCheck


def render_text(what: str, check: FileCheck, advice: str, out: TextIO) -> None:
    """``what`` names the store ("state store"); ``advice`` says what to do when it is damaged or missing."""
    if check.missing:
        out.write(f"{what} {check.path}: {check.problems[0]}\n  {advice}\n")
        return
    out.write(f"{what} {check.path}: {'intact' if check.ok else 'DAMAGED'}\n")
    for problem in check.problems:
        out.write(f"  - {problem}\n")
    if check.schema_version is not None:
        out.write(f"  schema version: {check.schema_version} (this tool knows {check.known_version})\n")
    owned = {k.partition(":")[2]: n for k, n in check.counts.items() if k.startswith("owned:")}
    if owned or any(k.startswith("journal") for k in check.counts):
        detail = ", ".join(f"{kind} {number}" for kind, number in owned.items())
        out.write(f"  owned objects: {sum(owned.values())}" + (f" ({detail})" if detail else "") + "\n")
    for key, number in check.counts.items():
        if not key.startswith("owned:"):
            out.write(f"  {key}: {number}\n")
    if not check.ok:
        out.write(f"  {advice}\n")


def render_json(check: FileCheck, out: TextIO) -> None:
    json.dump({"format_version": SITE_CHECK_FORMAT_VERSION, "path": str(check.path), "ok": check.ok,
               "missing": check.missing, "problems": list(check.problems),
               "schema_version": check.schema_version, "known_version": check.known_version,
               "counts": check.counts}, out, indent=2)
    out.write("\n")
