"""Validation findings for people (text) and tools (JSON, schema version 1)."""

from __future__ import annotations

import json
from collections import Counter
from typing import TextIO

from reconciler.errors import Finding, Severity
from reconciler.render.plan import MARKDOWN_LIMIT, MARKER
from reconciler.render.schemas import VALIDATE_FORMAT_VERSION
from reconciler.source.loader import DesiredState

#: The document's version (crds/validate.schema.json); 1 named it ``version``.
FINDINGS_SCHEMA_VERSION = VALIDATE_FORMAT_VERSION


def summary(findings: list[Finding]) -> Counter[Severity]:
    return Counter(f.severity for f in findings)


def render_text(state: DesiredState, findings: list[Finding], out: TextIO, color: bool = False) -> None:
    colors = {Severity.ERROR: "\x1b[31m", Severity.WARNING: "\x1b[33m", Severity.INFO: "\x1b[36m"}
    for finding in findings:
        line = finding.render()
        if color:
            line = f"{colors[finding.severity]}{line}\x1b[0m"
        out.write(line + "\n")
    counts = summary(findings)
    verdict = "invalid" if counts[Severity.ERROR] else "valid"
    out.write(
        f"{state.files} file(s), {state.documents} document(s), {len(state.objects)} valid object(s): {verdict}; "
        f"{counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), {counts[Severity.INFO]} note(s)\n"
    )


def render_json(state: DesiredState, findings: list[Finding], out: TextIO) -> None:
    counts = summary(findings)
    document = {
        "format_version": FINDINGS_SCHEMA_VERSION,
        "valid": not counts[Severity.ERROR],
        "files": state.files,
        "documents": state.documents,
        "objects": [{"kind": o.kind, "name": o.name, "file": o.source.file, "line": o.source.line}
                    for o in state.objects],
        "counts": {s.value: counts[s] for s in Severity},
        "findings": [f.to_json() for f in findings],
    }
    json.dump(document, out, indent=2)
    out.write("\n")


def render_markdown(findings: list[Finding], out: TextIO, limit: int = MARKDOWN_LIMIT) -> None:
    """A pull request comment for manifests that cannot be planned: the PR still hears what is wrong.

    It carries the plan comment's marker, so the CI job replaces this comment once the PR is fixed.
    """
    head = [MARKER, "### ConfigMgr plan: the manifests are invalid", "",
            f"> **{len(findings)} problem(s): nothing can be planned until they are fixed.**", ""]
    lines = [f"- `{f.source}`: {f.object + ': ' if f.object else ''}{f.path + ': ' if f.path else ''}{f.message}"
             for f in findings]
    size = sum(len(x) + 1 for x in head)
    shown = []
    for line in lines:
        if size + len(line) + 1 > limit - 200:
            shown.append(f"- … and {len(lines) - len(shown)} more (run `reconcile validate` to see them all)")
            break
        shown.append(line)
        size += len(line) + 1
    out.write("\n".join(head + shown) + "\n")
