"""What the state store holds and hands out: applied fingerprints, journal entries, unfinished intents, leases."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PendingIntent:
    """An action whose intent was journaled and whose outcome was not: the run was killed during it.

    ``match`` is what the action's creation is found by (a task sequence's console name, a deployment's
    target, a variable set's target), ``existing`` the live objects that already matched when the intent
    was written, ``created`` the ID the site returned (journaled right after the create).
    """

    object: str
    plan_id: str
    action: str
    at: float
    match: str | None = None
    existing: tuple[str, ...] | None = None
    created: str | None = None

    @classmethod
    def from_row(cls, obj: str, plan_id: str, action: str, at: float, detail: str) -> PendingIntent:
        data = json.loads(detail or "{}")
        existing = data.get("existing")
        return cls(obj, plan_id, action, at, data.get("match"),
                   tuple(existing) if existing is not None else None, data.get("created"))

    def made(self, match: str, candidates: Iterable[str]) -> str | None:
        """The one candidate this intent created, or None when that cannot be told.

        Only an object that matches what the intent was creating and was not there when the intent was
        written qualifies (exactly the ID journaled after the create, once known); an intent that recorded
        nothing to recognise its creation by (a delete, an update, an older version's row) takes over nothing.
        """
        if self.match is None or self.existing is None or self.match != match:
            return None
        candidates = list(candidates)
        if self.created is not None:
            return self.created if self.created in candidates else None
        fresh = [c for c in candidates if c not in self.existing]
        return fresh[0] if len(fresh) == 1 else None


@dataclass(frozen=True, slots=True)
class Applied:
    desired_fp: str
    live_fp: str
    secrets: dict[str, str]
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    plan_id: str
    at: float
    phase: str
    action: str
    object: str
    detail: dict[str, Any]
    outcome: str | None
    error: str | None


#: What a lease's ``kind`` means, in the words of the messages that name a holder.
LEASE_KINDS = {"apply": "a one-shot apply", "controller": "a controller"}


@dataclass(frozen=True, slots=True)
class Lease:
    """The one writer of a site: which process (``host:pid``), what it is, since when, until when.

    The ID is what `reconcile unlock` takes: a person must name the very lease they break, so a lease
    taken since they looked is never broken by mistake.
    """

    site: str
    lease_id: str
    holder: str
    kind: str
    taken: float
    renewed: float
    expires: float

    @property
    def host(self) -> str:
        return self.holder.rpartition(":")[0]

    @property
    def pid(self) -> str:
        return self.holder.rpartition(":")[2]

    def describe(self, now: float | None = None) -> str:
        """``a one-shot apply (pid 4242 on build-01) since 2026-05-01 10:00:00 UTC, renewed 3 s ago``."""
        now = time.time() if now is None else now
        what = LEASE_KINDS.get(self.kind, "a writer")
        text = f"{what} (pid {self.pid} on {self.host})"
        if self.taken:
            text += f" since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(self.taken))}"
        if self.renewed:
            text += f", renewed {max(now - self.renewed, 0):.0f} s ago"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"id": self.lease_id, "holder": self.holder, "host": self.host, "pid": self.pid, "kind": self.kind,
                "taken": self.taken, "renewed": self.renewed, "expires": self.expires}


def who() -> str:
    """``user@host``: who applied, as the apply record and the audit of a high-risk deployment name it."""
    try:
        user = os.getlogin()
    except OSError:
        user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{os.uname().nodename}" if hasattr(os, "uname") else user
