"""What differs between the variables a collection or computer holds and those its manifests ask for."""

from __future__ import annotations

from typing import Any

from reconciler.diff.changes import FieldChange
from reconciler.site.records import LiveVariable


def diff_variables(variables: list[Any], live: tuple[LiveVariable, ...], last_secrets: dict[str, Any],
                   rotated: set[str]) -> list[FieldChange]:
    """One change per variable added, changed or removed, names compared without case as ConfigMgr does.

    A hidden value cannot be read back: it counts as changed when the live one is not masked, when the
    reference it is read from differs from the one recorded at the last apply (``last_secrets``), or when
    ``--refresh-secrets`` found its value rotated (``rotated``, folded names). Its values show as
    ``(sensitive)`` and the change is marked sensitive.
    """
    live_by_name = {v.name.casefold(): v for v in live}
    changes: list[FieldChange] = []
    desired_names = set()
    for var in variables:
        key = var.name.casefold()
        desired_names.add(key)
        current = live_by_name.get(key)
        if var.hidden or var.value_from is not None:
            ref_text = str(var.value_from)
            if current is None or not current.masked or last_secrets.get(key, {}).get("ref") != ref_text \
                    or current.name != var.name or key in rotated:
                changes.append(FieldChange(f"variables.{var.name}", "(sensitive)" if current else None,
                                           "(sensitive)", True))
        elif current is None or current.value != var.value or current.masked or current.name != var.name:
            changes.append(FieldChange(f"variables.{var.name}",
                                       None if current is None else ("(sensitive)" if current.masked
                                                                     else current.value), var.value))
    for key, current in live_by_name.items():
        if key not in desired_names:
            changes.append(FieldChange(f"variables.{current.name}",
                                       "(sensitive)" if current.masked else current.value, None, current.masked))
    return changes
