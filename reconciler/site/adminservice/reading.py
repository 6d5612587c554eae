"""Reading a site over the AdminService: the cheap listing every read starts with, and the snapshot built from it.

A read lists every class a plan needs with ``$select`` of its listed (non-lazy) properties, one page per 1,000
rows, and fetches by key only the objects whose lazy properties it needs and does not hold in the read cache
under the same token (see :mod:`reconciler.site.adminservice.cache`). ``changed_since_read`` lists the same
and compares a digest, so a controller's idle tick costs the listing and nothing more.

Which rows are *versioned* (their token moves whenever their lazy properties do):

- a task sequence, by ``SourceVersion`` and ``SedoObjectVersion`` (CONFIGMGR.md: the first rises on every
  update, the second on every save); its folder comes from the folder items, listed every time;
- collection and machine settings, by ``LastModificationTime`` when the site sets it.

Deployments (``AssignedSchedule`` is lazy and no listed property is known to move with it), devices named by
machine settings, and the site's verification settings are trusted from the cache for ``max_age`` seconds
only: a schedule changed in the console, and nothing else of that deployment, shows within that time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.site.adminservice import wire
from reconciler.site.adminservice.cache import ReadCache
from reconciler.site.adminservice.metadata import Capabilities
from reconciler.site.adminservice.transport import Transport
from reconciler.site.errors import PermanentSiteError

TS = "SMS_TaskSequencePackage"
FOLDER_FILTER = f"ObjectType eq {wire.TASK_SEQUENCE_OBJECT_TYPE}"

#: Classes a read lists (with the ``$filter`` each is listed with), in the order they are read.
LISTED: tuple[tuple[str, str | None], ...] = (
    (TS, None), ("SMS_Advertisement", None), ("SMS_Collection", None), ("SMS_PackageBaseclass", None),
    ("SMS_DistributionPointInfo", None), ("SMS_DistributionPointGroup", None), ("SMS_DPGroupMembers", None),
    ("SMS_DPGroupCollections", None), ("SMS_PackageStatusDistPointsSummarizer", None),
    ("SMS_CollectionSettings", None), ("SMS_MachineSettings", None), ("SMS_ObjectContainerNode", FOLDER_FILTER),
    ("SMS_ObjectContainerItem", FOLDER_FILTER),
)

#: Classes a read needs besides the listed ones: devices one at a time, the site, its settings.
NEEDED = (*(cls for cls, _ in LISTED), "SMS_R_System", "SMS_FullCollectionMembership", "SMS_Site",
          "SMS_SCI_SiteDefinition")


def token(row: Mapping[str, Any]) -> str:
    """A digest of an object's listed properties: what its cached full row was fetched under."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def ts_versioned(row: Mapping[str, Any]) -> bool:
    return bool(row.get("SourceVersion") or row.get("SedoObjectVersion"))


def settings_versioned(row: Mapping[str, Any]) -> bool:
    return wire.record_time(row.get("LastModificationTime")) is not None


@dataclass
class Listing:
    """The listed rows of every class a read needs, as the site answered them (system properties dropped)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def of(self, cls: str) -> list[dict[str, Any]]:
        return self.rows.get(cls, [])

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.rows, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def select(capabilities: Capabilities, cls: str, names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The listed properties of a class that this site has (``$select`` may name no other)."""
    wanted = wire.CLASSES[cls].listed if names is None else names
    if not capabilities.properties.get(cls):
        return wanted  # the document named no properties: ask for these and let the site say
    return tuple(p for p in wanted if capabilities.has_property(cls, p))


def list_rows(transport: Transport, capabilities: Capabilities, cls: str, where: str | None = None,
              names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    return [wire.strip_system(r) for r in transport.list(cls, select(capabilities, cls, names), where)]


def listing(transport: Transport, capabilities: Capabilities) -> Listing:
    return Listing({cls: list_rows(transport, capabilities, cls, where) for cls, where in LISTED})


def key_of(cls: str, row: Mapping[str, Any]) -> str:
    """An object's key as the cache keeps it (text)."""
    wire_class = wire.CLASSES[cls]
    try:
        return "|".join(str(row[k]) for k in wire_class.key)
    except KeyError as missing:
        raise PermanentSiteError(f"the site listed a {cls} without its key property {missing}") from None


def wire_key(cls: str, text: str) -> str | int:
    """The key of a single-key class as the URL needs it (a number stays a number)."""
    return int(text) if wire.CLASSES[cls].numeric_key() else text


@dataclass
class FullRows:
    """Full rows (lazy properties included) of the objects listed, from the cache or fetched by key."""

    transport: Transport
    cache: ReadCache
    max_age: float
    #: when the first unversioned row used since the last read stops being trusted (None: no such row)
    expiry: float | None = None

    def _used(self, fetched: float) -> None:
        until = fetched + self.max_age
        self.expiry = until if self.expiry is None else min(self.expiry, until)

    def fetch(self, cls: str, listed: Mapping[str, Mapping[str, Any]],
              versioned: Callable[[Mapping[str, Any]], bool] = lambda row: False) -> dict[str, dict[str, Any]]:
        cached = self.cache.load(cls)
        now = self.cache.now()
        out: dict[str, dict[str, Any]] = {}
        fresh: list[tuple[str, str, dict[str, Any]]] = []
        for key, row in listed.items():
            tag = token(row)
            hit = cached.get(key)
            if hit is not None and hit.token == tag and (versioned(row) or now - hit.fetched < self.max_age):
                out[key] = {**hit.row, **row}
                if not versioned(row):
                    self._used(hit.fetched)
                continue
            full = self.transport.get(cls, wire_key(cls, key))
            if full is None:
                continue  # deleted between the list and the get: as if it had not been listed
            full = wire.strip_system(full)
            out[key] = full
            fresh.append((key, tag, full))
            if not versioned(row):
                self._used(now)
        self.cache.put(cls, fresh)
        gone = [key for key in cached if key not in listed]
        if gone:
            self.cache.forget(cls, gone)
        return out

    def one(self, cls: str, key: str | int | Mapping[str, str | int], cache_key: str) -> dict[str, Any] | None:
        """An unversioned object kept for ``max_age`` (a device's name, the site's settings)."""
        hit = self.cache.get(cls, cache_key)
        if hit is not None and self.cache.now() - hit.fetched < self.max_age:
            self._used(hit.fetched)
            return hit.row
        full = self.transport.get(cls, key)
        if full is None:
            self.cache.forget(cls, [cache_key])
            return None
        row = wire.strip_system(full)
        self.cache.put(cls, [(cache_key, "", row)])
        self._used(self.cache.now())
        return row


def convert(cls: str, fn: Callable[..., Any], row: Mapping[str, Any], **extra: Any) -> Any:
    """A row turned into a record; a row without what the record needs is the site's error, not a crash."""
    try:
        return fn(row, **extra)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        key = "|".join(str(row.get(k, "?")) for k in wire.CLASSES[cls].key) if cls in wire.CLASSES else "?"
        raise PermanentSiteError(f"the site answered a {cls} ({key[:60]}) this tool cannot read: "
                                 f"{type(exc).__name__}: {str(exc)[:120]}") from None
