"""A task sequence's package properties in the terms its manifest writes, and the changes between two.

``ts_properties`` already names the properties as the manifest does; what a plan still showed as the
site holds it is the boot image, an ID. Here it reads ``Boot image (x64) [PS100004]``, and each
property that differs is one change at its manifest path (``highImpact.notification.headline``,
``softwareCenter.downloadSizeMB``). The step tree is not here: ``diff.steps`` compares it by identity.
"""

from __future__ import annotations

from typing import Any

from reconciler.diff.changes import FieldChange
from reconciler.diff.normalize import ts_properties
from reconciler.diff.terms import package_text
from reconciler.site.records import LiveState, TaskSequenceRecord


def _flat(properties: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested properties as manifest paths; ``highImpact.notification`` stays whole when it is unset on a
    side (see :func:`ts_property_changes`)."""
    out: dict[str, Any] = {}
    for key, value in properties.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path != "highImpact.notification":
            out.update(_flat(value, f"{path}."))
        else:
            out[path] = value
    return out


def ts_property_terms(record: TaskSequenceRecord, live: LiveState) -> dict[str, Any]:
    """A sequence's properties as its manifest says them: manifest path → value, in the manifest's order.

    ``bootImage`` is ``Name [ID]`` (``[PS1000FF] (not on the site)`` for an ID the site does not know);
    ``highImpact.notification`` is ``{headline, body: [three texts]}``, or ``None`` without custom text.
    """
    terms = _flat(ts_properties(record))
    if record.boot_image_id:
        terms["bootImage"] = package_text(record.boot_image_id, live)
    return terms


def ts_property_changes(before: TaskSequenceRecord, after: TaskSequenceRecord, live: LiveState
                        ) -> tuple[FieldChange, ...]:
    """One change per property that differs, at its manifest path, in the manifest's order.

    Paths: ``name``, ``description``, ``type``, ``folder``, ``enabled``, ``bootImage``,
    ``highImpact.enabled``, ``highImpact.notification`` (``.headline``, ``.body[0]``…``[2]`` when both
    sides have custom text; the whole notification when one side has none), ``softwareCenter.*``,
    ``category``, ``maxRunTimeMinutes``. Values as :func:`ts_property_terms` gives them. The boot image
    is compared by ID, so two packages that share a console name are still told apart.
    """
    old, new = ts_property_terms(before, live), ts_property_terms(after, live)
    old_keys = {**old, "bootImage": before.boot_image_id}
    new_keys = {**new, "bootImage": after.boot_image_id}
    out: list[FieldChange] = []
    for path in old:
        if old_keys[path] == new_keys[path]:
            continue
        if path == "highImpact.notification" and old[path] is not None and new[path] is not None:
            was, now = old[path], new[path]
            if was["headline"] != now["headline"]:
                out.append(FieldChange(f"{path}.headline", was["headline"], now["headline"]))
            out.extend(FieldChange(f"{path}.body[{i}]", a, b)
                       for i, (a, b) in enumerate(zip(was["body"], now["body"], strict=True)) if a != b)
            continue
        out.append(FieldChange(path, old[path], new[path]))
    return tuple(out)
