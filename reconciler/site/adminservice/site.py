"""AdminServiceSite: a real ConfigMgr site through its AdminService (REST), with WinRM where REST cannot write.

It implements :class:`~reconciler.site.protocol.Site` over the classes and record mappings of
:mod:`reconciler.site.adminservice.wire`, so the planner, the applier and the controller use a real site as
they use the embedded one. At start it reads ``wmi/$metadata`` and decides, per operation, whether that
operation goes over REST or over WinRM (:meth:`AdminServiceSite.paths`):

- task sequence create and update (``ImportSequence`` then ``SetSequence``) are unproven over REST: WinRM,
  unless ``rest_unproven`` is set and the site's ``$metadata`` offers both methods;
- writes of a deployment's ``AssignedSchedule`` array (one module saw HTTP 500 writing a schedule token) and
  variable writes that hold a masked value (whether a PUT keeps a masked value that reads back empty is
  unknown): WinRM, unless ``rest_unproven``;
- changing the site's deployment verification settings rewrites the site control file: REST only with
  ``rest_unproven``, else refused (the console does it);
- everything else over REST: it is a create (POST), an update sending every property (PUT, whose merge or
  replace reading is unproven, so the whole current row is sent), a delete, or a method ``$metadata`` lists.

Reads never need WinRM. An operation whose path is WinRM on a site without ``site.winrm`` fails as that
action, naming what to configure; nothing is written first. A site opened read-only refuses every write before
any request.

Concurrency: a task sequence write carries the ``SedoObjectVersion`` the plan saw (from the read the plan was
made from, or the first look at it since), checked against the site's before the write and sent with it; a
console edit in between is a :class:`~reconciler.site.adminservice.winrm.ChangedSincePlan` for that object:
"changed in the console since the plan; plan again".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.errors import shorten
from reconciler.site.adminservice import wire
from reconciler.site.adminservice.cache import ReadCache
from reconciler.site.adminservice.metadata import Capabilities, parse_metadata
from reconciler.site.adminservice.reading import (
    NEEDED,
    TS,
    FullRows,
    convert,
    key_of,
    list_rows,
    listing,
    settings_versioned,
    ts_versioned,
)
from reconciler.site.adminservice.transport import Transport, Tuning
from reconciler.site.adminservice.winrm import ChangedSincePlan, VariableWrite, WinRMSession, require, session_for
from reconciler.site.errors import PermanentSiteError
from reconciler.site.options import SiteOptions, site_slug
from reconciler.site.records import (
    CollectionSettings,
    Computer,
    ContentStatus,
    DeploymentRecord,
    LiveState,
    MachineSettings,
    TaskSequenceRecord,
    VerificationSettings,
)

log = logging.getLogger(__name__)

REST, WINRM, UNAVAILABLE = "REST", "WinRM", "unavailable"

#: What each operation does, as a person reads it (the keys are the Site protocol's methods, plus the parts of
#: a write that may take another path than the rest of it).
OPERATIONS = {
    "read": "reading the site (plans, status, export, drift)",
    "create_task_sequence": "creating a task sequence (ImportSequence, SetSequence)",
    "update_task_sequence": "changing a task sequence's steps (ImportSequence, SetSequence)",
    "set_task_sequence_enabled": "enabling or disabling a task sequence",
    "move_task_sequence": "moving a task sequence to another folder (MoveMembers)",
    "delete_task_sequence": "deleting a task sequence",
    "create_deployment": "creating a deployment",
    "update_deployment": "changing a deployment",
    "delete_deployment": "deleting a deployment",
    "deployment_schedule": "writing a deployment's schedule (AssignedSchedule)",
    "distribute_content": "distributing content to distribution points",
    "redistribute_content": "redistributing content",
    "remove_content": "removing content from distribution points",
    "set_collection_variables": "setting collection variables",
    "set_computer_variables": "setting computer variables",
    "masked_variables": "writing hidden (masked) variables",
    "set_verification_settings": "changing the deployment verification settings (site control file)",
}

#: Properties of a task sequence package the site computes or that only SetSequence changes: never sent.
_TS_COMPUTED = frozenset({"PackageID", "Sequence", "References", "SourceVersion", "SedoObjectVersion", "SourceSite",
                          "TaskSequenceFlags", "SourceDate", "LastRefreshTime"})
_SAVED_PATH = re.compile(r'PackageID\s*=\s*"?([A-Za-z0-9]{8})"?')
#: How long rows without a version (a deployment's schedule, a device's name, the site's settings) are trusted.
DEFAULT_MAX_AGE = 900.0
MAX_VARIABLES_PER_COMPUTER = 1000
MAX_SCHEDULE_TOKENS = 15


def default_cache_file(url: str) -> Path:
    """The read cache of a remote site when none is named: beside its default state store."""
    from reconciler.site.options import STATE_FOLDER

    return STATE_FOLDER / f"{site_slug(url)}.cache.db"


def _refuse_duplicates(variables: list[tuple[str, str, bool]]) -> None:
    """Variable names are case-insensitive in ConfigMgr: two that differ only by case are one name twice."""
    seen: dict[str, str] = {}
    for name, _, _ in variables:
        first = seen.get(name.casefold())
        if first is not None:
            raise PermanentSiteError(f"variable {name!r} is given twice (as {first!r} too): names are case-insensitive")
        seen[name.casefold()] = name


class AdminServiceSite:
    """A ConfigMgr site through its AdminService; implements the ``Site`` protocol.

    ``rest_unproven`` sends over REST what no real site has been seen to accept there (task sequence steps,
    schedules, masked variables, verification settings) instead of WinRM: for ``reconcile site serve`` and for a
    site where an administrator verified it. ``winrm`` replaces the WinRM session the options describe (tests
    pass a stand-in). ``max_age`` bounds how long unversioned cached rows are trusted.
    """

    def __init__(self, options: SiteOptions, *, cache_path: Path | None = None, rest_unproven: bool | None = None,
                 tuning: Tuning | None = None, winrm: WinRMSession | bool = True,
                 max_age: float = DEFAULT_MAX_AGE) -> None:
        if not options.url:
            raise PermanentSiteError("an AdminService site needs its URL (https://<SMS Provider>/AdminService)")
        self.options = options
        self.rest_unproven = bool(getattr(options, "rest_unproven", False) if rest_unproven is None
                                  else rest_unproven)
        self._transport = Transport(options, tuning)
        self._cache: ReadCache | None = None
        self._winrm: WinRMSession | None = None
        try:
            self.capabilities = self._capabilities()
            self.site_code, self.site_info = self._identify()
            if isinstance(winrm, WinRMSession):
                self._winrm = winrm
            elif winrm:
                self._winrm = session_for(options, self.site_code)
            self._paths = self._decide_paths()
            self._cache = ReadCache(cache_path if cache_path is not None else default_cache_file(options.url),
                                    options.url)
        except BaseException:
            self.close()
            raise
        self._full = FullRows(self._transport, self._cache, max_age)
        #: SedoObjectVersion of each task sequence as the plan saw it (the last read, or the first look since)
        self._versions: dict[str, str] = {}
        self._seen: str | None = None

    # -- start-up ---------------------------------------------------------------------------------------

    def _capabilities(self) -> Capabilities:
        capabilities = parse_metadata(self._transport.metadata(), f"{self.location}/wmi/$metadata")
        missing = [cls for cls in NEEDED if not capabilities.offers(cls)]
        if missing:
            raise PermanentSiteError(f"site {self.location} does not offer {', '.join(missing)} over the "
                                     "AdminService (wmi/$metadata); this tool reads them: check the site's version "
                                     "(1910 or later) and the account's security scopes")
        return capabilities

    def _identify(self) -> tuple[str, dict[str, Any]]:
        """The site code of the SMS Provider's namespace (``root\\sms\\site_PS1``), and what ``SMS_Site`` says."""
        rows = self._transport.list("SMS_Site")
        code = None
        for row in rows:
            found = re.search(r"site_([A-Za-z0-9]{3})\b", str(row.get("__NAMESPACE") or ""))
            if found:
                code = found.group(1).upper()
                break
        if code is None and len(rows) == 1:
            code = str(rows[0].get("SiteCode") or "").upper() or None
        if code is None:
            raise PermanentSiteError(f"site {self.location}: cannot tell which site the SMS Provider serves (SMS_Site "
                                     f"listed {len(rows)} sites without their namespace)")
        own = next((r for r in rows if str(r.get("SiteCode", "")).upper() == code), {})
        info = {"site code": code, "site name": own.get("SiteName"), "version": own.get("Version"),
                "build": own.get("BuildNumber"), "server": own.get("ServerName")}
        return code, info

    def _decide_paths(self) -> dict[str, str]:
        c = self.capabilities
        unproven = self.rest_unproven
        sequences = REST if unproven and c.offers_static(TS, "ImportSequence") and c.offers_static(TS, "SetSequence") \
            else WINRM
        move = REST if c.offers_static("SMS_ObjectContainerItem", "MoveMembers") else UNAVAILABLE
        paths = {name: REST for name in OPERATIONS}
        paths.update({"create_task_sequence": sequences, "update_task_sequence": sequences,
                      "move_task_sequence": move, "deployment_schedule": REST if unproven else WINRM,
                      "masked_variables": REST if unproven else WINRM,
                      "set_verification_settings": REST if unproven else UNAVAILABLE})
        return paths

    def paths(self) -> dict[str, str]:
        """Operation (the protocol's method names, see :data:`OPERATIONS`) → ``REST``, ``WinRM`` or
        ``unavailable``, as decided at start-up from ``$metadata`` and the options."""
        return dict(self._paths)

    @property
    def location(self) -> str:
        return str(self.options.url)

    @property
    def requests(self) -> Any:
        """Requests made so far, by (method, kind): ``list``, ``get``, ``write``, ``method``, ``metadata``."""
        return self._transport.counts

    def close(self) -> None:
        self._transport.close()
        if self._cache is not None:
            self._cache.close()
        if self._winrm is not None:
            self._winrm.close()

    def __enter__(self) -> AdminServiceSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------------------

    def read(self) -> LiveState:
        listed = listing(self._transport, self.capabilities)
        self._full.expiry = None
        state = LiveState(site_code=self.site_code, devices=self)
        for row in listed.of("SMS_Collection"):
            collection = convert("SMS_Collection", wire.collection_record, row)
            state.collections[collection.id] = collection
        for row in listed.of("SMS_PackageBaseclass"):
            package = convert("SMS_PackageBaseclass", wire.package_record, row)
            if package is not None:
                state.packages[package.id] = package
        for row in listed.of("SMS_DistributionPointInfo"):
            dp = convert("SMS_DistributionPointInfo", wire.distribution_point_record, row)
            state.distribution_points[dp.name] = dp
        members, associations = listed.of("SMS_DPGroupMembers"), listed.of("SMS_DPGroupCollections")
        for row in listed.of("SMS_DistributionPointGroup"):
            group = convert("SMS_DistributionPointGroup", wire.dp_group_record, row, members=members,
                            collections=associations)
            state.dp_groups[group.name] = group
        for row in listed.of("SMS_PackageStatusDistPointsSummarizer"):
            status = convert("SMS_PackageStatusDistPointsSummarizer", wire.content_status_record, row)
            state.content[(status.package_id, status.dp)] = status
        self._read_sequences(listed.of(TS), listed, state)
        self._read_deployments(listed.of("SMS_Advertisement"), state)
        self._read_settings(listed, state)
        state.verification = self._verification(cached=True)
        self._seen = listed.digest()
        return state

    def _folders(self, nodes: list[dict[str, Any]], items: list[dict[str, Any]]) -> Callable[[str], str | None]:
        folders = wire.Folders.from_rows(nodes)
        where = {str(i.get("InstanceKey")): wire._int(i.get("ContainerNodeID")) for i in items}
        return lambda ts_id: folders.path(where.get(ts_id, 0))

    def _read_sequences(self, rows: list[dict[str, Any]], listed: Any, state: LiveState) -> None:
        folder_of = self._folders(listed.of("SMS_ObjectContainerNode"), listed.of("SMS_ObjectContainerItem"))
        by_key = {key_of(TS, row): row for row in rows}
        full = self._full.fetch(TS, by_key, ts_versioned)
        self._versions = {key: str(row.get("SedoObjectVersion") or "") for key, row in by_key.items()}
        for key, row in full.items():
            state.task_sequences[key] = convert(TS, wire.task_sequence_record, row, folder=folder_of(key))

    def _read_deployments(self, rows: list[dict[str, Any]], state: LiveState) -> None:
        # SMS_Advertisement holds every package deployment too: only those of task sequences are this tool's.
        ours = {key_of("SMS_Advertisement", r): r for r in rows if r.get("PackageID") in state.task_sequences}
        for key, row in self._full.fetch("SMS_Advertisement", ours).items():
            state.deployments[key] = convert("SMS_Advertisement", wire.deployment_record, row)

    def _read_settings(self, listed: Any, state: LiveState) -> None:
        collections = {key_of("SMS_CollectionSettings", r): r for r in listed.of("SMS_CollectionSettings")}
        for key, row in self._full.fetch("SMS_CollectionSettings", collections, settings_versioned).items():
            settings = convert("SMS_CollectionSettings", wire.collection_settings_record, row)
            if settings.variables:
                state.collection_settings[key] = settings
        machines = {key_of("SMS_MachineSettings", r): r for r in listed.of("SMS_MachineSettings")}
        for row in self._full.fetch("SMS_MachineSettings", machines, settings_versioned).values():
            settings = convert("SMS_MachineSettings", wire.machine_settings_record, row)
            if not settings.variables:
                continue
            device = self._full.one("SMS_R_System", settings.resource_id, str(settings.resource_id))
            if device is None:
                continue  # the device was deleted (its settings go with it)
            state.computers[settings.resource_id] = convert("SMS_R_System", wire.computer_record, device)
            state.machine_settings[settings.resource_id] = settings

    def changed_since_read(self) -> bool:
        """The same listing as a read, compared with the last read's (or poll's): no get by key, ever. Rows whose
        lazy part is trusted only for a while count as changed once that while is over."""
        digest = listing(self._transport, self.capabilities).digest()
        changed = digest != self._seen
        expiry = self._full.expiry
        if expiry is not None and self._full.cache.now() >= expiry:
            changed, self._full.expiry = True, None
        self._seen = digest
        return changed

    def manageable(self) -> dict[str, int]:
        sequences = {r["PackageID"] for r in list_rows(self._transport, self.capabilities, TS, names=("PackageID",))}
        adverts = list_rows(self._transport, self.capabilities, "SMS_Advertisement",
                            names=("AdvertisementID", "PackageID"))
        collections = list_rows(self._transport, self.capabilities, "SMS_CollectionSettings", names=("CollectionID",))
        machines = list_rows(self._transport, self.capabilities, "SMS_MachineSettings", names=("ResourceID",))
        return {"task sequence(s)": len(sequences),
                "deployment(s)": sum(1 for a in adverts if a.get("PackageID") in sequences),
                "collection(s) with variables": len(collections), "computer(s) with variables": len(machines)}

    # -- devices, one at a time -------------------------------------------------------------------------

    def computer(self, resource_id: int) -> Computer | None:
        row = self._transport.get("SMS_R_System", int(resource_id))
        return convert("SMS_R_System", wire.computer_record, row) if row is not None else None

    def computers_named(self, name: str) -> list[Computer]:
        rows = list_rows(self._transport, self.capabilities, "SMS_R_System", f"Name eq {wire.odata_literal(name)}",
                         names=("ResourceID", "Name"))
        folded = name.casefold()
        found = [convert("SMS_R_System", wire.computer_record, r) for r in rows]
        return sorted((c for c in found if c.name.casefold() == folded), key=lambda c: c.resource_id)

    def memberships(self, resource_id: int) -> tuple[str, ...]:
        rows = list_rows(self._transport, self.capabilities, "SMS_FullCollectionMembership",
                         f"ResourceID eq {int(resource_id)}", names=("CollectionID", "ResourceID"))
        return tuple(sorted({str(r["CollectionID"]) for r in rows if r.get("CollectionID")}))

    # -- verification settings -------------------------------------------------------------------------

    def _site_definition(self) -> dict[str, Any] | None:
        return self._transport.get("SMS_SCI_SiteDefinition", wire.site_definition_key(self.site_code))

    def _verification(self, cached: bool = False) -> VerificationSettings:
        if cached:
            row = self._full.one("SMS_SCI_SiteDefinition", wire.site_definition_key(self.site_code), self.site_code)
        else:
            row = self._site_definition()
        return wire.verification_record(row.get("Props") if row else None)

    def verification_settings(self) -> VerificationSettings:
        return self._verification()

    def set_verification_settings(self, default_size: int | None = None, maximum_size: int | None = None,
                                  site_systems: str | None = None) -> VerificationSettings:
        self._writable("set_verification_settings")
        current = self.verification_settings()
        new = VerificationSettings(current.default_size if default_size is None else default_size,
                                   current.maximum_size if maximum_size is None else maximum_size,
                                   current.site_systems if site_systems is None else site_systems)
        if new.default_size < 0 or new.maximum_size < 0:
            raise PermanentSiteError("collection sizes cannot be negative")
        if new.maximum_size and new.maximum_size <= new.default_size:
            raise PermanentSiteError(f"the maximum size ({new.maximum_size}) must be larger than the default size "
                                     f"({new.default_size}), or 0 to turn it off")
        if new.site_systems not in ("block", "warn"):
            raise PermanentSiteError("collections with site system servers: 'block' or 'warn'")
        row = self._site_definition()
        if row is None:
            raise PermanentSiteError(f"site {self.site_code}: its site definition (SMS_SCI_SiteDefinition) is not "
                                     "visible to this account")
        # The site definition holds many embedded properties: only the threshold one is replaced.
        props = [p for p in row.get("Props") or () if p.get("PropertyName") != wire.THRESHOLD_PROPERTY]
        body = {**wire.strip_system(row), "Props": [*props, *wire.verification_props(new)]}
        self._transport.update("SMS_SCI_SiteDefinition", wire.site_definition_key(self.site_code), body)
        if self._cache is not None:
            self._cache.forget("SMS_SCI_SiteDefinition", [self.site_code])
        return self.verification_settings()

    # -- writes: paths, read-only, versions -------------------------------------------------------------

    def _writable(self, operation: str) -> None:
        """Refuse before any request: a read-only site, or an operation no path can do on this site."""
        what = OPERATIONS.get(operation, operation)
        self.options.ensure_writable(what, self.location)
        if self._paths.get(operation) == UNAVAILABLE:
            if operation == "set_verification_settings":
                raise PermanentSiteError(f"site {self.location}: {what} over the AdminService is unproven on a real "
                                         "site; change them in the console (Administration, Sites, Properties, "
                                         "General)")
            raise PermanentSiteError(f"site {self.location}: {what} is not offered by this site's AdminService "
                                     "(wmi/$metadata) and has no WinRM path")

    def _session(self, operation: str) -> WinRMSession:
        return require(self._winrm, OPERATIONS.get(operation, operation), self.location)

    def _has(self, cls: str, name: str) -> bool:
        return not self.capabilities.properties.get(cls) or self.capabilities.has_property(cls, name)

    def _forget(self, cls: str, *keys: str) -> None:
        if self._cache is not None:
            self._cache.forget(cls, list(keys))

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
        rows = list_rows(self._transport, self.capabilities, TS, f"PackageID eq {wire.odata_literal(ts_id)}",
                         names=("PackageID", "SourceVersion", "SedoObjectVersion"))
        return str(rows[0].get("SedoObjectVersion") or "") if rows else None

    # -- task sequences ---------------------------------------------------------------------------------

    def _folder_path(self, ts_id: str) -> str | None:
        nodes = list_rows(self._transport, self.capabilities, "SMS_ObjectContainerNode", wire_folder_filter())
        items = list_rows(self._transport, self.capabilities, "SMS_ObjectContainerItem",
                          f"InstanceKey eq {wire.odata_literal(ts_id)} and {wire_folder_filter()}")
        return self._folders(nodes, items)(ts_id)

    def get_task_sequence(self, ts_id: str) -> TaskSequenceRecord | None:
        row = self._transport.get(TS, ts_id)
        if row is None:
            return None
        self._versions.setdefault(ts_id, str(row.get("SedoObjectVersion") or ""))
        return convert(TS, wire.task_sequence_record, wire.strip_system(row), folder=self._folder_path(ts_id))

    def find_task_sequences(self, name: str) -> list[TaskSequenceRecord]:
        rows = list_rows(self._transport, self.capabilities, TS, f"Name eq {wire.odata_literal(name)}",
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
        nodes = wire.Folders.from_rows(list_rows(self._transport, self.capabilities, "SMS_ObjectContainerNode",
                                                 wire_folder_filter()))
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
        deployed = list_rows(self._transport, self.capabilities, "SMS_Advertisement",
                             f"PackageID eq {wire.odata_literal(ts_id)}", names=("AdvertisementID", "PackageID"))
        if deployed:
            raise PermanentSiteError(f"task sequence {ts_id} is still deployed; delete its deployments first")
        self._transport.delete(TS, ts_id)
        self._versions.pop(ts_id, None)
        self._forget(TS, ts_id)

    # -- deployments ------------------------------------------------------------------------------------

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        row = self._transport.get("SMS_Advertisement", deployment_id)
        return convert("SMS_Advertisement", wire.deployment_record, wire.strip_system(row)) if row else None

    def find_deployments(self, package_id: str, collection_id: str) -> list[DeploymentRecord]:
        where = (f"PackageID eq {wire.odata_literal(package_id)} and "
                 f"CollectionID eq {wire.odata_literal(collection_id)}")
        rows = list_rows(self._transport, self.capabilities, "SMS_Advertisement", where,
                         names=("AdvertisementID", "PackageID", "CollectionID"))
        found = [self.get_deployment(str(r["AdvertisementID"])) for r in rows
                 if r.get("PackageID") == package_id and r.get("CollectionID") == collection_id]
        return [d for d in found if d is not None]

    def _deployment_body(self, record: DeploymentRecord, schedule_over_rest: bool) -> dict[str, Any]:
        row = wire.deployment_row(record, site_code=self.site_code)
        if not schedule_over_rest:
            row.pop("AssignedSchedule")
        return {k: v for k, v in row.items() if k != "AdvertisementID" and self._has("SMS_Advertisement", k)}

    def _schedule_session(self, record: DeploymentRecord, current: Mapping[str, Any] | None) -> WinRMSession | None:
        """The WinRM session that writes the schedule, when this write touches one and that path is WinRM."""
        touches = bool(record.assigned_schedule) or bool(current and current.get("AssignedSchedule"))
        if not touches or self._paths["deployment_schedule"] != WINRM:
            return None
        return self._session("deployment_schedule")

    def create_deployment(self, record: DeploymentRecord) -> str:
        self._writable("create_deployment")
        if len(record.assigned_schedule) > MAX_SCHEDULE_TOKENS:
            raise PermanentSiteError(f"a deployment holds at most {MAX_SCHEDULE_TOKENS} schedule tokens")
        session = self._schedule_session(record, None)
        created = self._transport.create("SMS_Advertisement", self._deployment_body(record, session is None))
        dep_id = str(created.get("AdvertisementID") or "")
        if not dep_id:
            raise PermanentSiteError(f"site {self.location}: creating a deployment answered no AdvertisementID")
        if session is not None:
            session.set_assigned_schedule(dep_id, wire.schedule_tokens_wire(record.assigned_schedule))
        return dep_id

    def update_deployment(self, deployment_id: str, record: DeploymentRecord) -> None:
        self._writable("update_deployment")
        current = self._transport.get("SMS_Advertisement", deployment_id)
        if current is None:
            raise PermanentSiteError(f"deployment {deployment_id} does not exist")
        if (current.get("PackageID"), current.get("CollectionID")) != (record.package_id, record.collection_id):
            # SMS_Advertisement.PackageID and CollectionID are read-only after creation.
            raise PermanentSiteError("the task sequence and collection of a deployment cannot be changed; replace it")
        if len(record.assigned_schedule) > MAX_SCHEDULE_TOKENS:
            raise PermanentSiteError(f"a deployment holds at most {MAX_SCHEDULE_TOKENS} schedule tokens")
        session = self._schedule_session(record, current)
        body = {**self._deployment_body(record, session is None), "AdvertisementID": deployment_id}
        try:
            self._transport.update("SMS_Advertisement", deployment_id, body)
            if session is not None:
                session.set_assigned_schedule(deployment_id, wire.schedule_tokens_wire(record.assigned_schedule))
        finally:
            self._forget("SMS_Advertisement", deployment_id)

    def delete_deployment(self, deployment_id: str) -> None:
        self._writable("delete_deployment")
        self._transport.delete("SMS_Advertisement", deployment_id)
        self._forget("SMS_Advertisement", deployment_id)

    # -- content ----------------------------------------------------------------------------------------

    def content_status(self, package_id: str) -> dict[str, ContentStatus]:
        rows = list_rows(self._transport, self.capabilities, "SMS_PackageStatusDistPointsSummarizer",
                         f"PackageID eq {wire.odata_literal(package_id)}")
        out = {}
        for row in rows:
            status = convert("SMS_PackageStatusDistPointsSummarizer", wire.content_status_record, row)
            out[status.dp] = status
        return out

    def _dp_keys(self, package_id: str, dps: list[str], known_only: bool) -> dict[str, dict[str, str | int]]:
        """The ``SMS_DistributionPoint`` key of the package on each named DP (names compare without case)."""
        infos = {wire.distribution_point_record(r).name.casefold(): r
                 for r in list_rows(self._transport, self.capabilities, "SMS_DistributionPointInfo")}
        missing = [dp for dp in dps if dp.casefold() not in infos]
        if missing and not known_only:
            raise PermanentSiteError(f"distribution point(s) {', '.join(missing)} do not exist")
        return {dp: {"PackageID": package_id, "ServerNALPath": str(infos[dp.casefold()].get("NALPath")),
                     "SiteCode": str(infos[dp.casefold()].get("SiteCode") or self.site_code)}
                for dp in dps if dp.casefold() in infos}

    def _on_dps(self, package_id: str) -> set[str]:
        rows = list_rows(self._transport, self.capabilities, "SMS_DistributionPoint",
                         f"PackageID eq {wire.odata_literal(package_id)}", names=("PackageID", "ServerNALPath",
                                                                                   "SiteCode"))
        return {wire.nal_server(str(r.get("ServerNALPath") or "")).casefold() for r in rows}

    def distribute_content(self, package_id: str, dps: list[str]) -> None:
        self._writable("distribute_content")
        keys = self._dp_keys(package_id, dps, known_only=False)
        present = self._on_dps(package_id)
        for dp, key in keys.items():
            if dp.casefold() in present:  # already there: distributing again is a refresh
                self._transport.update("SMS_DistributionPoint", key, {**key, "RefreshNow": True})
            else:
                self._transport.create("SMS_DistributionPoint", dict(key))

    def redistribute_content(self, package_id: str, dp: str) -> None:
        self._writable("redistribute_content")
        key = self._dp_keys(package_id, [dp], known_only=False)[dp]
        if dp.casefold() in self._on_dps(package_id):
            self._transport.update("SMS_DistributionPoint", key, {**key, "RefreshNow": True})
        else:
            self._transport.create("SMS_DistributionPoint", dict(key))

    def remove_content(self, package_id: str, dps: list[str]) -> None:
        self._writable("remove_content")
        for key in self._dp_keys(package_id, dps, known_only=True).values():
            self._transport.delete("SMS_DistributionPoint", key)

    # -- variables --------------------------------------------------------------------------------------

    def get_collection_settings(self, collection_id: str) -> CollectionSettings | None:
        row = self._transport.get("SMS_CollectionSettings", collection_id)
        if row is None:
            return None
        settings = convert("SMS_CollectionSettings", wire.collection_settings_record, wire.strip_system(row))
        return settings if settings.variables else None

    def get_machine_settings(self, resource_id: int) -> MachineSettings | None:
        row = self._transport.get("SMS_MachineSettings", int(resource_id))
        if row is None:
            return None
        settings = convert("SMS_MachineSettings", wire.machine_settings_record, wire.strip_system(row))
        return settings if settings.variables else None

    def _masked_session(self, variables: list[tuple[str, str, bool]], operation: str) -> WinRMSession | None:
        if not any(masked for _, _, masked in variables) or self._paths["masked_variables"] != WINRM:
            return None
        return self._session("masked_variables")

    def set_collection_variables(self, collection_id: str, precedence: int,
                                 variables: list[tuple[str, str, bool]]) -> None:
        self._writable("set_collection_variables")
        if collection_id.startswith("SMS"):
            raise PermanentSiteError(f"{collection_id} is a built-in collection; it cannot hold variables")
        _refuse_duplicates(variables)
        session = self._masked_session(variables, "set_collection_variables")
        cls = "SMS_CollectionSettings"
        try:
            if not variables:
                self._transport.delete(cls, collection_id)
                return
            current = self._transport.get(cls, collection_id)
            locale = wire._int((current or {}).get("LocaleID"), 1033)
            if session is None:
                self._transport.update(cls, collection_id, {
                    "CollectionID": collection_id, "CollectionVariablePrecedence": precedence, "LocaleID": locale,
                    "CollectionVariables": wire.variables_wire("SMS_CollectionVariable", variables)})
                return
            # Masked values never travel in a REST array: the plain ones and the precedence go over REST, then
            # the cmdlets make the collection's variables exactly these, masked ones with their values.
            if current is None or wire._int(current.get("CollectionVariablePrecedence")) != precedence:
                plain = [v for v in variables if not v[2]]
                current = self._transport.update(cls, collection_id, {
                    "CollectionID": collection_id, "CollectionVariablePrecedence": precedence, "LocaleID": locale,
                    "CollectionVariables": wire.variables_wire("SMS_CollectionVariable", plain)}) or \
                    self._transport.get(cls, collection_id)
            existing = [str(v.get("Name")) for v in (current or {}).get("CollectionVariables") or ()]
            session.set_collection_variables(collection_id, [VariableWrite(n, v, m) for n, v, m in variables],
                                             existing)
        finally:
            self._forget(cls, collection_id)

    def set_computer_variables(self, resource_id: int, variables: list[tuple[str, str, bool]]) -> None:
        self._writable("set_computer_variables")
        if len(variables) > MAX_VARIABLES_PER_COMPUTER:
            raise PermanentSiteError(f"a computer can hold at most {MAX_VARIABLES_PER_COMPUTER} variables")
        _refuse_duplicates(variables)
        session = self._masked_session(variables, "set_computer_variables")
        rid = int(resource_id)
        cls = "SMS_MachineSettings"
        try:
            if not variables:
                self._transport.delete(cls, rid)
                return
            if self._transport.get("SMS_R_System", rid) is None:
                raise PermanentSiteError(f"computer {rid} does not exist")
            current = self._transport.get(cls, rid)
            if session is not None:
                existing = [str(v.get("Name")) for v in (current or {}).get("MachineVariables") or ()]
                session.set_device_variables(rid, [VariableWrite(n, v, m) for n, v, m in variables], existing)
                return
            self._transport.update(cls, rid, {
                "ResourceID": rid, "SourceSite": self.site_code,
                "LocaleID": wire._int((current or {}).get("LocaleID"), 1033),
                "MachineVariables": wire.variables_wire("SMS_MachineVariable", variables)})
        finally:
            self._forget(cls, str(rid))
            self._forget("SMS_R_System", str(rid))


def wire_folder_filter() -> str:
    return f"ObjectType eq {wire.TASK_SEQUENCE_OBJECT_TYPE}"
