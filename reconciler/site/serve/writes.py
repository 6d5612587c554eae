"""Writes through ``reconcile site serve``: POST creates, PUT updates, DELETE deletes, and the WMI methods.

Each function runs in the site's thread (:meth:`SiteBackend.run`) and either changes the embedded site in one
of its transactions or refuses. Where a real site's behaviour is unproven, the reading that exposes a careless
client is taken (each is listed in the README):

- **PUT replaces**: a property the body leaves out takes its default (merge or replace is unproven).
- **Sequences change only through SetSequence**: a POST creates a task sequence with an empty sequence; a
  PUT whose ``Sequence`` differs from the stored one is refused (400; ``Sequence`` is read-only), an unchanged
  one is ignored, as are the other read-only properties (``References``, ``SourceVersion``, …).
- **Optimistic concurrency**: a PUT or ``SetSequence`` carrying a ``SedoObjectVersion`` that is not the
  sequence's current one is refused with **500** and an OData error naming ``SedoObjectVersion`` (a WMI provider
  failure reaches AdminService clients as a 500; no capture shows another status). A body without the property
  saves (a save takes the lock when it is free).
- **Masked variables**: a PUT of a variable array in which a masked variable has an empty value is refused
  (500): a masked value reads back empty, so such a PUT would be a client writing back what it read, and
  whether a site keeps or empties the value is unproven.
- ``refuse_schedule_writes`` answers any write carrying ``AssignedSchedule`` tokens with 500, as one module saw
  when writing ``SMS_ST_RecurInterval`` over REST.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.site.adminservice import wire
from reconciler.site.embedded import sequence_references
from reconciler.site.serve import folders
from reconciler.site.serve.backend import SiteBackend
from reconciler.site.serve.odata import BadRequest, NotFound, SiteRefusal, key_dict

Body = Mapping[str, Any]
Key = tuple[tuple[str | None, Any], ...]
#: What a task sequence created by a POST holds until SetSequence gives it steps.
EMPTY_SEQUENCE = '<sequence version="3.10"/>'


class Conflict(SiteRefusal):
    """A save with a stale ``SedoObjectVersion``: the object changed since the client read it."""


def _existing(b: SiteBackend, class_name: str, key: Key) -> dict[str, Any]:
    row = b.get(class_name, key)
    if row is None:
        raise NotFound(f"{class_name} {'/'.join(str(v) for _, v in key)} does not exist")
    return row


def _check_version(body: Body, current: Mapping[str, Any]) -> None:
    given = body.get("SedoObjectVersion")
    if given and given != current["SedoObjectVersion"]:
        raise Conflict(f"SedoObjectVersion {str(given)[:40]} is not the current version of task sequence "
                       f"{current['PackageID']}: it was changed since it was read; read it again")


def _refuse_schedules(b: SiteBackend, body: Body) -> None:
    if b.options.refuse_schedule_writes and body.get("AssignedSchedule"):
        raise SiteRefusal("Generic failure: AssignedSchedule could not be written")


def _saved(b: SiteBackend) -> None:
    b.dirty = True


# -- task sequences ------------------------------------------------------------------------------------------


def create_task_sequence(b: SiteBackend, body: Body) -> dict[str, Any]:
    if body.get("Sequence"):
        raise BadRequest("Sequence is read-only: give a task sequence its steps with SetSequence")
    if not body.get("Name"):
        raise BadRequest("a task sequence needs a Name")
    ts_id = b.site.create_task_sequence(wire.task_sequence_record(body, sequence=EMPTY_SEQUENCE))
    b.versions.saved(ts_id)
    _saved(b)
    return b.find("SMS_TaskSequencePackage", {"PackageID": ts_id}) or {}


def _save_task_sequence(b: SiteBackend, ts_id: str, package: Body, sequence: str) -> None:
    record = b.state().task_sequences[ts_id]
    new = wire.task_sequence_record({**package, "PackageID": ts_id}, sequence=sequence, folder=record.folder)
    b.site.update_task_sequence(ts_id, new)
    b.versions.saved(ts_id)
    _saved(b)


def update_task_sequence(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    current = _existing(b, "SMS_TaskSequencePackage", key)
    _check_version(body, current)
    if "Sequence" in body and body["Sequence"] != current["Sequence"]:
        raise BadRequest("Sequence is read-only: change the steps with SetSequence")
    _save_task_sequence(b, current["PackageID"], body, current["Sequence"])
    return b.find("SMS_TaskSequencePackage", {"PackageID": current["PackageID"]}) or {}


def delete_task_sequence(b: SiteBackend, key: Key) -> None:
    current = _existing(b, "SMS_TaskSequencePackage", key)
    b.site.delete_task_sequence(current["PackageID"])
    _saved(b)


def import_sequence(b: SiteBackend, body: Body) -> dict[str, Any]:
    xml = body.get("SequenceXML")
    if not isinstance(xml, str) or not xml.strip():
        raise BadRequest("ImportSequence takes SequenceXML, the task sequence XML")
    sequence_references(xml)  # refused (500) when the site cannot read it
    return {"ReturnValue": 0, "TaskSequence": wire.sequence_object(xml)}


def set_sequence(b: SiteBackend, body: Body) -> dict[str, Any]:
    package, sequence = body.get("TaskSequencePackage"), body.get("TaskSequence")
    if not isinstance(package, Mapping) or not isinstance(sequence, Mapping):
        raise BadRequest("SetSequence takes TaskSequencePackage and TaskSequence (from ImportSequence)")
    xml = sequence.get("ReconcilerSequenceXML")
    if not isinstance(xml, str):
        raise BadRequest("this server's SMS_TaskSequence carries its XML in ReconcilerSequenceXML: pass the "
                         "TaskSequence that ImportSequence returned")
    ts_id = package.get("PackageID")
    if ts_id:
        current = b.find("SMS_TaskSequencePackage", {"PackageID": ts_id})
        if current is None:
            raise SiteRefusal(f"task sequence {str(ts_id)[:20]} does not exist")
        _check_version(package, current)
        _save_task_sequence(b, str(ts_id), package, xml)
    else:
        if not package.get("Name"):
            raise BadRequest("a new task sequence needs a Name")
        ts_id = b.site.create_task_sequence(wire.task_sequence_record(package, sequence=xml))
        b.versions.saved(ts_id)
        _saved(b)
    path = wire.relpath(wire.CLASSES["SMS_TaskSequencePackage"], {"PackageID": ts_id})
    return {"ReturnValue": 0, "SavedTaskSequencePackagePath": path}


# -- deployments ---------------------------------------------------------------------------------------------


def create_deployment(b: SiteBackend, body: Body) -> dict[str, Any]:
    _refuse_schedules(b, body)
    record = wire.deployment_record({**body, "AdvertisementID": None})
    if not record.package_id or not record.collection_id:
        raise BadRequest("a deployment needs PackageID and CollectionID")
    dep_id = b.site.create_deployment(record)
    _saved(b)
    return b.find("SMS_Advertisement", {"AdvertisementID": dep_id}) or {}


def update_deployment(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    current = _existing(b, "SMS_Advertisement", key)
    _refuse_schedules(b, body)
    b.site.update_deployment(current["AdvertisementID"],
                             wire.deployment_record({**body, "AdvertisementID": current["AdvertisementID"]}))
    _saved(b)
    return b.find("SMS_Advertisement", {"AdvertisementID": current["AdvertisementID"]}) or {}


def delete_deployment(b: SiteBackend, key: Key) -> None:
    b.site.delete_deployment(_existing(b, "SMS_Advertisement", key)["AdvertisementID"])
    _saved(b)


# -- variables -----------------------------------------------------------------------------------------------


def _variables(body: Body, prop: str) -> list[tuple[str, str, bool]]:
    values = body.get(prop) or []
    if not isinstance(values, list) or not all(isinstance(v, Mapping) for v in values):
        raise BadRequest(f"{prop} must be an array of objects with Name, Value and IsMasked")
    out = []
    for value in values:
        name, text, masked = value.get("Name"), value.get("Value"), bool(value.get("IsMasked"))
        if not isinstance(name, str) or not isinstance(text, str | None):
            raise BadRequest(f"{prop}: each variable needs a Name and a text Value")
        if masked and not text:
            raise SiteRefusal(f"masked variable {name[:60]!r} has an empty value: a masked value reads back empty, so "
                              "write it with its value (or leave it out to delete it)")
        out.append((name, text or "", masked))
    return out


def put_collection_settings(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    cid = str(key_dict(wire.CLASSES["SMS_CollectionSettings"], key)["CollectionID"])
    if body.get("CollectionID", cid) != cid:
        raise BadRequest("CollectionID in the body is not the one in the URL")
    variables = _variables(body, "CollectionVariables")
    b.site.set_collection_variables(cid, wire._int(body.get("CollectionVariablePrecedence")), variables)
    b.times.saved(("c", cid))
    _saved(b)
    return b.find("SMS_CollectionSettings", {"CollectionID": cid}) or {"CollectionID": cid}


def post_collection_settings(b: SiteBackend, body: Body) -> dict[str, Any]:
    if not isinstance(body.get("CollectionID"), str):
        raise BadRequest("SMS_CollectionSettings needs a CollectionID")
    return put_collection_settings(b, ((None, body["CollectionID"]),), body)


def delete_collection_settings(b: SiteBackend, key: Key) -> None:
    current = _existing(b, "SMS_CollectionSettings", key)
    b.site.set_collection_variables(current["CollectionID"], current["CollectionVariablePrecedence"], [])
    _saved(b)


def put_machine_settings(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    rid = int(key_dict(wire.CLASSES["SMS_MachineSettings"], key)["ResourceID"])
    if body.get("ResourceID", rid) != rid:
        raise BadRequest("ResourceID in the body is not the one in the URL")
    b.site.set_computer_variables(rid, _variables(body, "MachineVariables"))
    b.times.saved(("m", rid))
    _saved(b)
    return b.find("SMS_MachineSettings", {"ResourceID": rid}) or {"ResourceID": rid}


def post_machine_settings(b: SiteBackend, body: Body) -> dict[str, Any]:
    if not isinstance(body.get("ResourceID"), int) or isinstance(body.get("ResourceID"), bool):
        raise BadRequest("SMS_MachineSettings needs a numeric ResourceID")
    return put_machine_settings(b, ((None, body["ResourceID"]),), body)


def delete_machine_settings(b: SiteBackend, key: Key) -> None:
    current = _existing(b, "SMS_MachineSettings", key)
    b.site.set_computer_variables(current["ResourceID"], [])
    _saved(b)


# -- content -------------------------------------------------------------------------------------------------


def distribute(b: SiteBackend, body: Body) -> dict[str, Any]:
    """Creating an SMS_DistributionPoint distributes a package to one distribution point."""
    package, nal, code = body.get("PackageID"), body.get("ServerNALPath"), body.get("SiteCode", b.site_code)
    if not isinstance(package, str) or not isinstance(nal, str):
        raise BadRequest("SMS_DistributionPoint needs PackageID and ServerNALPath")
    if code != b.site_code:
        raise SiteRefusal(f"site {str(code)[:8]} is not this site ({b.site_code})")
    key = {"PackageID": package, "ServerNALPath": wire.nal_path(wire.nal_server(nal), b.site_code),
           "SiteCode": b.site_code}
    if b.find("SMS_DistributionPoint", key) is not None:
        raise SiteRefusal(f"package {package} is already on {wire.nal_server(nal)}; set RefreshNow to redistribute")
    b.site.distribute_content(package, [wire.nal_server(nal)])
    _saved(b)
    return b.find("SMS_DistributionPoint", key) or key


def refresh_distribution(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    """``RefreshNow: true`` on an SMS_DistributionPoint redistributes the package to that distribution point."""
    current = _existing(b, "SMS_DistributionPoint", key)
    if body.get("RefreshNow"):
        b.site.redistribute_content(current["PackageID"], wire.nal_server(current["ServerNALPath"]))
        _saved(b)
    return current


def remove_distribution(b: SiteBackend, key: Key) -> None:
    current = _existing(b, "SMS_DistributionPoint", key)
    b.site.remove_content(current["PackageID"], [wire.nal_server(current["ServerNALPath"])])
    _saved(b)


def _group_members(b: SiteBackend, key: Key) -> list[str]:
    name = _existing(b, "SMS_DistributionPointGroup", key)["Name"]
    return list(b.state().dp_groups[name].members)


def _package_ids(body: Body) -> list[str]:
    ids = body.get("PackageIDs")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("PackageIDs must be an array of package IDs")
    return ids


def group_add_packages(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    members = _group_members(b, key)
    for package in _package_ids(body):
        b.site.distribute_content(package, members)
    _saved(b)
    return {"ReturnValue": 0}


def group_remove_packages(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    members = _group_members(b, key)
    for package in _package_ids(body):
        b.site.remove_content(package, members)
    _saved(b)
    return {"ReturnValue": 0}


def group_redistribute(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    members = _group_members(b, key)
    package = body.get("PackageID")
    if not isinstance(package, str):
        raise BadRequest("ReDistributePackage takes PackageID")
    for dp in members:
        b.site.redistribute_content(package, dp)
    _saved(b)
    return {"ReturnValue": 0}


# -- site settings -------------------------------------------------------------------------------------------


def put_site_definition(b: SiteBackend, key: Key, body: Body) -> dict[str, Any]:
    current = _existing(b, "SMS_SCI_SiteDefinition", key)
    props = body.get("Props")
    if not isinstance(props, list) or not any(isinstance(p, Mapping) and p.get("PropertyName") ==
                                              wire.THRESHOLD_PROPERTY for p in props):
        raise BadRequest(f"Props must hold the embedded property {wire.THRESHOLD_PROPERTY!r}")
    wanted = wire.verification_record(props)
    b.site.set_verification_settings(wanted.default_size, wanted.maximum_size, wanted.site_systems)
    _saved(b)
    return b.find("SMS_SCI_SiteDefinition", {k: current[k] for k in wire.CLASSES["SMS_SCI_SiteDefinition"].key}) or {}


CREATE: dict[str, Callable[[SiteBackend, Body], dict[str, Any]]] = {
    "SMS_TaskSequencePackage": create_task_sequence, "SMS_Advertisement": create_deployment,
    "SMS_CollectionSettings": post_collection_settings, "SMS_MachineSettings": post_machine_settings,
    "SMS_DistributionPoint": distribute, "SMS_ObjectContainerNode": folders.create_folder,
    "SMS_ObjectContainerItem": folders.create_item,
}
UPDATE: dict[str, Callable[[SiteBackend, Key, Body], dict[str, Any]]] = {
    "SMS_TaskSequencePackage": update_task_sequence, "SMS_Advertisement": update_deployment,
    "SMS_CollectionSettings": put_collection_settings, "SMS_MachineSettings": put_machine_settings,
    "SMS_DistributionPoint": refresh_distribution, "SMS_SCI_SiteDefinition": put_site_definition,
}
DELETE: dict[str, Callable[[SiteBackend, Key], None]] = {
    "SMS_TaskSequencePackage": delete_task_sequence, "SMS_Advertisement": delete_deployment,
    "SMS_CollectionSettings": delete_collection_settings, "SMS_MachineSettings": delete_machine_settings,
    "SMS_DistributionPoint": remove_distribution, "SMS_ObjectContainerNode": folders.delete_folder,
    "SMS_ObjectContainerItem": folders.delete_item,
}
STATIC: dict[tuple[str, str], Callable[[SiteBackend, Body], dict[str, Any]]] = {
    ("SMS_TaskSequencePackage", "ImportSequence"): import_sequence,
    ("SMS_TaskSequencePackage", "SetSequence"): set_sequence,
    ("SMS_ObjectContainerItem", "MoveMembers"): folders.move_members,
}
BOUND: dict[tuple[str, str], Callable[[SiteBackend, Key, Body], dict[str, Any]]] = {
    ("SMS_DistributionPointGroup", "AddPackages"): group_add_packages,
    ("SMS_DistributionPointGroup", "RemovePackages"): group_remove_packages,
    ("SMS_DistributionPointGroup", "ReDistributePackage"): group_redistribute,
}
