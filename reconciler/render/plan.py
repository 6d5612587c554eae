"""Plans for people (text, Markdown) and tools (JSON). All three read the same plan document.

Sensitive values are masked here from the ``sensitive`` mark on each change, never by guessing.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from reconciler.plan.actions import PLAN_FORMAT_VERSION, Action, Plan, Verb

SENSITIVE = "(sensitive)"
MARKDOWN_LIMIT = 65_536  # GitHub's comment limit
MARKER = "<!-- configmgr-ts-reconciler:plan -->"

_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "~": "\x1b[33m", ">": "\x1b[36m", "⇅": "\x1b[35m", "-/+": "\x1b[31m",
           "=": "\x1b[34m"}
_RESET = "\x1b[0m"


def _value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return json.loads(json.dumps(value, default=str))


def plan_document(plan: Plan) -> dict[str, Any]:
    """The versioned JSON plan (schema: reconciler/render/plan.schema.json)."""
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "plan_id": plan.plan_id,
        "site": plan.site_code,
        "options": {"adopt": plan.adopt, "prune": plan.prune, "targets": list(plan.targets)},
        "summary": plan.counts(),
        "actions": [_action(a) for a in plan.actions],
        "blocked": [
            {"kind": b.ref.kind, "name": b.ref.name, "message": b.message, "rule": b.rule or None,
             "path": b.path or None, "file": b.source.file if b.source else None,
             "line": b.source.line if b.source else None, "column": b.source.column if b.source else None}
            for b in plan.blocked
        ],
        "warnings": [
            {"kind": w.ref.kind, "name": w.ref.name, "message": w.message, "rule": w.rule or None,
             "path": w.path or None, "file": w.source.file if w.source else None,
             "line": w.source.line if w.source else None, "column": w.source.column if w.source else None}
            for w in plan.warnings
        ],
        "orphans": [{"kind": o.kind, "name": o.name} for o in plan.orphans],
    }


def _action(action: Action) -> dict[str, Any]:
    return {
        "verb": action.verb.value,
        "symbol": action.symbol,
        "kind": action.ref.kind,
        "name": action.ref.name,
        "live_id": action.live_id,
        "reason": action.reason.value,
        "summary": action.summary,
        "file": action.source.file if action.source else None,
        "line": action.source.line if action.source else None,
        "depends_on": [str(d) for d in action.depends_on],
        "high_risk": action.risk.to_json() if action.risk is not None else None,
        "changes": [
            {"path": c.path, "before": None if c.sensitive else _value(c.before),
             "after": None if c.sensitive else _value(c.after), "sensitive": c.sensitive}
            for c in action.changes
        ],
    }


def render_json(plan: Plan, out: TextIO) -> None:
    json.dump(plan_document(plan), out, indent=2, ensure_ascii=False)
    out.write("\n")


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _change_line(change: Any, created: bool = False) -> str:
    """``path: before → after``; a field an existing object gains reads ``(none) → value``, so it is
    not mistaken for the whole new value of an object being created."""
    if change.sensitive:
        before = SENSITIVE if change.before is not None else "(none)"
        after = SENSITIVE if change.after is not None else "(removed)"
    else:
        before = "(none)" if change.before is None else _short(change.before)
        after = "(removed)" if change.after is None else _short(change.after)
    if change.before is None and created:
        return f"{change.path}: {after}"
    return f"{change.path}: {before} → {after}"


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
    if not plan.actions and not plan.blocked:
        out.write("\nNo changes. The site matches the manifests.\n")
    for action in plan.actions:
        symbol = action.symbol
        live = f" [{action.live_id}]" if action.live_id else ""
        out.write("\n" + paint(symbol, f"  {symbol} {action.ref}{live}") +
                  f"  {action.verb.value} ({action.reason.value})" + (f": {action.summary}" if action.summary else "")
                  + "\n")
        if action.risk is not None:
            out.write(paint("-", f"      ⚠ {risk_line(action)}") + "\n")
        for change in action.changes[:max_changes]:
            out.write(f"      {_change_line(change, action.symbol == '+')}\n")
        if len(action.changes) > max_changes:
            out.write(f"      … and {len(action.changes) - max_changes} more change(s)\n")
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
        body = "\n".join(f"    {_change_line(ch, action.symbol == '+')}" for ch in action.changes) \
            or "    (no field changes)"
        title = f"{action.symbol} <code>{action.ref}</code> {action.verb.value} ({action.reason.value})"
        if action.risk is not None:
            title = "⚠ HIGH RISK " + title
        sections.append(f"<details><summary>{title}</summary>\n\n```\n{body}\n```\n</details>")
    text = "\n".join(head) + "\n" + "\n".join(sections) + "\n\n" + summary_line(plan) + "\n"
    while len(text) > limit and sections:
        longest = max(range(len(sections)), key=lambda i: len(sections[i]))
        action = plan.actions[longest]
        sections[longest] = (f"<details><summary>{action.symbol} <code>{action.ref}</code> "
                             f"{action.verb.value}: {len(action.changes)} change(s), folded to fit</summary>"
                             "</details>")
        text = "\n".join(head) + "\n" + "\n".join(sections) + "\n\n" + summary_line(plan) + "\n"
    out.write(text)


__all__ = ["Verb", "plan_document", "render_json", "render_markdown", "render_text", "summary_line"]
