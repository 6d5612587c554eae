"""Field-level differences between two canonical forms (the only module that uses deepdiff)."""

from __future__ import annotations

import re
from typing import Any

from deepdiff import DeepDiff

from reconciler.diff.changes import FieldChange

_PART = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def _path(deep_path: str) -> str:
    out = ""
    for key, index in _PART.findall(deep_path.removeprefix("root")):
        if index:
            out += f"[{index}]"
        else:
            out += f".{key}" if out else key
    return out


def field_changes(before: dict[str, Any], after: dict[str, Any], sensitive: tuple[str, ...] = (),
                  limit: int = 200) -> tuple[FieldChange, ...]:
    """before → after, one change per differing leaf (at most ``limit``), in document order."""
    diff = DeepDiff(before, after, verbose_level=2, view="tree")
    changes: list[FieldChange] = []
    for category in ("values_changed", "type_changes", "dictionary_item_added", "dictionary_item_removed",
                     "iterable_item_added", "iterable_item_removed"):
        for level in diff.get(category, ()):
            path = _path(level.path())
            old = None if category.endswith("added") else level.t1
            new = None if category.endswith("removed") else level.t2
            secret = any(path == s or path.startswith(s + ".") or path.startswith(s + "[") for s in sensitive)
            changes.append(FieldChange(path, old, new, secret))
    changes.sort(key=lambda c: c.path)
    return tuple(changes[:limit])
