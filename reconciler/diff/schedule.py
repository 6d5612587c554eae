"""Schedule times and ConfigMgr schedule tokens, said the way the manifest means them.

A deployment's ``AssignedSchedule`` holds ``SMS_ST_*`` tokens (``{"@odata.type":
"#AdminService.SMS_ST_RecurWeekly", "Day": 7, "ForNumberOfWeeks": 2, …}``). A plan that printed them
would make a reviewer decode ``Day: 6 → 7`` in their head; this module says ``weekly on Saturday every
2 weeks from 2026-12-05 20:00 UTC`` instead, and never lets a token name or ``@odata.type`` through.

Two things are kept apart for every value: the *key* that is compared (what the site holds, exactly)
and the *text* that is shown. The text leaves out what does not help a reader (seconds when they are
zero, a ``Z`` on a UTC schedule); when two different keys would read the same, :func:`time_text` and
:func:`assignment_phrase` are asked again with ``exact=True`` and show the times as ISO text, so a
change is never shown as ``x → x``.

The same decoding turns a token back into the assignment a manifest writes (:func:`token_assignment`, for
export), and says what of a token no manifest can write, so that export never writes a different
schedule without saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from reconciler.errors import shorten
from reconciler.models.deployment import Assignment, Weekday, WeekOrder

#: SMS_ST_RecurWeekly / RecurMonthlyByWeekday.Day: 1 is Sunday, 7 Saturday.
WEEKDAYS = tuple(day.value for day in Weekday)
#: SMS_ST_RecurMonthlyByWeekday.WeekOrder: 0 is the last week of the month, 1-4 the first to the fourth.
WEEK_ORDERS = {0: WeekOrder.LAST, 1: WeekOrder.FIRST, 2: WeekOrder.SECOND, 3: WeekOrder.THIRD, 4: WeekOrder.FOURTH}
WEEK_ORDER = {n: order.value.lower() for n, order in WEEK_ORDERS.items()}

#: The token kinds the manifest can write, by the part of the class name after ``SMS_ST_``.
NON_RECURRING, INTERVAL, WEEKLY = "NonRecurring", "RecurInterval", "RecurWeekly"
MONTHLY_BY_DATE, MONTHLY_BY_WEEKDAY = "RecurMonthlyByDate", "RecurMonthlyByWeekday"

#: The fields each token kind holds besides StartTime and IsGMT, with the value a missing field means.
_FIELDS: dict[str, dict[str, Any]] = {
    NON_RECURRING: {},
    INTERVAL: {"DaySpan": 0, "HourSpan": 0, "MinuteSpan": 0},
    WEEKLY: {"Day": None, "ForNumberOfWeeks": 1},
    MONTHLY_BY_DATE: {"MonthDay": None, "ForNumberOfMonths": 1},
    MONTHLY_BY_WEEKDAY: {"Day": None, "WeekOrder": None, "ForNumberOfMonths": 1},
}
#: Every SMS_ST_* token also has a duration (how long the schedule window stays open); the manifest
#: cannot set one, ConfigMgr writes 0, and a console-made one is shown so that it is never hidden.
_DURATIONS = {"DayDuration": "day", "HourDuration": "hour", "MinuteDuration": "minute"}


def parse_token(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """A token as the record holds it (canonical JSON text), or already a mapping."""
    if isinstance(text, Mapping):
        return dict(text)
    try:
        value = json.loads(text)
    except ValueError:
        return {"": str(text)}  # not JSON: kept whole, so it still differs from anything else
    return value if isinstance(value, dict) else {"": value}


def token_kind(token: Mapping[str, Any]) -> str:
    """``RecurWeekly`` from ``#AdminService.SMS_ST_RecurWeekly`` (AdminService) or ``SMS_ST_RecurWeekly``
    (``__CLASS`` over WMI); ``""`` when the token names no class."""
    name = str(token.get("@odata.type") or token.get("__CLASS") or "")
    return name.rsplit(".", 1)[-1].removeprefix("SMS_ST_")


# -- times ------------------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def time_key(value: Any) -> Any:
    """What is compared of a time: the wall clock as written and its offset (``None``: no offset).

    ``2026-12-05T20:00`` and ``2026-12-05T20:00:00`` are the same time; ``…T20:00:00Z`` is not the same
    as ``…T20:00:00`` (the site is sent a different value), and whether the schedule is UTC is a field
    of its own (``schedule.utc``), so it is no part of a time's key.
    """
    parsed = _parse_time(value)
    if parsed is None:
        return None if value is None else ("unreadable", str(value))
    offset = parsed.utcoffset()
    return (parsed.replace(tzinfo=None).isoformat(), None if offset is None else offset.total_seconds())


def _offset_text(offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def time_text(value: Any, utc: bool | None, *, exact: bool = False) -> str | None:
    """``2026-12-05 20:00 UTC`` or ``2026-12-05 20:00 (client local time)``; ``utc=None`` adds neither.

    An offset is shown when it says something: any offset on a client-local time, a non-zero one on a
    UTC schedule. ``exact`` shows the ISO text the site is sent instead (see the module's docstring).
    """
    if value is None:
        return None
    parsed = _parse_time(value)
    zone = "" if utc is None else " UTC" if utc else " (client local time)"
    if parsed is None:
        return f"{value}{zone}"
    if exact:
        return parsed.isoformat() + zone
    text = parsed.strftime("%Y-%m-%d %H:%M")
    if parsed.second or parsed.microsecond:
        text += parsed.strftime(":%S") + (f".{parsed.microsecond:06d}".rstrip("0") if parsed.microsecond else "")
    offset = parsed.utcoffset()
    if offset is not None and (offset or not utc):
        text += _offset_text(offset)
    return text + zone


# -- assignments ------------------------------------------------------------------------------------


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _every(count: Any, unit: str) -> str:
    """``every week``, ``every 2 weeks``."""
    n = _number(count)
    if n == 1:
        return f"every {unit}"
    return f"every {count} {unit}s"


def weekday(value: Any) -> str | None:
    """The manifest's weekday of a token's ``Day`` (1 Sunday … 7 Saturday); ``None`` for anything else
    (0, 9, ``"7"``, ``true``), which no manifest can write and no index may wrap around to a real day."""
    n = _number(value)
    return WEEKDAYS[n - 1] if n is not None and 1 <= n <= 7 else None


def week_order(value: Any) -> str | None:
    """The manifest's week of the month of a token's ``WeekOrder`` (0 Last, 1-4 First to Fourth), or ``None``."""
    n = _number(value)
    order = WEEK_ORDERS.get(n) if n is not None else None
    return order.value if order is not None else None


def _weekday(value: Any) -> str:
    return weekday(value) or f"weekday {value!r} (not a day of the week)"


def _span(token: Mapping[str, Any]) -> str:
    parts = []
    for field, unit in (("DaySpan", "day"), ("HourSpan", "hour"), ("MinuteSpan", "minute")):
        value = token.get(field) or 0
        if value:
            parts.append(unit if value == 1 else f"{value} {unit}s")
    return "every " + " ".join(parts) if parts else "every 0 minutes (no interval)"


def _known(kind: str) -> dict[str, Any]:
    return _FIELDS.get(kind, {})


def _extras(token: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Settings of a token the manifest cannot write: a duration, a field of another kind, another kind."""
    out = {}
    for key, value in token.items():
        if key in ("StartTime", "IsGMT") or key.startswith(("@odata.", "__")) or key in _known(kind):
            continue
        if key in _DURATIONS and not value:
            continue
        out[key] = value
    return out


def assignment_key(token: Mapping[str, Any], schedule_utc: bool) -> str:
    """What is compared of an assignment schedule: its kind, settings and start time.

    A token's own IsGMT counts only where it departs from the deployment's: a schedule turned from UTC
    to client local time is one ``schedule.utc`` change, not also a change of every assignment.
    """
    kind = token_kind(token)
    fields = {key: token.get(key, default) for key, default in _known(kind).items()}
    gmt = bool(token.get("IsGMT", schedule_utc))
    return json.dumps([kind, fields, _extras(token, kind), time_key(token.get("StartTime")),
                       None if gmt == schedule_utc else gmt], sort_keys=True, default=str)


def assignment_phrase(token: Mapping[str, Any], schedule_utc: bool, *, exact: bool = False) -> str:
    """One assignment schedule in words, e.g. ``weekly on Saturday every 2 weeks from 2026-12-05 20:00 UTC``.

    Covers every token kind the manifest can write (``once at``, ``every 3 days``, ``weekly on``,
    ``monthly on day 15``, ``monthly on the last Friday``), in UTC or client local time (the token's own
    IsGMT). Settings the manifest cannot write (a duration, an unknown kind) are added in words and
    values, so a change made in the console still shows; no token class name ever does.
    """
    kind = token_kind(token)
    utc = bool(token.get("IsGMT", schedule_utc))
    start = time_text(token.get("StartTime"), utc, exact=exact) or "(no start time)"
    if kind == NON_RECURRING:
        phrase = f"once at {start}"
    elif kind == INTERVAL:
        phrase = f"{_span(token)} from {start}"
    elif kind == WEEKLY:
        phrase = (f"weekly on {_weekday(token.get('Day'))} {_every(token.get('ForNumberOfWeeks', 1), 'week')} "
                  f"from {start}")
    elif kind == MONTHLY_BY_DATE:
        day = token.get("MonthDay")
        on = "the last day" if day == 0 else f"day {day}"
        phrase = f"monthly on {on} {_every(token.get('ForNumberOfMonths', 1), 'month')} from {start}"
    elif kind == MONTHLY_BY_WEEKDAY:
        week = week_order(token.get("WeekOrder"))
        week = week.lower() if week else f"week {token.get('WeekOrder')!r} (not a week of the month)"
        phrase = (f"monthly on the {week} {_weekday(token.get('Day'))} "
                  f"{_every(token.get('ForNumberOfMonths', 1), 'month')} from {start}")
    else:
        phrase = f"a schedule the manifest cannot write, from {start}"
    extras = _extras(token, kind)
    durations = [(_DURATIONS[k], v) for k, v in extras.items() if k in _DURATIONS]
    if durations:
        phrase += " for " + " ".join(unit if v == 1 else f"{v} {unit}s" for unit, v in durations)
    rest = {k: v for k, v in extras.items() if k not in _DURATIONS}
    if rest:
        phrase += " (not in the manifest: " + ", ".join(
            f"{k or 'value'} {json.dumps(v, sort_keys=True, default=str)}" for k, v in sorted(rest.items())) + ")"
    return phrase


#: Event assignments are not tokens: ConfigMgr keeps them as AdvertFlags bits.
EVENT_PHRASES = {"AsSoonAsPossible": "as soon as possible", "Logon": "at logon", "Logoff": "at logoff"}


# -- tokens back into the manifest's assignments (export) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenAssignment:
    """A schedule token as a manifest writes it.

    ``assignment`` is the manifest's mapping (``{at: …, recurrence: {weekly: {day: Saturday, everyWeeks:
    2}}}``), or ``None`` when no manifest can write the token at all (another kind of schedule, a day
    that is no weekday, a value out of the manifest's range). ``left_out`` says in words what of the
    token the assignment does not hold, one entry each; empty when the assignment is exact.
    """

    assignment: dict[str, Any] | None
    left_out: tuple[str, ...] = ()


def _count(token: Mapping[str, Any], field: str, default: Any) -> Any:
    """A token's number as the manifest would write it; anything else is kept so that validation names it."""
    value = token.get(field, default)
    return value if value is None or _number(value) is not None else str(value)


def _recurrence(token: Mapping[str, Any], kind: str) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest's recurrence of a token of a kind it writes, or why there is none."""
    if kind == NON_RECURRING:
        return None, None
    if kind == INTERVAL:
        spans = {unit: _count(token, field, 0) for unit, field in (
            ("days", "DaySpan"), ("hours", "HourSpan"), ("minutes", "MinuteSpan"))}
        return {"interval": {unit: value for unit, value in spans.items() if value}}, None
    if kind == MONTHLY_BY_DATE:
        return {"monthlyByDate": {"day": _count(token, "MonthDay", None),
                                  "everyMonths": _count(token, "ForNumberOfMonths", 1)}}, None
    day = weekday(token.get("Day"))
    if day is None:
        return None, f"Day {shorten(token.get('Day'))} is not a day of the week (1 Sunday … 7 Saturday)"
    if kind == WEEKLY:
        return {"weekly": {"day": day, "everyWeeks": _count(token, "ForNumberOfWeeks", 1)}}, None
    week = week_order(token.get("WeekOrder"))
    if week is None:
        return None, (f"WeekOrder {shorten(token.get('WeekOrder'))} is not a week of the month "
                      "(0 the last, 1-4 the first to the fourth)")
    return {"monthlyByWeekday": {"day": day, "week": week,
                                 "everyMonths": _count(token, "ForNumberOfMonths", 1)}}, None


def _invalid(exc: ValidationError) -> str:
    """Why the model refuses an assignment, by the manifest's field paths."""
    return "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {error['msg']}"
                     for error in exc.errors(include_url=False)[:3])


def token_assignment(token: Mapping[str, Any], schedule_utc: bool) -> TokenAssignment:
    """The assignment a manifest writes for a token of ``AssignedSchedule``, and what it leaves out.

    The inverse of the tokens ``normalize.deployment_record`` writes, decoded as :func:`assignment_phrase`
    decodes them (the same weekdays and weeks of the month): a token the manifest writes comes back
    exactly. A token it cannot write is never turned into another schedule: another kind (yearly, or
    none named), a ``Day`` or ``WeekOrder`` out of range, a start time that is no time, or a value the
    manifest's model refuses (an interval of days and hours, every 6 weeks) give no assignment. A token
    that is written but not whole (a duration, settings of no manifest field, a time zone of its own
    unlike the deployment's) gives the assignment and says what it leaves out.
    """
    kind = token_kind(token)
    phrase = shorten(assignment_phrase(token, schedule_utc), 160)
    if kind not in _FIELDS:
        return TokenAssignment(None, (f"assignment {phrase}: a kind of schedule the manifest cannot write",))
    start = token.get("StartTime")
    if _parse_time(start) is None:
        why = "it has no start time" if start is None else f"its start time {shorten(start)} is not a time"
        return TokenAssignment(None, (f"assignment {phrase}: {why}",))
    recurrence, why = _recurrence(token, kind)
    if why is not None:
        return TokenAssignment(None, (f"assignment {phrase}: {why}",))
    item: dict[str, Any] = {"at": start if isinstance(start, str) else start.isoformat()}
    if recurrence is not None:
        item["recurrence"] = recurrence
    try:
        Assignment.model_validate(item)
    except ValidationError as exc:
        return TokenAssignment(None, (f"assignment {phrase}: the manifest cannot write it ({_invalid(exc)})",))
    left_out = []
    extras = _extras(token, kind)
    if any(key in extras for key in _DURATIONS):
        left_out.append(f"the duration of assignment {phrase} (the manifest writes none)")
    rest = sorted(key for key in extras if key not in _DURATIONS)
    if rest:
        left_out.append(f"{', '.join(shorten(key, 30) for key in rest[:5])} of assignment {phrase} "
                        "(no manifest field holds them)")
    gmt = token.get("IsGMT", schedule_utc)
    if bool(gmt) != schedule_utc:
        zone = ("UTC", "client local time") if gmt else ("client local time", "UTC")
        left_out.append(f"the time zone of assignment {phrase}: {zone[0]} on the site, while a manifest's "
                        f"assignments follow schedule.utc ({zone[1]})")
    return TokenAssignment(item, tuple(left_out))
