"""Task sequences over the AdminService: packages, their steps (ImportSequence, SetSequence), folders, and the
``SedoObjectVersion`` a write carries.

A save replaces the package's properties (a PUT's merge or replace reading is unproven, so the whole current row
is sent with the record's values over it); the steps change only through ``SetSequence``, over REST when the
site offers it and ``rest_unproven`` is set, else over WinRM. Folders are ``SMS_ObjectContainerNode`` s
(ObjectType 20) and a sequence moves between them with ``SMS_ObjectContainerItem.MoveMembers``; a folder that
does not exist yet is created, as the console's New Folder does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from reconciler.errors import shorten
from reconciler.site.adminservice import wire
from reconciler.site.adminservice.connection import FOLDER_FILTER, WINRM, SiteConnection
from reconciler.site.adminservice.reading import TS, convert
from reconciler.site.adminservice.winrm import ChangedSincePlan
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import TaskSequenceRecord

#: Properties of a task sequence package the site computes or that only SetSequence changes: never sent.
_TS_COMPUTED = frozenset({"PackageID", "Sequence", "References", "SourceVersion", "SedoObjectVersion", "SourceSite",
                          "TaskSequenceFlags", "SourceDate", "LastRefreshTime"})
_SAVED_PATH = re.compile(r'PackageID\s*=\s*"?([A-Za-z0-9]{8})"?')


class TaskSequences(SiteConnection):
    def _planned(self, ts_id: str, current: Mapping[str, Any]) -> str:
        """The SedoObjectVersion a write of ``ts_id`` carries; refused when the site's moved since the plan."""
        now = str(current.get("SedoObjectVersion") or "")
        planned = self._versions.setdefault(ts_id, now)
        if planned and now and planned != now:
            raise ChangedSincePlan(f"task sequence {ts_id}: changed in the console since the plan; plan again "
                                   f"(its SedoObjectVersion was {shorten(planned, 40)}, it is now {shorten(now, 40)})")
        return planned

    @contextmanager
    def _guarded(self, ts_id: str, planned: str) -> Iterator[None]:
        """A write that the site refused because the object moved meanwhile is a ChangedSincePlan."""
        try:
            yield
        except PermanentSiteError as exc:
            if planned and self._version_now(ts_id) not in (planned, None):
                raise ChangedSincePlan(f"task sequence {ts_id}: changed in the console since the plan; plan "
                                       f"again (the site said: {shorten(str(exc), 200)})") from None
            raise
        self._versions[ts_id] = self._version_now(ts_id) or ""
        self._forget(TS, ts_id)

    def _version_now(self, ts_id: str) -> str | None:
        rows = self._list(TS, f"PackageID eq {wire.odata_literal(ts_id)}",
                         names=("PackageID", "SourceVersion", "SedoObjectVersion"))
        return str(rows[0].get("SedoObjectVersion") or "") if rows else None

    # -- task sequences ---------------------------------------------------------------------------------

    def _folder_path(self, ts_id: str) -> str | None:
        nodes = self._list("SMS_ObjectContainerNode", FOLDER_FILTER)
        items = self._list("SMS_ObjectContainerItem",
                          f"InstanceKey eq {wire.odata_literal(ts_id)} and {FOLDER_FILTER}")
        return self._folders(nodes, items)(ts_id)

    def get_task_sequence(self, ts_id: str) -> TaskSequenceRecord | None:
        row = self._transport.get(TS, ts_id)
        if row is None:
            return None
        self._versions.setdefault(ts_id, str(row.get("SedoObjectVersion") or ""))
        return convert(TS, wire.task_sequence_record, wire.strip_system(row), folder=self._folder_path(ts_id))

    def find_task_sequences(self, name: str) -> list[TaskSequenceRecord]:
        rows = self._list(TS, f"Name eq {wire.odata_literal(name)}",
                         names=("PackageID", "Name"))
        found = [self.get_task_sequence(str(r["PackageID"])) for r in rows if r.get("Name") == name]
        return [ts for ts in found if ts is not None]

    def _package(self, record: TaskSequenceRecord, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The package properties a save sends: the whole current row (a PUT replaces) with the record's over it."""
        row = wire.task_sequence_row(record, site_code=self.site_code)
        if current is not None:  # keep the ProgramFlags bits the console set; only DISABLED is the record's
            flags = wire._int(current.get("ProgramFlags"), wire.PROGRAM_FLAGS_DEFAULT) & ~wire.PROGRAM_FLAG_DISABLED
            row["ProgramFlags"] = flags | (0 if record.enabled else wire.PROGRAM_FLAG_DISABLED)
        props = {k: v for k, v in row.items() if k not in _TS_COMPUTED and self._has(TS, k)}
        if current is None:
            return props
        base = {k: v for k, v in wire.strip_system(current).items() if k not in ("Sequence", "References")}
        return {**base, **props}

    def create_task_sequence(self, record: TaskSequenceRecord) -> str:
        self._writable("create_task_sequence")
        if self._paths["create_task_sequence"] == WINRM:
            ts_id = self._session("create_task_sequence").import_sequence(self._package(record), record.sequence)
        else:
            task_sequence = self._import(record.sequence)
            package = wire.embedded(TS, **self._package(record))
            saved = self._transport.call(TS, "SetSequence", {"TaskSequencePackage": package,
                                                            "TaskSequence": task_sequence})
            found = _SAVED_PATH.search(str(saved.get("SavedTaskSequencePackagePath") or ""))
            if not found:
                raise PermanentSiteError(f"site {self.location}: SetSequence answered no PackageID "
                                         f"({shorten(str(saved.get('SavedTaskSequencePackagePath')), 80)})")
            ts_id = found.group(1).upper()
        self._versions[ts_id] = self._version_now(ts_id) or ""
        if record.folder:
            self._move(ts_id, None, record.folder)
        return ts_id

    def _import(self, xml: str) -> dict[str, Any]:
        answer = self._transport.call(TS, "ImportSequence", {"SequenceXML": xml})
        task_sequence = answer.get("TaskSequence")
        if not isinstance(task_sequence, dict):
            raise PermanentSiteError(f"site {self.location}: ImportSequence answered no TaskSequence")
        return task_sequence

    def _current(self, ts_id: str) -> dict[str, Any]:
        row = self._transport.get(TS, ts_id)
        if row is None:
            raise PermanentSiteError(f"task sequence {ts_id} does not exist")
        return row

    def update_task_sequence(self, ts_id: str, record: TaskSequenceRecord) -> None:
        self._writable("update_task_sequence")
        session = self._session("update_task_sequence") if self._paths["update_task_sequence"] == WINRM else None
        current = self._current(ts_id)
        planned = self._planned(ts_id, current)
        package = self._package(record, current)
        if planned:
            package["SedoObjectVersion"] = planned
        with self._guarded(ts_id, planned):
            if session is not None:
                # WinRM replaces the steps; the properties follow over REST with the version that save made.
                session.set_sequence(ts_id, record.sequence, planned or None)
                package["SedoObjectVersion"] = self._version_now(ts_id) or ""
                self._transport.update(TS, ts_id, package)
            else:
                self._transport.call(TS, "SetSequence", {"TaskSequencePackage": wire.embedded(TS, **package),
                                                        "TaskSequence": self._import(record.sequence)})
        folder = self._folder_path(ts_id)
        if folder != record.folder:
            self._move(ts_id, folder, record.folder)

    def set_task_sequence_enabled(self, ts_id: str, enabled: bool) -> None:
        self._writable("set_task_sequence_enabled")
        current = self._current(ts_id)
        planned = self._planned(ts_id, current)
        body = {k: v for k, v in wire.strip_system(current).items() if k not in ("Sequence", "References")}
        flags = wire._int(current.get("ProgramFlags"), wire.PROGRAM_FLAGS_DEFAULT) & ~wire.PROGRAM_FLAG_DISABLED
        body["ProgramFlags"] = flags | (0 if enabled else wire.PROGRAM_FLAG_DISABLED)
        if planned:
            body["SedoObjectVersion"] = planned
        with self._guarded(ts_id, planned):
            self._transport.update(TS, ts_id, body)

    def move_task_sequence(self, ts_id: str, folder: str | None) -> None:
        self._writable("move_task_sequence")
        self._current(ts_id)
        current = self._folder_path(ts_id)
        if current != folder:
            self._move(ts_id, current, folder)

    def _move(self, ts_id: str, source: str | None, target: str | None) -> None:
        nodes = wire.Folders.from_rows(self._list("SMS_ObjectContainerNode",
                                                 FOLDER_FILTER))
        source_node = nodes.node(source) or 0
        target_node = self._folder_node(nodes, target)
        self._transport.call("SMS_ObjectContainerItem", "MoveMembers", {
            "InstanceKeys": [ts_id], "ContainerNodeID": source_node, "TargetContainerNodeID": target_node,
            "ObjectType": wire.TASK_SEQUENCE_OBJECT_TYPE})

    def _folder_node(self, nodes: wire.Folders, path: str | None) -> int:
        """The node of a folder path, creating the folders that are missing (as the console's New Folder)."""
        parent = 0
        for name in [p for p in (path or "").split("/") if p]:
            found = [n for n, (child, up) in nodes.nodes.items() if up == parent and child == name]
            if found:
                parent = min(found)
                continue
            created = self._transport.create("SMS_ObjectContainerNode", {
                "Name": name, "ObjectType": wire.TASK_SEQUENCE_OBJECT_TYPE, "ParentContainerNodeID": parent})
            node = wire._int(created.get("ContainerNodeID"))
            if not node:
                raise PermanentSiteError(f"site {self.location}: creating folder {name!r} answered no ContainerNodeID")
            nodes.nodes[node] = (name, parent)
            parent = node
        return parent

    def delete_task_sequence(self, ts_id: str) -> None:
        self._writable("delete_task_sequence")
        deployed = self._list("SMS_Advertisement",
                             f"PackageID eq {wire.odata_literal(ts_id)}", names=("AdvertisementID", "PackageID"))
        if deployed:
            raise PermanentSiteError(f"task sequence {ts_id} is still deployed; delete its deployments first")
        self._transport.delete(TS, ts_id)
        self._versions.pop(ts_id, None)
        self._forget(TS, ts_id)
