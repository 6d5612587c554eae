"""Plans for people (text, Markdown) and tools (JSON). All three read the same plan document.

Sensitive values are masked here from the ``sensitive`` mark on each change, never by guessing.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, TextIO

from reconciler.diff.changes import FieldChange, StepChange, StepOp
from reconciler.plan.actions import Action, Plan, Verb
from reconciler.plan.scope import describe_scope
from reconciler.render.document import plan_document

SENSITIVE = "(sensitive)"
MARKDOWN_LIMIT = 65_536  # GitHub's comment limit
MARKER = "<!-- configmgr-ts-reconciler:plan -->"

_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "~": "\x1b[33m", ">": "\x1b[36m", "⇅": "\x1b[35m", "-/+": "\x1b[31m",
           "=": "\x1b[34m"}
_RESET = "\x1b[0m"


def render_json(plan: Plan, out: TextIO) -> None:
    json.dump(plan_document(plan), out, indent=2, ensure_ascii=False)
    out.write("\n")


#: A value longer than this, or spanning lines, is shown as a line diff instead of "before → after".
_INLINE = 100


def _text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=False)


def _is_long(value: Any) -> bool:
    return isinstance(value, str) and ("\n" in value or len(value) > _INLINE)


def change_lines(change: FieldChange, created: bool = False, prefix: str = "") -> list[str]:
    """``path: before → after``, or for long and multi-line text (scripts) the lines that changed.

    A value is never cut short: a long one is shown as a diff of its lines, so the part that changed is
    always there. A field an existing object gains reads ``(none) → value``, so it is not mistaken for
    the whole new value of an object being created.
    """
    path = f"{prefix}{change.path}"
    if change.sensitive:
        before = SENSITIVE if change.before is not None else "(none)"
        after = SENSITIVE if change.after is not None else "(removed)"
        return [f"{path}: {after}" if change.before is None and created else f"{path}: {before} → {after}"]
    if _is_long(change.before) or _is_long(change.after):
        old = change.before.splitlines() if isinstance(change.before, str) else []
        new = change.after.splitlines() if isinstance(change.after, str) else []
        if change.before is None:
            return [f"{path}: {'' if created else '(none) → '}{len(new)} line(s)", *(f"  + {line}" for line in new)]
        if change.after is None:
            return [f"{path}: (removed), was {len(old)} line(s)", *(f"  - {line}" for line in old)]
        diff = [line for line in difflib.unified_diff(old, new, lineterm="", n=1)][2:]
        return [f"{path}: changed ({len(old)} → {len(new)} line(s))",
                *(f"  {line[0]} {line[1:]}" if line[:1] in "+- " else f"  {line}" for line in diff)]
    before = "(none)" if change.before is None else _text(change.before)
    after = "(removed)" if change.after is None else _text(change.after)
    if change.before is None and created:
        return [f"{path}: {after}"]
    return [f"{path}: {before} → {after}"]


def _change_line(change: Any, created: bool = False) -> str:
    return "\n".join(change_lines(change, created))


_STEP_MARK = {StepOp.INSERTED: "+", StepOp.REMOVED: "-", StepOp.MOVED: ">", StepOp.CHANGED: "~"}


def step_change_lines(change: StepChange) -> list[str]:
    """A step or group inserted, removed, moved or changed, addressed by names, with its field changes."""
    what = "group" if change.is_group else f"step ({change.step_type})" if change.step_type else "step"
    head = f"{_STEP_MARK[change.op]} {what} {change.display_path}"
    if change.op is StepOp.INSERTED:
        head += f": inserted {change.position}"
    elif change.op is StepOp.REMOVED:
        head += f": removed (was {change.position})"
    elif change.op is StepOp.MOVED:
        head += f": moved from {change.previous} to {change.position}"
    lines = [head]
    for field in change.fields:
        lines.extend(f"    {line}" for line in change_lines(field, created=change.op is StepOp.INSERTED))
    return lines


def action_lines(action: Action, max_changes: int | None = None) -> list[str]:
    """Every change of an action as lines, fields first, then steps (text and Markdown print the same)."""
    created = action.symbol == "+"
    lines: list[str] = []
    changes = action.changes if max_changes is None else action.changes[:max_changes]
    for change in changes:
        lines.extend(change_lines(change, created))
    if max_changes is not None and len(action.changes) > max_changes:
        lines.append(f"… and {len(action.changes) - max_changes} more field change(s) (--output json lists all)")
    for step in action.step_changes:
        lines.extend(step_change_lines(step))
    return lines


def risk_line(action: Action) -> str:
    risk = action.risk
    ack = ("acknowledged (spec.highRisk.acknowledge)" if risk.acknowledged
           else "no acknowledgement needed" if not risk.needs_acknowledgement else "NOT acknowledged")
    return (f"HIGH RISK: {'; '.join(risk.reasons)}; collection {risk.collection_name!r} ({risk.collection_id}) "
            f"has {risk.member_count} members{', contains site systems' if risk.site_systems else ''}; {ack}")


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    line = (f"Plan: {c['create']} to create, {c['modify']} to modify, {c['distribute']} to distribute, "
            f"{c['redistribute']} to redistribute, {c['delete']} to delete.")
    if c["blocked"]:
        line += f" {c['blocked']} blocked: nothing will be applied."
    return line


def render_text(plan: Plan, out: TextIO, color: bool = False, max_changes: int = 25) -> None:
    def paint(symbol: str, text: str) -> str:
        return f"{_COLORS.get(symbol, '')}{text}{_RESET}" if color else text

    out.write(f"Plan {plan.plan_id} for site {plan.site_code}\n")
    if plan.scope is not None:
        out.write(f"Scope: {describe_scope(plan.scope)}\n")
    if not plan.actions and not plan.blocked:
        out.write("\nNo changes. The site matches the manifests.\n")
    for action in plan.actions:
        symbol = action.symbol
        live = f" [{action.live_id}]" if action.live_id else ""
        out.write("\n" + paint(symbol, f"  {symbol} {action.ref}{live}") +
                  f"  {action.verb.value} ({action.reason.value})" + (f" via {action.path}" if action.path else "")
                  + (f": {action.summary}" if action.summary else "")
                  + "\n")
        if action.risk is not None:
            out.write(paint("-", f"      ⚠ {risk_line(action)}") + "\n")
        for line in action_lines(action, max_changes):
            out.write(f"      {line}\n")
    if plan.blocked:
        out.write("\nBlocked (fix these; a plan with blocked items applies nothing):\n")
        for blocked in plan.blocked:
            where = f"{blocked.source}: " if blocked.source else ""
            field = f"{blocked.path}: " if blocked.path else ""
            out.write(paint("-", f"  ✗ {where}{blocked.ref}: {field}{blocked.message}") + "\n")
    if plan.warnings:
        out.write("\nWarnings:\n")
        for warning in plan.warnings:
            where = f"{warning.source}: " if warning.source else ""
            out.write(paint("~", f"  ! {where}{warning.ref}: {warning.message}") + "\n")
    if plan.orphans:
        out.write(f"\n{len(plan.orphans)} managed object(s) have no manifest and are kept (use --prune to delete):\n")
        for orphan in plan.orphans:
            out.write(f"    {orphan}\n")
    out.write("\n" + summary_line(plan) + "\n")


def render_markdown(plan: Plan, out: TextIO, limit: int = MARKDOWN_LIMIT) -> None:
    """A pull request comment: summary table, one collapsible section per object, a hidden marker."""
    c = plan.counts()
    head = [MARKER, f"### ConfigMgr plan for site `{plan.site_code}`", ""]
    if plan.scope is not None:
        head += [f"Scope: {describe_scope(plan.scope)}", ""]
    if plan.blocked:
        head += [f"> **{len(plan.blocked)} blocked item(s): nothing will be applied.**", ""]
        head += [f"- `{b.ref}`{f' ({b.source})' if b.source else ''}: {b.message}" for b in plan.blocked] + [""]
    risky = [a for a in plan.actions if a.risk is not None]
    if risky:
        head += [f"> [!WARNING]\n> **{len(risky)} high-risk deployment(s)**", ""]
        head += [f"- ⚠ `{a.ref}`: {risk_line(a)}" for a in risky] + [""]
    if plan.warnings:
        head += [f"- ! `{w.ref}`{f' ({w.source})' if w.source else ''}: {w.message}" for w in plan.warnings] + [""]
    head += ["| create | modify | distribute | redistribute | delete | blocked |",
             "|---:|---:|---:|---:|---:|---:|",
             f"| {c['create']} | {c['modify']} | {c['distribute']} | {c['redistribute']} | {c['delete']} | "
             f"{c['blocked']} |", ""]
    if not plan.actions and not plan.blocked:
        head.append("No changes. The site matches the manifests.")
    sections = []
    for action in plan.actions:
        body = "\n".join(f"    {line}" for line in action_lines(action)) or "    (no field changes)"
        title = f"{action.symbol} <code>{action.ref}</code> {action.verb.value} ({action.reason.value})" + (
            f" via {action.path}" if action.path else "")
        if action.risk is not None:
            title = "⚠ HIGH RISK " + title
        sections.append(f"<details><summary>{title}</summary>\n\n```\n{body}\n```\n</details>")
    text = "\n".join(head) + "\n" + "\n".join(sections) + "\n\n" + summary_line(plan) + "\n"
    while len(text) > limit and sections:
        longest = max(range(len(sections)), key=lambda i: len(sections[i]))
        action = plan.actions[longest]
        sections[longest] = (f"<details><summary>{action.symbol} <code>{action.ref}</code> "
                             f"{action.verb.value}: {len(action.changes) + len(action.step_changes)} change(s), folded "
                             "to fit (--output json lists all)</summary>"
                             "</details>")
        text = "\n".join(head) + "\n" + "\n".join(sections) + "\n\n" + summary_line(plan) + "\n"
    out.write(text)


__all__ = ["Verb", "plan_document", "render_json", "render_markdown", "render_text", "summary_line"]
