"""The embedded site behind ``reconcile site serve``, as the AdminService's classes see it.

SQLite connections belong to the thread that opened them, and a site answers one change at a time, so the
:class:`SiteBackend` owns the :class:`~reconciler.site.embedded.EmbeddedSite` in one worker thread: every
read and write of a request runs there (:meth:`SiteBackend.run`), while the HTTP threads only parse and
serialize. Reads come from one snapshot of the site (``Site.read``), taken again only when the site changed:
after a write through the server, or when another connection wrote to the file (``changed_since_read``), so
a list of 10,000 task sequences does not read the file once per request.

Devices are the exception, as on a site with hundreds of thousands of them: ``SMS_R_System`` is answered
only for a ``$filter`` naming ``ResourceID`` or ``Name``, and ``SMS_FullCollectionMembership`` only for one
naming ``ResourceID`` (the embedded site offers no listing of every device, nor of a collection's members);
anything else is a 400 that says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, TypeVar

from reconciler.site.adminservice import wire
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import Computer, LiveState
from reconciler.site.serve.odata import BadRequest, Query, key_dict, matches, select_rows
from reconciler.site.serve.versions import FolderRegistry, ModificationTimes, VersionBook, dp_group_id

T = TypeVar("T")

#: An example build: ConfigMgr 2409 (5.00.9132). Only ``reconcile site check`` shows it.
SITE_VERSION, SITE_BUILD = "5.00.9132.1000", 9132


@dataclass(frozen=True)
class BackendOptions:
    server_name: str = "localhost"
    site_name: str = "Reconcile test site"
    admins: tuple[str, ...] = ()  # logon names of the administrators (SMS_Admin)
    hide: frozenset[str] = frozenset()
    refuse_schedule_writes: bool = False


class SiteBackend:
    """An embedded site served as AdminService rows; every method runs in the site's own thread."""

    def __init__(self, path: Path, options: BackendOptions = BackendOptions()) -> None:
        self.options = options
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="site-serve")
        self.site: EmbeddedSite
        self.versions = VersionBook()
        self.times = ModificationTimes()
        self.folders = FolderRegistry()
        self._state: LiveState | None = None
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._index: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.dirty = False
        self.site_code = self.run(lambda: self._open(path))

    def _open(self, path: Path) -> str:
        if not path.exists():
            from reconciler.site.errors import SiteNotFound

            raise SiteNotFound(f"site {path} does not exist; create it with 'reconcile site init --site {path}'")
        self.site = EmbeddedSite(path)
        return self.site.site_code

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the site's thread and return what it returns (or raise what it raises)."""
        return self._executor.submit(fn).result()

    def close(self) -> None:
        try:
            self.run(lambda: self.site.close() if hasattr(self, "site") else None)
        finally:
            self._executor.shutdown(wait=True)

    # -- the snapshot ------------------------------------------------------------------------------------------

    def state(self) -> LiveState:
        changed = self.site.changed_since_read()  # always asked: it remembers what it last saw
        if self._state is None or self.dirty or changed:
            state = self.site.read()
            self.versions.refresh(state.task_sequences)
            contents: dict[object, object] = {("c", cid): (s.precedence, [astuple(v) for v in s.variables])
                                              for cid, s in state.collection_settings.items()}
            contents.update({("m", rid): [astuple(v) for v in s.variables]
                             for rid, s in state.machine_settings.items()})
            self.times.refresh(contents)
            self.folders.sync({ts_id: ts.folder for ts_id, ts in state.task_sequences.items()})
            self._state, self._rows, self._index, self.dirty = state, {}, {}, False
        return self._state

    def invalidate(self) -> None:
        """Rows are made again from the same snapshot (a change of the server's own folders)."""
        self._rows, self._index = {}, {}

    def rows(self, class_name: str) -> list[dict[str, Any]]:
        """Every full row of a class (lazy properties included), in key order."""
        state = self.state()
        if class_name not in self._rows:
            self._rows[class_name] = sorted(self._build(class_name, state), key=self._sort_key(class_name))
        return self._rows[class_name]

    def _sort_key(self, class_name: str) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        keys = wire.CLASSES[class_name].key
        return lambda row: tuple(row[k] for k in keys)

    def find(self, class_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row with this key (exactly: no case folding), or None."""
        wire_class = wire.CLASSES[class_name]
        if class_name in ("SMS_R_System", "SMS_FullCollectionMembership"):
            found = self._devices(class_name, dict(key))
            return found[0] if found else None
        rows = self.rows(class_name)
        if class_name not in self._index:
            self._index[class_name] = {tuple(r[k] for k in wire_class.key): r for r in rows}
        return self._index[class_name].get(tuple(key[k] for k in wire_class.key))

    def query(self, class_name: str, query: Query) -> list[Mapping[str, Any]]:
        if class_name in ("SMS_R_System", "SMS_FullCollectionMembership"):
            candidates: list[dict[str, Any]] = self._devices(class_name, query.equalities())
            return select_rows([r for r in candidates if matches(query.filter, r)], Query(None, None, query.top,
                                                                                           query.skip))
        return select_rows(self.rows(class_name), query)

    def get(self, class_name: str, route_key: tuple[tuple[str | None, Any], ...]) -> dict[str, Any] | None:
        return self.find(class_name, key_dict(wire.CLASSES[class_name], route_key))

    # -- devices, looked up one at a time ----------------------------------------------------------------------

    def _devices(self, class_name: str, terms: dict[str, Any]) -> list[dict[str, Any]]:
        self.state()
        rid = terms.get("ResourceID")
        if class_name == "SMS_FullCollectionMembership":
            if not isinstance(rid, int):
                raise BadRequest("SMS_FullCollectionMembership is answered for one device: filter on ResourceID")
            computer = self.site.computer(rid)
            if computer is None:
                return []
            return [wire.membership_row(cid, computer) for cid in self.site.memberships(rid)
                    if terms.get("CollectionID") in (None, cid)]
        computers: list[Computer]
        if isinstance(rid, int):
            found = self.site.computer(rid)
            computers = [found] if found else []
        elif isinstance(terms.get("Name"), str):
            computers = self.site.computers_named(terms["Name"])
        else:
            raise BadRequest("SMS_R_System is answered for named devices: filter on ResourceID or Name "
                             "(this server lists no site's whole device inventory)")
        return [wire.computer_row(c) for c in computers]

    # -- rows of each class ------------------------------------------------------------------------------------

    def _build(self, class_name: str, state: LiveState) -> list[dict[str, Any]]:
        code = state.site_code
        if class_name == "SMS_TaskSequencePackage":
            out = []
            for ts in state.task_sequences.values():
                version = self.versions.get(str(ts.id))
                dangling = any(ref not in state.packages for ref in ts.references)
                out.append(wire.task_sequence_row(ts, source_version=version.source_version,
                                                  sedo_version=version.sedo_version, dangling=dangling,
                                                  site_code=code))
            return out
        if class_name == "SMS_Advertisement":
            return [wire.deployment_row(d, site_code=code) for d in state.deployments.values()]
        if class_name == "SMS_Collection":
            return [wire.collection_row(c) for c in state.collections.values()]
        if class_name in ("SMS_PackageBaseclass", "SMS_Package"):
            rows = []
            for package in state.packages.values():
                row = wire.package_row(package, site_code=code)
                if package.id in state.task_sequences:
                    row["SourceVersion"] = self.versions.get(package.id).source_version
                if class_name == "SMS_PackageBaseclass" or row["PackageType"] == 0:
                    rows.append(row)
            return rows
        if class_name == "SMS_DistributionPointInfo":
            return [wire.distribution_point_row(dp) for dp in state.distribution_points.values()]
        if class_name == "SMS_DistributionPoint":
            return [{"PackageID": pkg, "ServerNALPath": wire.nal_path(dp, code), "SiteCode": code, "RefreshNow": False,
                     "SourceSite": code, "LastRefreshTime": wire.UNSET_TIME} for pkg, dp in state.content]
        if class_name == "SMS_PackageStatusDistPointsSummarizer":
            return [wire.content_status_row(s, code) for s in state.content.values()]
        if class_name == "SMS_DistributionPointGroup":
            return [wire.dp_group_row(g, dp_group_id(code, g.name)) for g in state.dp_groups.values()]
        if class_name == "SMS_DPGroupMembers":
            return [{"GroupID": dp_group_id(code, g.name), "DPNALPath": wire.nal_path(dp, code)}
                    for g in state.dp_groups.values() for dp in g.members]
        if class_name == "SMS_DPGroupCollections":
            return [{"GroupID": dp_group_id(code, g.name), "CollectionID": cid, "GroupName": g.name,
                     "CollectionName": state.collections[cid].name if cid in state.collections else ""}
                    for g in state.dp_groups.values() for cid in g.collections]
        if class_name == "SMS_CollectionSettings":
            return [wire.collection_settings_row(s, last_modified=self.times.get(("c", cid)))
                    for cid, s in state.collection_settings.items()]
        if class_name == "SMS_MachineSettings":
            return [wire.machine_settings_row(s, site_code=code, last_modified=self.times.get(("m", rid)))
                    for rid, s in state.machine_settings.items()]
        if class_name == "SMS_ObjectContainerNode":
            used = {ts.folder for ts in state.task_sequences.values() if ts.folder}
            return [{"ContainerNodeID": node, "Name": path.rsplit("/", 1)[-1],
                     "ObjectType": wire.TASK_SEQUENCE_OBJECT_TYPE, "ParentContainerNodeID": self.folders.parent(path),
                     "FolderGuid": dp_group_id(code, f"folder:{path}")[1:-1],
                     "IsEmpty": not any(u == path or u.startswith(path + "/") for u in used),
                     "SearchFolder": False, "SourceSite": code} for path, node in self.folders.nodes.items()]
        if class_name == "SMS_ObjectContainerItem":
            return [{"MemberID": member, "ContainerNodeID": self.folders.nodes[str(state.task_sequences[ts_id].folder)],
                     "InstanceKey": ts_id, "ObjectType": wire.TASK_SEQUENCE_OBJECT_TYPE,
                     "MemberGuid": dp_group_id(code, f"item:{ts_id}")[1:-1], "SourceSite": code}
                    for ts_id, member in self.folders.items.items() if ts_id in state.task_sequences]
        if class_name == "SMS_SCI_SiteDefinition":
            return [{**wire.site_definition_key(code), "SiteName": self.options.site_name,
                     "Props": wire.verification_props(state.verification)}]
        if class_name == "SMS_Site":
            return [{"SiteCode": code, "SiteName": self.options.site_name, "Version": SITE_VERSION,
                     "BuildNumber": SITE_BUILD, "ServerName": self.options.server_name, "Type": 2}]
        if class_name == "SMS_Admin":
            return [{"AdminID": 16777217 + i, "LogonName": name, "RoleNames": ["Full Administrator"]}
                    for i, name in enumerate(self.options.admins)]
        return []
