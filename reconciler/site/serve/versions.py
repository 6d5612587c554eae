"""What a site keeps about its objects that the embedded site does not: versions, times, folder and group IDs.

``reconcile site serve`` keeps these in memory, beside the embedded site, and derives them from what the site
holds, so a change made to the site file directly (a test's drift, a console stand-in) is seen too:

- ``SMS_TaskSequencePackage.SourceVersion`` rises on every update and ``SedoObjectVersion`` (a GUID) changes on
  every save: a save through the server always moves both; a change found in the file (its fingerprint moved)
  does too. At start every sequence has SourceVersion 1 and a SedoObjectVersion derived from its content, so a
  restarted server gives an unchanged sequence the version it had at the previous start: clients compare the
  two for equality, never order (SourceVersion starts again at 1 after a restart).
- ``LastModificationTime`` of collection and machine settings: the time a change was first seen.
- Console folders (``SMS_ObjectContainerNode`` IDs from 16777217, as a site numbers them) for the folder paths
  the embedded site holds, kept while the server runs even when emptied (a console keeps empty folders), and
  folder items (``SMS_ObjectContainerItem.MemberID``) per task sequence.
- Distribution point group GUIDs, derived from the site code and the group name (stable across restarts).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from reconciler.site.records import TaskSequenceRecord

_NAMESPACE = uuid.UUID("6b1c7a52-7c1e-4a53-9b8e-2f0f3c4d5e61")
FIRST_CONTAINER_ID = 16777217


def _guid(text: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, text)).upper()


def dp_group_id(site_code: str, name: str) -> str:
    return "{" + _guid(f"dpgroup:{site_code}:{name.casefold()}") + "}"


_TS_FIELDS = tuple(f.name for f in fields(TaskSequenceRecord) if f.name != "folder")


def ts_fingerprint(record: TaskSequenceRecord) -> str:
    """What a save changes: every field but the folder (a move changes the folder item, not the package).

    ``repr`` of the field values (text, numbers, booleans, tuples of text): exact, and cheap enough to take
    for 10,000 sequences on every snapshot."""
    return hashlib.sha256(repr(tuple(getattr(record, f) for f in _TS_FIELDS)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TsVersion:
    fingerprint: str
    source_version: int
    sedo_version: str


class VersionBook:
    """Versions of task sequences, moved by saves through the server and by changes found in the file."""

    def __init__(self) -> None:
        self._versions: dict[str, TsVersion] = {}
        self._saved: set[str] = set()

    def saved(self, ts_id: str) -> None:
        """A save through the server: the next refresh moves this sequence's versions whatever its content."""
        self._saved.add(ts_id)

    def refresh(self, records: dict[str, TaskSequenceRecord]) -> None:
        versions = {}
        for ts_id, record in records.items():
            fingerprint = ts_fingerprint(record)
            current = self._versions.get(ts_id)
            if current is None:
                versions[ts_id] = TsVersion(fingerprint, 1, _guid(f"ts:{ts_id}:{fingerprint}"))
            elif current.fingerprint != fingerprint or ts_id in self._saved:
                versions[ts_id] = TsVersion(fingerprint, current.source_version + 1, str(uuid.uuid4()).upper())
            else:
                versions[ts_id] = current
        self._versions = versions
        self._saved.clear()

    def get(self, ts_id: str) -> TsVersion:
        return self._versions[ts_id]


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class ModificationTimes:
    """``LastModificationTime`` per settings object, from fingerprints of what it holds."""

    def __init__(self) -> None:
        self._times: dict[object, tuple[str, str]] = {}
        self._saved: set[object] = set()

    def saved(self, key: object) -> None:
        self._saved.add(key)

    def refresh(self, contents: dict[object, object]) -> None:
        times = {}
        for key, content in contents.items():
            fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
            current = self._times.get(key)
            if current is None or current[0] != fingerprint or key in self._saved:
                times[key] = (fingerprint, now_iso())
            else:
                times[key] = current
        self._times = times
        self._saved.clear()

    def get(self, key: object) -> str | None:
        found = self._times.get(key)
        return found[1] if found else None


class FolderRegistry:
    """Console folders of task sequences by path, and folder items by task sequence."""

    def __init__(self) -> None:
        self.nodes: dict[str, int] = {}  # "OSD/Production" -> ContainerNodeID
        self.items: dict[str, int] = {}  # PackageID -> MemberID
        self._next_node = FIRST_CONTAINER_ID
        self._next_item = FIRST_CONTAINER_ID

    def add(self, path: str) -> int:
        """The node of a folder path, made (with its parents) when new."""
        parts = [p for p in path.split("/") if p]
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix not in self.nodes:
                self.nodes[prefix] = self._next_node
                self._next_node += 1
        return self.nodes["/".join(parts)]

    def sync(self, folders: dict[str, str | None]) -> None:
        """Make nodes for every folder the site's task sequences are in (sorted, so IDs do not depend on order)."""
        for path in sorted({f for f in folders.values() if f}):
            self.add(path)
        for ts_id in sorted(folders):
            if folders[ts_id] and ts_id not in self.items:
                self.items[ts_id] = self._next_item
                self._next_item += 1
        for ts_id in [t for t in self.items if not folders.get(t)]:
            del self.items[ts_id]

    def path(self, node_id: int) -> str | None:
        return next((p for p, n in self.nodes.items() if n == node_id), None)

    def parent(self, path: str) -> int:
        head, sep, _ = path.rpartition("/")
        return self.nodes.get(head, 0) if sep else 0

    def remove(self, path: str) -> None:
        del self.nodes[path]
