"""What the state store holds and hands out: applied fingerprints, journal entries, unfinished intents, leases."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.actor import resolve_actor


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
    #: the apply this entry belongs to (None for entries written before applies had IDs)
    apply_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the audit trail: who did what to the site, or tried to and was refused, and when.

    ``event`` is ``apply`` (one per apply: provenance, plan, counts), ``action`` (one per action of an apply:
    its field and step changes, secrets as ``(sensitive)``), ``high-risk`` (an acknowledged high-risk
    deployment), ``refused`` (a blocked plan, a refused saved plan, a lease or secrets refusal), ``pause``
    and ``resume`` (the controller). ``detail`` holds no secret value: changes are masked before they get here.
    """

    at: float
    event: str
    actor: str
    apply_id: str | None = None
    plan_id: str | None = None
    object: str | None = None
    outcome: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit events to read: since a time, about one object (``Kind/name``), of some events, of one apply.

    An ``object`` query also returns the ``apply`` events of the applies that touched it, so each action
    is read with who made it and from which commit.
    """

    since: float | None = None
    object: str | None = None
    events: tuple[str, ...] = ()
    apply_id: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """A paused controller: it ticks and reports drift but applies nothing until resumed."""

    site: str
    actor: str
    at: float
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site, "by": self.actor, "at": self.at, "reason": self.reason}


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
    #: the fencing token: a number that grows with every new grant of a site's lease (never on a renewal); the
    #: store refuses a write from a holder whose token is no longer the lease's
    token: int = 0

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
                "taken": self.taken, "renewed": self.renewed, "expires": self.expires, "token": self.token}


def new_apply_id() -> str:
    """An apply's own ID (``ap-`` and 10 hex digits): unlike a plan's ID, a digest of its content, it never repeats."""
    return f"ap-{secrets.token_hex(5)}"


def who() -> str:
    """Who acts, when the caller was not told (``RECONCILE_ACTOR``, a CI's variables, the OS user): never a
    silent ``unknown@host`` (see :func:`reconciler.actor.resolve_actor`)."""
    return str(resolve_actor())
