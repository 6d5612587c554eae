"""``reconcile prestage``: what was prestaged, where the file is, and how to fetch it from the WinRM host."""

from __future__ import annotations

import json
from pathlib import PureWindowsPath
from typing import Any, TextIO

from reconciler.prestage import LISTING_NOTE, PrestageResult
from reconciler.render.schemas import PRESTAGE_FORMAT_VERSION


def fetch_hint(host: str, path: str) -> str:
    """How to get a file written on the WinRM host: it is already on a share, or through the host's admin share."""
    if path.startswith("\\\\"):
        return f"it is on the share {path}; copy it from there to the distribution point"
    windows = PureWindowsPath(path)
    drive = windows.drive.rstrip(":")
    rest = str(windows).removeprefix(windows.anchor)
    share = f"\\\\{host}\\{drive}$\\{rest}"
    unix = rest.replace("\\", "/")
    return (f"fetch it from {host}: over the administrative share {share} (from Linux: smbclient "
            f"'//{host}/{drive}$' -k -c 'get \"{unix}\"'), or from Windows PowerShell: Copy-Item -FromSession "
            f"(New-PSSession {host}) -Path '{path}' -Destination .")


def document(result: PrestageResult) -> dict[str, Any]:
    plan = result.plan
    return {
        "format_version": PRESTAGE_FORMAT_VERSION,
        "task_sequence": {"id": plan.task_sequence.id, "name": plan.task_sequence.name},
        "child_sequences": [{"id": c.id, "name": c.name} for c in plan.children],
        "source_distribution_point": plan.source_dp,
        "content": [{"id": i.package_id, "name": i.name, "type": i.kind, "source_version": i.source_version,
                     "referenced_by": list(i.referenced_by)} for i in plan.items],
        "files": result.files,
        "written_on": result.written_on,
        "listing": result.listing,
        "note": LISTING_NOTE if result.listing else None,
        "fetch": None if result.listing else [fetch_hint(result.written_on, f) for f in result.files],
    }


def render(result: PrestageResult, out: TextIO, output: str = "text") -> None:
    if output == "json":
        json.dump(document(result), out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    plan = result.plan
    ts = plan.task_sequence
    children = f" and {len(plan.children)} child sequence(s)" if plan.children else ""
    out.write(f"prestaged {ts.name} [{ts.id}]{children} from {plan.source_dp}: {len(plan.items)} item(s)\n")
    for item in plan.items:
        out.write(f"  {item.package_id}  {item.kind:<30} {item.name}  (version {item.source_version})\n")
    if result.listing:
        for path in result.files:
            out.write(f"wrote {path}: a listing of the content and versions, not a prestaged content file (the "
                      "embedded site holds no content bytes)\n")
        return
    for path in result.files:
        out.write(f"wrote on the WinRM host {result.written_on}: {path}\n  {fetch_hint(result.written_on, path)}\n")
