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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
#: SMS_ST_RecurMonthlyByWeekday.WeekOrder: 0 is the last week of the month, 1-4 the first to the fourth.
WEEK_ORDER = {0: "last", 1: "first", 2: "second", 3: "third", 4: "fourth"}

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


def _weekday(value: Any) -> str:
    n = _number(value)
    if n is not None and 1 <= n <= 7:
        return WEEKDAYS[n - 1]
    return f"weekday {value!r} (not a day of the week)"


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
        order = _number(token.get("WeekOrder"))
        week = WEEK_ORDER.get(order) if order is not None else None
        week = week or f"week {token.get('WeekOrder')!r} (not a week of the month)"
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
