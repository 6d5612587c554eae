"""``reconcile site serve``: the wire shapes, authentication, TLS and errors of a ConfigMgr AdminService.

Every test speaks real HTTPS to a server on 127.0.0.1 with a real Negotiate handshake (pyspnego on both ends),
using raw requests: the product's own AdminService client is not used, so these tests pin what the server
sends, and the client is tested against it elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import spnego
from defusedxml import ElementTree

from reconciler.site.adminservice import wire
from reconciler.site.records import DeploymentRecord, TaskSequenceRecord
from reconciler.site.serve import REJECTING_NTLM, AuthSetupError, kerberos_available
from reconciler.site.serve.auth import Account, Authenticator
from tests.serve_fixture import (
    ADMIN,
    ADMIN_PASSWORD,
    DENIED,
    DENIED_PASSWORD,
    Served,
    channel_binding,
    serve_site,
    served,
)

__all__ = ["served"]  # the fixture, imported for pytest

SECRET = "J0in-S3cret-Value"
MASKED = "Masked-V4lue-Never-Read"
SEQUENCE = ('<sequence version="3.10"><referenceList><reference package="PS10000B" program="*"/></referenceList>'
            '<step type="SMS_TaskSequence_ApplyNetworkSettingsAction" name="Join"><defaultVarList>'
            '<variable name="OSDJoinPassword" property="DomainPassword">' + SECRET + '</variable></defaultVarList>'
            '<action>osdnetsettings.exe configure</action></step></sequence>')
JSON_ERROR = {"error": {"code": str, "message": str}}


def _ts(peer: Served, name: str = "Windows 11 Install", **fields: Any) -> str:
    with peer.site() as site:
        return site.create_task_sequence(TaskSequenceRecord(id=None, name=name, sequence=SEQUENCE, **fields))


def _deployment(peer: Served, ts_id: str) -> str:
    token = json.dumps({"@odata.type": "#AdminService.SMS_ST_RecurWeekly", "Day": 6, "ForNumberOfWeeks": 1,
                        "IsGMT": True, "StartTime": "2026-12-05T20:00:00+00:00"}, sort_keys=True)
    with peer.site() as site:
        return site.create_deployment(DeploymentRecord(id=None, name="Pilot", package_id=ts_id,
                                                       collection_id="PS100001", offer_type=0, is_gmt=True,
                                                       assigned_schedule=(token,)))


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"]["code"], str), body
    assert body["error"]["code"] == str(status)
    return str(body["error"]["message"])


# -- reading ----------------------------------------------------------------------------------------------------


def test_a_list_answers_value_rows_with_system_properties_and_without_lazy_properties(served: Served) -> None:
    ts_id = _ts(served)
    with served.client() as client:
        body = client.get(served.wmi + "SMS_TaskSequencePackage").json()
    assert body["@odata.context"] == served.wmi + "$metadata#SMS_TaskSequencePackage"
    (row,) = body["value"]
    assert row["PackageID"] == ts_id and row["Name"] == "Windows 11 Install" and row["PackageType"] == 4
    assert row["@odata.etag"] == ts_id and row["__CLASS"] == "SMS_TaskSequencePackage"
    assert row["__RELPATH"] == f'SMS_TaskSequencePackage.PackageID="{ts_id}"'
    assert "Sequence" in row["__LAZYPROPERTIES"] and "References" in row["__LAZYPROPERTIES"]
    for lazy in ("Sequence", "References", "BootImageID", "TaskSequenceFlags", "Type"):
        assert lazy not in row
    assert row["SourceVersion"] == 1 and len(row["SedoObjectVersion"]) == 36


def test_a_get_by_key_answers_a_value_list_holding_the_lazy_properties(served: Served) -> None:
    ts_id = _ts(served)
    with served.client() as client:
        body = client.get(served.wmi + f"SMS_TaskSequencePackage('{ts_id}')").json()
    assert body["@odata.context"] == served.wmi + "$metadata#SMS_TaskSequencePackage"
    (row,) = body["value"]
    assert row["References"] == [{"@odata.type": "#AdminService.SMS_TaskSequence_Reference", "Package": "PS10000B",
                                  "Program": "*", "Type": 0}]
    assert row["Sequence"].startswith('<sequence version="3.10">') and row["TaskSequenceFlags"] == 0
    assert SECRET not in row["Sequence"]  # the site seals step passwords: never readable back
    record = wire.task_sequence_record(row)
    assert record.id == ts_id and record.references == ("PS10000B",)


def test_select_keeps_only_the_named_properties_and_drops_etag_and_system_properties(served: Served) -> None:
    _ts(served)
    with served.client() as client:
        body = client.get(served.wmi + "SMS_TaskSequencePackage?$select=PackageID,SourceVersion,"
                                       "SedoObjectVersion").json()
    assert body["@odata.context"].endswith("#SMS_TaskSequencePackage(PackageID,SourceVersion,SedoObjectVersion)")
    assert [set(r) for r in body["value"]] == [{"PackageID", "SourceVersion", "SedoObjectVersion"}]


def test_numeric_keys_are_bare_and_string_keys_quoted(served: Served) -> None:
    with served.site() as site:
        rid = site.computers_named("LAB-PC-042")[0].resource_id
        site.set_computer_variables(rid, [("OSDComputerName", "LAB-PC-042", False)])
    with served.client() as client:
        row = client.get(served.wmi + f"SMS_MachineSettings({rid})").json()["value"][0]
        assert row["ResourceID"] == rid and row["__RELPATH"] == f"SMS_MachineSettings.ResourceID={rid}"
        assert row["MachineVariables"] == [{"@odata.type": "#AdminService.SMS_MachineVariable",
                                            "Name": "OSDComputerName", "Value": "LAB-PC-042", "IsMasked": False}]
        assert "bare number" in _error(client.get(served.wmi + f"SMS_MachineSettings('{rid}')"), 400)
        assert "quoted string" in _error(client.get(served.wmi + "SMS_Collection(5)"), 400)
        assert client.get(served.wmi + "SMS_Collection('SMS00001')").json()["value"][0]["IsBuiltIn"] is True


def test_filter_supports_eq_and_and_startswith_and_refuses_the_rest(served: Served) -> None:
    with served.client() as client:
        def ids(query: str) -> list[str]:
            return [r["CollectionID"] for r in client.get(served.wmi + "SMS_Collection?" + query).json()["value"]]

        assert ids("$filter=Name eq 'osd pilot'") == ["PS100001"]  # WQL compares text without case
        assert ids("$filter=startswith(Name,'OSD Upgrade') eq true and IsBuiltIn eq false") == ["PS100005"]
        assert ids("$filter=(IsBuiltIn eq true) and CollectionID eq 'SMS00001'") == ["SMS00001"]
        assert ids("$filter=Name eq 'It''s not there'") == []
        assert "not supported" in _error(client.get(served.wmi + "SMS_Collection?$filter=MemberCount gt 10"), 400)
        assert "not supported" in _error(client.get(served.wmi + "SMS_Collection?$orderby=Name"), 400)
        assert "literally" in _error(client.get(served.wmi + "SMS_Collection?%24filter=Name%20eq%20'x'"), 400)
        assert "no property" in _error(client.get(served.wmi + "SMS_Collection?$filter=Nope eq 1"), 400)


def test_pages_are_the_clients_top_and_skip_without_a_next_link(served: Served) -> None:
    with served.client() as client:
        everything = client.get(served.wmi + "SMS_Collection?$select=CollectionID").json()["value"]
        pages, skip = [], 0
        while True:
            page = client.get(served.wmi + f"SMS_Collection?$select=CollectionID&$top=5&$skip={skip}").json()
            assert "@odata.nextLink" not in page
            pages += page["value"]
            skip += 5
            if len(page["value"]) < 5:
                break
    assert pages == everything and len(everything) == 14  # 8 built-in and 6 demo collections


def test_lazy_schedule_tokens_are_embedded_objects_and_unset_dates_are_1970(served: Served) -> None:
    dep_id = _deployment(served, _ts(served))
    with served.client() as client:
        listed = client.get(served.wmi + "SMS_Advertisement").json()["value"][0]
        row = client.get(served.wmi + f"SMS_Advertisement('{dep_id}')").json()["value"][0]
    assert "AssignedSchedule" not in listed and listed["ProgramName"] == "*"
    assert listed["PresentTime"] == listed["ExpirationTime"] == "1970-01-01T00:00:00Z"
    assert row["AssignedSchedule"] == [{"@odata.type": "#AdminService.SMS_ST_RecurWeekly", "DayDuration": 0,
                                        "HourDuration": 0, "MinuteDuration": 0, "IsGMT": True, "Day": 6,
                                        "ForNumberOfWeeks": 1, "StartTime": "2026-12-05T20:00:00Z"}]
    assert wire.deployment_record(row).present_time is None


def test_a_missing_object_and_a_collection_without_settings_are_404(served: Served) -> None:
    with served.client() as client:
        assert "does not exist" in _error(client.get(served.wmi + "SMS_TaskSequencePackage('PS1FFFFF')"), 404)
        assert "does not exist" in _error(client.get(served.wmi + "SMS_CollectionSettings('PS100001')"), 404)
        _error(client.get(served.wmi + "SMS_NoSuchClass"), 404)
        _error(client.get(served.wmi + "sms_collection"), 404)  # names compare with case, as before 2006


def test_devices_are_looked_up_one_at_a_time(served: Served) -> None:
    with served.client() as client:
        (pc,) = client.get(served.wmi + "SMS_R_System?$filter=Name eq 'lab-pc-043'").json()["value"]
        assert pc["Name"] == "LAB-PC-043"
        again = client.get(served.wmi + f"SMS_R_System?$filter=ResourceID eq {pc['ResourceID']}").json()["value"]
        assert again == [pc]
        members = client.get(served.wmi + "SMS_FullCollectionMembership?$filter=ResourceID eq "
                                          f"{pc['ResourceID']}").json()["value"]
        assert sorted(m["CollectionID"] for m in members) == ["PS100002", "PS100004"]
        assert "ResourceID or Name" in _error(client.get(served.wmi + "SMS_R_System"), 400)


def test_inventory_classes_map_to_the_sites_records(served: Served) -> None:
    with served.client() as client:
        packages = client.get(served.wmi + "SMS_PackageBaseclass").json()["value"]
        dps = client.get(served.wmi + "SMS_DistributionPointInfo").json()["value"]
        groups = client.get(served.wmi + "SMS_DistributionPointGroup").json()["value"]
        members = client.get(served.wmi + "SMS_DPGroupMembers").json()["value"]
        associations = client.get(served.wmi + "SMS_DPGroupCollections").json()["value"]
        collections = client.get(served.wmi + "SMS_Collection").json()["value"]
    with served.site() as site:
        live = site.read()
    assert {p.id: p for p in map(wire.package_record, packages) if p} == live.packages
    assert {d.name: d for d in map(wire.distribution_point_record, dps)} == live.distribution_points
    assert {g.name: g for g in (wire.dp_group_record(r, members, associations) for r in groups)} == live.dp_groups
    assert {c.id: c for c in map(wire.collection_record, collections)} == live.collections
    assert all(g["GroupID"].startswith("{") and g["GroupID"].endswith("}") for g in groups)


# -- writing ----------------------------------------------------------------------------------------------------


def test_post_creates_put_updates_and_delete_deletes_a_deployment(served: Served) -> None:
    ts_id = _ts(served)
    record = DeploymentRecord(id=None, name="Pilot", package_id=ts_id, collection_id="PS100001", comment="first")
    with served.client() as client:
        created = client.post(served.wmi + "SMS_Advertisement", json=wire.deployment_row(record))
        assert created.status_code == 201
        body = created.json()
        assert body["@odata.context"] == served.wmi + "$metadata#SMS_Advertisement/$entity"
        dep_id = body["AdvertisementID"]
        changed = wire.deployment_row(DeploymentRecord(id=dep_id, name="Pilot", package_id=ts_id,
                                                       collection_id="PS100001", comment="second"))
        assert client.put(served.wmi + f"SMS_Advertisement('{dep_id}')", json=changed).status_code == 200
        moved = {**changed, "CollectionID": "PS100002"}
        assert "replace it" in _error(client.put(served.wmi + f"SMS_Advertisement('{dep_id}')", json=moved), 500)
        deleted = client.delete(served.wmi + f"SMS_Advertisement('{dep_id}')")
        assert deleted.status_code == 204 and deleted.content == b""
        _error(client.get(served.wmi + f"SMS_Advertisement('{dep_id}')"), 404)
    assert "PATCH" in _error(httpx.Client(verify=served.tls_context, auth=client.auth).patch(
        served.wmi + f"SMS_Advertisement('{dep_id}')", json={}), 405)


def test_put_replaces_what_the_body_leaves_out(served: Served) -> None:
    ts_id = _ts(served, description="kept only if sent", category="OSD")
    with served.client() as client:
        url = served.wmi + f"SMS_TaskSequencePackage('{ts_id}')"
        assert client.put(url, json={"Name": "Renamed"}).status_code == 200
        row = client.get(url).json()["value"][0]
    assert (row["Name"], row["Description"], row["Category"]) == ("Renamed", "", "")
    assert SECRET not in row["Sequence"] and "SMS_TaskSequence_ApplyNetworkSettingsAction" in row["Sequence"]


def test_versions_move_on_every_save_and_a_stale_version_is_refused(served: Served) -> None:
    ts_id = _ts(served)
    url = served.wmi + f"SMS_TaskSequencePackage('{ts_id}')"
    with served.client() as client:
        read = client.get(url).json()["value"][0]
        first = (read["SourceVersion"], read["SedoObjectVersion"])
        same = wire.strip_system(read)
        assert client.put(url, json=same).status_code == 200  # a save changing nothing still moves both
        second = client.get(url).json()["value"][0]
        assert second["SourceVersion"] == first[0] + 1 and second["SedoObjectVersion"] != first[1]
        stale = {**same, "Description": "from a plan made before the console edit"}
        message = _error(client.put(url, json=stale), 500)
        assert "SedoObjectVersion" in message and "changed since it was read" in message
        assert client.get(url).json()["value"][0]["Description"] == ""
        edited = "<sequence version=\"3.10\"/>"
        assert "SetSequence" in _error(client.put(url, json={**wire.strip_system(second), "Sequence": edited}), 400)
    with served.site() as site:  # a change made to the site itself (a console) moves the versions too
        site.set_task_sequence_enabled(ts_id, False)
    with served.client() as client:
        third = client.get(url + "?$select=SourceVersion,SedoObjectVersion,ProgramFlags").json()["value"][0]
    assert third["SourceVersion"] == second["SourceVersion"] + 1 and third["ProgramFlags"] & 0x1000


def test_import_and_set_sequence_are_static_methods_answering_parameters(served: Served) -> None:
    with served.client() as client:
        imported = client.post(served.wmi + "SMS_TaskSequencePackage.ImportSequence", json={"SequenceXML": SEQUENCE})
        assert imported.status_code == 201
        body = imported.json()
        assert body["@odata.context"] == served.wmi + "$metadata#__PARAMETERS" and body["ReturnValue"] == 0
        package = {"Name": "Created by SetSequence", "Description": "d"}
        saved = client.post(served.wmi + "SMS_TaskSequencePackage.SetSequence",
                            json={"TaskSequencePackage": package, "TaskSequence": body["TaskSequence"]}).json()
        assert saved["ReturnValue"] == 0
        ts_id = saved["SavedTaskSequencePackagePath"].split('"')[1]
        row = client.get(served.wmi + f"SMS_TaskSequencePackage('{ts_id}')").json()["value"][0]
        assert row["Name"] == "Created by SetSequence" and row["References"][0]["Package"] == "PS10000B"
        stale = {**wire.strip_system(row), "SedoObjectVersion": "00000000-0000-0000-0000-000000000000"}
        refused = client.post(served.wmi + "SMS_TaskSequencePackage.SetSequence",
                              json={"TaskSequencePackage": stale, "TaskSequence": body["TaskSequence"]})
        assert "SedoObjectVersion" in _error(refused, 500)
        broken = client.post(served.wmi + "SMS_TaskSequencePackage.ImportSequence", json={"SequenceXML": "<nope"})
        assert "not valid" in _error(broken, 500)


def test_hidden_methods_are_absent_from_metadata_and_cannot_be_called(tmp_path: Path) -> None:
    with serve_site(tmp_path, hide_methods=frozenset({"SetSequence", "SMS_DistributionPointGroup.AddPackages"})) \
            as peer, peer.client() as client:
        document = client.get(peer.wmi + "$metadata").text
        assert "ImportSequence" in document and "SetSequence" not in document
        assert 'Name="AddPackages"' not in document and 'Name="RemovePackages"' in document
        refused = client.post(peer.wmi + "SMS_TaskSequencePackage.SetSequence", json={})
        assert "not offered" in _error(refused, 404)


def test_metadata_lists_entity_types_keys_edm_types_bound_actions_and_action_imports(served: Served) -> None:
    with served.client() as client:
        response = client.get(served.wmi + "$metadata")
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ElementTree.fromstring(response.content)
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    types = {t.get("Name"): t for t in root.iter(f"{edm}EntityType")}
    collection = types["SMS_Collection"]
    assert [r.get("Name") for r in collection.find(f"{edm}Key")] == ["CollectionID"]
    props = {p.get("Name"): p.get("Type") for p in collection.iter(f"{edm}Property")}
    assert props["MemberCount"] == "Edm.Int64" and props["__GENUS"] == "Edm.Int32"
    settings = {p.get("Name"): p.get("Type") for p in types["SMS_CollectionSettings"].iter(f"{edm}Property")}
    assert settings["CollectionVariables"] == "Collection(AdminService.SMS_CollectionVariable)"
    assert settings["LastModificationTime"] == "Edm.DateTimeOffset"
    bound = [a for a in root.iter(f"{edm}Action") if a.get("IsBound") == "true"]
    add = next(a for a in bound if a.get("Name") == "AddPackages")
    assert add.find(f"{edm}Parameter").attrib == {"Name": "bindingParameter",
                                                  "Type": "AdminService.SMS_DistributionPointGroup"}
    imports = {i.get("Name"): i.get("Action") for i in root.iter(f"{edm}ActionImport")}
    assert imports["SMS_TaskSequencePackage.SetSequence"] == "AdminService.SMS_TaskSequencePackage.SetSequence"


def test_content_is_distributed_by_creating_a_distribution_point_and_refreshed_by_refresh_now(served: Served) -> None:
    nal = wire.nal_path("DP01.corp.contoso.com", "PS1")
    with served.client() as client:
        created = client.post(served.wmi + "SMS_DistributionPoint",
                              json={"PackageID": "PS10000B", "ServerNALPath": nal, "SiteCode": "PS1"})
        assert created.status_code == 201
        again = client.post(served.wmi + "SMS_DistributionPoint",
                            json={"PackageID": "PS10000B", "ServerNALPath": nal, "SiteCode": "PS1"})
        assert "RefreshNow" in _error(again, 500)
        key = wire.key_path("SMS_DistributionPoint", {"PackageID": "PS10000B", "ServerNALPath": nal,
                                                      "SiteCode": "PS1"})
        with served.site() as site:
            site.update_package_source("PS10000B")
        assert client.put(served.wmi + key, json={"RefreshNow": True}).status_code == 200
        states = client.get(served.wmi + "SMS_PackageStatusDistPointsSummarizer?$filter=PackageID eq "
                                         "'PS10000B'").json()["value"]
        assert [(wire.nal_server(s["ServerNALPath"]), s["State"], s["SourceVersion"]) for s in states] == [
            ("DP01.corp.contoso.com", 0, 2)]
        group = client.get(served.wmi + "SMS_DistributionPointGroup?$filter=Name eq 'Branch DPs'").json()["value"][0]
        added = client.post(served.wmi + f"SMS_DistributionPointGroup('{group['GroupID']}')/AdminService.AddPackages",
                            json={"PackageIDs": ["PS10000C"]})
        assert added.status_code == 201 and added.json()["ReturnValue"] == 0
        assert client.delete(served.wmi + key).status_code == 204
    with served.site() as site:
        assert set(site.content_status("PS10000C")) == {"DP03.branch.contoso.com"}
        assert site.content_status("PS10000B") == {}


def test_collection_variables_put_creates_and_masked_values_are_never_returned(served: Served) -> None:
    url = served.wmi + "SMS_CollectionSettings('PS100001')"
    variables = wire.variables_wire("SMS_CollectionVariable", [("OSDTimeZone", "W. Europe Standard Time", False),
                                                                ("OSDLocalAdminPassword", MASKED, True)])
    with served.client() as client:
        put = client.put(url, json={"CollectionID": "PS100001", "CollectionVariables": variables,
                                    "CollectionVariablePrecedence": 5, "LocaleID": 1033})
        assert put.status_code == 200
        row = client.get(url).json()["value"][0]
        assert row["CollectionVariablePrecedence"] == 5 and row["LastModificationTime"] != wire.UNSET_TIME
        assert wire.collection_settings_record(row).variables[1] == wire.LiveVariable("OSDLocalAdminPassword", None,
                                                                                       True)
        listed = client.get(served.wmi + "SMS_CollectionSettings").json()["value"]
        assert "CollectionVariables" not in listed[0]
        read_back = wire.strip_system(row)  # writing back what was read would empty the masked value
        assert "empty value" in _error(client.put(url, json=read_back), 500)
        assert "built-in" in _error(client.put(served.wmi + "SMS_CollectionSettings('SMS00001')",
                                               json={"CollectionVariables": variables}), 500)
    with served.site() as site:
        assert site.holds_secret("PS100001", "OSDLocalAdminPassword", MASKED)
    assert not any(MASKED in text for text in served.responses)


def test_folders_are_object_container_nodes_and_items(served: Served) -> None:
    ts_id = _ts(served, folder="OSD/Production")
    other = _ts(served, name="Other")
    with served.client() as client:
        nodes = client.get(served.wmi + "SMS_ObjectContainerNode").json()["value"]
        items = client.get(served.wmi + "SMS_ObjectContainerItem").json()["value"]
        folders = wire.Folders.from_rows(nodes)
        assert [folders.path(i["ContainerNodeID"]) for i in items if i["InstanceKey"] == ts_id] == ["OSD/Production"]
        osd = folders.node("OSD")
        made = client.post(served.wmi + "SMS_ObjectContainerNode", json={"Name": "Lab", "ObjectType": 20,
                                                                         "ParentContainerNodeID": osd})
        assert made.status_code == 201
        lab = made.json()["ContainerNodeID"]
        put_in = client.post(served.wmi + "SMS_ObjectContainerItem",
                             json={"ContainerNodeID": lab, "InstanceKey": other, "ObjectType": 20})
        assert put_in.status_code == 201
        moved = client.post(served.wmi + "SMS_ObjectContainerItem.MoveMembers",
                            json={"InstanceKeys": [ts_id], "ContainerNodeID": folders.node("OSD/Production"),
                                  "TargetContainerNodeID": lab, "ObjectType": 20})
        assert moved.json()["ReturnValue"] == 0
        assert "not empty" in _error(client.delete(served.wmi + f"SMS_ObjectContainerNode({lab})"), 500)
    with served.site() as site:
        assert site.get_task_sequence(ts_id).folder == site.get_task_sequence(other).folder == "OSD/Lab"


def test_deployment_verification_settings_live_in_the_site_definition(served: Served) -> None:
    key = wire.key_path("SMS_SCI_SiteDefinition", wire.site_definition_key("PS1"))
    with served.client() as client:
        row = client.get(served.wmi + key).json()["value"][0]
        assert wire.verification_record(row["Props"]) == wire.VerificationSettings(100, 0, "block")
        wanted = wire.VerificationSettings(50, 500, "warn")
        assert client.put(served.wmi + key, json={"Props": wire.verification_props(wanted)}).status_code == 200
        bad = wire.verification_props(wire.VerificationSettings(50, 10, "warn"))
        assert "larger than the default" in _error(client.put(served.wmi + key, json={"Props": bad}), 500)
    with served.site() as site:
        assert site.verification_settings() == wanted


# -- authentication ---------------------------------------------------------------------------------------------


def test_without_credentials_the_answer_is_401_with_an_empty_body_and_negotiate(served: Served) -> None:
    response = httpx.get(served.wmi + "SMS_Collection", verify=served.tls_context)
    assert response.status_code == 401 and response.content == b""
    assert response.headers["WWW-Authenticate"] == "Negotiate"
    elsewhere = httpx.get(served.url.replace("/AdminService/", "/ConfigMgrWebService/"), verify=served.tls_context)
    assert elsewhere.status_code == 404 and elsewhere.headers["Content-Type"] == "text/html"  # as IIS without it


def test_a_wrong_password_is_401_and_an_account_without_a_role_gets_access_denied_404(served: Served) -> None:
    with served.client(password="wrong") as client:
        response = client.get(served.wmi + "SMS_Collection")
        assert response.status_code == 401 and response.content == b""
    with served.client(DENIED, DENIED_PASSWORD) as client:
        denied = client.get(served.wmi + "SMS_Collection")
    assert denied.status_code == 404
    assert denied.json() == {"error": {"code": "404", "message": "Access denied  WMI QUERY: "}}
    assert [e.user for e in served.log.entries() if e.status == 404] == [DENIED]


def test_raw_ntlm_in_negotiate_authenticates_and_a_wrong_channel_binding_is_refused(served: Served) -> None:
    with served.client(protocol="ntlm") as client:
        assert client.get(served.wmi + "SMS_Site").json()["value"][0]["SiteCode"] == "PS1"
    with served.client(bindings=False) as client:
        assert client.get(served.wmi + "SMS_Site").status_code == 401


def test_a_connection_stays_authenticated_and_a_new_one_must_authenticate(served: Served) -> None:
    bindings = channel_binding(served.server.tls.certificate)
    with httpx.Client(verify=served.tls_context, limits=httpx.Limits(max_connections=1)) as raw:
        context = spnego.client(ADMIN, ADMIN_PASSWORD, hostname="localhost", service="HTTP",
                                channel_bindings=bindings)
        token = context.step()
        response = raw.get(served.wmi + "SMS_Site", headers={"Authorization": "Negotiate " +
                                                             base64.b64encode(token).decode()})
        challenge = base64.b64decode(response.headers["WWW-Authenticate"].split()[1])
        token = context.step(challenge)
        done = raw.get(served.wmi + "SMS_Site", headers={"Authorization": "Negotiate " +
                                                         base64.b64encode(token).decode()})
        assert done.status_code == 200
        assert raw.get(served.wmi + "SMS_Collection('SMS00001')").status_code == 200  # same connection
    assert httpx.get(served.wmi + "SMS_Site", verify=served.tls_context).status_code == 401  # a new one


def test_refuse_ntlm_answers_as_configmgr_2509(tmp_path: Path) -> None:
    with serve_site(tmp_path, refuse_ntlm=True) as peer, peer.client() as client:
        response = client.get(peer.wmi + "SMS_Site")
        assert response.status_code == 401 and response.content == b""
        assert response.headers["WWW-Authenticate"] == "Negotiate"
        assert REJECTING_NTLM in [e.reason for e in peer.log.entries()]


def test_a_keytab_needs_kerberos_support(tmp_path: Path) -> None:
    if kerberos_available():
        pytest.skip("python-gssapi is installed here: the Kerberos handshake is tested with a KDC")
    keytab = tmp_path / "http.keytab"
    keytab.write_bytes(b"\x05\x02")
    with pytest.raises(AuthSetupError, match="python-gssapi"):
        Authenticator((Account.parse(ADMIN, ADMIN_PASSWORD),), keytab=keytab)


# -- TLS, the request log, secrets ------------------------------------------------------------------------------


def test_the_ca_in_the_tls_folder_verifies_the_server_and_is_kept_across_restarts(tmp_path: Path) -> None:
    with serve_site(tmp_path) as peer:
        ca = peer.ca.read_bytes()
        with pytest.raises(httpx.ConnectError):
            httpx.get(peer.wmi + "SMS_Site", verify=ssl.create_default_context())  # not a public CA
        context = ssl.create_default_context(cafile=str(peer.ca))
        assert httpx.get(peer.wmi + "SMS_Site", verify=context).status_code == 401
    assert oct((tmp_path / "tls" / "ca.key").stat().st_mode & 0o777) == "0o600"
    with serve_site(tmp_path) as peer, peer.client() as client:
        assert peer.ca.read_bytes() == ca and client.get(peer.wmi + "SMS_Site").status_code == 200


def test_the_request_log_counts_requests_and_holds_no_credentials(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    with serve_site(tmp_path, request_log=log_file) as peer:
        _ts(peer)
        with peer.client() as client:
            client.get(peer.wmi + "SMS_TaskSequencePackage?$select=PackageID")
        with peer.client(password="wrong") as client:
            client.get(peer.wmi + "SMS_Site")
        entries = peer.log.entries()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(e["method"], e["path"], e["query"], e["status"]) for e in lines] == [
        (e.method, e.path, e.query, e.status) for e in entries]
    assert ("GET", "/AdminService/wmi/SMS_TaskSequencePackage", "$select=PackageID", 200) in [
        (e.method, e.path, e.query, e.status) for e in entries]
    text = log_file.read_text()
    for secret in (ADMIN_PASSWORD, DENIED_PASSWORD, "wrong", "Negotiate ", "NTLMSSP"):
        assert secret not in text


def test_no_password_or_masked_value_reaches_a_response_or_the_request_log(served: Served) -> None:
    ts_id = _ts(served)
    with served.site() as site:
        site.set_collection_variables("PS100001", 1, [("OSDLocalAdminPassword", MASKED, True)])
    with served.client() as client:
        for path in ("SMS_TaskSequencePackage", f"SMS_TaskSequencePackage('{ts_id}')", "SMS_CollectionSettings",
                     "SMS_CollectionSettings('PS100001')", "$metadata", "SMS_Admin"):
            assert client.get(served.wmi + path).status_code == 200
    with served.client(DENIED, DENIED_PASSWORD) as client:
        client.get(served.wmi + "SMS_Site")
    everything = "\n".join(served.responses) + repr(served.log.entries())
    for secret in (SECRET, MASKED, ADMIN_PASSWORD, DENIED_PASSWORD):
        assert secret not in everything
    assert json.dumps(ADMIN)[1:-1] in everything  # SMS_Admin names the administrator, as a site does


# -- the command ------------------------------------------------------------------------------------------------


def test_the_command_serves_until_sigterm_and_removes_its_account_file(tmp_path: Path) -> None:
    from reconciler.site import create_site

    create_site(tmp_path / "site.db", demo=True).close()
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, "RECONCILE_SERVE_PASSWORD": ADMIN_PASSWORD, "TMPDIR": str(private_tmp)}
    env.pop("NTLM_USER_FILE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "site", "serve", "--site", str(tmp_path / "site.db"), "--listen",
         "127.0.0.1:0", "--tls-dir", str(tmp_path / "tls"), "--user", ADMIN, "--hide-method", "SetSequence",
         "--request-log", str(tmp_path / "requests.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # waits for the server to say it listens
        url = first.split(" at ", 1)[1].strip()
        assert url.startswith("https://127.0.0.1:") and url.endswith("/AdminService/")
        assert "ca.pem" in process.stdout.readline()
        assert [p.name[:16] for p in private_tmp.iterdir()] == ["reconcile-serve-"]
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.pem"))) as anonymous:
            assert anonymous.get(url + "wmi/$metadata").status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert list(private_tmp.iterdir()) == []  # the NTLM account file and its folder are gone
    assert ADMIN_PASSWORD not in (process.stdout.read() + process.stderr.read())  # type: ignore[union-attr]
    assert json.loads((tmp_path / "requests.jsonl").read_text().splitlines()[0])["status"] == 401


def test_the_command_needs_the_password_in_the_environment(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    result = run_cli("site", "serve", "--tls-dir", str(tmp_path / "tls"), "--user", ADMIN,
                     env={"RECONCILE_SERVE_PASSWORD": None})
    assert result.returncode == 2 and "RECONCILE_SERVE_PASSWORD" in result.stderr
    bad = run_cli("site", "serve", "--tls-dir", str(tmp_path / "tls"), "--user", "no-domain",
                  env={"RECONCILE_SERVE_PASSWORD": "x"})
    assert bad.returncode == 1 and "DOMAIN\\name" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("site", "serve", "--site", str(tmp_path / "nope.db"), "--tls-dir", str(tmp_path / "tls"),
                      "--user", ADMIN, "--listen", "127.0.0.1:0", env={"RECONCILE_SERVE_PASSWORD": "x"})
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "tls").exists() and not (tmp_path / "nope.db").exists()


def test_listen_addresses_and_hidden_method_files_are_read_strictly(tmp_path: Path) -> None:
    from reconciler.site.serve import ServeError, parse_listen, read_method_names

    assert parse_listen("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert parse_listen(":0") == ("127.0.0.1", 0) and parse_listen("[::1]:9") == ("::1", 9)
    with pytest.raises(ServeError, match="HOST:PORT"):
        parse_listen("localhost")
    names = tmp_path / "hidden.txt"
    names.write_text("# methods a site was not seen to publish\nSetSequence\n"
                     "SMS_TaskSequencePackage.ImportSequence  # too\n")
    assert read_method_names(names) == ["SetSequence", "SMS_TaskSequencePackage.ImportSequence"]
    names.write_text("SetSequence\nnot a method\n")
    with pytest.raises(ServeError, match="line 2: 'not a method' is not a method name"):
        read_method_names(names)
