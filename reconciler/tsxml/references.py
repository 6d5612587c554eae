"""Content a sequence refers to: packages, child sequences and applications, and their IDs.

ConfigMgr keeps a ``<referenceList>`` beside the steps and recomputes it on ``SetSequence``; the codec
derives it from the steps the same way, so a manifest need not list it, and keeps a list that differs
from the derived one verbatim. The planner, the site and export read the IDs of a stored sequence here
without building a step model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from reconciler.errors import UnresolvedReference
from reconciler.models.steptypes import BY_NAME
from reconciler.tsxml.xmltext import parse

#: Turns a package reference of a manifest (``{id: …}`` or ``{package: console name}``) into its ID.
PackageResolver = Callable[[dict[str, Any]], str]


def resolve_by_id(ref: dict[str, Any]) -> str:
    """Default resolver: references by ID need no site; references by console name do."""
    if ref.get("id"):
        return str(ref["id"])
    raise UnresolvedReference(
        f"package {ref.get('package')!r} is referenced by console name; writing XML needs its package ID: "
        "use {id: …} or resolve names against a site"
    )


def resolve_as_written(ref: dict[str, Any]) -> str:
    """A reference as the manifest wrote it (ID or console name): comparing lists needs no site."""
    return str(ref.get("id") or ref.get("package"))


def reference_set(refs: list[dict[str, str]]) -> set[tuple[tuple[str, str], ...]]:
    """References as ConfigMgr compares them: their order and the case of a package ID carry no meaning."""
    return {tuple(sorted((k, v.upper() if k == "package" else v) for k, v in r.items())) for r in refs}


def iter_step_nodes(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step (not group) of a step tree in its YAML shape, in document order, as the same dicts."""
    for node in nodes:
        if "group" in node:
            yield from iter_step_nodes(node.get("steps") or [])
        else:
            yield node


def iter_package_refs(steps: list[dict[str, Any]]) -> Any:
    """Yield (step name, field, reference mapping or package ID string) for every content reference."""
    for node in iter_step_nodes(steps):
        known = BY_NAME.get(node.get("type") or "")
        if known is None:
            continue
        settings = node.get("settings") or {}
        for prop in known.props:
            value = settings.get(prop.field)
            if prop.kind == "package" and value:
                yield node["name"], prop.field, value
        if known.name == "DownloadPackageContent" and settings.get("packages"):
            for pid in str(settings["packages"]).split(","):
                if pid.strip():
                    yield node["name"], "packages", {"id": pid.strip()}


def derive_references(steps: list[dict[str, Any]], resolve: PackageResolver) -> list[dict[str, str]]:
    """The ``<referenceList>`` ConfigMgr computes from the steps: packages, child sequences, applications."""
    refs: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(entry: dict[str, str]) -> None:
        key = tuple(sorted(entry.items()))
        if key not in seen:
            seen.add(key)  # type: ignore[arg-type]
            refs.append(entry)

    for node in iter_step_nodes(steps):
        known = BY_NAME.get(node.get("type") or "")
        if known is None:
            continue
        settings = node.get("settings") or {}
        if known.name == "RunTaskSequence" and settings.get("taskSequence"):
            add({"package": resolve(settings["taskSequence"]), "program": "*"})
            continue
        for prop in known.props:
            value = settings.get(prop.field)
            if prop.kind == "package" and value:
                add({"package": resolve(value)})
        if known.name == "DownloadPackageContent" and settings.get("packages"):
            for pid in str(settings["packages"]).split(","):
                if pid.strip():
                    add({"package": pid.strip()})
        if known.name == "InstallApplication" and settings.get("applicationNames"):
            for app in str(settings["applicationNames"]).split(","):
                if app.strip():
                    add({"application": app.strip()})
    return refs


def reference_ids(xml: str) -> tuple[str, ...]:
    """Package IDs and application names in a sequence's <referenceList> (what SetSequence refreshes)."""
    root = parse(xml)
    out = []
    for ref_list in root.iter("referenceList"):
        for ref in ref_list:
            value = ref.get("package") or ref.get("application")
            if value:
                out.append(value)
    return tuple(out)
