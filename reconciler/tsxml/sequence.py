"""Task sequence XML (``<sequence>``) ⇄ the step model: the codec's public face.

The codec lives in modules by concept: :mod:`~reconciler.tsxml.reader` (XML → the YAML shape of a
TaskSequence spec), :mod:`~reconciler.tsxml.writer` (spec → XML), :mod:`~reconciler.tsxml.settings`
(typed settings ⇄ ``<defaultVarList>``), :mod:`~reconciler.tsxml.values` (the text of one setting),
:mod:`~reconciler.tsxml.dynamic_rules`, :mod:`~reconciler.tsxml.secrets` (markers, filling, sealing),
:mod:`~reconciler.tsxml.references` (content IDs) and :mod:`~reconciler.tsxml.dialect` (console or MDT).
This module keeps the one import path the planner, applier, site, export and diff use for all of it.
"""

from __future__ import annotations

from reconciler.tsxml.dialect import CONSOLE_VERSION, MDT_VERSION
from reconciler.tsxml.instance import find_sequence_text
from reconciler.tsxml.reader import ReadResult, SecretPlaceholder, read_sequence
from reconciler.tsxml.references import (
    PackageResolver,
    derive_references,
    iter_package_refs,
    iter_step_nodes,
    reference_ids,
    resolve_by_id,
)
from reconciler.tsxml.secrets import (
    SECRET_MARKER,
    SecretText,
    fill_secrets,
    no_secrets,
    seal_secrets,
    secret_marker,
    secret_marker_sites,
    secret_references,
    step_secret_refs,
)
from reconciler.tsxml.settings import secret_properties
from reconciler.tsxml.writer import write_sequence

__all__ = [
    "CONSOLE_VERSION",
    "MDT_VERSION",
    "SECRET_MARKER",
    "PackageResolver",
    "ReadResult",
    "SecretPlaceholder",
    "SecretText",
    "derive_references",
    "fill_secrets",
    "find_sequence_text",
    "iter_package_refs",
    "iter_step_nodes",
    "no_secrets",
    "read_sequence",
    "reference_ids",
    "resolve_by_id",
    "seal_secrets",
    "secret_marker",
    "secret_marker_sites",
    "secret_properties",
    "secret_references",
    "step_secret_refs",
    "write_sequence",
]
