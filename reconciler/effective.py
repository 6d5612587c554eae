"""Which task sequence variables a computer gets, and from where, as the site resolves them.

ConfigMgr's precedence: computer variables override collection variables; between collections the
collection variable priority decides (1 is the highest: ``CollectionVariablePrecedence``). Names are
case-insensitive. Desired manifests stand for the objects they manage; live objects nobody manages
still count, because the site still hands them to the computer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.diff.normalize import Resolver, Unresolved
from reconciler.errors import ReconcilerError, Source
from reconciler.models.variables import ComputerRef
from reconciler.site.records import Computer, LiveState
from reconciler.source.loader import DesiredState

SENSITIVE = "(sensitive)"


@dataclass(frozen=True, slots=True)
class Origin:
    scope: str  # "computer" or "collection"
    target: str  # computer name or "Collection name (ID)"
    priority: int | None
    value: str
    hidden: bool
    manifest: str | None  # Kind/name, or None for a live object nobody manages
    source: Source | None

    def describe(self) -> str:
        where = f"{self.scope} {self.target}" + (f" (priority {self.priority})" if self.priority else "")
        return where + (f", manifest {self.manifest}" if self.manifest else ", live (not managed here)")

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "target": self.target, "priority": self.priority,
                "value": SENSITIVE if self.hidden else self.value, "hidden": self.hidden, "manifest": self.manifest,
                "file": self.source.file if self.source else None, "line": self.source.line if self.source else None}


@dataclass
class EffectiveVariable:
    name: str
    winner: Origin
    overridden: list[Origin] = field(default_factory=list)

    @property
    def value(self) -> str:
        return SENSITIVE if self.winner.hidden else self.winner.value


class ComputerNotFound(ReconcilerError):
    pass


def _origins_for(computer: Computer, desired: DesiredState, live: LiveState) -> list[tuple[str, Origin]]:
    resolver = Resolver(live)
    origins: list[tuple[str, Origin]] = []
    collections = live.member_of(computer.resource_id)  # asked of the site for this one device
    managed_collections: set[str] = set()
    for obj in desired.of_kind("CollectionVariables"):
        spec = obj.manifest.spec  # type: ignore[union-attr]
        try:
            collection = resolver.collection(spec.collection, ("spec", "collection"))
        except Unresolved:
            continue
        managed_collections.add(collection.id)
        if collection.id not in collections:
            continue
        for var in spec.variables:
            origins.append((var.name, Origin("collection", f"{collection.name} ({collection.id})", spec.priority,
                                             var.value or "", var.hidden or var.value_from is not None, obj.key,
                                             obj.source)))
    for cid in collections:
        settings = live.collection_settings.get(cid)
        if settings is None or cid in managed_collections:
            continue
        name = live.collections[cid].name if cid in live.collections else cid
        for lv in settings.variables:
            origins.append((lv.name, Origin("collection", f"{name} ({cid})", settings.precedence, lv.value or "",
                                            lv.masked, None, None)))
    managed_computer = False
    for obj in desired.of_kind("ComputerVariables"):
        spec = obj.manifest.spec  # type: ignore[union-attr]
        try:
            target = resolver.computer(spec.computer, ("spec", "computer"))
        except Unresolved:
            continue
        if target.resource_id != computer.resource_id:
            continue
        managed_computer = True
        for var in spec.variables:
            origins.append((var.name, Origin("computer", computer.name, None, var.value or "",
                                             var.hidden or var.value_from is not None, obj.key, obj.source)))
    machine = live.machine_settings.get(computer.resource_id)
    if machine is not None and not managed_computer:
        for lv in machine.variables:
            origins.append((lv.name, Origin("computer", computer.name, None, lv.value or "", lv.masked, None, None)))
    return origins


def _rank(origin: Origin) -> tuple[int, int, str]:
    # Lower sorts first and wins: computer scope, then the collection with the highest priority (1).
    return (0 if origin.scope == "computer" else 1, origin.priority or 0, origin.target)


def effective_variables(computer: str | int, desired: DesiredState, live: LiveState) -> tuple[Computer,
                                                                                               list[EffectiveVariable]]:
    ref = ComputerRef(resource_id=computer) if isinstance(computer, int) else ComputerRef(name=computer)
    try:
        target = Resolver(live).computer(ref, ())
    except Unresolved as exc:
        raise ComputerNotFound(exc.message) from None
    by_name: dict[str, list[tuple[str, Origin]]] = {}
    for name, origin in _origins_for(target, desired, live):
        by_name.setdefault(name.casefold(), []).append((name, origin))
    out = []
    for entries in by_name.values():
        entries.sort(key=lambda e: _rank(e[1]))
        name, winner = entries[0]
        out.append(EffectiveVariable(name, winner, [o for _, o in entries[1:]]))
    out.sort(key=lambda v: v.name.casefold())
    return target, out


def effective_count(computer: Computer, desired: DesiredState, live: LiveState) -> int:
    """How many distinct variables the computer gets (ConfigMgr allows at most 1,000)."""
    return len({name.casefold() for name, _ in _origins_for(computer, desired, live)})
