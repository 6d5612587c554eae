"""'Did you mean': the field, kind or value a manifest probably meant, for messages about an unknown one.

Allowed field names are read from the pydantic models themselves (through optional, annotated and
discriminated union types), so a suggestion always names a field the model has.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _model_candidates(tp: Any, data: Any) -> list[type[BaseModel]]:
    """Model classes a value of annotation ``tp`` may be, narrowed by a discriminator when present."""
    discriminator = None
    while typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        for meta in args[1:]:
            if hasattr(meta, "discriminator") and callable(getattr(meta, "discriminator", None)):
                discriminator = meta.discriminator
        tp = args[0]
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        members = typing.get_args(tp)
        if discriminator is not None and data is not None:
            tag = discriminator(data)
            for member in members:
                if typing.get_origin(member) is typing.Annotated:
                    for meta in typing.get_args(member)[1:]:
                        if getattr(meta, "tag", None) == tag:
                            return _model_candidates(typing.get_args(member)[0], data)
        out: list[type[BaseModel]] = []
        for member in members:
            out.extend(_model_candidates(member, data))
        return out
    return []


def allowed_fields(model: type[BaseModel], data: Any, path: tuple[str | int, ...]) -> list[str] | None:
    """Allowed field names for the mapping at ``path`` (handles list items via their parent field)."""
    parent = path
    candidates: list[type[BaseModel]] = [model]
    node = data
    pending: Any = None
    for part in parent:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if pending is not None:
                candidates = []
                for item_tp in pending:
                    candidates.extend(_model_candidates(item_tp, node))
                pending = None
            continue
        child = node.get(part) if isinstance(node, dict) else None
        nxt: list[type[BaseModel]] = []
        items: list[Any] = []
        for cls in candidates:
            for name, info in cls.model_fields.items():
                if (info.alias or name) != part:
                    continue
                tp = info.annotation
                for meta in info.metadata:
                    tp = typing.Annotated[tp, meta]
                inner = _unwrap_optional(tp)
                if typing.get_origin(_strip(inner)) is list:
                    items.append(typing.get_args(_strip(inner))[0])
                else:
                    nxt.extend(_model_candidates(tp, child))
        if items:
            pending = items
            candidates = []
        else:
            candidates = nxt
        node = child
    if not candidates:
        return None
    return sorted({info.alias or n for cls in candidates for n, info in cls.model_fields.items()})


def _unwrap_optional(tp: Any) -> Any:
    base = _strip(tp)
    origin = typing.get_origin(base)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(base) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def close_match(word: str, options: list[str]) -> str | None:
    """The option ``word`` was probably meant to be; a word far longer than any option is no typo of one."""
    if len(word) > 2 * max((len(o) for o in options), default=0) + 10:
        return None
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None
