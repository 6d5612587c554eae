"""One behaviour suite for every site: the embedded SQLite site, and the AdminService client talking to
``reconcile site serve`` over HTTPS with a real NTLM handshake (the server over its own embedded site file).

Each protocol test runs against both and asserts what the site holds afterwards; the AdminService-only tests
below them cover what only a remote site has: incremental reads through the cache, the console-conflict case,
REST or WinRM per operation, read-only and a wrong password. The end-to-end tests at the end run the normal
pipeline (``reconcile --site https://127.0.0.1:PORT/AdminService …``, in-process, and a real process killed
with SIGKILL mid-apply) against the served site.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.diff.deployment import diff_deployment
from reconciler.diff.tasksequence import diff_task_sequence
from reconciler.site import PermanentSiteError, Site, create_site, open_site
from reconciler.site.adminservice import AdminServiceSite
from reconciler.site.adminservice.winrm import ChangedSincePlan, WinRMUnavailable
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.options import Auth, Credentials, SiteIsReadOnly, SiteOptions
from reconciler.site.records import ContentState, DeploymentRecord, LiveVariable, TaskSequenceRecord
from tests.conftest import REPO, CliRun, run_cli, wait_until
from tests.serve_fixture import ADMIN, ADMIN_PASSWORD, DENIED, DENIED_PASSWORD, Served, serve_site

PASSWORD = "J0in-the-d0main!"


def sequence(package: str, text: str = "hello", password: str = PASSWORD) -> str:
    return (f'<sequence version="3.10"><referenceList><reference package="{package}" /></referenceList>'
            f'<step type="SMS_TaskSequence_RunCommandLineAction" name="Run tools" successCodeList="0 3010">'
            f'<action>smsswd.exe /run:{package} cmd /c echo {text}</action><defaultVarList>'
            f'<variable name="CommandLine" property="CommandLine">cmd /c echo {text}</variable>'
            f'<variable name="PackageID" property="PackageID">{package}</variable></defaultVarList></step>'
            '<step type="SMS_TaskSequence_JoinDomainWorkgroupAction" name="Join domain">'
            '<action>osdjoin.exe /type:1</action><defaultVarList>'
            '<variable name="DomainName" property="DomainName">corp.example.com</variable>'
            '<variable name="DomainAccount" property="DomainAccount">CORP\\svc-join</variable>'
            f'<variable name="DomainPassword" property="DomainPassword">{password}</variable>'
            '</defaultVarList></step></sequence>')


def friday(at: str = "2026-12-04T20:00:00+00:00") -> str:
    return json.dumps({"@odata.type": "#AdminService.SMS_ST_RecurWeekly", "Day": 6, "ForNumberOfWeeks": 1,
                       "IsGMT": True, "StartTime": at}, sort_keys=True)


def options_for(served: Served, **changes: object) -> SiteOptions:
    base = SiteOptions(url=served.url.rstrip("/"), ca_bundle=served.ca, auth=Auth.NTLM,
                       credentials=Credentials(ADMIN, ADMIN_PASSWORD, username_from="RECONCILE_SITE_USERNAME",
                                               password_from="RECONCILE_SITE_PASSWORD"), rest_unproven=True)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class Peer:
    """A site under test, and the same site as a console sees it (its file, opened beside the site)."""

    kind: str
    site: Site
    path: Path
    served: Served | None
    folder: Path

    @contextmanager
    def console(self) -> Iterator[EmbeddedSite]:
        console = EmbeddedSite(self.path)
        try:
            yield console
        finally:
            console.close()

    def reopen(self, **changes: object) -> Site:
        """Another connection to the same site, as the next run of the tool makes."""
        if self.served is None:
            return open_site(self.path)
        return AdminServiceSite(options_for(self.served, **changes), cache_path=self.folder / "cache.db")


@pytest.fixture(params=["embedded", "adminservice"])
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peer]:
    if request.param == "embedded":
        path = tmp_path / "site.db"
        site = create_site(path, demo=True)
        yield Peer("embedded", site, path, None, tmp_path)
        site.close()
        return
    with serve_site(tmp_path) as served:
        site = AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")
        yield Peer("adminservice", site, served.site_path, served, tmp_path)
        site.close()


def ids(site: Site) -> dict[str, str]:
    """Inventory by console name: collections, packages."""
    live = site.read()
    return {**{c.name: c.id for c in live.collections.values()}, **{p.name: p.id for p in live.packages.values()}}


# -- reading ---------------------------------------------------------------------------------------------------


def test_a_read_holds_the_inventory_a_plan_needs(peer: Peer) -> None:
    live = peer.site.read()
    assert live.site_code == peer.site.site_code == "PS1"
    assert {"SMS00001", "SMS000US"} <= set(live.collections) and live.collections["SMS00001"].built_in
    pilot = live.collection_by_name("osd pilot")[0]
    assert (pilot.member_count, pilot.has_site_systems) == (25, False)
    assert live.collection_by_name("OSD Servers")[0].has_site_systems
    tools = live.packages_by_name("OSD Tools")[0]
    assert tools.share_enabled and tools.type.value == "Package"
    assert sorted(live.distribution_points) == ["CM01.corp.contoso.com", "DP01.corp.contoso.com",
                                                "DP02.corp.contoso.com", "DP03.branch.contoso.com"]
    assert live.dp_groups["HQ DPs"].collections == (pilot.id,)
    assert set(live.dp_groups["Branch DPs"].members) == {"DP03.branch.contoso.com"}
    assert (live.verification.default_size, live.verification.site_systems) == (100, "block")
    assert not live.task_sequences and not live.deployments and not live.computers
    assert peer.site.manageable() == {"task sequence(s)": 0, "deployment(s)": 0, "collection(s) with variables": 0,
                                      "computer(s) with variables": 0}
    assert peer.site.location.endswith("site.db" if peer.kind == "embedded" else "/AdminService")


def test_devices_are_looked_up_one_at_a_time(peer: Peer) -> None:
    found = peer.site.computers_named("lab-pc-042")
    assert [c.name for c in found] == ["LAB-PC-042"]
    rid = found[0].resource_id
    assert peer.site.computer(rid) == found[0]
    assert peer.site.computer(999) is None and peer.site.computers_named("NOPE") == []
    pilot, lab = (ids(peer.site)[n] for n in ("OSD Pilot", "OSD Lab"))
    assert peer.site.memberships(rid) == tuple(sorted((pilot, lab)))
    assert peer.site.memberships(999) == ()
    live = peer.site.read()
    assert live.computers_by_name("LAB-PC-042") == found and live.member_of(rid) == tuple(sorted((pilot, lab)))


# -- task sequences ----------------------------------------------------------------------------------------------


def test_a_task_sequence_is_created_changed_moved_enabled_and_deleted(peer: Peer) -> None:
    site = peer.site
    names = ids(site)
    tools, boot = names["OSD Tools"], names["Boot image (x64)"]
    record = TaskSequenceRecord(id=None, name="Windows 11 - Install", sequence=sequence(tools),
                                description="Bare metal", ts_type="InstallOperatingSystem", folder="OSD/Production",
                                enabled=False, boot_image_id=boot, high_impact=True, custom_high_impact=True,
                                headline="Heads up", warning_top="a", warning="b", warning_install="c",
                                restart_required=True, download_size_mb=5200, run_time_minutes=75)
    ts_id = site.create_task_sequence(record)
    assert ts_id.startswith("PS1") and len(ts_id) == 8
    live = site.get_task_sequence(ts_id)
    assert live is not None
    assert live.references == (tools,)  # refreshed from the sequence, as SetSequence does
    assert diff_task_sequence(live, record, site.read()).empty
    assert (live.folder, live.enabled, live.boot_image_id, live.download_size_mb) == ("OSD/Production", False, boot,
                                                                                       5200)
    assert PASSWORD not in live.sequence  # a step password is never read back
    with peer.console() as console:
        assert console.holds_secret(ts_id, "DomainPassword", PASSWORD)
    assert [t.id for t in site.find_task_sequences("Windows 11 - Install")] == [ts_id]
    assert site.find_task_sequences("windows 11 - install") == []  # exactly this name

    changed = dataclasses.replace(record, description="Refresh too", sequence=sequence(tools, "changed"),
                                  folder="OSD/Test")
    site.update_task_sequence(ts_id, changed)
    live = site.get_task_sequence(ts_id)
    assert live is not None and diff_task_sequence(live, changed, site.read()).empty
    site.set_task_sequence_enabled(ts_id, True)
    site.move_task_sequence(ts_id, None)
    live = site.get_task_sequence(ts_id)
    assert live is not None and (live.enabled, live.folder, live.description) == (True, None, "Refresh too")
    site.move_task_sequence(ts_id, "OSD/Production")
    assert site.read().task_sequences[ts_id].folder == "OSD/Production"
    assert site.manageable()["task sequence(s)"] == 1
    site.delete_task_sequence(ts_id)
    assert site.get_task_sequence(ts_id) is None and not site.read().task_sequences


def test_a_deployment_keeps_its_schedule_and_target_and_blocks_deleting_its_sequence(peer: Peer) -> None:
    site = peer.site
    names = ids(site)
    ts_id = site.create_task_sequence(TaskSequenceRecord(id=None, name="TS", sequence=sequence(names["OSD Tools"])))
    record = DeploymentRecord(id=None, name="TS_OSD Pilot", package_id=ts_id, collection_id=names["OSD Pilot"],
                              comment="Pilot ring", offer_type=0, advert_flags=0x20 | 0x20000 | (1 << 32),
                              remote_client_flags=0x100 | 0x2000, present_time="2026-12-01T08:00:00+00:00",
                              present_time_enabled=True, is_gmt=True, assigned_schedule=(friday(),),
                              alert_failure_percent=10)
    dep_id = site.create_deployment(record)
    live = site.get_deployment(dep_id)
    assert live is not None
    state = site.read()
    assert diff_deployment(live, record, state) == () and state.deployments[dep_id] == live
    assert [d.id for d in site.find_deployments(ts_id, names["OSD Pilot"])] == [dep_id]
    assert site.find_deployments(ts_id, names["OSD Lab"]) == []
    with pytest.raises(PermanentSiteError, match="still deployed"):
        site.delete_task_sequence(ts_id)
    with pytest.raises(PermanentSiteError, match="cannot be changed; replace it"):
        site.update_deployment(dep_id, dataclasses.replace(record, collection_id=names["OSD Lab"]))
    later = dataclasses.replace(record, comment="Wave 2", assigned_schedule=(friday("2026-12-11T20:00:00+00:00"),))
    site.update_deployment(dep_id, later)
    live = site.get_deployment(dep_id)
    assert live is not None and diff_deployment(live, later, site.read()) == ()
    assert site.manageable()["deployment(s)"] == 1
    site.delete_deployment(dep_id)
    assert site.get_deployment(dep_id) is None
    site.delete_task_sequence(ts_id)


# -- content ------------------------------------------------------------------------------------------------------


def test_content_is_distributed_redistributed_and_removed_per_distribution_point(peer: Peer) -> None:
    site = peer.site
    tools = ids(site)["OSD Tools"]
    site.distribute_content(tools, ["DP01.corp.contoso.com", "dp02.corp.contoso.com"])
    status = site.content_status(tools)
    assert {dp.casefold() for dp in status} == {"dp01.corp.contoso.com", "dp02.corp.contoso.com"}
    assert all(s.state is ContentState.INSTALLED and s.installed_version == 1 for s in status.values())
    with peer.console() as console:
        console.set_content_state(tools, "DP01.corp.contoso.com", ContentState.INSTALL_FAILED)
    assert site.content_status(tools)["DP01.corp.contoso.com"].state is ContentState.INSTALL_FAILED
    site.redistribute_content(tools, "DP01.corp.contoso.com")
    assert site.content_status(tools)["DP01.corp.contoso.com"].state is ContentState.INSTALLED
    assert site.read().content[(tools, "DP01.corp.contoso.com")].state is ContentState.INSTALLED
    site.remove_content(tools, ["DP01.corp.contoso.com"])
    assert {dp.casefold() for dp in site.content_status(tools)} == {"dp02.corp.contoso.com"}
    with pytest.raises(PermanentSiteError, match=r"DP99\.corp\.contoso\.com"):
        site.distribute_content(tools, ["DP99.corp.contoso.com"])


# -- variables ----------------------------------------------------------------------------------------------------


def test_collection_variables_replace_the_array_and_masked_values_are_write_only(peer: Peer) -> None:
    site = peer.site
    pilot = ids(site)["OSD Pilot"]
    site.set_collection_variables(pilot, 5, [("OSDTimeZone", "W. Europe Standard Time", False),
                                             ("OSDLocalAdminPassword", "S3cret-admin!", True)])
    settings = site.get_collection_settings(pilot)
    assert settings is not None and settings.precedence == 5
    assert settings.variables == (LiveVariable("OSDTimeZone", "W. Europe Standard Time"),
                                  LiveVariable("OSDLocalAdminPassword", None, True))
    assert site.read().collection_settings[pilot] == settings
    with peer.console() as console:
        assert console.holds_secret(pilot, "OSDLocalAdminPassword", "S3cret-admin!")
    site.set_collection_variables(pilot, 3, [("OSDTimeZone", "UTC", False)])
    settings = site.get_collection_settings(pilot)
    assert settings is not None and (settings.precedence, settings.variables) == (3, (LiveVariable("OSDTimeZone",
                                                                                                   "UTC"),))
    assert site.manageable()["collection(s) with variables"] == 1
    site.set_collection_variables(pilot, 3, [])
    assert site.get_collection_settings(pilot) is None and pilot not in site.read().collection_settings
    with pytest.raises(PermanentSiteError, match="built-in collection"):
        site.set_collection_variables("SMS00001", 1, [("A", "b", False)])
    with pytest.raises(PermanentSiteError, match="case-insensitive"):
        site.set_collection_variables(pilot, 1, [("A", "b", False), ("a", "c", False)])


def test_computer_variables_at_most_1000_and_only_for_a_device_that_exists(peer: Peer) -> None:
    site = peer.site
    rid = site.computers_named("LAB-PC-042")[0].resource_id
    site.set_computer_variables(rid, [("OSDComputerName", "LAB-PC-042", False), ("OSDBitLockerPIN", "135790", True)])
    machine = site.get_machine_settings(rid)
    assert machine is not None and machine.variables == (LiveVariable("OSDComputerName", "LAB-PC-042"),
                                                         LiveVariable("OSDBitLockerPIN", None, True))
    live = site.read()
    assert live.machine_settings[rid] == machine and live.computers[rid].name == "LAB-PC-042"
    assert site.manageable()["computer(s) with variables"] == 1
    with pytest.raises(PermanentSiteError, match="at most 1000"):
        site.set_computer_variables(rid, [(f"V{i}", "x", False) for i in range(1001)])
    with pytest.raises(PermanentSiteError, match="does not exist"):
        site.set_computer_variables(999, [("A", "b", False)])
    site.set_computer_variables(rid, [])
    assert site.get_machine_settings(rid) is None and rid not in site.read().machine_settings


# -- settings, change checks, read-only ---------------------------------------------------------------------------


def test_verification_settings_are_read_and_changed_with_the_consoles_checks(peer: Peer) -> None:
    site = peer.site
    changed = site.set_verification_settings(default_size=50, maximum_size=500, site_systems="warn")
    assert (changed.default_size, changed.maximum_size, changed.site_systems) == (50, 500, "warn")
    assert site.verification_settings() == changed
    with pytest.raises(PermanentSiteError, match="must be larger"):
        site.set_verification_settings(maximum_size=10)
    assert peer.reopen().read().verification == changed


def test_a_change_by_someone_else_is_seen_and_no_change_is_not(peer: Peer) -> None:
    site = peer.site
    site.read()
    site.changed_since_read()
    assert site.changed_since_read() is False
    with peer.console() as console:
        console.add_package("New driver pack", console.read().packages_by_name("OSD Tools")[0].type)
    assert site.changed_since_read() is True
    assert site.changed_since_read() is False


def test_a_read_only_site_refuses_every_write_before_sending_it(peer: Peer) -> None:
    if peer.kind == "embedded":
        site = open_site(peer.path, read_only=True)
    else:
        assert peer.served is not None
        site = peer.reopen(read_only=True)
    before = peer.served.log.count() if peer.served is not None else 0
    tools = ids(site)["OSD Tools"]
    with pytest.raises(PermanentSiteError):
        site.create_task_sequence(TaskSequenceRecord(id=None, name="TS", sequence=sequence(tools)))
    with pytest.raises(PermanentSiteError):
        site.set_collection_variables(ids(site)["OSD Pilot"], 1, [("A", "b", False)])
    with pytest.raises(PermanentSiteError):
        site.distribute_content(tools, ["DP01.corp.contoso.com"])
    site.close()
    with peer.console() as console:
        assert not console.read().task_sequences and not console.read().collection_settings
    if peer.served is not None:
        writes = [r for r in peer.served.log.entries()[before:] if r.method != "GET"]
        assert writes == []


# -- AdminService only -------------------------------------------------------------------------------------------


@pytest.fixture
def served_site(tmp_path: Path) -> Iterator[tuple[Served, AdminServiceSite]]:
    with serve_site(tmp_path) as served:
        site = AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")
        yield served, site
        site.close()


def gets(site: AdminServiceSite) -> int:
    return site.requests[("GET", "get")]


def test_a_no_change_read_fetches_nothing_by_key_and_one_changed_sequence_costs_one_get(
        served_site: tuple[Served, AdminServiceSite], tmp_path: Path) -> None:
    served, site = served_site
    tools = ids(site)["OSD Tools"]
    made = [site.create_task_sequence(TaskSequenceRecord(id=None, name=f"TS {i}", sequence=sequence(tools, str(i))))
            for i in range(5)]
    site.read()
    second = AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")  # the next run
    before = dict(second.requests)
    state = second.read()
    assert len(state.task_sequences) == 5 and gets(second) == before.get(("GET", "get"), 0)
    assert all(kind == "list" or kind == "metadata" for _, kind in second.requests)
    with served.site() as console:  # a console edit of one sequence
        ts = console.get_task_sequence(made[2])
        assert ts is not None
        console.update_task_sequence(made[2], dataclasses.replace(ts, sequence=sequence(tools, "console")))
    third = AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")
    state = third.read()
    assert gets(third) == 1 and "console" in state.task_sequences[made[2]].sequence
    second.close()
    third.close()


def test_a_damaged_cache_is_rebuilt_with_a_warning(served_site: tuple[Served, AdminServiceSite], tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    served, site = served_site
    tools = ids(site)["OSD Tools"]
    site.create_task_sequence(TaskSequenceRecord(id=None, name="TS", sequence=sequence(tools)))
    site.read()
    site.close()
    (tmp_path / "cache.db").write_bytes(b"this is not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"cache.db{suffix}").unlink(missing_ok=True)
    caplog.set_level(logging.WARNING)
    again = AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")
    assert [t.name for t in again.read().task_sequences.values()] == ["TS"]
    assert "is rebuilt" in caplog.text and gets(again) == 2  # the sequence and the site's verification settings
    again.close()
    third = AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")
    third.read()
    assert gets(third) == 0
    third.close()


def test_a_sequence_changed_in_the_console_since_the_plan_is_refused_for_that_object(
        served_site: tuple[Served, AdminServiceSite]) -> None:
    served, site = served_site
    tools = ids(site)["OSD Tools"]
    record = TaskSequenceRecord(id=None, name="TS", sequence=sequence(tools))
    ts_id = site.create_task_sequence(record)
    site.read()  # the plan is made from this read
    with served.site() as console:
        ts = console.get_task_sequence(ts_id)
        assert ts is not None
        console.update_task_sequence(ts_id, dataclasses.replace(ts, description="edited in the console"))
    with pytest.raises(ChangedSincePlan, match="changed in the console since the plan; plan again"):
        site.update_task_sequence(ts_id, dataclasses.replace(record, description="from Git"))
    with pytest.raises(ChangedSincePlan):
        site.set_task_sequence_enabled(ts_id, False)
    live = site.get_task_sequence(ts_id)
    assert live is not None and (live.description, live.enabled) == ("edited in the console", True)
    site.read()  # a new plan: writes go through
    site.update_task_sequence(ts_id, dataclasses.replace(record, description="from Git"))
    site.set_task_sequence_enabled(ts_id, False)
    live = site.get_task_sequence(ts_id)
    assert live is not None and (live.description, live.enabled) == ("from Git", False)


def test_without_rest_unproven_sequence_writes_go_over_winrm_and_fail_naming_what_to_configure(
        served_site: tuple[Served, AdminServiceSite], tmp_path: Path) -> None:
    served, _ = served_site
    site = AdminServiceSite(options_for(served, rest_unproven=False), cache_path=tmp_path / "cache.db")
    paths = site.paths()  # WinRM without a WinRM host: nothing can do them, and a plan blocks them
    assert paths["read"] == "REST" and paths["create_task_sequence"] == paths["update_task_sequence"] == "unavailable"
    assert paths["deployment_schedule"] == paths["masked_variables"] == "unavailable"
    assert paths["set_task_sequence_enabled"] == paths["create_deployment"] == "REST"
    before = served.log.count()
    tools = ids(site)["OSD Tools"]
    with pytest.raises(WinRMUnavailable, match=r"site\.winrm\.host"):
        site.create_task_sequence(TaskSequenceRecord(id=None, name="TS", sequence=sequence(tools)))
    with pytest.raises(WinRMUnavailable, match="hidden"):
        site.set_collection_variables(ids(site)["OSD Pilot"], 1, [("Secret", "x", True)])
    site.set_collection_variables(ids(site)["OSD Pilot"], 1, [("Plain", "x", False)])  # REST: no masked value
    assert [r.method for r in served.log.entries()[before:] if r.method != "GET"] == ["PUT"]
    site.close()


def test_a_method_the_site_does_not_offer_takes_the_winrm_path_even_when_rest_is_allowed(tmp_path: Path) -> None:
    with serve_site(tmp_path, hide_methods=frozenset({"SetSequence"})) as served:
        site = AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")
        assert site.paths()["create_task_sequence"] == "unavailable"  # WinRM, and no WinRM host configured
        assert site.capabilities.offers("SMS_TaskSequencePackage", "ImportSequence")
        site.close()


def test_a_wrong_password_changes_nothing_and_names_what_was_tried(served_site: tuple[Served, AdminServiceSite],
                                                                   tmp_path: Path) -> None:
    served, _ = served_site
    wrong = Credentials(ADMIN, "not-the-password", password_from="RECONCILE_SITE_PASSWORD")
    with pytest.raises(PermanentSiteError) as caught:
        AdminServiceSite(options_for(served, credentials=wrong), cache_path=tmp_path / "cache.db")
    assert "HTTP 401" in str(caught.value) and "NTLM as CORP\\svc-reconcile" in str(caught.value)
    assert "not-the-password" not in str(caught.value)
    denied = Credentials(DENIED, DENIED_PASSWORD, password_from="RECONCILE_SITE_PASSWORD")
    with pytest.raises(PermanentSiteError, match="may not be a ConfigMgr administrative user"):
        AdminServiceSite(options_for(served, credentials=denied), cache_path=tmp_path / "cache.db")


def test_a_read_only_connection_refuses_before_any_request(served_site: tuple[Served, AdminServiceSite],
                                                           tmp_path: Path) -> None:
    served, _ = served_site
    site = AdminServiceSite(options_for(served, read_only=True), cache_path=tmp_path / "cache.db")
    before = served.log.count()
    with pytest.raises(SiteIsReadOnly, match="nothing was sent"):
        site.delete_deployment("PS100001")
    assert served.log.count() == before
    site.close()


# -- end to end: the normal pipeline against the served site -------------------------------------------------

EXAMPLE_SECRETS = {"OSD_LOCAL_ADMIN_PASSWORD": "example-admin-secret", "OSD_LAB_PC_042_BITLOCKER_PIN": "918273",
                   "OSD_DOMAIN_JOIN_PASSWORD": "example-join-secret", "OSD_FIRMWARE_ACCOUNT_PASSWORD": "fw-secret-1",
                   "OSD_CAPTURE_PASSWORD": "capture-secret-2"}
FILE_SECRET = "example-file-secret"


@dataclass
class Remote:
    """The example repository in a work folder, and the served site it is applied to over HTTPS+NTLM."""

    work: Path
    served: Served

    @property
    def env(self) -> dict[str, str]:
        return {**EXAMPLE_SECRETS, "RECONCILE_SITE_USERNAME": ADMIN, "RECONCILE_SITE_PASSWORD": ADMIN_PASSWORD,
                "NO_COLOR": "1"}

    @property
    def site_args(self) -> list[str]:
        return ["--site", self.served.url.rstrip("/"), "--ca-bundle", str(self.served.ca), "--auth", "ntlm"]

    def run(self, *args: str, env: dict[str, str] | None = None) -> CliRun:
        command = list(args) if args and args[0] in ("plan", "apply") else ["manifests", *args]
        return run_cli(*command, *self.site_args, cwd=self.work, env={**self.env, **(env or {})})

    def live(self) -> tuple[dict[str, TaskSequenceRecord], dict[str, DeploymentRecord]]:
        with self.served.site() as console:
            state = console.read()
        return state.task_sequences, state.deployments


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    work = tmp_path / "work"
    shutil.copytree(REPO / "manifests", work / "manifests")
    (work / "manifests" / "secrets").mkdir(exist_ok=True)
    (work / "manifests" / "secrets" / "osd-ref-01-join.txt").write_text(FILE_SECRET + "\n")
    # reconcile site serve takes sequence steps, schedules and masked variables over REST; a real site: WinRM.
    (work / "manifests" / "reconcile.yaml").write_text("site:\n  restUnproven: true\n")
    with serve_site(tmp_path / "site") as served:
        yield Remote(work, served)


def no_duplicates(remote: Remote) -> None:
    sequences, deployments = remote.live()
    assert not [n for n, c in Counter(t.name for t in sequences.values()).items() if c > 1]
    assert not [k for k, c in Counter((d.package_id, d.collection_id) for d in deployments.values()).items() if c > 1]


def test_the_examples_apply_over_https_and_ntlm_and_the_next_plan_is_empty(remote: Remote) -> None:
    first = remote.run("--dry-run", "--detailed-exitcode")
    assert first.returncode == 2, first
    applied = remote.run("--yes")
    assert applied.returncode == 0 and "28 applied, 0 failed, 0 skipped" in applied.stdout, applied
    again = remote.run("--dry-run", "--detailed-exitcode")
    assert again.returncode == 0 and "No changes" in again.stdout, again
    sequences, deployments = remote.live()
    assert len(sequences) == 6 and len(deployments) == 6
    with remote.served.site() as console:
        pilot = console.read().collection_by_name("OSD Pilot")[0].id
        assert console.holds_secret(pilot, "OSDLocalAdminPassword", EXAMPLE_SECRETS["OSD_LOCAL_ADMIN_PASSWORD"])
    said = first.stdout + first.stderr + applied.stdout + applied.stderr + again.stdout + again.stderr
    for secret in (*EXAMPLE_SECRETS.values(), FILE_SECRET, ADMIN_PASSWORD):
        assert secret not in said
    assert [e for e in remote.served.log.entries() if e.status >= 500] == []
    assert (remote.work / ".reconcile").is_dir() and not (remote.work / ".reconcile" / "site.db").exists()


def test_drift_over_the_rest_api_shows_in_the_plan_and_content_and_prune_converge(remote: Remote) -> None:
    assert remote.run("--yes").returncode == 0
    sequences, _ = remote.live()
    ts_id = next(i for i, t in sequences.items() if t.name == "Windows 11 23H2 - Install")
    with remote.served.client() as client:  # an administrator's script changes the description over REST
        row = client.get(f"{remote.served.wmi}SMS_TaskSequencePackage('{ts_id}')").json()["value"][0]
        body = {k: v for k, v in row.items() if not k.startswith(("__", "@")) and k not in ("Sequence", "References")}
        answer = client.put(f"{remote.served.wmi}SMS_TaskSequencePackage('{ts_id}')",
                            json={**body, "Description": "changed over REST"})
        assert answer.status_code == 200, answer.text
    plan = remote.run("--dry-run", "--output", "json")
    document = json.loads(plan.stdout)
    assert [(a["verb"], a["name"], a["reason"]) for a in document["actions"]] == [
        ("UpdateTaskSequence", "windows-11-install", "drift")]
    with remote.served.site() as console:  # a distribution point failed the content
        tools = console.read().packages_by_name("OSD Tools")[0].id
        console.set_content_state(tools, "DP01.corp.contoso.com", ContentState.INSTALL_FAILED)
    healed = remote.run("--yes")
    assert healed.returncode == 0 and "RedistributeContent" in healed.stdout, healed
    with remote.served.site() as console:
        assert console.content_status(tools)["DP01.corp.contoso.com"].state is ContentState.INSTALLED
        assert console.get_task_sequence(ts_id).description != "changed over REST"  # type: ignore[union-attr]
    (remote.work / "manifests" / "deployments" / "windows-11-upgrade.yaml").unlink()
    pruned = remote.run("--yes", "--prune")
    assert pruned.returncode == 0 and "DeleteDeployment" in pruned.stdout, pruned
    _, deployments = remote.live()
    assert len(deployments) == 5
    assert remote.run("--dry-run", "--detailed-exitcode", "--prune").returncode == 0


def test_a_saved_plan_is_refused_when_a_sequence_changed_in_the_console_since(remote: Remote) -> None:
    assert remote.run("--yes").returncode == 0
    path = remote.work / "manifests" / "task-sequences" / "windows-11-install.yaml"
    path.write_text(path.read_text().replace("Bare metal", "Bare metal (reviewed)", 1))
    saved = remote.run("plan", "manifests", "--out", "plan.json")
    assert saved.returncode == 0, saved
    sequences, _ = remote.live()
    ts_id = next(i for i, t in sequences.items() if t.name == "Windows 11 23H2 - Install")
    with remote.served.site() as console:
        live = console.get_task_sequence(ts_id)
        assert live is not None
        console.update_task_sequence(ts_id, dataclasses.replace(live, warning="console edit"))
    refused = remote.run("apply", "plan.json", "--yes")
    assert refused.returncode == 1 and f"TaskSequence/windows-11-install [{ts_id}]" in refused.stderr, refused
    assert "plan again" in refused.stderr
    sequences, _ = remote.live()
    assert sequences[ts_id].warning == "console edit"


def test_a_wrong_password_and_a_read_only_connection_change_nothing(remote: Remote) -> None:
    wrong = remote.run("--yes", env={"RECONCILE_SITE_PASSWORD": "not-the-password"})
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr and "not-the-password" not in wrong.stderr, wrong
    read_only = remote.run("--yes", "--read-only")
    assert read_only.returncode == 1 and "read-only" in read_only.stderr, read_only
    plan = remote.run("--dry-run", "--detailed-exitcode", "--read-only")
    assert plan.returncode == 2, plan  # a read-only connection plans
    writes = [e for e in remote.served.log.entries() if e.method != "GET"]
    assert writes == [] and remote.live() == ({}, {})


def test_an_apply_over_https_killed_with_sigkill_finishes_on_the_next_run_without_duplicates(remote: Remote) -> None:
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "manifests", "--yes", *remote.site_args],
                               cwd=remote.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env={**os.environ, **remote.env})
    try:
        # Killed once it has created a few objects: in the middle of creating the task sequences.
        wait_until(lambda: remote.served.log.count("POST", status=201) >= 5 or process.poll() is not None, 60,
                   "the apply to create objects on the served site")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    assert process.returncode == -signal.SIGKILL, "the apply was still running when it was killed"
    sequences, deployments = remote.live()
    assert len(sequences) > 0 and len(deployments) < 6, "the kill landed in the middle of the apply"
    again = remote.run("--yes")
    assert again.returncode == 0, again
    assert remote.run("--dry-run", "--detailed-exitcode").returncode == 0
    no_duplicates(remote)
    sequences, deployments = remote.live()
    assert len(sequences) == 6 and len(deployments) == 6


# -- Kerberos: the authentication ConfigMgr 2509 and later require ---------------------------------------------

KERBEROS_PASSWORD = "Kerberos-0nly-pass"


@pytest.fixture
def kerberos_realm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, Path]]:
    """A throwaway MIT realm named after the served accounts' domain, with ``HTTP/localhost`` in a keytab and a
    ticket for the administrator in the cache (``kinit``)."""
    k5test = pytest.importorskip("k5test", reason="Kerberos tests need k5test (pip install k5test)")
    pytest.importorskip("gssapi", reason="Kerberos needs python-gssapi (pip install 'pyspnego[kerberos]')")
    if not shutil.which("krb5kdc", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        pytest.skip("Kerberos needs an MIT KDC (Debian: apt-get install krb5-kdc krb5-admin-server)")
    import random
    import socket

    for _ in range(20):  # a free range of ports for the KDC (k5test uses portbase .. portbase+9)
        base = random.randrange(20000, 60000, 10)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", base))
                break
            except OSError:
                continue
    realm = k5test.K5Realm(realm="CORP.CONTOSO.COM", portbase=base, create_user=False, create_host=False,
                           get_creds=False)
    try:
        name = ADMIN.split("\\")[1]
        realm.addprinc(f"{name}@CORP.CONTOSO.COM", KERBEROS_PASSWORD)
        realm.addprinc("HTTP/localhost@CORP.CONTOSO.COM")
        keytab = tmp_path / "http.keytab"
        realm.extract_keytab("HTTP/localhost@CORP.CONTOSO.COM", str(keytab))
        for key, value in realm.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("KRB5_KTNAME", f"FILE:{keytab}")  # the server sets it too: put back after the test
        realm.kinit(f"{name}@CORP.CONTOSO.COM", KERBEROS_PASSWORD)
        yield realm, keytab
    finally:
        realm.stop()


@pytest.mark.parametrize("auth", [Auth.KERBEROS, Auth.NEGOTIATE])
def test_kerberos_from_the_ticket_cache_reaches_a_site_that_refuses_ntlm(
        kerberos_realm: tuple[object, Path], tmp_path: Path, auth: Auth) -> None:
    _, keytab = kerberos_realm
    with serve_site(tmp_path / "site", keytab=keytab, refuse_ntlm=True) as served:
        url = served.url.replace("127.0.0.1", "localhost").rstrip("/")  # the SPN is HTTP/localhost
        site = AdminServiceSite(SiteOptions(url=url, ca_bundle=served.ca, auth=auth, rest_unproven=True),
                                cache_path=tmp_path / "cache.db")
        tools = ids(site)["OSD Tools"]
        ts_id = site.create_task_sequence(TaskSequenceRecord(id=None, name="Over Kerberos", sequence=sequence(tools)))
        site.close()
        users = {e.user for e in served.log.entries() if e.status != 401}
    assert users == {"svc-reconcile@CORP.CONTOSO.COM"}
    with served.site() as console:
        assert console.get_task_sequence(ts_id) is not None


def test_ntlm_to_a_site_that_refuses_it_says_to_use_kerberos(tmp_path: Path) -> None:
    with serve_site(tmp_path / "site", refuse_ntlm=True) as served, \
            pytest.raises(PermanentSiteError, match=r"HTTP 401.*refuse NTLM: use Kerberos \(kinit\)"):
        AdminServiceSite(options_for(served), cache_path=tmp_path / "cache.db")


# -- the WinRM path, at pypsrp's seam (tests/winrm_fake.py): which writes the site hands to it -------------------


def test_without_rest_unproven_steps_schedules_and_masked_values_go_to_winrm_and_the_rest_over_rest(
        served_site: tuple[Served, AdminServiceSite], tmp_path: Path) -> None:
    from reconciler.site.adminservice.winrm import (
        IMPORT_SEQUENCE_SCRIPT,
        SET_SCHEDULE_SCRIPT,
        SET_SEQUENCE_SCRIPT,
        WinRMSession,
    )
    from reconciler.site.options import WinRMOptions
    from tests.winrm_fake import Answer, FakeHost

    served, rest = served_site
    host = FakeHost()
    host.answer("Get-PSDrive", Answer(output=["PS1"]))
    host.answer(IMPORT_SEQUENCE_SCRIPT, Answer(output=['SMS_TaskSequencePackage.PackageID="PS1000FF"']))
    winrm = WinRMOptions(host="cm01.corp.contoso.com", credentials=Credentials(ADMIN, ADMIN_PASSWORD))
    session = WinRMSession(winrm, site_code="PS1", provider_host="cm01.corp.contoso.com", connect=host.connect,
                           shell=host.shell)
    site = AdminServiceSite(options_for(served, rest_unproven=False, winrm=winrm), cache_path=tmp_path / "c.db",
                            winrm=session)
    names = ids(site)
    xml = sequence(names["OSD Tools"])
    assert site.create_task_sequence(TaskSequenceRecord(id=None, name="Over WinRM", sequence=xml)) == "PS1000FF"
    script = next(i for i in host.invocations if i.command is IMPORT_SEQUENCE_SCRIPT)
    assert script.parameters["SequenceXml"] == xml and script.parameters["Properties"]["Name"] == "Over WinRM"
    assert served.log.count("POST", "/AdminService/wmi/SMS_TaskSequencePackage.") == 0  # no step over REST

    ts_id = rest.create_task_sequence(TaskSequenceRecord(id=None, name="Made over REST", sequence=xml))
    planned = site.read().task_sequences[ts_id]
    site.update_task_sequence(ts_id, dataclasses.replace(planned, description="properties over REST"))
    steps = next(i for i in host.invocations if i.command is SET_SEQUENCE_SCRIPT)
    assert steps.parameters["PackageId"] == ts_id and steps.parameters["ExpectedSedoVersion"]
    assert site.get_task_sequence(ts_id).description == "properties over REST"  # type: ignore[union-attr]

    dep_id = site.create_deployment(DeploymentRecord(id=None, name="d", package_id=ts_id,
                                                     collection_id=names["OSD Lab"], assigned_schedule=(friday(),),
                                                     is_gmt=True))
    schedule = next(i for i in host.invocations if i.command is SET_SCHEDULE_SCRIPT)
    assert schedule.parameters["AdvertisementId"] == dep_id
    assert [s["Class"] for s in schedule.parameters["Schedules"]] == ["SMS_ST_RecurWeekly"]

    site.set_collection_variables(names["OSD Pilot"], 4, [("Plain", "a", False), ("Secret", "s3cr3t-value", True)])
    cmdlets = [(i.command, i.parameters.get("VariableName"), i.parameters.get("IsMask")) for i in host.invocations
               if "Variable" in i.command]
    assert cmdlets == [("Set-CMDeviceCollectionVariable", "Plain", False),
                       ("New-CMDeviceCollectionVariable", "Secret", True)]
    with served.site() as console:  # REST wrote the precedence and the plain variable, never the masked one
        settings = console.get_collection_settings(names["OSD Pilot"])
    assert settings is not None and (settings.precedence, [v.name for v in settings.variables]) == (4, ["Plain"])
    site.close()


def test_the_plan_shows_each_actions_path_and_blocks_what_no_path_can_do(remote: Remote) -> None:
    """Without WinRM and without trying the unproven REST calls, a new sequence cannot be written: the plan says so
    and which way every other action would go, and nothing is applied."""
    (remote.work / "manifests" / "reconcile.yaml").unlink()
    planned = remote.run("plan", "manifests")
    assert planned.returncode == 1, planned
    assert "DistributeContent (content) via REST" in planned.stdout, planned.stdout
    assert "CreateTaskSequence (new) via unavailable" in planned.stdout
    assert "set site.winrm in reconcile.yaml" in planned.stdout and "site.restUnproven" in planned.stdout
    applied = remote.run("--yes")
    assert applied.returncode == 1 and "blocked" in applied.stderr
    sequences, deployments = remote.live()
    assert sequences == {} and deployments == {}
