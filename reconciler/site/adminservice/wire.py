"""The ConfigMgr classes the product reads and writes over the AdminService, and how each maps to a site record.

Both ends import this module: the site client turns rows into :mod:`reconciler.site.records`, and
``reconcile site serve`` turns an embedded site's records into rows. It holds what a row *is* (class, key,
properties, Edm types, which properties are lazy) and the two functions per class, ``<thing>_row(record) →
dict`` and ``<thing>_record(row) → record``; it never touches the network. The server adds the system
properties (``__CLASS``, ``__RELPATH``, ``@odata.etag``, …) with :func:`system_properties`; a client strips
them with :func:`strip_system` (the ``*_record`` functions ignore them anyway).

Wire facts followed (CONFIGMGR.md, section AdminService): string keys are quoted ``('PS100012')``, numeric keys
bare ``(16777219)``; DateTime is ISO ``…Z`` and an unset date comes back as ``1970-01-01T00:00:00Z`` (also
``1980-01-01T06:00:00Z`` or null: all read as unset); embedded objects carry ``"@odata.type":
"#AdminService.<Class>"``; lazy properties come only from a get by key.

**Stand-ins.** Some record fields have no property a real site is known to hold. They travel in properties
named ``Reconciler…`` (:data:`STAND_INS`), which only ``reconcile site serve`` sends; from a real site they are
absent and each ``*_record`` function falls back as documented at the property (for example the console type
of a task sequence is inferred from ``Type`` and the steps). Every stand-in is listed in the README as
unproven.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.site.records import (
    Collection,
    CollectionSettings,
    Computer,
    ContentState,
    ContentStatus,
    DeploymentRecord,
    DistributionPoint,
    DistributionPointGroup,
    LiveVariable,
    MachineSettings,
    Package,
    PackageType,
    TaskSequenceRecord,
    VerificationSettings,
)

#: The namespace of the AdminService's own types (``#AdminService.SMS_ST_RecurWeekly``).
NAMESPACE = "AdminService"
#: What a site sends for a DateTime that was never set.
UNSET_TIME = "1970-01-01T00:00:00Z"
_UNSET_TIMES = frozenset({UNSET_TIME, "1980-01-01T06:00:00Z", "1970-01-01T00:00:00.000Z", ""})

# -- Edm types (CONFIGMGR.md: UInt32 → Edm.Int64, DateTime → Edm.DateTimeOffset) -------------------------
STRING, INT64, INT32, BOOLEAN, DATETIME = "Edm.String", "Edm.Int64", "Edm.Int32", "Edm.Boolean", "Edm.DateTimeOffset"


def collection_of(type_name: str) -> str:
    """``Collection(AdminService.SMS_ST_RecurWeekly)`` for an embedded class, ``Collection(Edm.String)`` for Edm."""
    return f"Collection({type_name if type_name.startswith('Edm.') else f'{NAMESPACE}.{type_name}'})"


@dataclass(frozen=True)
class Property:
    name: str
    edm: str = STRING
    lazy: bool = False


@dataclass(frozen=True)
class Method:
    """A WMI method as ``$metadata`` lists it: static (an ActionImport ``Class.Method``) or bound to an instance."""

    name: str
    bound: bool
    parameters: tuple[tuple[str, str], ...] = ()  # (name, Edm type or collection_of(...))
    returns: tuple[tuple[str, str], ...] = (("ReturnValue", INT32),)


@dataclass(frozen=True)
class WireClass:
    """One ConfigMgr WMI class as the AdminService serves it under ``wmi/<name>``."""

    name: str
    key: tuple[str, ...]
    properties: tuple[Property, ...]
    superclass: str = "SMS_BaseClass"
    methods: tuple[Method, ...] = ()
    embedded: bool = False  # an embedded object (ComplexType), never an entity set of its own

    def prop(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)

    @property
    def lazy(self) -> tuple[str, ...]:
        """Properties only a get by key returns (``__LAZYPROPERTIES``)."""
        return tuple(p.name for p in self.properties if p.lazy)

    @property
    def listed(self) -> tuple[str, ...]:
        """Properties a list or ``$filter`` query returns (and ``$select`` may name)."""
        return tuple(p.name for p in self.properties if not p.lazy)

    def numeric_key(self, name: str | None = None) -> bool:
        prop = self.prop(name or self.key[0])
        return prop is not None and prop.edm in (INT64, INT32)


def _props(*spec: str | tuple[str, str] | tuple[str, str, bool]) -> tuple[Property, ...]:
    out = []
    for item in spec:
        if isinstance(item, str):
            out.append(Property(item))
        else:
            out.append(Property(item[0], item[1], bool(item[2]) if len(item) > 2 else False))  # type: ignore[misc]
    return tuple(out)


LAZY = True
#: Properties only ``reconcile site serve`` sends: no real site is known to hold these values (see the docstring).
STAND_INS = ("ReconcilerConsoleType", "ReconcilerAdvertOptions", "ReconcilerAlertFailurePercent",
             "ReconcilerAlertSuccessPercent", "ReconcilerAlertSuccessAfter", "ReconcilerHasSiteSystems",
             "ReconcilerSequenceXML")

_TOKEN_BASE = (("DayDuration", INT64), ("HourDuration", INT64), ("MinuteDuration", INT64), ("IsGMT", BOOLEAN),
               ("StartTime", DATETIME))
#: Fields of each SMS_ST_* schedule token besides the base ones, with the value ConfigMgr fills in.
TOKEN_FIELDS: dict[str, dict[str, int]] = {
    "SMS_ST_NonRecurring": {},
    "SMS_ST_RecurInterval": {"DaySpan": 0, "HourSpan": 0, "MinuteSpan": 0},
    "SMS_ST_RecurWeekly": {"Day": 1, "ForNumberOfWeeks": 1},
    "SMS_ST_RecurMonthlyByDate": {"MonthDay": 0, "ForNumberOfMonths": 1},
    "SMS_ST_RecurMonthlyByWeekday": {"Day": 1, "ForNumberOfMonths": 1, "WeekOrder": 0},
}
_VARIABLE = (("Name", STRING), ("Value", STRING), ("IsMasked", BOOLEAN))

CLASSES: dict[str, WireClass] = {c.name: c for c in (
    WireClass("SMS_TaskSequencePackage", ("PackageID",), _props(
        "PackageID", "Name", "Description", ("PackageType", INT64), ("Type", INT64, LAZY), ("ProgramFlags", INT64),
        ("SourceVersion", INT64), "SedoObjectVersion", ("SourceDate", DATETIME), ("LastRefreshTime", DATETIME),
        "SourceSite", ("BootImageID", STRING, LAZY), ("Category", STRING, LAZY), ("Sequence", STRING, LAZY),
        ("References", collection_of("SMS_TaskSequence_Reference"), LAZY), ("TaskSequenceFlags", INT64, LAZY),
        ("Duration", INT64), ("HighImpactTaskSequence", BOOLEAN, LAZY), ("CustomHighImpactSet", BOOLEAN, LAZY),
        ("CustomHighImpactHeadline", STRING, LAZY), ("CustomHighImpactWarningTop", STRING, LAZY),
        ("CustomHighImpactWarning", STRING, LAZY), ("CustomHighImpactWarningInstall", STRING, LAZY),
        ("RestartRequired", BOOLEAN, LAZY), ("EstimatedDownloadSizeMB", INT64, LAZY),
        ("EstimatedRunTimeMinutes", INT64, LAZY), ("ReconcilerConsoleType", STRING, LAZY)),
        superclass="SMS_PackageBaseclass",
        methods=(Method("ImportSequence", False, (("SequenceXML", STRING),),
                        (("ReturnValue", INT32), ("TaskSequence", f"{NAMESPACE}.SMS_TaskSequence"))),
                 Method("SetSequence", False, (("TaskSequencePackage", f"{NAMESPACE}.SMS_TaskSequencePackage"),
                                               ("TaskSequence", f"{NAMESPACE}.SMS_TaskSequence")),
                        (("ReturnValue", INT32), ("SavedTaskSequencePackagePath", STRING))))),
    WireClass("SMS_Advertisement", ("AdvertisementID",), _props(
        "AdvertisementID", "AdvertisementName", "PackageID", "ProgramName", "CollectionID", "Comment",
        ("OfferType", INT64), ("AdvertFlags", INT64), ("RemoteClientFlags", INT64), ("PresentTime", DATETIME),
        ("PresentTimeEnabled", BOOLEAN), ("PresentTimeIsGMT", BOOLEAN), ("ExpirationTime", DATETIME),
        ("ExpirationTimeEnabled", BOOLEAN), ("ExpirationTimeIsGMT", BOOLEAN),
        ("AssignedSchedule", collection_of("SMS_ScheduleToken"), LAZY), ("AssignedScheduleEnabled", BOOLEAN),
        ("AssignedScheduleIsGMT", BOOLEAN), "SourceSite", ("ReconcilerAdvertOptions", INT64),
        ("ReconcilerAlertFailurePercent", INT64), ("ReconcilerAlertSuccessPercent", INT64),
        ("ReconcilerAlertSuccessAfter", DATETIME))),
    WireClass("SMS_Collection", ("CollectionID",), _props(
        "CollectionID", "Name", ("MemberCount", INT64), ("IsBuiltIn", BOOLEAN), ("CollectionType", INT64),
        ("ReconcilerHasSiteSystems", BOOLEAN))),
    WireClass("SMS_R_System", ("ResourceID",), _props(("ResourceID", INT64), "Name", "NetbiosName",
                                                       ("ResourceType", INT64), ("Client", INT64))),
    WireClass("SMS_FullCollectionMembership", ("CollectionID", "ResourceID"), _props(
        "CollectionID", ("ResourceID", INT64), "Name", ("ResourceType", INT64), ("IsDirect", BOOLEAN))),
    WireClass("SMS_PackageBaseclass", ("PackageID",), _props(
        "PackageID", "Name", ("PackageType", INT64), ("SourceVersion", INT64), ("PkgFlags", INT64), "SourceSite")),
    WireClass("SMS_Package", ("PackageID",), _props(
        "PackageID", "Name", ("PackageType", INT64), ("SourceVersion", INT64), ("PkgFlags", INT64), "SourceSite"),
        superclass="SMS_PackageBaseclass"),
    WireClass("SMS_DistributionPointInfo", ("NALPath",), _props("NALPath", "ServerName", "SiteCode")),
    WireClass("SMS_DistributionPoint", ("PackageID", "ServerNALPath", "SiteCode"), _props(
        "PackageID", "ServerNALPath", "SiteCode", ("RefreshNow", BOOLEAN), "SourceSite",
        ("LastRefreshTime", DATETIME))),
    WireClass("SMS_DistributionPointGroup", ("GroupID",), _props(
        "GroupID", "Name", "Description", ("MemberCount", INT64), ("ContentInSync", BOOLEAN)),
        methods=(Method("AddPackages", True, (("PackageIDs", collection_of(STRING)),)),
                 Method("RemovePackages", True, (("PackageIDs", collection_of(STRING)),)),
                 Method("ReDistributePackage", True, (("PackageID", STRING),)))),
    WireClass("SMS_DPGroupMembers", ("GroupID", "DPNALPath"), _props("GroupID", "DPNALPath")),
    WireClass("SMS_DPGroupCollections", ("GroupID", "CollectionID"), _props(
        "GroupID", "CollectionID", "CollectionName", "GroupName")),
    WireClass("SMS_PackageStatusDistPointsSummarizer", ("PackageID", "ServerNALPath", "SiteCode"), _props(
        "PackageID", "ServerNALPath", "SiteCode", ("State", INT64), ("SourceVersion", INT64),
        ("SummaryDate", DATETIME))),
    WireClass("SMS_CollectionSettings", ("CollectionID",), _props(
        "CollectionID", ("CollectionVariables", collection_of("SMS_CollectionVariable"), LAZY),
        ("CollectionVariablePrecedence", INT64), ("LastModificationTime", DATETIME), ("LocaleID", INT64))),
    WireClass("SMS_MachineSettings", ("ResourceID",), _props(
        ("ResourceID", INT64), ("MachineVariables", collection_of("SMS_MachineVariable"), LAZY), "SourceSite",
        ("LastModificationTime", DATETIME), ("LocaleID", INT64))),
    WireClass("SMS_ObjectContainerNode", ("ContainerNodeID",), _props(
        ("ContainerNodeID", INT64), "Name", ("ObjectType", INT64), ("ParentContainerNodeID", INT64), "FolderGuid",
        ("IsEmpty", BOOLEAN), ("SearchFolder", BOOLEAN), "SourceSite")),
    WireClass("SMS_ObjectContainerItem", ("MemberID",), _props(
        ("MemberID", INT64), ("ContainerNodeID", INT64), "InstanceKey", ("ObjectType", INT64), "MemberGuid",
        "SourceSite"),
        methods=(Method("MoveMembers", False, (("InstanceKeys", collection_of(STRING)), ("ContainerNodeID", INT64),
                                               ("TargetContainerNodeID", INT64), ("ObjectType", INT64))),)),
    WireClass("SMS_SCI_SiteDefinition", ("FileType", "ItemName", "ItemType", "SiteCode"), _props(
        ("FileType", INT64), "ItemName", "ItemType", "SiteCode", "SiteName",
        ("Props", collection_of("SMS_EmbeddedProperty"), LAZY))),
    WireClass("SMS_Site", ("SiteCode",), _props("SiteCode", "SiteName", "Version", ("BuildNumber", INT64),
                                                "ServerName", ("Type", INT64))),
    WireClass("SMS_Admin", ("AdminID",), _props(("AdminID", INT64), "LogonName", ("RoleNames", collection_of(STRING)))),
    # embedded objects (ComplexType in $metadata)
    WireClass("SMS_TaskSequence_Reference", (), _props("Package", "Program", ("Type", INT64)), embedded=True),
    WireClass("SMS_TaskSequence", (), _props("ReconcilerSequenceXML"), embedded=True),
    WireClass("SMS_CollectionVariable", (), _props(*_VARIABLE), embedded=True),
    WireClass("SMS_MachineVariable", (), _props(*_VARIABLE), embedded=True),
    WireClass("SMS_EmbeddedProperty", (), _props("PropertyName", ("Value", INT64), "Value1", "Value2"), embedded=True),
    WireClass("SMS_ScheduleToken", (), _props(*_TOKEN_BASE), embedded=True),
    *(WireClass(name, (), _props(*_TOKEN_BASE, *((f, INT64) for f in fields)), superclass="SMS_ScheduleToken",
                embedded=True) for name, fields in TOKEN_FIELDS.items()),
)}

# -- keys, literals, times ------------------------------------------------------------------------------------


def odata_literal(value: str | int | bool) -> str:
    """A value as an OData URL literal: strings quoted with ``'`` doubled, numbers bare, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_path(class_name: str, key: str | int | Mapping[str, str | int]) -> str:
    """``SMS_TaskSequencePackage('PS100012')``, ``SMS_MachineSettings(16777220)`` or, for a composite key,
    ``SMS_DistributionPoint(PackageID='PS100003',ServerNALPath='…',SiteCode='PS1')`` (the values are not
    percent-encoded: the transport encodes the path)."""
    if isinstance(key, Mapping):
        inner = ",".join(f"{name}={odata_literal(key[name])}" for name in CLASSES[class_name].key)
    else:
        inner = odata_literal(key)
    return f"{class_name}({inner})"


def wire_time(value: str | datetime | None) -> str:
    """A record's time (ISO text, aware or naive) as the AdminService sends DateTime: ``…Z``, whole seconds.

    An aware time is turned to UTC; a naive one (a schedule in the client's local time) keeps its clock
    reading, as the site keeps it, with ``Z`` appended as the AdminService does. None is :data:`UNSET_TIME`.
    """
    if value is None or value == "":
        return UNSET_TIME
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


def record_time(value: Any, utc: bool = True) -> str | None:
    """A DateTime from the wire as records hold it: ISO text with ``+00:00`` when ``utc``, else naive (the
    client's local clock); None for a date that was never set (``1970-01-01T00:00:00Z``, ``1980-…``, null)."""
    if value is None or not isinstance(value, str) or value in _UNSET_TIMES:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    moment = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    if moment.year <= 1980 and moment.replace(tzinfo=None) in (datetime(1970, 1, 1), datetime(1980, 1, 1, 6)):
        return None
    return moment.isoformat() if utc else moment.replace(tzinfo=None).isoformat()


def strip_system(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without its system properties (``__CLASS``, ``@odata.etag``, …): only the class's own properties."""
    return {k: v for k, v in row.items() if not k.startswith("__") and not k.startswith("@odata.")}


def relpath(wire_class: WireClass, row: Mapping[str, Any]) -> str:
    """``SMS_Collection.CollectionID="PS100004"`` (WMI's relative path, as ``__RELPATH`` holds it)."""
    parts = []
    for name in wire_class.key:
        value = row[name]
        parts.append(f"{name}={value}" if isinstance(value, int) else f'{name}="{value}"')
    return f"{wire_class.name}.{','.join(parts)}"


def system_properties(wire_class: WireClass, row: Mapping[str, Any], site_code: str, server: str) -> dict[str, Any]:
    """What a site adds to a full row (a list without ``$select``, or a get by key): ``@odata.etag`` (the key
    values joined by ``;``), ``__LAZYPROPERTIES`` and the WMI system properties. ``$select`` drops them all."""
    path = relpath(wire_class, row)
    namespace = f"root\\sms\\site_{site_code}"
    derivation = [wire_class.superclass, "SMS_BaseClass"] if wire_class.superclass != "SMS_BaseClass" \
        else ["SMS_BaseClass"]
    return {
        "@odata.etag": ";".join(str(row[k]) for k in wire_class.key),
        "__LAZYPROPERTIES": list(wire_class.lazy),
        "__GENUS": 2, "__CLASS": wire_class.name, "__SUPERCLASS": wire_class.superclass, "__DYNASTY": "SMS_BaseClass",
        "__RELPATH": path, "__PROPERTY_COUNT": len(wire_class.properties), "__DERIVATION": derivation,
        "__SERVER": server, "__NAMESPACE": namespace, "__PATH": f"\\\\{server}\\{namespace}:{path}",
    }


def embedded(class_name: str, **values: Any) -> dict[str, Any]:
    """An embedded object as the AdminService writes it: ``{"@odata.type": "#AdminService.<Class>", …}``."""
    return {"@odata.type": f"#{NAMESPACE}.{class_name}", **values}


def embedded_class(value: Mapping[str, Any]) -> str:
    """``SMS_ST_RecurWeekly`` from an embedded object's ``@odata.type`` (or ``__CLASS`` over WMI); ``""`` if none."""
    return str(value.get("@odata.type") or value.get("__CLASS") or "").rsplit(".", 1)[-1]


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _optional_int(value: Any) -> int | None:
    """ConfigMgr's UInt32 cannot say "not set": 0 (or null) reads as None, as a manifest that leaves it out."""
    number = _int(value)
    return number or None


# -- task sequences (SMS_TaskSequencePackage, PackageType 4) --------------------------------------------------

TASK_SEQUENCE_PACKAGE_TYPE = 4
#: ProgramFlags a new task sequence gets (the SDK's default); 0x1000 is DISABLED.
PROGRAM_FLAGS_DEFAULT = 152084496
PROGRAM_FLAG_DISABLED = 0x1000
#: SMS_ObjectContainerNode.ObjectType of task sequence folders.
TASK_SEQUENCE_OBJECT_TYPE = 20


def task_sequence_row(record: TaskSequenceRecord, *, source_version: int = 1, sedo_version: str = "",
                      dangling: bool = False, site_code: str = "") -> dict[str, Any]:
    """Every property of the ``SMS_TaskSequencePackage`` (lazy ones included; the server leaves those out of
    lists). ``References`` and ``TaskSequenceFlags`` are the site's to compute; a client writing a row sends
    neither ``Sequence`` nor ``References`` (``Sequence`` changes only through ``SetSequence``)."""
    return {
        "PackageID": record.id, "Name": record.name, "Description": record.description,
        "PackageType": TASK_SEQUENCE_PACKAGE_TYPE, "Type": 1 if record.ts_type == "Custom" else 2,
        "ProgramFlags": PROGRAM_FLAGS_DEFAULT | (0 if record.enabled else PROGRAM_FLAG_DISABLED),
        "SourceVersion": source_version, "SedoObjectVersion": sedo_version, "SourceSite": site_code,
        "BootImageID": record.boot_image_id or "", "Category": record.category or "", "Sequence": record.sequence,
        "References": [embedded("SMS_TaskSequence_Reference", Package=ref, Program="*", Type=0)
                       for ref in record.references],
        "TaskSequenceFlags": 1 if dangling else 0, "Duration": record.duration or 0,
        "HighImpactTaskSequence": record.high_impact, "CustomHighImpactSet": record.custom_high_impact,
        "CustomHighImpactHeadline": record.headline, "CustomHighImpactWarningTop": record.warning_top,
        "CustomHighImpactWarning": record.warning, "CustomHighImpactWarningInstall": record.warning_install,
        "RestartRequired": record.restart_required, "EstimatedDownloadSizeMB": record.download_size_mb or 0,
        "EstimatedRunTimeMinutes": record.run_time_minutes or 0, "ReconcilerConsoleType": record.ts_type,
    }


def task_sequence_record(row: Mapping[str, Any], *, folder: str | None = None,
                         sequence: str | None = None) -> TaskSequenceRecord:
    """A full row (from a get by key) as a record. ``folder`` comes from ``SMS_ObjectContainerItem`` (a row
    does not hold it); ``sequence`` overrides the row's ``Sequence``. Without the ``ReconcilerConsoleType``
    stand-in (a real site) the console type is unknown (``""``): a real site keeps only ``Type``, which it sets
    itself from the steps, so comparing a guess would show a change that no write could make go away."""
    text = row.get("Sequence") if sequence is None else sequence
    text = text or ""
    refs = row.get("References") or ()
    return TaskSequenceRecord(
        id=row.get("PackageID") or None, name=str(row.get("Name") or ""), sequence=text,
        description=str(row.get("Description") or ""),
        ts_type=str(row.get("ReconcilerConsoleType") or ""),
        folder=folder, enabled=not _int(row.get("ProgramFlags"), PROGRAM_FLAGS_DEFAULT) & PROGRAM_FLAG_DISABLED,
        boot_image_id=row.get("BootImageID") or None, high_impact=bool(row.get("HighImpactTaskSequence")),
        custom_high_impact=bool(row.get("CustomHighImpactSet")),
        headline=str(row.get("CustomHighImpactHeadline") or ""),
        warning_top=str(row.get("CustomHighImpactWarningTop") or ""),
        warning=str(row.get("CustomHighImpactWarning") or ""),
        warning_install=str(row.get("CustomHighImpactWarningInstall") or ""),
        restart_required=bool(row.get("RestartRequired")),
        download_size_mb=_optional_int(row.get("EstimatedDownloadSizeMB")),
        run_time_minutes=_optional_int(row.get("EstimatedRunTimeMinutes")),
        category=row.get("Category") or None, duration=_optional_int(row.get("Duration")),
        references=tuple(str(r.get("Package")) for r in refs if isinstance(r, Mapping) and r.get("Package")),
    )


def sequence_object(xml: str) -> dict[str, Any]:
    """The ``SMS_TaskSequence`` that ``ImportSequence`` returns and ``SetSequence`` takes, as ``site serve``
    carries it: the XML in a stand-in property (a real site sends the step objects; unproven over REST)."""
    return embedded("SMS_TaskSequence", ReconcilerSequenceXML=xml)


# -- deployments (SMS_Advertisement) --------------------------------------------------------------------------

_LOW_WORD = 0xFFFFFFFF


def schedule_tokens_wire(tokens: Iterable[str]) -> list[dict[str, Any]]:
    """A record's schedule tokens (canonical JSON text) as ``AssignedSchedule``: each token with its
    ``@odata.type``, every field of its class (ConfigMgr fills in defaults) and ``StartTime`` as ``…Z``."""
    out = []
    for text in tokens:
        token = json.loads(text)
        name = embedded_class(token) or "SMS_ST_NonRecurring"
        fields = {"DayDuration": 0, "HourDuration": 0, "MinuteDuration": 0, "IsGMT": False,
                  **TOKEN_FIELDS.get(name, {})}
        fields.update({k: v for k, v in token.items() if k != "@odata.type"})
        fields["StartTime"] = wire_time(token.get("StartTime"))
        out.append(embedded(name, **fields))
    return out


def schedule_tokens_record(tokens: Iterable[Mapping[str, Any]] | None) -> tuple[str, ...]:
    """``AssignedSchedule`` as a record holds it: each token as canonical JSON text, as the site sent it."""
    out = []
    for token in tokens or ():
        data = {k: v for k, v in token.items() if not k.startswith("__") and k != "@odata.type"}
        data["@odata.type"] = f"#{NAMESPACE}.{embedded_class(token) or 'SMS_ST_NonRecurring'}"
        out.append(json.dumps(data, sort_keys=True))
    return tuple(out)


def deployment_row(record: DeploymentRecord, *, site_code: str = "") -> dict[str, Any]:
    """Every property of the ``SMS_Advertisement`` (``AssignedSchedule`` is lazy). ``AdvertFlags`` is a UInt32:
    the options the product keeps in the high word of ``advert_flags`` (their real bits are unverified)
    travel in the ``ReconcilerAdvertOptions`` stand-in, as do the alert settings."""
    return {
        "AdvertisementID": record.id, "AdvertisementName": record.name, "PackageID": record.package_id,
        "ProgramName": "*", "CollectionID": record.collection_id, "Comment": record.comment,
        "OfferType": record.offer_type, "AdvertFlags": record.advert_flags & _LOW_WORD,
        "RemoteClientFlags": record.remote_client_flags, "PresentTime": wire_time(record.present_time),
        "PresentTimeEnabled": record.present_time_enabled, "PresentTimeIsGMT": record.is_gmt,
        "ExpirationTime": wire_time(record.expiration_time), "ExpirationTimeEnabled": record.expiration_time_enabled,
        "ExpirationTimeIsGMT": record.is_gmt, "AssignedSchedule": schedule_tokens_wire(record.assigned_schedule),
        "AssignedScheduleEnabled": bool(record.assigned_schedule), "AssignedScheduleIsGMT": record.is_gmt,
        "SourceSite": site_code, "ReconcilerAdvertOptions": record.advert_flags >> 32,
        "ReconcilerAlertFailurePercent": record.alert_failure_percent,
        "ReconcilerAlertSuccessPercent": record.alert_success_percent,
        "ReconcilerAlertSuccessAfter": wire_time(record.alert_success_after) if record.alert_success_after else None,
    }


def deployment_record(row: Mapping[str, Any]) -> DeploymentRecord:
    """A full row (with ``AssignedSchedule``, from a get by key) as a record."""
    utc = bool(row.get("PresentTimeIsGMT", row.get("AssignedScheduleIsGMT", False)))
    failure, success = row.get("ReconcilerAlertFailurePercent"), row.get("ReconcilerAlertSuccessPercent")
    return DeploymentRecord(
        id=row.get("AdvertisementID") or None, name=str(row.get("AdvertisementName") or ""),
        package_id=str(row.get("PackageID") or ""), collection_id=str(row.get("CollectionID") or ""),
        comment=str(row.get("Comment") or ""), offer_type=_int(row.get("OfferType"), 2),
        advert_flags=(_int(row.get("AdvertFlags")) & _LOW_WORD) | (_int(row.get("ReconcilerAdvertOptions")) << 32),
        remote_client_flags=_int(row.get("RemoteClientFlags")),
        present_time=record_time(row.get("PresentTime"), utc),
        present_time_enabled=bool(row.get("PresentTimeEnabled")),
        expiration_time=record_time(row.get("ExpirationTime"), utc),
        expiration_time_enabled=bool(row.get("ExpirationTimeEnabled")), is_gmt=utc,
        assigned_schedule=schedule_tokens_record(row.get("AssignedSchedule")),
        alert_failure_percent=None if failure is None else _int(failure),
        alert_success_percent=None if success is None else _int(success),
        alert_success_after=record_time(row.get("ReconcilerAlertSuccessAfter"), utc),
    )


# -- inventory: collections, devices, packages, distribution points ------------------------------------------

#: SMS_Collection.CollectionType: 1 user, 2 device. The built-in user collections.
_USER_COLLECTIONS = frozenset({"SMS00002", "SMS00003", "SMS00004"})


def collection_row(collection: Collection) -> dict[str, Any]:
    return {"CollectionID": collection.id, "Name": collection.name, "MemberCount": collection.member_count,
            "IsBuiltIn": collection.built_in, "CollectionType": 1 if collection.id in _USER_COLLECTIONS else 2,
            "ReconcilerHasSiteSystems": collection.has_site_systems}


def collection_record(row: Mapping[str, Any]) -> Collection:
    """Without the ``ReconcilerHasSiteSystems`` stand-in (a real site: no property says it) a collection is
    taken to contain site systems, the reading under which the high-risk rules refuse more, not less."""
    return Collection(str(row["CollectionID"]), str(row.get("Name") or ""), _int(row.get("MemberCount")),
                      bool(row.get("ReconcilerHasSiteSystems", True)), bool(row.get("IsBuiltIn")))


def computer_row(computer: Computer) -> dict[str, Any]:
    return {"ResourceID": computer.resource_id, "Name": computer.name, "NetbiosName": computer.name,
            "ResourceType": 5, "Client": 1}


def computer_record(row: Mapping[str, Any]) -> Computer:
    return Computer(_int(row["ResourceID"]), str(row.get("Name") or row.get("NetbiosName") or ""))


def membership_row(collection_id: str, computer: Computer) -> dict[str, Any]:
    return {"CollectionID": collection_id, "ResourceID": computer.resource_id, "Name": computer.name,
            "ResourceType": 5, "IsDirect": True}


#: SMS_PackageBaseclass.PackageType by the records' package type, and the class of each.
PACKAGE_TYPE_NUMBERS = {PackageType.PACKAGE: 0, PackageType.DRIVER_PACKAGE: 3, PackageType.TASK_SEQUENCE: 4,
                        PackageType.APPLICATION: 8, PackageType.OPERATING_SYSTEM_IMAGE: 257,
                        PackageType.BOOT_IMAGE: 258, PackageType.OPERATING_SYSTEM_UPGRADE: 259}
PACKAGE_CLASSES = {0: "SMS_Package", 3: "SMS_DriverPackage", 4: "SMS_TaskSequencePackage", 8: "SMS_ContentPackage",
                   257: "SMS_ImagePackage", 258: "SMS_BootImagePackage", 259: "SMS_OperatingSystemInstallPackage"}
_PACKAGE_TYPES = {number: kind for kind, number in PACKAGE_TYPE_NUMBERS.items()}
#: PkgFlags COPY_CONTENT (0x80): "copy the content in this package to a package share on distribution points".
PKG_FLAG_SHARE = 0x80


def package_row(package: Package, *, site_code: str = "") -> dict[str, Any]:
    return {"PackageID": package.id, "Name": package.name, "PackageType": PACKAGE_TYPE_NUMBERS[package.type],
            "SourceVersion": package.source_version, "PkgFlags": PKG_FLAG_SHARE if package.share_enabled else 0,
            "SourceSite": site_code}


def package_record(row: Mapping[str, Any]) -> Package | None:
    """None for a package type the product does not reference (software update packages, …)."""
    kind = _PACKAGE_TYPES.get(_int(row.get("PackageType"), -1))
    if kind is None:
        return None
    return Package(str(row["PackageID"]), str(row.get("Name") or ""), kind, _int(row.get("SourceVersion"), 1),
                   bool(_int(row.get("PkgFlags")) & PKG_FLAG_SHARE))


def nal_path(server: str, site_code: str) -> str:
    """A distribution point's NAL path, as ``ServerNALPath`` holds it."""
    return f'["Display=\\\\{server}\\"]MSWNET:["SMS_SITE={site_code}"]\\\\{server}\\'


def nal_server(path: str) -> str:
    """The server FQDN in a NAL path (``DP01.corp.contoso.com``); the text itself if it is no NAL path."""
    match = re.search(r"\]\\\\([^\\\]\"]+)\\?$", path) or re.search(r"Display=\\\\([^\\\"]+)", path)
    return match.group(1) if match else path


def distribution_point_row(dp: DistributionPoint) -> dict[str, Any]:
    return {"NALPath": nal_path(dp.name, dp.site_code), "ServerName": dp.name, "SiteCode": dp.site_code}


def distribution_point_record(row: Mapping[str, Any]) -> DistributionPoint:
    return DistributionPoint(str(row.get("ServerName") or nal_server(str(row.get("NALPath") or ""))),
                             str(row.get("SiteCode") or ""))


def dp_group_row(group: DistributionPointGroup, group_id: str) -> dict[str, Any]:
    """``GroupID`` is the site's GUID (``{…}``); the embedded site keys groups by name, so its server makes one."""
    return {"GroupID": group_id, "Name": group.name, "Description": "", "MemberCount": len(group.members),
            "ContentInSync": True}


def dp_group_record(row: Mapping[str, Any], members: Iterable[Mapping[str, Any]] = (),
                    collections: Iterable[Mapping[str, Any]] = ()) -> DistributionPointGroup:
    """A group from its row and its ``SMS_DPGroupMembers`` / ``SMS_DPGroupCollections`` rows (any group's: only
    the rows with this ``GroupID`` are taken)."""
    group_id = row.get("GroupID")
    return DistributionPointGroup(
        str(row.get("Name") or ""),
        tuple(sorted(nal_server(str(m.get("DPNALPath") or "")) for m in members if m.get("GroupID") == group_id)),
        tuple(sorted(str(c["CollectionID"]) for c in collections if c.get("GroupID") == group_id)))


def content_status_row(status: ContentStatus, site_code: str) -> dict[str, Any]:
    return {"PackageID": status.package_id, "ServerNALPath": nal_path(status.dp, site_code), "SiteCode": site_code,
            "State": int(status.state), "SourceVersion": status.installed_version, "SummaryDate": UNSET_TIME}


def content_status_record(row: Mapping[str, Any]) -> ContentStatus:
    return ContentStatus(str(row["PackageID"]), nal_server(str(row.get("ServerNALPath") or "")),
                         ContentState(_int(row.get("State"))), _int(row.get("SourceVersion")))


# -- variables (SMS_CollectionSettings, SMS_MachineSettings) -------------------------------------------------


def variables_wire(class_name: str, variables: Iterable[tuple[str, str | None, bool]]) -> list[dict[str, Any]]:
    """Variables as the array of ``SMS_CollectionVariable`` / ``SMS_MachineVariable`` objects. A masked value
    is written in clear (the site seals it) and read back as ``""``: pass None for a value read from a site."""
    return [embedded(class_name, Name=name, Value="" if value is None else value, IsMasked=bool(masked))
            for name, value, masked in variables]


def variables_record(values: Iterable[Mapping[str, Any]] | None) -> tuple[LiveVariable, ...]:
    """The variables of a settings row; a masked one has value None whatever the site sent."""
    return tuple(LiveVariable(str(v.get("Name") or ""), None if v.get("IsMasked") else str(v.get("Value") or ""),
                              bool(v.get("IsMasked"))) for v in values or ())


def collection_settings_row(settings: CollectionSettings, *, last_modified: str | None = None,
                            locale_id: int = 1033) -> dict[str, Any]:
    return {"CollectionID": settings.collection_id,
            "CollectionVariables": variables_wire("SMS_CollectionVariable",
                                                  ((v.name, v.value, v.masked) for v in settings.variables)),
            "CollectionVariablePrecedence": settings.precedence, "LastModificationTime": wire_time(last_modified),
            "LocaleID": locale_id}


def collection_settings_record(row: Mapping[str, Any]) -> CollectionSettings:
    return CollectionSettings(str(row["CollectionID"]), _int(row.get("CollectionVariablePrecedence")),
                              variables_record(row.get("CollectionVariables")))


def machine_settings_row(settings: MachineSettings, *, site_code: str = "", last_modified: str | None = None,
                         locale_id: int = 1033) -> dict[str, Any]:
    return {"ResourceID": settings.resource_id,
            "MachineVariables": variables_wire("SMS_MachineVariable",
                                               ((v.name, v.value, v.masked) for v in settings.variables)),
            "SourceSite": site_code, "LastModificationTime": wire_time(last_modified), "LocaleID": locale_id}


def machine_settings_record(row: Mapping[str, Any]) -> MachineSettings:
    return MachineSettings(_int(row["ResourceID"]), variables_record(row.get("MachineVariables")))


# -- deployment verification (SMS_SCI_SiteDefinition, embedded property "Device Collection Threshold") -------

#: Where a site keeps its deployment verification settings, as ConfigMgrCBDsc's CMSiteConfiguration reads them
#: (one source): ``Value`` 0 blocks collections with site systems (else warn), ``Value1`` the default size,
#: ``Value2`` the maximum size (strings, as SMS_EmbeddedProperty's Value1/Value2 are).
THRESHOLD_PROPERTY = "Device Collection Threshold"


def site_definition_key(site_code: str) -> dict[str, str | int]:
    """The composite key of a site's ``SMS_SCI_SiteDefinition``."""
    return {"FileType": 2, "ItemName": "Site Definition", "ItemType": "Site Definition", "SiteCode": site_code}


def verification_props(settings: VerificationSettings) -> list[dict[str, Any]]:
    return [embedded("SMS_EmbeddedProperty", PropertyName=THRESHOLD_PROPERTY,
                     Value=0 if settings.site_systems == "block" else 1,
                     Value1=str(settings.default_size), Value2=str(settings.maximum_size))]


def verification_record(props: Iterable[Mapping[str, Any]] | None) -> VerificationSettings:
    """The settings from ``Props``; ConfigMgr's defaults (100, 0, block) when the property is absent."""
    for prop in props or ():
        if prop.get("PropertyName") == THRESHOLD_PROPERTY:
            return VerificationSettings(_int(prop.get("Value1"), 100), _int(prop.get("Value2"), 0),
                                        "block" if _int(prop.get("Value")) == 0 else "warn")
    return VerificationSettings()


# -- folders (SMS_ObjectContainerNode / SMS_ObjectContainerItem, ObjectType 20) -----------------------------


@dataclass
class Folders:
    """Console folders of task sequences: node ID → (name, parent node ID), and paths ``OSD/Production``."""

    nodes: dict[int, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> Folders:
        return cls({_int(r["ContainerNodeID"]): (str(r.get("Name") or ""), _int(r.get("ParentContainerNodeID")))
                    for r in rows if _int(r.get("ObjectType"), TASK_SEQUENCE_OBJECT_TYPE) == TASK_SEQUENCE_OBJECT_TYPE})

    def path(self, node_id: int) -> str | None:
        """``OSD/Production`` for a node; None for the root (0) or an unknown node."""
        parts: list[str] = []
        seen: set[int] = set()
        while node_id and node_id in self.nodes and node_id not in seen:
            seen.add(node_id)
            name, node_id = self.nodes[node_id]
            parts.append(name)
        return "/".join(reversed(parts)) or None

    def node(self, path: str | None) -> int | None:
        """The node of a folder path (0 for the root); None when some folder on the path does not exist."""
        node_id = 0
        for name in (path or "").split("/"):
            if not name:
                continue
            found = [n for n, (child, parent) in self.nodes.items() if parent == node_id and child == name]
            if not found:
                return None
            node_id = min(found)
        return node_id
