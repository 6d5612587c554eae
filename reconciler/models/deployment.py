"""The TaskSequenceDeployment kind: an ``SMS_Advertisement`` of a task sequence to a collection."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.models.base import API_VERSION, CollectionRefOrName, Metadata, Model, ScheduleTime, Text


class Purpose(StrEnum):
    AVAILABLE = "Available"
    REQUIRED = "Required"


class AvailableTo(StrEnum):
    CLIENTS = "Clients"
    CLIENTS_MEDIA_AND_PXE = "ClientsMediaAndPxe"
    MEDIA_AND_PXE = "MediaAndPxe"
    MEDIA_AND_PXE_HIDDEN = "MediaAndPxeHidden"


MEDIA_AND_PXE = frozenset({AvailableTo.CLIENTS_MEDIA_AND_PXE, AvailableTo.MEDIA_AND_PXE,
                           AvailableTo.MEDIA_AND_PXE_HIDDEN})


class Rerun(StrEnum):
    NEVER = "Never"
    ALWAYS = "Always"
    IF_FAILED = "IfFailed"
    IF_SUCCEEDED = "IfSucceeded"


class Weekday(StrEnum):
    SUNDAY = "Sunday"
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"


class WeekOrder(StrEnum):
    FIRST = "First"
    SECOND = "Second"
    THIRD = "Third"
    FOURTH = "Fourth"
    LAST = "Last"


class Event(StrEnum):
    AS_SOON_AS_POSSIBLE = "AsSoonAsPossible"
    LOGON = "Logon"
    LOGOFF = "Logoff"


class Interval(Model):
    """SMS_ST_RecurInterval: every N days, hours or minutes (one of them)."""

    days: int | None = Field(default=None, ge=1, le=31)
    hours: int | None = Field(default=None, ge=1, le=23)
    minutes: int | None = Field(default=None, ge=1, le=59)

    @model_validator(mode="after")
    def _one(self) -> Interval:
        if sum(v is not None for v in (self.days, self.hours, self.minutes)) != 1:
            raise PydanticCustomError("interval", "give exactly one of days (1-31), hours (1-23) or minutes (1-59)")
        return self


class Weekly(Model):
    """SMS_ST_RecurWeekly: on a weekday every 1-4 weeks."""

    day: Weekday
    every_weeks: int = Field(default=1, ge=1, le=4)


class MonthlyByDate(Model):
    """SMS_ST_RecurMonthlyByDate: day 1-31 of the month, or 0 for the last day, every 1-12 months."""

    day: int = Field(ge=0, le=31, description="Day of the month; 0 is the last day.")
    every_months: int = Field(default=1, ge=1, le=12)


class MonthlyByWeekday(Model):
    """SMS_ST_RecurMonthlyByWeekday: e.g. the second Tuesday, every 1-12 months."""

    day: Weekday
    week: WeekOrder
    every_months: int = Field(default=1, ge=1, le=12)


class Recurrence(Model):
    interval: Interval | None = None
    weekly: Weekly | None = None
    monthly_by_date: MonthlyByDate | None = None
    monthly_by_weekday: MonthlyByWeekday | None = None

    @model_validator(mode="after")
    def _one(self) -> Recurrence:
        given = [v for v in (self.interval, self.weekly, self.monthly_by_date, self.monthly_by_weekday) if v]
        if len(given) != 1:
            raise PydanticCustomError(
                "recurrence", "give exactly one of interval, weekly, monthlyByDate or monthlyByWeekday"
            )
        return self


class Assignment(Model):
    """One assignment schedule: a time (optionally recurring) or an event."""

    at: ScheduleTime | None = Field(default=None, description="Start time (SMS_ST_NonRecurring when no recurrence).")
    recurrence: Recurrence | None = None
    event: Event | None = None

    @model_validator(mode="after")
    def _time_or_event(self) -> Assignment:
        if (self.at is None) == (self.event is None):
            raise PydanticCustomError("assignment", "give either 'at' (a time) or 'event', not both or neither")
        if self.recurrence is not None and self.at is None:
            raise PydanticCustomError("assignment", "a recurrence needs a start time 'at'")
        return self


#: A manifest lists at most this many assignments, timed and events together.
MAX_ASSIGNMENTS = 15


class Schedule(Model):
    """When it is available and expires (both times with an offset or both without) and when it runs."""

    available_at: ScheduleTime | None = Field(
        default=None, description="PresentTime: available from. With an offset only if expiresAt has one too.")
    expires_at: ScheduleTime | None = Field(
        default=None, description="ExpirationTime: deployment expires; later than availableAt, and written like "
                                  "it: both with an offset (Z, +02:00) or both without.")
    utc: bool = Field(default=False, description="Times are UTC (true) or the client's local time (false).")
    assignments: list[Assignment] = Field(default_factory=list, max_length=MAX_ASSIGNMENTS,
                                          description="At most 15 schedule tokens (AssignedSchedule).")
    rerun: Rerun = Rerun.IF_FAILED

    @field_validator("expires_at")
    @classmethod
    def _after_available(cls, expires: datetime | None, info: ValidationInfo) -> datetime | None:
        available = info.data.get("available_at")
        if expires is None or available is None:
            return expires
        context = {"expires": expires.isoformat(), "available": available.isoformat()}
        # ConfigMgr keeps both times under one setting, UTC (IsGMT) or the client's local time: a time without
        # an offset on a client-local schedule is no instant until a client reads it, so it cannot be ordered
        # against one with an offset. Rather than guess, a mixed pair is refused, naming both values.
        if (expires.utcoffset() is None) != (available.utcoffset() is None):
            mine, theirs = ("with", "without one") if expires.utcoffset() is not None else ("without", "with one")
            raise PydanticCustomError(
                "schedule_mixed_offsets",
                f"is {{expires}}, {mine} an offset, and availableAt is {{available}}, {theirs}; they cannot be "
                "ordered: write both with an offset or both without", context)
        if expires <= available:
            raise PydanticCustomError("schedule_order",
                                      "is {expires}; it must be later than availableAt {available}", context)
        return expires


class UserExperience(Model):
    allow_run_independently: bool = Field(default=False, description="Users can run it independently of assignments.")
    show_progress: bool = Field(default=True, description="Show task sequence progress.")
    install_outside_maintenance_window: bool = False
    restart_outside_maintenance_window: bool = False
    allow_on_internet_clients: bool = Field(default=False, description="Allow for clients on the internet.")


class Alerts(Model):
    on_failure_percent: int | None = Field(default=None, ge=0, le=100,
                                           description="Alert when failures exceed this percentage.")
    on_success_below_percent: int | None = Field(default=None, ge=0, le=100,
                                                 description="Alert when success stays below this percentage…")
    on_success_check_after: ScheduleTime | None = Field(default=None, description="…after this time.")


class ContentAccess(StrEnum):
    DOWNLOAD_WHEN_NEEDED = "DownloadWhenNeeded"
    DOWNLOAD_ALL_BEFORE_START = "DownloadAllBeforeStart"
    RUN_FROM_DISTRIBUTION_POINT = "RunFromDistributionPoint"


class Content(Model):
    access: ContentAccess = ContentAccess.DOWNLOAD_WHEN_NEEDED
    allow_remote_fallback: bool = Field(default=False, description="Use a remote distribution point when "
                                                                   "no local one has the content.")
    allow_default_site_boundary_group: bool = Field(default=False,
                                                    description="Fall back to the default site boundary group.")


class HighRisk(Model):
    acknowledge: bool = Field(default=False, description="Acknowledge a high-risk deployment to a large "
                                                        "collection (checked against the live member count).")


class TaskSequenceDeploymentSpec(Model):
    task_sequence: str = Field(description="metadata.name of the TaskSequence to deploy.")
    collection: CollectionRefOrName
    comment: Text = ""
    purpose: Purpose = Purpose.AVAILABLE
    available_to: AvailableTo = AvailableTo.CLIENTS
    send_wake_up_packets: bool = False
    allow_metered_download_after_deadline: bool = Field(
        default=False, description="Clients on metered networks download content after the deadline.")
    schedule: Schedule = Field(default_factory=Schedule)
    user_experience: UserExperience = Field(default_factory=UserExperience)
    alerts: Alerts = Field(default_factory=Alerts)
    content: Content = Field(default_factory=Content)
    high_risk: HighRisk = Field(default_factory=HighRisk)

    # The console's cross-field rules (wake-up only for Required, no download-all for media and PXE) are in
    # reconciler.rules, which reports each with the exact field, all of them at once.


class TaskSequenceDeployment(Model):
    """A deployment (SMS_Advertisement) of a task sequence to one collection: purpose, schedule, user experience."""

    api_version: Literal["configmgr.gitops.io/v1alpha1"] = API_VERSION
    kind: Literal["TaskSequenceDeployment"] = "TaskSequenceDeployment"
    metadata: Metadata
    spec: TaskSequenceDeploymentSpec
