"""Export of live deployments: what a manifest can say comes back exactly; what it cannot is reported, never
turned silently into something else, and never a crash."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.diff.normalize import (
    ASAP,
    LOGON,
    WAKE_ON_LAN,
    Resolver,
    deployment_record,
    ts_record,
)
from reconciler.export import ExportResult, export_site
from reconciler.models import TaskSequence
from reconciler.models.deployment import TaskSequenceDeployment
from reconciler.plan.planner import make_plan
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import DeploymentRecord
from reconciler.source.loader import load
from reconciler.state import StateStore

AT = "2026-12-05T20:00:00"


def _token(kind: str, **fields: Any) -> str:
    return json.dumps({"@odata.type": f"#AdminService.SMS_ST_{kind}", "StartTime": AT, "IsGMT": False, **fields},
                      sort_keys=True)


FRIDAY = _token("RecurWeekly", Day=6, ForNumberOfWeeks=1)


@pytest.fixture
def site(tmp_path: Path) -> EmbeddedSite:
    with EmbeddedSite(tmp_path / "site.db") as opened:
        add_demo_inventory(opened)
        yield opened


def _sequence(site: EmbeddedSite, name: str) -> str:
    ts = TaskSequence.model_validate({"metadata": {"name": "x"}, "spec": {
        "name": name, "type": "InstallOperatingSystem" if name.startswith("OS ") else "Custom",
        "steps": [{"name": "Hello", "type": "RunCommandLine", "settings": {"commandLine": "cmd /c echo hello"}}]}})
    return site.create_task_sequence(ts_record(ts, Resolver(site.read())))


def _deploy(site: EmbeddedSite, name: str, spec: dict[str, Any], collection: str = "OSD Pilot",
            **change: Any) -> str:
    """A deployment made as a manifest would make it, then changed as a console could change it."""
    ts_id = _sequence(site, name)
    manifest = TaskSequenceDeployment.model_validate({"metadata": {"name": "x"}, "spec": {
        "taskSequence": "x", "collection": {"name": collection}, **spec}})
    live = site.read()
    target = Resolver(live).collection(manifest.spec.collection, ("spec", "collection"))
    record = deployment_record(manifest, ts_id, name, target)
    return site.create_deployment(dataclasses.replace(record, **change))


def _export(site: EmbeddedSite, tmp_path: Path) -> tuple[ExportResult, Path, StateStore]:
    state = StateStore(tmp_path / "state.db")
    out = tmp_path / "exported"
    return export_site(site.read(), state, out), out, state


def _exported(out: Path, console_name: str) -> dict[str, Any]:
    """The exported deployment of the task sequence named ``console_name``."""
    for path in (out / "deployments").glob("*.yaml"):
        manifest = yaml.safe_load(path.read_text())
        if manifest["spec"]["taskSequence"] == _slug(console_name):
            return manifest
    raise AssertionError(f"no deployment of {console_name} was exported")


def _slug(console_name: str) -> str:
    return console_name.lower().replace(" ", "-")


WEEKLY = {"schedule": {"assignments": [{"at": AT, "recurrence": {"weekly": {"day": "Friday"}}}]}}

#: (task sequence, how the live deployment differs from one a manifest made, what the warning says,
#:  the exported schedule's assignments)
ODD: list[tuple[str, dict[str, Any], str, list[dict[str, Any]] | None]] = [
    ("Yearly", {"assigned_schedule": (FRIDAY, _token("RecurYearly"))}, "a kind of schedule the manifest cannot write",
     [{"at": AT, "recurrence": {"weekly": {"day": "Friday", "everyWeeks": 1}}}]),
    ("Day zero", {"assigned_schedule": (_token("RecurWeekly", Day=0, ForNumberOfWeeks=1),)},
     "Day 0 is not a day of the week", None),
    ("Day nine", {"assigned_schedule": (_token("RecurWeekly", Day=9, ForNumberOfWeeks=1),)},
     "Day 9 is not a day of the week", None),
    ("Week seven", {"assigned_schedule": (_token("RecurMonthlyByWeekday", Day=2, WeekOrder=7, ForNumberOfMonths=1),)},
     "WeekOrder 7 is not a week of the month", None),
    ("No start", {"assigned_schedule": (json.dumps({"@odata.type": "#AdminService.SMS_ST_NonRecurring"}),)},
     "it has no start time", None),
    ("Days and hours", {"assigned_schedule": (_token("RecurInterval", DaySpan=1, HourSpan=2, MinuteSpan=0),)},
     "give exactly one of days", None),
    ("Every six weeks", {"assigned_schedule": (_token("RecurWeekly", Day=3, ForNumberOfWeeks=6),)},
     "everyWeeks", None),
    ("Three hours long", {"assigned_schedule": (_token("RecurWeekly", Day=6, ForNumberOfWeeks=1, HourDuration=3),)},
     "the duration of assignment 'weekly on Friday every week from 2026-12-05 20:00 (client local time) for 3 hours'",
     [{"at": AT, "recurrence": {"weekly": {"day": "Friday", "everyWeeks": 1}}}]),
    ("Own zone", {"assigned_schedule": (json.dumps({**json.loads(FRIDAY), "IsGMT": True}, sort_keys=True),)},
     "the time zone of assignment", [{"at": AT, "recurrence": {"weekly": {"day": "Friday", "everyWeeks": 1}}}]),
    ("Console bit", {"advert_flags": ASAP | 0x01000000 | 0x20000 | 0x800000}, "AdvertFlags bits 0x1000000",
     [{"event": "AsSoonAsPossible"}]),
    ("Two reruns", {"remote_client_flags": 0x800 | 0x2000 | 0x100}, "RemoteClientFlags bits 0x2000", None),
    ("No access bit", {"remote_client_flags": 0x2000}, "the absence of RemoteClientFlags bits 0x100", None),
    ("Offer type one", {"offer_type": 1}, "OfferType 1 is neither Required (0) nor Available (2)", None),
    ("Mixed times", {"present_time": "2026-12-01T08:00:00", "present_time_enabled": True,
                     "expiration_time": "2026-12-05T08:00:00Z", "expiration_time_enabled": True},
     "schedule.expiresAt '2026-12-05T08:00:00Z' (is 2026-12-05T08:00:00+00:00, with an offset", None),
    ("Expires first", {"present_time": "2026-12-05T08:00:00", "present_time_enabled": True,
                       "expiration_time": "2026-12-01T08:00:00", "expiration_time_enabled": True},
     "must be later than availableAt", None),
    ("Wake an available one", {"advert_flags": WAKE_ON_LAN | 0x20000 | 0x800000},
     "sendWakeUpPackets True (sendWakeUpPackets is only offered for Required deployments", None),
    ("Fifteen and an event", {"assigned_schedule": tuple(_token("RecurWeekly", Day=6, ForNumberOfWeeks=n % 4 + 1,
                                                                StartTime=f"2026-12-{n + 1:02d}T20:00:00")
                                                         for n in range(15)),
                              "advert_flags": LOGON | 0x20000 | 0x800000},
     "left out assignment 'at logon': a manifest lists at most 15 assignments",
     [{"at": f"2026-12-{n + 1:02d}T20:00:00", "recurrence": {"weekly": {"day": "Friday", "everyWeeks": n % 4 + 1}}}
      for n in range(15)]),
    ("OS over metered networks", {"remote_client_flags": 0x2000 | 0x100 | 0x40000},
     "allowMeteredDownloadAfterDeadline True (TaskSequence 'os-over-metered-networks' deploys an operating system",
     None),
]


def test_a_deployment_no_manifest_can_write_whole_is_exported_with_what_it_can_and_a_warning(
        site: EmbeddedSite, tmp_path: Path) -> None:
    dep_ids = {name: _deploy(site, name, {}, **change) for name, change, _, _ in ODD}
    result, out, state = _export(site, tmp_path)
    desired = load(out)
    assert not [f.render() for f in desired.findings if f.severity.value == "error"]
    for name, _, said, assignments in ODD:
        manifest = _exported(out, name)
        lines = [w for w in result.warnings if f"(deployment {dep_ids[name]}, " in w]
        assert lines, (name, result.warnings)
        assert all(w.startswith(f"TaskSequenceDeployment/{manifest['metadata']['name']} (deployment "
                                f"{dep_ids[name]}, '{name}_OSD Pilot'): left out ") for w in lines), lines
        assert any(said in w for w in lines), (name, said, lines)
        assert "\n" not in "".join(lines)
        assert manifest["spec"]["schedule"].get("assignments", []) == (assignments or []), name
    mixed = _exported(out, "Mixed times")["spec"]["schedule"]
    assert mixed["availableAt"] == "2026-12-01T08:00:00" and "expiresAt" not in mixed
    assert _exported(out, "Offer type one")["spec"]["purpose"] == "Available"
    assert _exported(out, "Wake an available one")["spec"].get("sendWakeUpPackets") is None
    # What was left out shows in the next plan as what applying the exported manifests would change.
    plan = make_plan(desired, site.read(), state)
    changed = {a.ref.name for a in plan.actions}
    assert {_exported(out, n)["metadata"]["name"] for n in ("Day zero", "Console bit", "Mixed times")} <= changed


#: Every setting a manifest can write, spread over deployments: each comes back exactly.
EXPRESSIBLE: list[tuple[str, dict[str, Any], str]] = [
    ("Plain", {}, "OSD Pilot"),
    ("Every schedule", {"purpose": "Required", "schedule": {
        "availableAt": "2026-12-01T08:00:00", "expiresAt": "2027-01-01T00:00:00", "rerun": "Always",
        "assignments": [
            {"at": AT}, {"at": AT, "recurrence": {"interval": {"days": 3}}},
            {"at": AT, "recurrence": {"interval": {"hours": 23}}},
            {"at": AT, "recurrence": {"interval": {"minutes": 59}}},
            {"at": AT, "recurrence": {"weekly": {"day": "Sunday", "everyWeeks": 4}}},
            {"at": AT, "recurrence": {"weekly": {"day": "Saturday"}}},
            {"at": AT, "recurrence": {"monthlyByDate": {"day": 0, "everyMonths": 12}}},
            {"at": AT, "recurrence": {"monthlyByDate": {"day": 31}}},
            {"at": AT, "recurrence": {"monthlyByWeekday": {"day": "Monday", "week": "Last"}}},
            {"at": AT, "recurrence": {"monthlyByWeekday": {"day": "Saturday", "week": "Fourth", "everyMonths": 2}}},
            {"event": "AsSoonAsPossible"}, {"event": "Logon"}, {"event": "Logoff"}]}}, "OSD Lab"),
    ("In UTC", {"schedule": {"utc": True, "availableAt": "2026-12-01T08:00:00Z", "expiresAt": "2027-01-01T00:00:00Z",
                             "assignments": [{"at": "2026-12-05T20:00:00+00:00",
                                              "recurrence": {"weekly": {"day": "Wednesday", "everyWeeks": 2}}}],
                             "rerun": "IfSucceeded"}}, "OSD Pilot"),
    ("Media hidden", {"availableTo": "MediaAndPxeHidden", "schedule": {"rerun": "Never"},
                      "content": {"access": "RunFromDistributionPoint", "allowRemoteFallback": True,
                                  "allowDefaultSiteBoundaryGroup": True}}, "OSD Pilot"),
    ("Every flag", {"purpose": "Required", "comment": "Pilot ring",
                    "sendWakeUpPackets": True, "allowMeteredDownloadAfterDeadline": True,
                    "userExperience": {"allowRunIndependently": True, "showProgress": False,
                                       "installOutsideMaintenanceWindow": True,
                                       "restartOutsideMaintenanceWindow": True, "allowOnInternetClients": True},
                    "alerts": {"onFailurePercent": 10, "onSuccessBelowPercent": 90,
                               "onSuccessCheckAfter": "2026-12-10T08:00:00"},
                    "content": {"access": "DownloadAllBeforeStart"}}, "OSD Lab"),
    ("Media only", {"availableTo": "MediaAndPxe"}, "OSD Pilot"),
    ("Clients and media", {"availableTo": "ClientsMediaAndPxe", "sendWakeUpPackets": True, "purpose": "Required",
                           "schedule": {"assignments": [{"event": "AsSoonAsPossible"}]}}, "OSD Lab"),
]


def test_every_deployment_a_manifest_can_write_exports_exactly_and_plans_empty(
        site: EmbeddedSite, tmp_path: Path) -> None:
    for name, spec, collection in EXPRESSIBLE:
        _deploy(site, name, spec, collection)
    result, out, state = _export(site, tmp_path)
    assert result.warnings == []
    desired = load(out)
    assert not [f.render() for f in desired.findings if f.severity.value == "error"]
    assert len(desired.of_kind("TaskSequenceDeployment")) == len(EXPRESSIBLE)
    plan = make_plan(desired, site.read(), state)
    assert plan.actions == [] and plan.blocked == [], [(a.verb, a.ref, a.changes[:3]) for a in plan.actions]


def test_export_prints_each_warning_on_one_line(site: EmbeddedSite, tmp_path: Path) -> None:
    pilot = next(c.id for c in site.read().collections.values() if c.name == "OSD Pilot")
    dep_id = site.create_deployment(DeploymentRecord(
        id=None, name="Day nine_OSD Pilot", package_id=_sequence(site, "Day nine"), collection_id=pilot,
        offer_type=2, advert_flags=LOGON | 0x01000000 | 0x20000 | 0x800000, remote_client_flags=0x2000 | 0x100,
        assigned_schedule=(_token("RecurWeekly", Day=9, ForNumberOfWeeks=1),)))
    site.close()
    result = CliRunner().invoke(cli, ["export", "--out", str(tmp_path / "exported"), "--site",
                                      str(tmp_path / "site.db"), "--state", str(tmp_path / "state.db")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, result.output
    assert all(f"(deployment {dep_id}, " in w for w in warnings)
    assert any("Day 9 is not a day of the week" in w for w in warnings)
    assert any("AdvertFlags bits 0x1000000" in w for w in warnings)
    assert "Traceback" not in result.output


def test_a_schedule_token_that_is_not_even_json_is_left_out_with_a_warning(site: EmbeddedSite, tmp_path: Path) -> None:
    dep_id = _deploy(site, "Not JSON", {}, assigned_schedule=("SMS_ST_RecurWeekly?\nkind: Evil", FRIDAY))
    result, out, _ = _export(site, tmp_path)
    (line,) = result.warnings
    assert f"(deployment {dep_id}, " in line and "a kind of schedule the manifest cannot write" in line
    assert "\n" not in line
    manifest = _exported(out, "Not JSON")
    assert manifest["kind"] == "TaskSequenceDeployment"
    assert manifest["spec"]["schedule"]["assignments"] == [
        {"at": AT, "recurrence": {"weekly": {"day": "Friday", "everyWeeks": 1}}}]
    assert not [f.render() for f in load(out).findings if f.severity.value == "error"]


def test_times_and_tokens_compare_as_the_site_means_them_not_as_they_are_spelled(site: EmbeddedSite,
                                                                                   tmp_path: Path) -> None:
    """A real site answers ``…Z`` for a time sent as ``+00:00`` and adds fields at their defaults to a token."""
    _deploy(site, "Spelled", {**WEEKLY, "schedule": {**WEEKLY["schedule"], "utc": True,
                                                     "availableAt": "2026-12-01T08:00:00+00:00"}},
            present_time="2026-12-01T08:00:00Z", present_time_enabled=True,
            assigned_schedule=(json.dumps({**json.loads(FRIDAY), "IsGMT": True, "DayDuration": 0, "HourDuration": 0,
                                           "MinuteDuration": 0}, sort_keys=True),))
    result, out, state = _export(site, tmp_path)
    assert result.warnings == []  # nothing left out: the spelling is all that differs
    plan = make_plan(load(out), site.read(), state)
    assert [a for a in plan.actions if a.ref.kind == "TaskSequenceDeployment"] == [], \
        [(a.ref, a.changes) for a in plan.actions]
    state.close()


def test_a_token_that_is_not_json_and_an_offer_type_of_one_are_drift_not_a_crash(site: EmbeddedSite,
                                                                                 tmp_path: Path) -> None:
    from reconciler.diff.normalize import deployment_canonical

    _deploy(site, "Garbled", WEEKLY)
    [live] = site.read().deployments.values()
    garbled = dataclasses.replace(live, assigned_schedule=("not json at all",), offer_type=1)
    assert deployment_canonical(garbled) != deployment_canonical(live)
    assert deployment_canonical(garbled)["purpose"] == "OfferType 1"
