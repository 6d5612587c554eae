"""What the controller tells people: a change of state, with the objects, the commit and the reason.

A notice is made only when something changed state between two ticks (level-triggered ticks repeat the
same finding every interval, and a page every five minutes teaches people to ignore it): an object that was
synced is now drifted, a tick failed or was blocked after one that was not, the site recovered, or a
high-risk deployment was applied. Notices carry names, field paths and counts, never a value: a secret could
be one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: 1: the first version of the generic webhook's JSON document.
NOTICE_FORMAT_VERSION = "1"


class Event(StrEnum):
    DRIFTED = "drifted"
    FAILED = "failed"
    BLOCKED = "blocked"
    RECOVERED = "recovered"
    HIGH_RISK_APPLIED = "high-risk-applied"


_TITLES = {
    Event.DRIFTED: "drifted from Git",
    Event.FAILED: "reconciling failed",
    Event.BLOCKED: "the plan is blocked",
    Event.RECOVERED: "recovered: the site is reconciled again",
    Event.HIGH_RISK_APPLIED: "a high-risk deployment was applied",
}


@dataclass(frozen=True, slots=True)
class NoticeObject:
    """One object a notice is about: ``TaskSequence/windows-11-install``, its state and what changed."""

    key: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    event: Event
    site: str
    reason: str
    objects: tuple[NoticeObject, ...] = ()
    ref: str | None = None
    commit: str | None = None
    link: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def title(self) -> str:
        count = f" ({len(self.objects)} object(s))" if self.objects else ""
        return f"ConfigMgr site {self.site}: {_TITLES[self.event]}{count}"

    def lines(self, limit: int = 20) -> list[str]:
        """The message as lines of text: the reason, the commit, each object (at most ``limit``), the link."""
        out = [self.reason]
        if self.commit or self.ref:
            out.append(f"commit: {(self.commit or '')[:12] or '-'}" + (f" on {self.ref}" if self.ref else ""))
        for item in self.objects[:limit]:
            out.append(f"- {item.key}: {item.status}" + (f" ({item.detail})" if item.detail else ""))
        if len(self.objects) > limit:
            out.append(f"- … and {len(self.objects) - limit} more")
        if self.link:
            out.append(f"web view: {self.link}")
        return out

    def text(self) -> str:
        return "\n".join([self.title, *self.lines()])

    def to_json(self) -> dict[str, Any]:
        """The generic webhook's document (``format_version`` 1); every key snake_case, as the CLI's JSON."""
        return {"format_version": NOTICE_FORMAT_VERSION, "event": self.event.value, "site": self.site,
                "title": self.title, "reason": self.reason, "ref": self.ref, "commit": self.commit,
                "objects": [{"object": o.key, "status": o.status, "detail": o.detail} for o in self.objects],
                "link": self.link, "at": round(self.at, 3)}


#: Tick outcomes that mean the site is being reconciled (or, without self-heal, reported) as it should be.
_HEALTHY = ("ok", "drift")
_BROKEN = ("error", "failed", "stopped")


def notices_for(previous_tick: dict[str, Any] | None, previous_objects: dict[str, str] | None, outcome: str,
                objects: dict[str, str], *, site: str, ref: str | None, commit: str | None, error: str | None,
                details: dict[str, str] | None = None, high_risk: list[str] | None = None,
                drifted: list[str] | None = None, link: str | None = None) -> list[Notice]:
    """The notices one tick makes, from the previous tick's outcome and object states and this tick's.

    ``drifted`` names the objects the tick's plan found drifted (default: those ``objects`` calls drifted);
    self-heal reverts them in the same tick, so their final state is synced and only the plan saw the drift.
    An object already drifted at the previous tick is no news. A skipped or standby tick makes none: it looked
    at nothing new.
    """
    if outcome in ("skipped", "standby"):
        return []
    details = details or {}
    before = (previous_tick or {}).get("outcome")
    previous_objects = previous_objects or {}
    notices: list[Notice] = []

    def make(event: Event, reason: str, items: list[NoticeObject]) -> None:
        notices.append(Notice(event, site, reason, tuple(items), ref, commit, link))

    found = drifted if drifted is not None else [k for k, s in objects.items() if s == "drifted"]
    news = [NoticeObject(k, "drifted", details.get(k, "")) for k in sorted(found)
            if previous_objects.get(k) != "drifted"]
    if news:
        healed = not any(objects.get(item.key) == "drifted" for item in news)
        make(Event.DRIFTED, "changed on the site outside Git" + ("; reverted (self-heal)" if healed and outcome == "ok"
                                                                  else "; not reverted (self-heal is off)" if not healed
                                                                  else f"; the tick ended {outcome}"), news)
    if outcome in _BROKEN and before not in _BROKEN:
        failed = [NoticeObject(k, s, details.get(k, "")) for k, s in sorted(objects.items()) if s == "failed"]
        make(Event.FAILED, error or f"the tick ended {outcome}", failed)
    if outcome == "blocked" and before != "blocked":
        blocked = [NoticeObject(k, s, details.get(k, "")) for k, s in sorted(objects.items()) if s == "blocked"]
        make(Event.BLOCKED, error or "the plan has blocked items: nothing is applied until they are fixed", blocked)
    if outcome in _HEALTHY and (before in _BROKEN or before == "blocked"):
        make(Event.RECOVERED, f"the last tick ended {outcome} after {before}", [])
    for item in high_risk or []:
        key, _, detail = item.partition(": ")
        make(Event.HIGH_RISK_APPLIED, "applied a deployment the site's verification rules call high risk",
             [NoticeObject(key, "applied", detail)])
    return notices
