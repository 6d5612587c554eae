"""A pull request review: manifest changes and the plan of merging, as text, JSON or a PR comment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import StringIO
from typing import Any, TextIO

from reconciler.render.plan import MARKDOWN_LIMIT, MARKER, _change_line, plan_document, render_text, risk_line
from reconciler.render.schemas import REVIEW_FORMAT_VERSION
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
        "format_version": REVIEW_FORMAT_VERSION,
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


@dataclass
class _Section:
    """One object's part of the PR comment: its details, and the one line it folds to when space runs out."""

    rank: int  # given up last when first: high risk, changes to what exists, removals, creations
    title: str
    body: str
    what: str  # how the omission note counts it

    def full(self) -> str:
        return f"<details><summary>{self.title}</summary>\n\n```\n{self.body}\n```\n</details>"

    def folded(self) -> str:
        return f"- {self.title} (details folded to fit)"


def _sections(review: Review) -> list[_Section]:
    out = []
    for change in review.manifest_changes:
        body = "\n".join(f"    {_change_line(ch)}" for ch in change.changes) or f"    ({change.status})"
        rank = {"modified": 2, "removed": 3, "added": 4}[change.status]
        out.append(_Section(rank, f"{_STATUS[change.status]} <code>{change.ref}</code> manifest {change.status}",
                            body, f"manifest(s) {change.status}"))
    status = {c.ref: c.status for c in review.manifest_changes}
    for action in review.plan.actions:
        body = "\n".join(f"    {_change_line(ch, action.symbol == '+')}" for ch in action.changes) \
            or "    (no field changes)"
        flag = "⚠ HIGH RISK " if action.risk is not None else ""
        # A brand-new object's creation is the least surprising part of a plan; changes to what exists are not.
        rank = 0 if action.risk is not None else (3 if status.get(action.ref) == "added" else 1)
        out.append(_Section(rank,
                            f"{flag}plan: <code>{action.ref}</code> {action.verb.value} ({action.reason.value})",
                            body, "plan action(s)"))
    return out


def render_markdown(review: Review, out: TextIO, limit: int = MARKDOWN_LIMIT) -> None:
    """The PR comment. It must fit GitHub's limit, so details fold to one line each, longest first; only if
    even the folded lines do not fit are the least important ones left out, and a note says how many."""
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
    tail = [""]
    line = _untouched_line(review)
    if line:
        tail.append(f"_Not part of this change: {line}._")
    if plan.orphans:
        tail.append(f"_{len(plan.orphans)} managed object(s) touched by this change have no manifest and are kept "
                    "(run with --prune to delete them)._")
    sections = _sections(review)
    texts = [s.full() for s in sections]
    fixed = len("\n".join(head)) + len("\n".join(tail)) + 3
    budget = limit - fixed - 400  # room for the omission note
    size = sum(len(t) + 1 for t in texts)
    for i in sorted(range(len(sections)), key=lambda i: -len(texts[i])):
        if size <= budget:
            break
        folded = sections[i].folded()
        size += len(folded) - len(texts[i])
        texts[i] = folded
    omitted: dict[str, int] = {}
    keep = [True] * len(sections)
    for i in sorted(range(len(sections)), key=lambda i: (-sections[i].rank, -i)):
        if size <= budget:
            break
        keep[i] = False
        size -= len(texts[i]) + 1
        omitted[sections[i].what] = omitted.get(sections[i].what, 0) + 1
    body = [t for t, k in zip(texts, keep, strict=True) if k]
    if omitted:
        counts = ", ".join(f"{n} {what}" for what, n in sorted(omitted.items()))
        body.append(f"\n_Not listed, to stay under GitHub's comment limit: {counts}. The table above counts "
                    "everything; `reconcile --dry-run --base … --head …` shows all of it._")
    out.write("\n".join(head) + "\n" + "\n".join(body) + "\n" + "\n".join(tail) + "\n")


def markdown_text(review: Review) -> str:
    buffer = StringIO()
    render_markdown(review, buffer)
    return buffer.getvalue()
