"""Plans say values as the manifest writes them: schedules in words, references as ``Name [ID]``."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.diff.changes import FieldChange
from reconciler.diff.deployment import ADVERT_FLAGS, REMOTE_CLIENT_FLAGS, deployment_changes, deployment_terms
from reconciler.diff.normalize import (
    LOGON,
    MEDIA_AND_PXE,
    MEDIA_PXE_ONLY,
    PENDING,
    Resolver,
    deployment_record,
    ts_canonical,
    ts_record,
)
from reconciler.diff.schedule import assignment_phrase, time_text
from reconciler.diff.steps import diff_steps
from reconciler.diff.terms import (
    collection_text,
    package_text,
    present_references,
    present_step_changes,
    task_sequence_text,
)
from reconciler.diff.tsproperties import ts_property_changes, ts_property_terms
from reconciler.export import deployment_manifest
from reconciler.models import TaskSequence
from reconciler.models.deployment import TaskSequenceDeployment
from reconciler.rules import examine
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.records import (
    Collection,
    DeploymentRecord,
    LiveState,
    Package,
    PackageType,
    TaskSequenceRecord,
)
from reconciler.tsxml.sequence import write_sequence

TS_ID, TS_NAME = "PS100012", "Windows 11 23H2 - Install"
LIVE = LiveState(
    "PS1",
    collections={"SMS00001": Collection("SMS00001", "All Systems", built_in=True),
                 "PS100001": Collection("PS100001", "OSD Pilot", 25),
                 "PS100002": Collection("PS100002", "OSD Lab", 12)},
    packages={"PS100003": Package("PS100003", "Windows 11 23H2 x64", PackageType.OPERATING_SYSTEM_IMAGE),
              "PS100004": Package("PS100004", "Boot image (x64)", PackageType.BOOT_IMAGE),
              "PS100005": Package("PS100005", "Windows 10 22H2 x64", PackageType.OPERATING_SYSTEM_IMAGE),
              "PS100006": Package("PS100006", "OSD Tools", PackageType.PACKAGE),
              "PS100007": Package("PS100007", "Boot image (x86)", PackageType.BOOT_IMAGE)},
    task_sequences={TS_ID: TaskSequenceRecord(TS_ID, TS_NAME, "<sequence/>"),
                    "PS100020": TaskSequenceRecord("PS100020", "Apply drivers", "<sequence/>")},
)

#: What must never reach a plan from a schedule: ConfigMgr's token classes and property names.
RAW = re.compile(r"odata|SMS_ST|AdminService|NonRecurring|Recur(Interval|Weekly|Monthly)|DaySpan|HourSpan|"
                 r"MinuteSpan|ForNumberOf|MonthDay|WeekOrder|IsGMT|StartTime|AdvertFlags|RemoteClientFlags|"
                 r"OfferType|other:0x")


def _manifest(spec: dict[str, Any]) -> TaskSequenceDeployment:
    body = {"taskSequence": "win11-install", "collection": {"name": "OSD Pilot"}, **spec}
    return TaskSequenceDeployment.model_validate({"metadata": {"name": "win11-pilot"}, "spec": body})


def _record(spec: dict[str, Any], ts_id: str = TS_ID) -> DeploymentRecord:
    manifest = _manifest(spec)
    collection = Resolver(LIVE).collection(manifest.spec.collection, ("spec", "collection"))
    ts_name = LIVE.task_sequences[ts_id].name if ts_id in LIVE.task_sequences else "New sequence"
    return deployment_record(manifest, ts_id, ts_name, collection)


def _schedule(assignments: list[dict[str, Any]], utc: bool = True, **extra: Any) -> dict[str, Any]:
    return {"schedule": {"utc": utc, "assignments": assignments, **extra}}


# -- every assignment schedule in words -------------------------------------------------------------

AT = "2026-12-05T20:00:00Z"
FROM_UTC = "from 2026-12-05 20:00 UTC"

ASSIGNMENTS = [
    ({"at": AT}, "once at 2026-12-05 20:00 UTC"),
    ({"at": "2026-12-05T20:00:00"}, "once at 2026-12-05 20:00 UTC"),
    ({"at": "2026-12-05T20:00:30"}, "once at 2026-12-05 20:00:30 UTC"),
    ({"at": AT, "recurrence": {"interval": {"days": 3}}}, f"every 3 days {FROM_UTC}"),
    ({"at": AT, "recurrence": {"interval": {"days": 1}}}, f"every day {FROM_UTC}"),
    ({"at": AT, "recurrence": {"interval": {"hours": 1}}}, f"every hour {FROM_UTC}"),
    ({"at": AT, "recurrence": {"interval": {"hours": 12}}}, f"every 12 hours {FROM_UTC}"),
    ({"at": AT, "recurrence": {"interval": {"minutes": 30}}}, f"every 30 minutes {FROM_UTC}"),
    ({"at": AT, "recurrence": {"weekly": {"day": "Saturday", "everyWeeks": 2}}},
     f"weekly on Saturday every 2 weeks {FROM_UTC}"),
    ({"at": AT, "recurrence": {"weekly": {"day": "Sunday"}}}, f"weekly on Sunday every week {FROM_UTC}"),
    ({"at": AT, "recurrence": {"weekly": {"day": "Wednesday", "everyWeeks": 4}}},
     f"weekly on Wednesday every 4 weeks {FROM_UTC}"),
    ({"at": AT, "recurrence": {"monthlyByDate": {"day": 15, "everyMonths": 2}}},
     f"monthly on day 15 every 2 months {FROM_UTC}"),
    ({"at": AT, "recurrence": {"monthlyByDate": {"day": 0}}}, f"monthly on the last day every month {FROM_UTC}"),
    ({"at": AT, "recurrence": {"monthlyByWeekday": {"day": "Friday", "week": "Last"}}},
     f"monthly on the last Friday every month {FROM_UTC}"),
    ({"at": AT, "recurrence": {"monthlyByWeekday": {"day": "Tuesday", "week": "Second", "everyMonths": 3}}},
     f"monthly on the second Tuesday every 3 months {FROM_UTC}"),
    ({"at": AT, "recurrence": {"monthlyByWeekday": {"day": "Monday", "week": "First", "everyMonths": 12}}},
     f"monthly on the first Monday every 12 months {FROM_UTC}"),
    ({"at": AT, "recurrence": {"monthlyByWeekday": {"day": "Thursday", "week": "Third"}}},
     f"monthly on the third Thursday every month {FROM_UTC}"),
    ({"at": AT, "recurrence": {"monthlyByWeekday": {"day": "Sunday", "week": "Fourth"}}},
     f"monthly on the fourth Sunday every month {FROM_UTC}"),
    ({"event": "AsSoonAsPossible"}, "as soon as possible"),
    ({"event": "Logon"}, "at logon"),
    ({"event": "Logoff"}, "at logoff"),
]


@pytest.mark.parametrize(("assignment", "phrase"), ASSIGNMENTS, ids=[p for _, p in ASSIGNMENTS])
def test_every_assignment_the_manifest_can_write_reads_as_one_phrase(assignment: dict, phrase: str) -> None:
    terms = deployment_terms(_record(_schedule([assignment])), LIVE)
    assert terms["schedule.assignments[0]"] == phrase
    assert not any(RAW.search(str(v)) for v in terms.values())


LOCAL = [
    ({"at": "2026-12-05T20:00:00"}, "once at 2026-12-05 20:00 (client local time)"),
    ({"at": "2026-12-05T20:00:00Z"}, "once at 2026-12-05 20:00+00:00 (client local time)"),
    ({"at": "2026-12-05T20:00:00+02:00", "recurrence": {"interval": {"days": 3}}},
     "every 3 days from 2026-12-05 20:00+02:00 (client local time)"),
    ({"at": "2026-12-05 06:30", "recurrence": {"weekly": {"day": "Monday"}}},
     "weekly on Monday every week from 2026-12-05 06:30 (client local time)"),
]


@pytest.mark.parametrize(("assignment", "phrase"), LOCAL, ids=[p for _, p in LOCAL])
def test_a_schedule_in_client_local_time_says_so(assignment: dict, phrase: str) -> None:
    terms = deployment_terms(_record(_schedule([assignment], utc=False, availableAt="2026-12-01T08:00:00")), LIVE)
    assert terms["schedule.assignments[0]"] == phrase
    assert terms["schedule.availableAt"] == "2026-12-01 08:00 (client local time)"
    assert terms["schedule.utc"] is False


TOKENS = [  # as a real site may hold them: read over WMI, made in the console, or out of range
    ({"__CLASS": "SMS_ST_RecurWeekly", "Day": 7, "ForNumberOfWeeks": 1, "StartTime": AT, "IsGMT": True},
     True, f"weekly on Saturday every week {FROM_UTC}"),
    ({"@odata.type": "#AdminService.SMS_ST_NonRecurring", "StartTime": "2026-12-05T20:00:00", "IsGMT": False},
     True, "once at 2026-12-05 20:00 (client local time)"),
    ({"@odata.type": "#AdminService.SMS_ST_RecurInterval", "DaySpan": 1, "HourSpan": 2, "MinuteSpan": 0,
      "StartTime": AT, "IsGMT": True, "DayDuration": 0, "HourDuration": 3}, True,
     f"every day 2 hours {FROM_UTC} for 3 hours"),
    ({"@odata.type": "#AdminService.SMS_ST_RecurInterval", "StartTime": AT, "IsGMT": True}, True,
     f"every 0 minutes (no interval) {FROM_UTC}"),
    ({"@odata.type": "#AdminService.SMS_ST_RecurWeekly", "Day": 9, "ForNumberOfWeeks": 1, "StartTime": AT,
      "IsGMT": True}, True, f"weekly on weekday 9 (not a day of the week) every week {FROM_UTC}"),
    ({"@odata.type": "#AdminService.SMS_ST_RecurMonthlyByWeekday", "Day": 2, "WeekOrder": 7,
      "ForNumberOfMonths": 1, "StartTime": AT, "IsGMT": True}, True,
     f"monthly on the week 7 (not a week of the month) Monday every month {FROM_UTC}"),
    ({"@odata.type": "#AdminService.SMS_ST_RecurYearly", "StartTime": AT, "IsGMT": True}, True,
     f"a schedule the manifest cannot write, {FROM_UTC}"),
]


@pytest.mark.parametrize(("token", "utc", "phrase"), TOKENS, ids=[p for *_, p in TOKENS])
def test_a_token_made_elsewhere_reads_as_a_phrase_and_never_by_its_class(token: dict, utc: bool,
                                                                        phrase: str) -> None:
    said = assignment_phrase(token, utc)
    assert said == phrase
    assert not re.search(r"SMS_ST|odata|AdminService", said)


def test_the_issue_example_reads_weekly_on_saturday_every_two_weeks() -> None:
    before = _record(_schedule([{"at": AT, "recurrence": {"weekly": {"day": "Friday"}}}]))
    after = _record(_schedule([{"at": AT, "recurrence": {"weekly": {"day": "Saturday", "everyWeeks": 2}}}]))
    assert deployment_changes(before, after, LIVE) == (FieldChange(
        "schedule.assignments[0]", f"weekly on Friday every week {FROM_UTC}",
        "weekly on Saturday every 2 weeks from 2026-12-05 20:00 UTC"),)


def test_assignments_are_reported_one_by_one_added_removed_or_changed() -> None:
    weekly = {"at": AT, "recurrence": {"weekly": {"day": "Friday"}}}
    monthly = {"at": "2026-12-01T08:00:00Z", "recurrence": {"monthlyByDate": {"day": 1}}}
    before = _record(_schedule([weekly, {"event": "AsSoonAsPossible"}]))
    after = _record(_schedule([monthly, {**weekly, "recurrence": {"weekly": {"day": "Saturday"}}}, {"event": "Logon"}]))
    assert deployment_changes(before, after, LIVE) == (
        FieldChange("schedule.assignments[0]", None, "monthly on day 1 every month from 2026-12-01 08:00 UTC"),
        FieldChange("schedule.assignments[1]", f"weekly on Friday every week {FROM_UTC}",
                    f"weekly on Saturday every week {FROM_UTC}"),
        FieldChange("schedule.assignments[2]", "as soon as possible", "at logon"),
    )
    removed = deployment_changes(after, _record(_schedule([monthly])), LIVE)
    assert removed == (FieldChange("schedule.assignments[1]", f"weekly on Saturday every week {FROM_UTC}", None),
                       FieldChange("schedule.assignments[2]", "at logon", None))


def test_turning_a_schedule_to_client_local_time_is_one_change_and_each_phrase_says_its_zone() -> None:
    assignments = [{"at": "2026-12-05T20:00:00", "recurrence": {"interval": {"days": 3}}}]
    utc = _record(_schedule(assignments, availableAt="2026-12-01T08:00:00"))
    local = _record(_schedule(assignments, utc=False, availableAt="2026-12-01T08:00:00"))
    assert deployment_changes(utc, local, LIVE) == (FieldChange("schedule.utc", True, False),)
    assert deployment_terms(local, LIVE)["schedule.assignments[0]"] == \
        "every 3 days from 2026-12-05 20:00 (client local time)"
    moved = _record(_schedule([{**assignments[0], "at": "2026-12-06T20:00:00"}], utc=False,
                              availableAt="2026-12-01T08:00:00"))
    assert deployment_changes(utc, moved, LIVE) == (
        FieldChange("schedule.utc", True, False),
        FieldChange("schedule.assignments[0]", "every 3 days from 2026-12-05 20:00 UTC",
                    "every 3 days from 2026-12-06 20:00 (client local time)"))


def test_times_that_read_alike_but_differ_on_the_site_are_shown_as_written() -> None:
    naive = _record(_schedule([{"at": "2026-12-05T20:00:00"}], availableAt="2026-12-01T08:00:00"))
    zulu = _record(_schedule([{"at": "2026-12-05T20:00:00Z"}], availableAt="2026-12-01T08:00:00Z"))
    assert deployment_changes(naive, zulu, LIVE) == (
        FieldChange("schedule.availableAt", "2026-12-01T08:00:00 UTC", "2026-12-01T08:00:00+00:00 UTC"),
        FieldChange("schedule.assignments[0]", "once at 2026-12-05T20:00:00 UTC",
                    "once at 2026-12-05T20:00:00+00:00 UTC"))
    assert time_text("2026-12-05T20:00", True) == time_text("2026-12-05T20:00:00", True) == "2026-12-05 20:00 UTC"
    assert deployment_changes(naive, dataclasses.replace(naive, assigned_schedule=tuple(
        json.dumps(json.loads(t)) for t in naive.assigned_schedule)), LIVE) == ()


# -- references --------------------------------------------------------------------------------------


def test_references_read_as_console_name_and_id_and_an_unknown_id_says_it_is_not_on_the_site() -> None:
    assert collection_text("PS100001", LIVE) == "OSD Pilot [PS100001]"
    assert collection_text("SMS00001", LIVE) == "All Systems [SMS00001]"
    assert collection_text("PS1000FF", LIVE) == "[PS1000FF] (not on the site)"
    assert task_sequence_text(TS_ID, LIVE) == "Windows 11 23H2 - Install [PS100012]"
    assert task_sequence_text("PS1000FF", LIVE) == "[PS1000FF] (not on the site)"
    assert package_text("PS100004", LIVE) == "Boot image (x64) [PS100004]"
    assert package_text("PS1000FF", LIVE) == "[PS1000FF] (not on the site)"
    assert package_text(f"{PENDING}Z Child", LIVE) == "Z Child (created by this plan)"


def test_a_deployment_moved_to_another_collection_and_sequence_names_both_sides() -> None:
    before = _record({"collection": {"id": "PS100001"}})
    after = _record({"collection": "All Systems"}, ts_id="PS100020")
    assert deployment_changes(before, after, LIVE) == (
        FieldChange("taskSequence", "Windows 11 23H2 - Install [PS100012]", "Apply drivers [PS100020]"),
        FieldChange("collection", "OSD Pilot [PS100001]", "All Systems [SMS00001]"))
    gone = dataclasses.replace(before, collection_id="PS1000FF", package_id="PS1000FE")
    assert deployment_terms(gone, LIVE)["collection"] == "[PS1000FF] (not on the site)"
    assert deployment_terms(gone, LIVE)["taskSequence"] == "[PS1000FE] (not on the site)"
    new_sequence = _record({}, ts_id="")
    assert deployment_terms(new_sequence, LIVE)["taskSequence"] == "New sequence (created by this plan)"


def test_every_setting_of_the_manifest_has_its_path_and_value() -> None:
    record = _record({
        "comment": "Pilot ring", "purpose": "Required", "availableTo": "MediaAndPxeHidden",
        "sendWakeUpPackets": True, "allowMeteredDownloadAfterDeadline": True,
        "schedule": {"availableAt": "2026-12-01T08:00:00Z", "expiresAt": "2027-01-01T00:00:00Z", "utc": True,
                     "assignments": [{"event": "Logoff"}, {"at": AT}], "rerun": "Always"},
        "userExperience": {"allowRunIndependently": True, "showProgress": False,
                           "installOutsideMaintenanceWindow": True, "restartOutsideMaintenanceWindow": True,
                           "allowOnInternetClients": True},
        "alerts": {"onFailurePercent": 10, "onSuccessBelowPercent": 90, "onSuccessCheckAfter": "2026-12-10T08:00"},
        "content": {"access": "RunFromDistributionPoint", "allowRemoteFallback": True,
                    "allowDefaultSiteBoundaryGroup": True}})
    assert deployment_terms(record, LIVE) == {
        "taskSequence": "Windows 11 23H2 - Install [PS100012]", "collection": "OSD Pilot [PS100001]",
        "comment": "Pilot ring", "purpose": "Required", "availableTo": "MediaAndPxeHidden",
        "sendWakeUpPackets": True, "allowMeteredDownloadAfterDeadline": True,
        "schedule.availableAt": "2026-12-01 08:00 UTC", "schedule.expiresAt": "2027-01-01 00:00 UTC",
        "schedule.utc": True, "schedule.assignments[0]": "once at 2026-12-05 20:00 UTC",
        "schedule.assignments[1]": "at logoff", "schedule.rerun": "Always",
        "userExperience.allowRunIndependently": True, "userExperience.showProgress": False,
        "userExperience.installOutsideMaintenanceWindow": True,
        "userExperience.restartOutsideMaintenanceWindow": True, "userExperience.allowOnInternetClients": True,
        "alerts.onFailurePercent": 10, "alerts.onSuccessBelowPercent": 90,
        "alerts.onSuccessCheckAfter": "2026-12-10 08:00",
        "content.access": "RunFromDistributionPoint", "content.allowRemoteFallback": True,
        "content.allowDefaultSiteBoundaryGroup": True}


# -- what the manifest does not model is never hidden -------------------------------------------------


def test_flag_bits_the_manifest_does_not_model_still_show_as_a_change() -> None:
    record = _record(_schedule([{"event": "AsSoonAsPossible"}]))
    console = dataclasses.replace(record, advert_flags=record.advert_flags | 0x01000000)
    assert deployment_changes(record, console, LIVE) == (FieldChange(ADVERT_FLAGS, None, "0x1000000"),)
    assert deployment_terms(console, LIVE)[ADVERT_FLAGS] == "0x1000000"
    assert ADVERT_FLAGS not in deployment_terms(record, LIVE)
    # Two rerun bits at once (if failed, and always): the manifest can say one of them; the other still shows.
    both = dataclasses.replace(record, remote_client_flags=record.remote_client_flags | 0x800)
    assert deployment_changes(record, both, LIVE) == (FieldChange("schedule.rerun", "IfFailed", "Always"),
                                                      FieldChange(REMOTE_CLIENT_FLAGS, None, "0x2000"))
    # Media-and-PXE-only without available-to-media: read as MediaAndPxe, and the missing bit is shown.
    odd = dataclasses.replace(record, advert_flags=record.advert_flags | MEDIA_PXE_ONLY)
    assert deployment_changes(record, odd, LIVE) == (
        FieldChange("availableTo", "Clients", "MediaAndPxe"),
        FieldChange(ADVERT_FLAGS, None, f"without 0x{MEDIA_AND_PXE:x}"))
    assert deployment_changes(record, dataclasses.replace(record, offer_type=1), LIVE) == (
        FieldChange("purpose", "Available", "unknown purpose (OfferType 1)"),)


def test_a_console_change_read_back_from_a_real_site_file_shows_in_manifest_terms(tmp_path: Path) -> None:
    with EmbeddedSite(tmp_path / "site.db") as site:
        add_demo_inventory(site)
        live = site.read()
        boot = next(p for p in live.packages.values() if p.name == "Boot image (x64)")
        ts = TaskSequence.model_validate({"metadata": {"name": "win11"}, "spec": {
            "name": TS_NAME, "bootImage": {"package": "Boot image (x64)"},
            "steps": [{"name": "Apply", "type": "ApplyOperatingSystemImage",
                       "settings": {"image": {"package": "Windows 11 23H2 x64"}, "index": 3}}]}})
        ts_id = site.create_task_sequence(ts_record(ts, Resolver(live)))
        pilot = next(c for c in live.collections.values() if c.name == "OSD Pilot")
        manifest = _manifest(_schedule([{"at": AT, "recurrence": {"weekly": {"day": "Friday"}}}]))
        desired = deployment_record(manifest, ts_id, TS_NAME, pilot)
        dep_id = site.create_deployment(desired)
        live = site.read()
        assert deployment_changes(live.deployments[dep_id], desired, live) == ()
        token = json.loads(desired.assigned_schedule[0]) | {"Day": 7}
        site.update_deployment(dep_id, dataclasses.replace(
            desired, advert_flags=desired.advert_flags | LOGON | 0x02000000,
            assigned_schedule=(json.dumps(token, sort_keys=True),)))
        site.update_task_sequence(ts_id, dataclasses.replace(site.get_task_sequence(ts_id), boot_image_id=None))
        live = site.read()
    assert deployment_changes(live.deployments[dep_id], desired, live) == (
        FieldChange("schedule.assignments[0]", f"weekly on Saturday every week {FROM_UTC}",
                    f"weekly on Friday every week {FROM_UTC}"),
        FieldChange("schedule.assignments[1]", "at logon", None),
        FieldChange(ADVERT_FLAGS, "0x2000000", None))
    wanted = ts_record(ts, Resolver(live))
    assert ts_property_changes(live.task_sequences[ts_id], wanted, live) == (
        FieldChange("bootImage", None, f"Boot image (x64) [{boot.id}]"),)


# -- task sequence properties ------------------------------------------------------------------------


def _ts(**spec: Any) -> TaskSequenceRecord:
    body = {"name": TS_NAME, "steps": [{"name": "Run", "type": "RunCommandLine",
                                        "settings": {"commandLine": "cmd /c echo"}}], **spec}
    manifest = TaskSequence.model_validate({"metadata": {"name": "win11"}, "spec": body})
    return ts_record(manifest, Resolver(LIVE))


NOTE = {"headline": "Confirm the upgrade", "body": ["This takes an hour.", "Your apps stay.", "Click Install."]}


def test_task_sequence_properties_change_at_their_manifest_paths() -> None:
    before = _ts(bootImage={"package": "Boot image (x64)"}, highImpact={"enabled": True, "notification": NOTE},
                 softwareCenter={"downloadSizeMB": 5200})
    after = _ts(description="Bare metal", type="InstallOperatingSystem", folder="OSD/Production", enabled=False,
                bootImage={"id": "PS100007"},
                highImpact={"enabled": True, "notification": {**NOTE, "body": [*NOTE["body"][:2], "Go."]}},
                softwareCenter={"restartRequired": True, "downloadSizeMB": 6000, "estimatedRunTimeMinutes": 75},
                category="OSD", maxRunTimeMinutes=120)
    assert ts_property_changes(before, after, LIVE) == (
        FieldChange("description", "", "Bare metal"),
        FieldChange("type", "Custom", "InstallOperatingSystem"),
        FieldChange("folder", None, "OSD/Production"),
        FieldChange("enabled", True, False),
        FieldChange("bootImage", "Boot image (x64) [PS100004]", "Boot image (x86) [PS100007]"),
        FieldChange("highImpact.notification.body[2]", "Click Install.", "Go."),
        FieldChange("softwareCenter.restartRequired", False, True),
        FieldChange("softwareCenter.downloadSizeMB", 5200, 6000),
        FieldChange("softwareCenter.estimatedRunTimeMinutes", None, 75),
        FieldChange("category", None, "OSD"),
        FieldChange("maxRunTimeMinutes", None, 120))
    assert ts_property_changes(after, after, LIVE) == ()


def test_a_notification_turned_on_is_one_change_and_a_boot_image_the_site_lost_says_so() -> None:
    plain = _ts(highImpact={"enabled": True})
    custom = _ts(highImpact={"enabled": True, "notification": NOTE})
    assert ts_property_changes(plain, custom, LIVE) == (FieldChange("highImpact.notification", None, NOTE),)
    lost = dataclasses.replace(plain, boot_image_id="PS1000FF")
    assert ts_property_terms(lost, LIVE)["bootImage"] == "[PS1000FF] (not on the site)"


# -- references inside the step tree -----------------------------------------------------------------


def _steps(image: str, packages: str) -> list[dict[str, Any]]:
    sequence = write_sequence({"steps": [{"group": "Install", "steps": [
        {"name": "Apply OS", "type": "ApplyOperatingSystemImage", "settings": {"image": {"id": image}, "index": 3}},
        {"name": "Drivers", "type": "RunTaskSequence", "settings": {"taskSequence": {"id": "PS100020"}}},
        {"name": "Download", "type": "DownloadPackageContent", "settings": {"packages": packages}},
    ]}]}, indent=None)
    return ts_canonical(TaskSequenceRecord(TS_ID, TS_NAME, sequence))["steps"]


def test_step_references_read_as_names_while_the_trees_are_compared_by_id() -> None:
    before, after = _steps("PS100005", "PS100006"), _steps("PS100003", "PS100006,PS1000FF")
    shown = present_references(after, LIVE)
    settings_of = {n["name"]: n["settings"] for n in shown[0]["steps"]}
    assert settings_of["Apply OS"]["image"] == "Windows 11 23H2 x64 [PS100003]"
    assert settings_of["Drivers"]["taskSequence"] == "Apply drivers [PS100020]"
    assert settings_of["Download"]["packages"] == "OSD Tools [PS100006], [PS1000FF] (not on the site)"
    assert after[0]["steps"][0]["settings"]["image"] == {"id": "PS100003"}  # the tree compared is untouched

    changes = diff_steps(before, after, opaque_references=True)
    presented = present_step_changes(changes, LIVE)
    assert [(c.path, c.fields) for c in presented] == [
        (("Install", "Apply OS"), (FieldChange("settings.image", "Windows 10 22H2 x64 [PS100005]",
                                               "Windows 11 23H2 x64 [PS100003]"),)),
        (("Install", "Download"), (FieldChange("settings.packages", "OSD Tools [PS100006]",
                                               "OSD Tools [PS100006], [PS1000FF] (not on the site)"),))]
    assert [c.path for c in presented] == [c.path for c in changes]

    inserted = present_step_changes(diff_steps(before[0]["steps"][:1], before[0]["steps"][:2],
                                               opaque_references=True), LIVE)
    assert inserted[0].node is not None
    assert inserted[0].node["settings"]["taskSequence"] == "Apply drivers [PS100020]"


# -- properties over generated manifests ---------------------------------------------------------------

_times = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0))
_time_text = st.tuples(_times, st.booleans()).map(lambda t: t[0].isoformat() + ("Z" if t[1] else ""))
_weekday = st.sampled_from(["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"])
_recurrence = st.one_of(
    st.none(),
    st.sampled_from([{"days": 3}, {"days": 1}, {"hours": 4}, {"minutes": 45}]).map(lambda i: {"interval": i}),
    st.builds(lambda d, n: {"weekly": {"day": d, "everyWeeks": n}}, _weekday, st.integers(1, 4)),
    st.builds(lambda d, n: {"monthlyByDate": {"day": d, "everyMonths": n}}, st.integers(0, 31), st.integers(1, 12)),
    st.builds(lambda d, w, n: {"monthlyByWeekday": {"day": d, "week": w, "everyMonths": n}}, _weekday,
              st.sampled_from(["First", "Second", "Third", "Fourth", "Last"]), st.integers(1, 12)),
)
_timed = st.builds(lambda at, rec: {"at": at, **({"recurrence": rec} if rec else {})}, _time_text, _recurrence)
_events = st.lists(st.sampled_from(["AsSoonAsPossible", "Logon", "Logoff"]), unique=True, max_size=3)


@st.composite
def _specs(draw: st.DrawFn) -> dict[str, Any]:
    timed = draw(st.lists(_timed, max_size=4, unique_by=lambda a: json.dumps(a, sort_keys=True)))
    assignments = timed + [{"event": e} for e in draw(_events)]
    draw(st.randoms()).shuffle(assignments)
    # Both with an offset or both without: the model cannot order a naive time against an aware one.
    zone = draw(st.sampled_from(["", "Z"]))
    available = draw(st.none() | _times.map(lambda d: d.isoformat() + zone))
    expires = draw(st.none() | _times.map(lambda d: d.isoformat() + zone))
    if available and expires and _instant(expires) <= _instant(available):
        expires = None
    return {
        "collection": draw(st.sampled_from(["OSD Pilot", "OSD Lab", "All Systems"])),
        "comment": draw(st.sampled_from(["", "Pilot ring"])),
        "purpose": draw(st.sampled_from(["Available", "Required"])),
        "availableTo": draw(st.sampled_from(["Clients", "ClientsMediaAndPxe", "MediaAndPxe", "MediaAndPxeHidden"])),
        "sendWakeUpPackets": draw(st.booleans()),
        "allowMeteredDownloadAfterDeadline": draw(st.booleans()),
        "schedule": {"availableAt": available, "expiresAt": expires, "utc": draw(st.booleans()),
                     "assignments": assignments,
                     "rerun": draw(st.sampled_from(["Never", "Always", "IfFailed", "IfSucceeded"]))},
        "userExperience": {k: draw(st.booleans()) for k in (
            "allowRunIndependently", "showProgress", "installOutsideMaintenanceWindow",
            "restartOutsideMaintenanceWindow", "allowOnInternetClients")},
        "alerts": {"onFailurePercent": draw(st.none() | st.integers(0, 100)),
                   "onSuccessBelowPercent": draw(st.none() | st.integers(0, 100)),
                   "onSuccessCheckAfter": draw(st.none() | _time_text)},
        "content": {"access": draw(st.sampled_from(["DownloadWhenNeeded", "DownloadAllBeforeStart",
                                                    "RunFromDistributionPoint"])),
                    "allowRemoteFallback": draw(st.booleans()),
                    "allowDefaultSiteBoundaryGroup": draw(st.booleans())},
    }


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=None)


def _site_index(assignments: list[dict[str, Any]], index: int) -> int:
    """Where assignment ``index`` of a manifest is in the site's order: timed ones, then the events."""
    timed = [a for a in assignments if "event" not in a]
    if "event" not in assignments[index]:
        return sum(1 for a in assignments[:index] if "event" not in a)
    order = ["AsSoonAsPossible", "Logon", "Logoff"]
    events = sorted((a["event"] for a in assignments if "event" in a), key=order.index)
    return len(timed) + events.index(assignments[index]["event"])


def _flip(value: Any, choices: list[Any]) -> Any:
    return next(c for c in choices if c != value)


def _like(other: str | None, time: str) -> str:
    """``time`` with an offset when ``other`` has one: a schedule's two times are both naive or both not."""
    return time + "Z" if other and other.endswith("Z") else time


def _toggle(section: str, key: str) -> Any:
    return lambda spec, draw: spec[section].update({key: not spec[section][key]})


#: One manifest field each: its path in a change, and how to change it.
_FIELDS: dict[str, Any] = {
    "collection": lambda s, d: s.update(collection=_flip(s["collection"], ["OSD Pilot", "OSD Lab"])),
    "comment": lambda s, d: s.update(comment=s["comment"] + " (edited)"),
    "purpose": lambda s, d: s.update(purpose=_flip(s["purpose"], ["Available", "Required"])),
    "availableTo": lambda s, d: s.update(availableTo=_flip(s["availableTo"], d(st.permutations(
        ["Clients", "ClientsMediaAndPxe", "MediaAndPxe", "MediaAndPxeHidden"])))),
    "sendWakeUpPackets": lambda s, d: s.update(sendWakeUpPackets=not s["sendWakeUpPackets"]),
    "allowMeteredDownloadAfterDeadline": lambda s, d: s.update(
        allowMeteredDownloadAfterDeadline=not s["allowMeteredDownloadAfterDeadline"]),
    "schedule.availableAt": lambda s, d: s["schedule"].update(
        availableAt=None if s["schedule"]["availableAt"] else _like(s["schedule"]["expiresAt"], "2025-06-01T08:00:00")),
    "schedule.expiresAt": lambda s, d: s["schedule"].update(
        expiresAt=None if s["schedule"]["expiresAt"] else _like(s["schedule"]["availableAt"], "2030-01-01T00:00:00")),
    "schedule.utc": lambda s, d: s["schedule"].update(utc=not s["schedule"]["utc"]),
    "schedule.rerun": lambda s, d: s["schedule"].update(rerun=_flip(s["schedule"]["rerun"], ["Never", "Always"])),
    **{f"userExperience.{k}": _toggle("userExperience", k) for k in (
        "allowRunIndependently", "showProgress", "installOutsideMaintenanceWindow",
        "restartOutsideMaintenanceWindow", "allowOnInternetClients")},
    "alerts.onFailurePercent": lambda s, d: s["alerts"].update(
        onFailurePercent=_flip(s["alerts"]["onFailurePercent"], [None, 50])),
    "alerts.onSuccessBelowPercent": lambda s, d: s["alerts"].update(
        onSuccessBelowPercent=_flip(s["alerts"]["onSuccessBelowPercent"], [None, 50])),
    "alerts.onSuccessCheckAfter": lambda s, d: s["alerts"].update(
        onSuccessCheckAfter=None if s["alerts"]["onSuccessCheckAfter"] else "2026-06-01T08:00:00"),
    "content.access": lambda s, d: s["content"].update(
        access=_flip(s["content"]["access"], ["DownloadWhenNeeded", "RunFromDistributionPoint"])),
    "content.allowRemoteFallback": lambda s, d: s["content"].update(
        allowRemoteFallback=not s["content"]["allowRemoteFallback"]),
    "content.allowDefaultSiteBoundaryGroup": lambda s, d: s["content"].update(
        allowDefaultSiteBoundaryGroup=not s["content"]["allowDefaultSiteBoundaryGroup"]),
}


def _mutate_assignment(spec: dict[str, Any], draw: st.DrawFn) -> str:
    """Edit, add or remove one assignment schedule; returns the path of the change it must give."""
    assignments = spec["schedule"]["assignments"]
    timed = [i for i, a in enumerate(assignments) if "event" not in a]
    missing = [e for e in ("AsSoonAsPossible", "Logon", "Logoff") if {"event": e} not in assignments]
    how = draw(st.sampled_from(["edit", "add", "remove", "event"]))
    if how == "edit" and timed:
        i = draw(st.sampled_from(timed))
        assignments[i] = draw(_timed.filter(lambda a: a not in assignments))
        return f"schedule.assignments[{_site_index(assignments, i)}]"
    if how == "event" and missing:
        i = draw(st.integers(0, len(assignments)))
        assignments.insert(i, {"event": draw(st.sampled_from(missing))})
        return f"schedule.assignments[{_site_index(assignments, i)}]"
    if how == "remove" and assignments:
        i = draw(st.integers(0, len(assignments) - 1))
        path = f"schedule.assignments[{_site_index(assignments, i)}]"
        del assignments[i]
        return path
    new = draw(_timed.filter(lambda a: a not in assignments))
    assignments.append(new)
    return f"schedule.assignments[{_site_index(assignments, len(assignments) - 1)}]"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_specs(), data=st.data())
def test_a_manifest_equals_itself_and_one_edited_field_is_exactly_one_change_at_its_path(
        spec: dict[str, Any], data: st.DataObject) -> None:
    record = _record(spec)
    assert deployment_changes(record, _record(copy.deepcopy(spec)), LIVE) == ()
    terms = deployment_terms(record, LIVE)
    assert ADVERT_FLAGS not in terms and REMOTE_CLIENT_FLAGS not in terms  # the decoding accounts for every bit

    edited = copy.deepcopy(spec)
    field = data.draw(st.sampled_from([*_FIELDS, "schedule.assignments", "taskSequence"]))
    ts_id = TS_ID
    if field == "schedule.assignments":
        path = _mutate_assignment(edited, data.draw)
    elif field == "taskSequence":
        path, ts_id = field, "PS100020"
    else:
        path = field
        _FIELDS[field](edited, data.draw)
    schedule = edited["schedule"]
    assume(not (schedule["availableAt"] and schedule["expiresAt"]
                and _instant(schedule["expiresAt"]) <= _instant(schedule["availableAt"])))
    changes = deployment_changes(record, _record(edited, ts_id), LIVE)
    assert [c.path for c in changes] == [path], changes
    assert changes[0].before != changes[0].after


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=_specs(), second=_specs())
def test_no_schedule_token_or_odata_type_ever_reaches_a_change(first: dict[str, Any], second: dict[str, Any]) -> None:
    changes = deployment_changes(_record(first), _record(second, "PS100020"), LIVE)
    assert changes or first == second
    manifest_paths = {*_FIELDS, "taskSequence"}
    for change in changes:
        assert change.path in manifest_paths or re.fullmatch(r"schedule\.assignments\[\d+\]", change.path), change
        for value in (change.path, change.before, change.after):
            assert not RAW.search(json.dumps(value)), change


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_specs())
def test_export_writes_back_the_manifest_that_reads_the_same(spec: dict[str, Any]) -> None:
    """export.deployment_manifest decodes the flags as this module does: what it writes builds the same record,
    and it leaves nothing out of a record a manifest made, but for a setting a console rule refuses (validate
    refuses such a manifest, so it is never applied; a site could still hold one)."""
    record = _record(spec)
    exported, left_out = deployment_manifest(record, "win11-pilot", "win11-install", LIVE)
    broken = [".".join(map(str, p.path[1:])) for p in examine(_manifest(spec))[1] if p.severity == "error"]
    assert [item.split(" ", 1)[0] for item in left_out] == broken
    if broken:
        return
    again = TaskSequenceDeployment.model_validate(exported)
    collection = Resolver(LIVE).collection(again.spec.collection, ("spec", "collection"))
    assert deployment_changes(record, deployment_record(again, TS_ID, TS_NAME, collection), LIVE) == ()
