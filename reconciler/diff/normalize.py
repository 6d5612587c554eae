"""One canonical form for both sides: desired manifests and live records become the same records.

A desired object is first rendered into the record the site would hold (references resolved to
IDs against the live inventory, the step tree written as task sequence XML, the deployment's
settings packed into ``SMS_Advertisement`` flags); then desired and live records go through the
same canonicalisation. Comparing anything else would compare two different encodings.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from reconciler.diff.schedule import assignment_key, parse_token, time_key
from reconciler.errors import ReconcilerError
from reconciler.models import TaskSequence
from reconciler.models.base import CollectionRef, PackageRef
from reconciler.models.deployment import (
    AvailableTo,
    ContentAccess,
    Purpose,
    Rerun,
    TaskSequenceDeployment,
)
from reconciler.models.variables import ComputerRef
from reconciler.site.records import (
    Collection,
    Computer,
    DeploymentRecord,
    LiveState,
    Package,
    PackageType,
    TaskSequenceRecord,
)
from reconciler.tsxml.sequence import iter_step_nodes, read_sequence, reference_ids, secret_marker, write_sequence

# SMS_Advertisement.AdvertFlags
ASAP, LOGON, LOGOFF = 0x20, 0x200, 0x400
NO_FALLBACK = 0x20000
MEDIA_AND_PXE = 0x40000
INSTALL_OUTSIDE_MW, RESTART_OUTSIDE_MW = 0x100000, 0x200000
WAKE_ON_LAN, SHOW_PROGRESS = 0x400000, 0x800000
MEDIA_PXE_ONLY, MEDIA_PXE_HIDDEN = 0x10000000, 0x20000000
# SMS_Advertisement.RemoteClientFlags
RUN_FROM_DP, DOWNLOAD_ALL, DOWNLOAD_WHEN_NEEDED = 0x8, 0x10, 0x100
REMOTE_DOWNLOAD = 0x40
RERUN = {Rerun.ALWAYS: 0x800, Rerun.NEVER: 0x1000, Rerun.IF_FAILED: 0x2000, Rerun.IF_SUCCEEDED: 0x4000}
METERED = 0x40000
# Settings the documentation names but whose flag bits are unverified are kept out of the flags:
# allowRunIndependently, allowOnInternetClients and the default-site-boundary fallback travel in
# the record's option flags below, so a provider for a real site can map them once verified.
RUN_INDEPENDENTLY, INTERNET_CLIENTS, DEFAULT_BOUNDARY = 0x1, 0x2, 0x4


class Unresolved(ReconcilerError):
    """A reference names something the live site does not have (or has more than once)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def fingerprint(value: Any) -> str:
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def record_fingerprint(record: Any, salt: bytes = b"") -> str:
    """Fingerprint of a flat live record (every field but its ID), cheap enough for every plan.

    Salted with the state store's salt: a sequence on the site holds its real passwords, and an
    unsalted hash of a known record would let someone test guesses.
    """
    values = tuple(getattr(record, name) for name in record.__dataclass_fields__ if name != "id")
    return hashlib.sha256(salt + repr(values).encode("utf-8")).hexdigest()


# -- resolving references -------------------------------------------------------------------------


class Resolver:
    """Resolves console names and IDs against the live inventory, with messages a person can act on."""

    def __init__(self, live: LiveState) -> None:
        self.live = live
        self._packages_by_name: dict[str, list[Package]] = {}
        for package in live.packages.values():  # console names compare without case, as the site's lookups do
            self._packages_by_name.setdefault(package.name.casefold(), []).append(package)
        self._collections_by_name: dict[str, list[Collection]] = {}
        for collection in live.collections.values():
            self._collections_by_name.setdefault(collection.name.casefold(), []).append(collection)

    def package(self, ref: PackageRef | dict[str, Any], path: tuple[str | int, ...],
                types: tuple[PackageType, ...] = ()) -> Package:
        ref_id = ref.id if isinstance(ref, PackageRef) else ref.get("id")
        ref_name = ref.package if isinstance(ref, PackageRef) else ref.get("package")
        what = " or ".join(t.value for t in types) if types else "content"
        if ref_id:
            found = self.live.packages.get(ref_id.upper())
            if found is None:
                raise Unresolved(path, f"{what} {ref_id.upper()} does not exist in site {self.live.site_code}")
        else:
            matches = self._packages_by_name.get(str(ref_name).casefold(), [])
            if types:
                matches = [p for p in matches if p.type in types]
            exact = [p for p in matches if p.name == ref_name]
            if len(matches) > 1 and len(exact) == 1:
                matches = exact  # "OSD Tools" and "osd tools" both exist: the spelling decides
            if not matches:
                raise Unresolved(path, f"no {what} named {ref_name!r} exists in site {self.live.site_code}; "
                                 "check the console name or refer to it by {id: …}")
            if len(matches) > 1:
                ids = ", ".join(p.id for p in matches)
                raise Unresolved(path, f"{len(matches)} packages are named {ref_name!r} ({ids}); refer to one by id")
            found = matches[0]
        if types and found.type not in types:
            raise Unresolved(path, f"{found.id} ({found.name!r}) is a {found.type.value}, not a {what}")
        return found

    def collection(self, ref: CollectionRef, path: tuple[str | int, ...]) -> Collection:
        if ref.id:
            found = self.live.collections.get(ref.id)
            if found is None:
                raise Unresolved(path, f"collection {ref.id} does not exist in site {self.live.site_code}")
            return found
        matches = self._collections_by_name.get(str(ref.name).casefold(), [])
        if not matches:
            raise Unresolved(path, f"no collection named {ref.name!r} exists in site {self.live.site_code}")
        if len(matches) > 1:
            raise Unresolved(path, f"{len(matches)} collections are named {ref.name!r}; refer to one by id")
        return matches[0]

    def computer(self, ref: ComputerRef, path: tuple[str | int, ...]) -> Computer:
        if ref.resource_id is not None:
            found = self.live.computer(ref.resource_id)  # devices are looked up one at a time, never all read
            if found is None:
                raise Unresolved(path, f"no device with ResourceID {ref.resource_id} exists")
            return found
        matches = self.live.computers_by_name(str(ref.name))
        if not matches:
            raise Unresolved(path, f"no device named {ref.name!r} exists in site {self.live.site_code}")
        if len(matches) > 1:
            raise Unresolved(path, f"{len(matches)} devices are named {ref.name!r}; refer to one by resourceId")
        return matches[0]


# -- task sequences -------------------------------------------------------------------------------


def _step_paths(steps: list[Any], prefix: tuple[str | int, ...] = ("spec", "steps")) -> dict[int, tuple]:
    out: dict[int, tuple] = {}
    for i, node in enumerate(steps):
        here = (*prefix, i)
        out[id(node)] = here
        if isinstance(node, dict) and "group" in node:
            out.update(_step_paths(node.get("steps") or [], (*here, "steps")))
    return out


def ts_record(ts: TaskSequence, resolver: Resolver, ts_ids: dict[str, str | None] | None = None
              ) -> TaskSequenceRecord:
    """The ``SMS_TaskSequencePackage`` a manifest asks for, with every reference resolved to an ID."""
    spec = ts.spec
    document = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    paths = _step_paths(document.get("steps") or [])
    current_path: list[tuple] = [("spec", "steps")]

    def resolve(ref: dict[str, Any]) -> str:
        if str(ref.get("id", "")).startswith(PENDING):
            return str(ref["id"])
        return resolver.package(ref, current_path[-1]).id

    # Resolve every reference once, with a useful path for each.
    for node in iter_step_nodes(document.get("steps") or []):
        for key, value in (node.get("settings") or {}).items():
            if isinstance(value, dict) and ("id" in value or "package" in value) and "valueFrom" not in value:
                path = (*paths[id(node)], "settings", key)
                if node.get("type") == "RunTaskSequence" and key == "taskSequence":
                    value["id"] = _child_sequence(value, resolver, ts_ids or {}, path)
                else:
                    value["id"] = resolver.package(value, path).id
                value.pop("package", None)
    xml = write_sequence(document, resolve=resolve, indent=None, secrets=secret_marker)
    boot_image = resolver.package(spec.boot_image, ("spec", "bootImage"), (PackageType.BOOT_IMAGE,)).id \
        if spec.boot_image else None
    notification = spec.high_impact.notification
    return TaskSequenceRecord(
        id=None,
        name=spec.name,
        sequence=xml,
        description=spec.description,
        ts_type=spec.type.value,
        folder=spec.folder,
        enabled=spec.enabled,
        boot_image_id=boot_image,
        high_impact=spec.high_impact.enabled,
        custom_high_impact=notification is not None,
        headline=notification.headline if notification else "",
        warning_top=notification.body[0] if notification else "",
        warning=notification.body[1] if notification else "",
        warning_install=notification.body[2] if notification else "",
        restart_required=spec.software_center.restart_required,
        download_size_mb=spec.software_center.download_size_mb,
        run_time_minutes=spec.software_center.estimated_run_time_minutes,
        category=spec.category,
        duration=spec.max_run_time_minutes,
    )


#: Stands in for the ID of a child sequence that the same plan creates; apply fills in the real ID.
PENDING = "PENDING:"


def _child_sequence(ref: dict[str, Any], resolver: Resolver, ts_ids: dict[str, str | None], path: tuple) -> str:
    if ref.get("id"):
        return str(ref["id"]).upper()
    name = ref.get("package")
    if name in ts_ids:
        return ts_ids[name] or f"{PENDING}{name}"
    matches = [t.id for t in resolver.live.task_sequences.values() if t.name == name]
    if len(matches) == 1 and matches[0]:
        return matches[0]
    raise Unresolved(path, f"no task sequence named {name!r} exists in site {resolver.live.site_code} "
                     "(a child sequence must exist before its parent refers to it)")


def ts_properties(record: TaskSequenceRecord) -> dict[str, Any]:
    """The package properties, named as in the manifest so a plan reads like the YAML."""
    return {
        "name": record.name,
        "description": record.description,
        "type": record.ts_type,
        "folder": record.folder,
        "enabled": record.enabled,
        "bootImage": record.boot_image_id,
        "highImpact": {
            "enabled": record.high_impact,
            "notification": {"headline": record.headline,
                             "body": [record.warning_top, record.warning, record.warning_install]}
            if record.custom_high_impact else None,
        },
        # The site keeps these as UInt32: 0 is how it answers "not set", so 0 and unset are one value.
        "softwareCenter": {"restartRequired": record.restart_required,
                           "downloadSizeMB": record.download_size_mb or None,
                           "estimatedRunTimeMinutes": record.run_time_minutes or None},
        "category": record.category or None,
        "maxRunTimeMinutes": record.duration or None,
    }


def ts_canonical(record: TaskSequenceRecord) -> dict[str, Any]:
    """Comparable form: properties plus the step tree read back from the XML."""
    data = ts_properties(record)
    try:
        sequence = read_sequence(record.sequence).spec
    except ReconcilerError as exc:
        sequence = {"unreadable": str(exc)}
    data["steps"] = sequence.pop("steps", [])
    for key, value in sequence.items():
        data[key] = value
    return data


# -- deployments ----------------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def deployment_record(dep: TaskSequenceDeployment, ts_id: str, ts_name: str, collection: Collection,
                      os_deployment: bool = False) -> DeploymentRecord:
    """The ``SMS_Advertisement`` a deployment manifest asks for (flags per the ConfigMgr SDK)."""
    spec = dep.spec
    advert = 0
    for assignment in spec.schedule.assignments:
        if assignment.event is not None:
            advert |= {"AsSoonAsPossible": ASAP, "Logon": LOGON, "Logoff": LOGOFF}[assignment.event.value]
    if not spec.content.allow_remote_fallback:
        advert |= NO_FALLBACK
    if spec.available_to is not AvailableTo.CLIENTS:
        advert |= MEDIA_AND_PXE
    if spec.available_to in (AvailableTo.MEDIA_AND_PXE, AvailableTo.MEDIA_AND_PXE_HIDDEN):
        advert |= MEDIA_PXE_ONLY
    if spec.available_to is AvailableTo.MEDIA_AND_PXE_HIDDEN:
        advert |= MEDIA_PXE_HIDDEN
    ux = spec.user_experience
    if ux.install_outside_maintenance_window:
        advert |= INSTALL_OUTSIDE_MW
    if ux.restart_outside_maintenance_window:
        advert |= RESTART_OUTSIDE_MW
    if spec.send_wake_up_packets:
        advert |= WAKE_ON_LAN
    if ux.show_progress:
        advert |= SHOW_PROGRESS
    remote = RERUN[spec.schedule.rerun]
    remote |= {ContentAccess.RUN_FROM_DISTRIBUTION_POINT: RUN_FROM_DP,
               ContentAccess.DOWNLOAD_ALL_BEFORE_START: DOWNLOAD_ALL,
               ContentAccess.DOWNLOAD_WHEN_NEEDED: DOWNLOAD_WHEN_NEEDED}[spec.content.access]
    if spec.content.allow_remote_fallback:
        remote |= REMOTE_DOWNLOAD
    if spec.allow_metered_download_after_deadline:
        remote |= METERED
    options = 0
    if ux.allow_run_independently:
        options |= RUN_INDEPENDENTLY
    if ux.allow_on_internet_clients:
        options |= INTERNET_CLIENTS
    if spec.content.allow_default_site_boundary_group:
        options |= DEFAULT_BOUNDARY
    tokens = []
    for assignment in spec.schedule.assignments:
        if assignment.at is None:
            continue
        token: dict[str, Any] = {"StartTime": assignment.at.isoformat(), "IsGMT": spec.schedule.utc}
        rec = assignment.recurrence
        if rec is None:
            token["@odata.type"] = "#AdminService.SMS_ST_NonRecurring"
        elif rec.interval:
            token.update({"@odata.type": "#AdminService.SMS_ST_RecurInterval", "DaySpan": rec.interval.days or 0,
                          "HourSpan": rec.interval.hours or 0, "MinuteSpan": rec.interval.minutes or 0})
        elif rec.weekly:
            days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
            token.update({"@odata.type": "#AdminService.SMS_ST_RecurWeekly",
                          "Day": days.index(rec.weekly.day.value) + 1, "ForNumberOfWeeks": rec.weekly.every_weeks})
        elif rec.monthly_by_date:
            token.update({"@odata.type": "#AdminService.SMS_ST_RecurMonthlyByDate",
                          "MonthDay": rec.monthly_by_date.day, "ForNumberOfMonths": rec.monthly_by_date.every_months})
        elif rec.monthly_by_weekday:
            days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
            order = {"Last": 0, "First": 1, "Second": 2, "Third": 3, "Fourth": 4}
            token.update({"@odata.type": "#AdminService.SMS_ST_RecurMonthlyByWeekday",
                          "Day": days.index(rec.monthly_by_weekday.day.value) + 1,
                          "WeekOrder": order[rec.monthly_by_weekday.week.value],
                          "ForNumberOfMonths": rec.monthly_by_weekday.every_months})
        tokens.append(json.dumps(token, sort_keys=True))
    return DeploymentRecord(
        id=None,
        name=f"{ts_name}_{collection.name}"[:100],
        package_id=ts_id,
        collection_id=collection.id,
        comment=spec.comment,
        offer_type=0 if spec.purpose is Purpose.REQUIRED else 2,
        advert_flags=advert | (options << 32),
        remote_client_flags=remote,
        present_time=_time(spec.schedule.available_at),
        present_time_enabled=spec.schedule.available_at is not None,
        expiration_time=_time(spec.schedule.expires_at),
        expiration_time_enabled=spec.schedule.expires_at is not None,
        is_gmt=spec.schedule.utc,
        assigned_schedule=tuple(tokens),
        alert_failure_percent=spec.alerts.on_failure_percent,
        alert_success_percent=spec.alerts.on_success_below_percent,
        alert_success_after=_time(spec.alerts.on_success_check_after),
    )


_ADVERT_NAMES = {
    ASAP: "asSoonAsPossible", LOGON: "logon", LOGOFF: "logoff", NO_FALLBACK: "noRemoteFallback",
    MEDIA_AND_PXE: "mediaAndPxe", INSTALL_OUTSIDE_MW: "installOutsideMaintenanceWindow",
    RESTART_OUTSIDE_MW: "restartOutsideMaintenanceWindow", WAKE_ON_LAN: "sendWakeUpPackets",
    SHOW_PROGRESS: "showProgress", MEDIA_PXE_ONLY: "mediaAndPxeOnly", MEDIA_PXE_HIDDEN: "mediaAndPxeHidden",
    RUN_INDEPENDENTLY << 32: "allowRunIndependently", INTERNET_CLIENTS << 32: "allowOnInternetClients",
    DEFAULT_BOUNDARY << 32: "allowDefaultSiteBoundaryGroup",
}
_REMOTE_NAMES = {
    RUN_FROM_DP: "runFromDistributionPoint", DOWNLOAD_ALL: "downloadAllBeforeStart",
    DOWNLOAD_WHEN_NEEDED: "downloadWhenNeeded", REMOTE_DOWNLOAD: "allowRemoteFallback",
    0x800: "rerunAlways", 0x1000: "rerunNever", 0x2000: "rerunIfFailed", 0x4000: "rerunIfSucceeded",
    METERED: "allowMeteredDownloadAfterDeadline",
}


def _flag_names(value: int, names: dict[int, str]) -> dict[str, bool]:
    out = {name: bool(value & bit) for bit, name in names.items()}
    rest = value & ~sum(names)
    if rest:
        out[f"other:0x{rest:x}"] = True
    return out


def deployment_canonical(record: DeploymentRecord) -> dict[str, Any]:
    """Readable and comparable: flag words decoded into the settings they carry."""
    return {
        "taskSequence": record.package_id,
        "collection": record.collection_id,
        "comment": record.comment,
        "purpose": {0: "Required", 2: "Available"}.get(record.offer_type, f"OfferType {record.offer_type}"),
        "options": _flag_names(record.advert_flags, _ADVERT_NAMES),
        "client": _flag_names(record.remote_client_flags, _REMOTE_NAMES),
        # Times and schedule tokens as the site means them, not as they are spelled: a real site answers
        # "…Z" for "+00:00" and adds fields at their defaults (DayDuration: 0) to the tokens it was sent.
        "availableAt": time_key(record.present_time) if record.present_time_enabled else None,
        "expiresAt": time_key(record.expiration_time) if record.expiration_time_enabled else None,
        "utc": record.is_gmt,
        "schedules": [assignment_key(parse_token(t), record.is_gmt) for t in record.assigned_schedule],
        "alerts": {"onFailurePercent": record.alert_failure_percent,
                   "onSuccessBelowPercent": record.alert_success_percent,
                   "onSuccessCheckAfter": record.alert_success_after},
    }


def ts_references(record: TaskSequenceRecord) -> list[str]:
    """Content a sequence needs on its DPs: referenced packages and the boot image."""
    # A record read from the site carries its reference list (as SetSequence keeps it): no XML to parse.
    listed = record.references or reference_ids(record.sequence)
    refs = [r for r in listed if "/" not in r]  # applications are not packages
    if record.boot_image_id:
        refs.append(record.boot_image_id)
    return list(dict.fromkeys(refs))
