"""A step's condition in words, as the console's Options tab reads it: ``_SMSTSBootUEFI equals "true"``.

The condition tree is the manifest's (``variable``, ``wmi``, ``file``, ``folder``, ``registry``, ``software``,
``os``, a generic ``expression``; ``and`` / ``or`` / ``not``); several conditions at the top of a step are all
required, as ConfigMgr evaluates them.
"""

from __future__ import annotations

from typing import Any


def _quoted(value: Any) -> str:
    return f'"{value}"'


def _variable(expr: dict[str, Any]) -> str:
    operator = str(expr.get("operator") or "")
    name = str(expr.get("name") or "")
    if operator.casefold() in ("exists", "notexists"):
        return f"{name} {'exists' if operator.casefold() == 'exists' else 'does not exist'}"
    return f"{name} {operator} {_quoted(expr.get('value') or '')}"


def _when(expr: dict[str, Any], what: str, operator_key: str, value_key: str) -> str:
    if expr.get(value_key):
        return f" {what} {expr.get(operator_key) or 'equals'} {_quoted(expr[value_key])}"
    return ""


def _expression(kind: str, expr: dict[str, Any]) -> str:
    if kind == "variable":
        return _variable(expr)
    if kind == "wmi":
        namespace = expr.get("namespace") or "root\\cimv2"
        return f"WMI query in {namespace}: {expr.get('query') or ''}"
    if kind == "file":
        return (f"file {expr.get('path') or ''} exists" + _when(expr, "with version", "versionOperator", "version")
                + _when(expr, "modified", "dateTimeOperator", "dateTime"))
    if kind == "folder":
        return f"folder {expr.get('path') or ''} exists" + _when(expr, "modified", "dateTimeOperator", "dateTime")
    if kind == "registry":
        key = str(expr.get("keyPath") or "")
        value = f"\\{expr['value']}" if expr.get("value") else ""
        operator = expr.get("operator") or "exists"
        data = f" {_quoted(expr['data'])}" if expr.get("data") not in (None, "") else ""
        kind_text = f" ({expr['type']})" if expr.get("type") else ""
        return f"registry {key}{value}{kind_text} {operator}{data}"
    if kind == "software":
        name = expr.get("productName") or expr.get("productCode") or expr.get("upgradeCode") or ""
        version = f" version {expr.get('operator') or ''} {expr['version']}".replace("  ", " ") \
            if expr.get("version") else ""
        return f"software {_quoted(name)} installed{version}"
    if kind == "os":
        platforms = [str(p.get("name") or "a platform") for p in expr.get("platforms") or () if isinstance(p, dict)]
        return "operating system is " + (" or ".join(platforms) if platforms else "(any listed)")
    if kind == "expression":
        variables = ", ".join(f"{k}={v}" for k, v in (expr.get("variables") or {}).items())
        return f"{expr.get('type') or 'expression'} ({variables})"
    return kind


def condition_text(condition: Any) -> str:
    """The whole condition in one line; empty without one."""
    if condition is None or condition == []:
        return ""
    if isinstance(condition, list):
        parts = [condition_text(c) for c in condition]
        return parts[0] if len(parts) == 1 else " and ".join(f"({p})" if " and " in p or " or " in p else p
                                                            for p in parts)
    if not isinstance(condition, dict):
        return str(condition)
    for joiner, word in (("and", "all of"), ("or", "any of"), ("not", "none of")):
        if joiner in condition:
            parts = [condition_text(c) for c in condition[joiner] or []]
            if joiner == "not" and len(parts) == 1:
                return f"not ({parts[0]})"
            return f"{word} (" + "; ".join(parts) + ")"
    for kind, expr in condition.items():
        if isinstance(expr, dict):
            return _expression(kind, expr)
    return str(condition)
