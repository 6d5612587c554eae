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

A read is not one transaction (the AdminService has none): it lists one class after another, so a console
edit made during a read may show in one class and not yet in another. Nothing acts on a read alone: the
applier takes each object's fingerprint again before the first write, and the next plan sees the rest.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from reconciler.site.adminservice import wire
from reconciler.site.adminservice.cache import ReadCache
from reconciler.site.adminservice.connection import (
    DEFAULT_MAX_AGE,
    OPERATIONS,
    REST,
    UNAVAILABLE,
    WINRM,
    decide_paths,
    default_cache_file,
)
from reconciler.site.adminservice.content import Content
from reconciler.site.adminservice.deployments import Deployments
from reconciler.site.adminservice.metadata import Capabilities, parse_metadata
from reconciler.site.adminservice.reading import (
    NEEDED,
    TS,
    FullRows,
    convert,
    key_of,
    listing,
    settings_versioned,
    ts_versioned,
)
from reconciler.site.adminservice.sequences import TaskSequences
from reconciler.site.adminservice.transport import Transport, Tuning
from reconciler.site.adminservice.variables import Variables
from reconciler.site.adminservice.winrm import WinRMSession, session_for
from reconciler.site.errors import PermanentSiteError
from reconciler.site.options import SiteOptions
from reconciler.site.records import Computer, LiveState, VerificationSettings
from reconciler.site.refusals import changed_verification

log = logging.getLogger(__name__)

__all__ = ["OPERATIONS", "REST", "UNAVAILABLE", "WINRM", "AdminServiceSite"]


class AdminServiceSite(TaskSequences, Deployments, Content, Variables):
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
        self.rest_unproven = options.rest_unproven if rest_unproven is None else rest_unproven
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
            self._paths = decide_paths(self.capabilities, self.rest_unproven)
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
        sequences = {r["PackageID"] for r in self._list(TS, names=("PackageID",))}
        adverts = self._list("SMS_Advertisement",
                            names=("AdvertisementID", "PackageID"))
        collections = self._list("SMS_CollectionSettings", names=("CollectionID",))
        machines = self._list("SMS_MachineSettings", names=("ResourceID",))
        return {"task sequence(s)": len(sequences),
                "deployment(s)": sum(1 for a in adverts if a.get("PackageID") in sequences),
                "collection(s) with variables": len(collections), "computer(s) with variables": len(machines)}

    # -- devices, one at a time -------------------------------------------------------------------------

    def computer(self, resource_id: int) -> Computer | None:
        row = self._transport.get("SMS_R_System", int(resource_id))
        return convert("SMS_R_System", wire.computer_record, row) if row is not None else None

    def computers_named(self, name: str) -> list[Computer]:
        rows = self._list("SMS_R_System", f"Name eq {wire.odata_literal(name)}",
                         names=("ResourceID", "Name"))
        folded = name.casefold()
        found = [convert("SMS_R_System", wire.computer_record, r) for r in rows]
        return sorted((c for c in found if c.name.casefold() == folded), key=lambda c: c.resource_id)

    def memberships(self, resource_id: int) -> tuple[str, ...]:
        rows = self._list("SMS_FullCollectionMembership",
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
        new = changed_verification(self.verification_settings(), default_size, maximum_size, site_systems)
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
