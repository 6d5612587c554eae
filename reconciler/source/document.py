"""One YAML document validated against its kind: a manifest, or findings that say where and what is allowed.

Pydantic's errors are translated here into findings a person can act on: the location is mapped back
onto the document (union tags removed) and then to a line and column, an unknown field or value names
what was probably meant (:mod:`reconciler.source.suggestions`), a user's value is quoted by a short
prefix and its length, and an unquoted YAML number or boolean where text belongs says to quote it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.errors import QUOTE_CHARS, Finding, Severity, Source, shorten
from reconciler.models import API_VERSION, KINDS, Manifest
from reconciler.source.suggestions import allowed_fields, close_match
from reconciler.source.yamlfile import Locator

#: Deepest nesting of groups in a task sequence. ConfigMgr documents no limit; the deepest real sequence in the
#: corpus nests 4 groups. About 100 nested groups break applying (pydantic stops reading the manifest's JSON near
#: 200 levels, and each group is two). 16 is four times what real sequences use and far below what breaks; deeper
#: structure belongs in a child task sequence.
MAX_GROUP_DEPTH = 16


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = part if len(str(part)) <= QUOTE_CHARS else shorten(part)
            out += f".{part}" if out else str(part)
    return out


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[tuple[str | int, ...], tuple[Any, ...]]:
    """Map a pydantic error location onto the document: union tags in ``loc`` are not in the data."""
    path: list[str | int] = []
    node = data
    rest = list(loc)
    while rest:
        part = rest[0]
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == 0:
            pass  # "one or a list": a single mapping stands for a one-item list
        elif not (isinstance(node, dict | list) and isinstance(part, str)):
            break  # the location goes below what the document holds
        rest.pop(0)  # a union member tag: it names a model, not a key of the document
    return tuple(path), tuple(rest)


_SHOW_INPUT = frozenset({
    "string_type", "int_type", "int_parsing", "int_from_float", "bool_type", "bool_parsing", "float_parsing",
    "datetime_type", "datetime_parsing", "datetime_from_date_parsing", "string_pattern_mismatch",
    "greater_than_equal", "less_than_equal", "greater_than", "less_than", "string_too_long", "list_type",
    "dict_type", "model_type", "model_attributes_type", "date_from_datetime_parsing",
})


def _message(error: Any, model: type[BaseModel], data: Any, path: tuple[str | int, ...]) -> tuple[str, str]:
    kind = error["type"]
    if kind == "extra_forbidden":
        unknown = str(path[-1]) if path else "?"
        allowed = allowed_fields(model, data, path[:-1]) or []
        close = close_match(unknown, allowed)
        hint = f"; did you mean '{close}'?" if close else ""
        listing = f" Allowed here: {', '.join(allowed)}." if allowed and not close else ""
        return f"unknown field {shorten(unknown)}{hint}{listing}", "unknown-field"
    if kind == "missing":
        return "is required but missing", "required"
    message = _short_message(error)
    found = error.get("input")
    if kind == "string_type" and isinstance(found, bool | int | float):
        shown = str(found).lower() if isinstance(found, bool) else shorten(str(found)).strip("'")
        what = "boolean" if isinstance(found, bool) else "number"
        return (f"is the YAML {what} {shown}, not text; quote it to keep the exact text "
                f"(for example '{shown}')", "yaml-unquoted")
    if kind in ("enum", "literal_error"):
        expected = (error.get("ctx") or {}).get("expected")
        found = error.get("input")
        close = None
        if expected:
            options = [o.strip().strip("'") for o in str(expected).replace(" or ", ", ").split(",")]
            close = close_match(str(found), options)
        message = f"is {shorten(found)}; allowed: {expected}" + (f"; did you mean '{close}'?" if close else "")
    elif kind in _SHOW_INPUT and not isinstance(error.get("input"), dict | list):
        message = f"{message} (found {shorten(error.get('input'))})"
    return message, kind.replace("_", "-")


def _short_message(error: Any) -> str:
    """Pydantic's message with the user's value, where it quotes it, cut to a prefix and its length.

    A model's own error ("'{v}' is not a known step type") quotes the value through its context; the
    rest of the message (what is allowed) is the model's and stays whole.
    """
    message = str(error["msg"])
    found = error.get("input")
    if not isinstance(found, str) or len(found) <= QUOTE_CHARS:
        return message
    quoted = [found] + [v for v in (error.get("ctx") or {}).values()
                        if isinstance(v, str) and len(v) > QUOTE_CHARS and v in found]
    for value in quoted:
        if value in message:
            message = message.replace(value, f"{value[:QUOTE_CHARS]}… ({len(value):,} characters)")
    return message


def validate_document(
    data: Any, file: str, line: int, doc_index: int, locator: Locator
) -> tuple[Manifest | None, list[Finding]]:
    """Validate one YAML document against its kind; findings locate each problem in the file."""
    where = Source(file, line)
    if data is None:
        return None, []
    if not isinstance(data, dict):
        return None, [Finding(Severity.ERROR, where, f"a manifest must be a mapping, found {type(data).__name__}; "
                              "start it with apiVersion, kind, metadata and spec", rule="document")]
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    if api_version != API_VERSION:
        problems.append((("apiVersion",), f"is {shorten(api_version)}; this tool reads apiVersion: {API_VERSION}",
                         "api-version"))
    if kind not in KINDS:
        close = close_match(str(kind), list(KINDS))
        hint = f"; did you mean '{close}'?" if close else ""
        problems.append((("kind",), f"is {shorten(kind)}{hint}; allowed kinds: {', '.join(KINDS)}", "kind"))
    name = data.get("metadata", {}).get("name") if isinstance(data.get("metadata"), dict) else None
    if isinstance(name, str) and len(name) > QUOTE_CHARS:
        name = f"{name[:QUOTE_CHARS]}…"
    object_id = f"{kind}/{name}" if kind in KINDS and isinstance(name, str) else ""
    if object_id and kind == "TaskSequence":
        deep = _too_deep_group(data)
        if deep is not None:
            problems.append((deep, f"groups nest more than {MAX_GROUP_DEPTH} deep here; a task sequence may nest "
                             f"at most {MAX_GROUP_DEPTH} groups (real sequences use a few); move the inner steps "
                             "to a child task sequence (RunTaskSequence)", "depth"))
    manifest = None
    if not problems:
        model = KINDS[str(kind)]
        try:
            manifest = model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                path, _ = _data_path(data, tuple(error["loc"]))
                if error["type"] == "extra_forbidden" and error["loc"]:
                    path = (*path, error["loc"][-1]) if path[-1:] != (error["loc"][-1],) else path
                message, rule = _message(error, model, data, path)
                problems.append((path, message, rule))
        except RecursionError:
            problems.append(((), "the document nests too deeply to validate", "document"))
    if not problems:
        return manifest, []  # type: ignore[return-value]
    findings = []
    seen: set[tuple[Any, str]] = set()
    for path, message, rule in problems:
        if (path, message) in seen:
            continue
        seen.add((path, message))
        source = where
        if path:
            loc = locator.locate(doc_index, path, line)
            if loc is not None:
                source = Source(file, loc[0], loc[1])
        findings.append(Finding(Severity.ERROR, source, message, format_path(path), rule, object_id))
    return None, findings


def _too_deep_group(data: dict[str, Any]) -> tuple[str | int, ...] | None:
    """The path of the first group, in reading order, nested more than MAX_GROUP_DEPTH deep, if any.

    Runs before validation (a sequence of a hundred nested groups validates, then breaks applying) on
    documents already held to MAX_YAML_DEPTH, so the recursion stays shallow.
    """
    spec = data.get("spec")

    def first(steps: Any, path: tuple[str | int, ...], depth: int) -> tuple[str | int, ...] | None:
        for index, step in enumerate(steps if isinstance(steps, list) else ()):
            if isinstance(step, dict) and "group" in step:
                if depth > MAX_GROUP_DEPTH:
                    return (*path, index)
                found = first(step.get("steps"), (*path, index, "steps"), depth + 1)
                if found is not None:
                    return found
        return None

    return first(spec.get("steps"), ("spec", "steps"), 1) if isinstance(spec, dict) else None
