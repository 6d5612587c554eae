"""A pull request review: manifest changes and the plan of merging, as text, JSON or a PR comment."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any, TextIO

from reconciler.render.plan import MARKDOWN_LIMIT, MARKER, _change_line, plan_document, render_text, risk_line
from reconciler.review import Review

_STATUS = {"added": "+", "modified": "~", "removed": "-"}


def _untouched_line(review: Review) -> str:
    if not review.untouched:
        return ""
    names = sorted({str(a.ref) for a in review.untouched})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"{len(review.untouched)} other pending change(s) on {len(names)} object(s) this pull request does not "
            f"touch (drift or earlier unapplied changes): {shown}")


def review_document(review: Review) -> dict[str, Any]:
    return {
        "base": review.base,
        "head": review.head,
        "manifest_changes": [
            {"kind": c.ref.kind, "name": c.ref.name, "status": c.status, "file": c.file, "line": c.line,
             "changes": [{"path": ch.path, "before": ch.before, "after": ch.after} for ch in c.changes]}
            for c in review.manifest_changes
        ],
        "plan": plan_document(review.plan),
        "untouched": {"count": len(review.untouched),
                      "objects": sorted({str(a.ref) for a in review.untouched})},
    }


def render_json(review: Review, out: TextIO) -> None:
    json.dump(review_document(review), out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


def render_text_review(review: Review, out: TextIO, color: bool = False) -> None:
    out.write(f"Manifest changes {review.base['ref']} ({review.base['sha'][:12]}) → "
              f"{review.head['ref']} ({review.head['sha'][:12]}):\n")
    if not review.manifest_changes:
        out.write("  (none)\n")
    for change in review.manifest_changes:
        out.write(f"  {_STATUS[change.status]} {change.ref} ({change.status})\n")
        for ch in change.changes[:20]:
            out.write(f"      {_change_line(ch)}\n")
    out.write("\nWhat merging does to the site:\n\n")
    render_text(review.plan, out, color=color)
    line = _untouched_line(review)
    if line:
        out.write(f"\nNot part of this change: {line}.\n")


def render_markdown(review: Review, out: TextIO, limit: int = MARKDOWN_LIMIT) -> None:
    plan = review.plan
    c = plan.counts()
    head = [MARKER, f"### ConfigMgr plan for `{review.head['ref']}` ({review.head['sha'][:12]}) on site "
                    f"`{plan.site_code}`", ""]
    risky = [a for a in plan.actions if a.risk is not None]
    if risky:
        head += [f"> [!WARNING]\n> **{len(risky)} high-risk deployment(s)**", ""]
        head += [f"- ⚠ `{a.ref}`: {risk_line(a)}" for a in risky] + [""]
    if plan.blocked:
        head += [f"> **{len(plan.blocked)} blocked item(s): merging applies nothing until they are fixed.**", ""]
        head += [f"- `{b.ref}`{f' ({b.source})' if b.source else ''}: {b.message}" for b in plan.blocked] + [""]
    head += ["| manifests changed | create | modify | distribute | redistribute | delete | blocked |",
             "|---:|---:|---:|---:|---:|---:|---:|",
             f"| {len(review.manifest_changes)} | {c['create']} | {c['modify']} | {c['distribute']} | "
             f"{c['redistribute']} | {c['delete']} | {c['blocked']} |", ""]
    sections: list[str] = []
    for change in review.manifest_changes:
        body = "\n".join(f"    {_change_line(ch)}" for ch in change.changes) or f"    ({change.status})"
        sections.append(f"<details><summary>{_STATUS[change.status]} <code>{change.ref}</code> manifest "
                        f"{change.status}</summary>\n\n```\n{body}\n```\n</details>")
    for action in plan.actions:
        body = "\n".join(f"    {_change_line(ch)}" for ch in action.changes) or "    (no field changes)"
        flag = "⚠ HIGH RISK " if action.risk is not None else ""
        sections.append(f"<details><summary>{flag}plan: <code>{action.ref}</code> {action.verb.value} "
                        f"({action.reason.value})</summary>\n\n```\n{body}\n```\n</details>")
    tail = [""]
    line = _untouched_line(review)
    if line:
        tail.append(f"_Not part of this change: {line}._")

    def assemble() -> str:
        return "\n".join(head) + "\n" + "\n".join(sections) + "\n" + "\n".join(tail) + "\n"

    text = assemble()
    while len(text) > limit and sections:
        longest = max(range(len(sections)), key=lambda i: len(sections[i]))
        title = sections[longest].split("</summary>")[0].replace("<details><summary>", "")
        if title.endswith("(folded to fit)"):
            sections.pop(longest)
        else:
            sections[longest] = f"<details><summary>{title} (folded to fit)</summary></details>"
        text = assemble()
    out.write(text)


def markdown_text(review: Review) -> str:
    buffer = StringIO()
    render_markdown(review, buffer)
    return buffer.getvalue()
