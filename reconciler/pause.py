"""Pausing a site's controllers: they tick and report drift, apply nothing, and leave the lease to a person.

A self-healing controller reverts any change that is not in its branch, a rollback included. Pausing is
how a person takes the site over for a while (a rollback, a change freeze, an incident) without stopping
the controllers' processes: the pause is a row in the state store, read on every tick by every
controller of the site, on any host, and recorded in the audit trail with who, when and why.
"""

from __future__ import annotations

import time

from reconciler.actor import Actor
from reconciler.state import AuditEvent, Pause, StateBackend

#: A reason is a sentence, not a document.
MAX_REASON = 500


def _reason(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "…"


def pause_controllers(state: StateBackend, site: str, actor: Actor, reason: str = "") -> Pause:
    """Pause the controllers of ``site``, recorded in the audit trail."""
    pause = state.pause(site, str(actor), _reason(reason))
    state.record_audit([AuditEvent(at=pause.at, event="pause", actor=str(actor),
                                   detail={"site": site, "reason": pause.reason, "actor": actor.to_json()})])
    return pause


def resume_controllers(state: StateBackend, site: str, actor: Actor, reason: str = "") -> Pause | None:
    """Lift the pause of ``site``; the pause that was lifted, or None when there was none (nothing is recorded)."""
    lifted = state.resume(site)
    if lifted is not None:
        state.record_audit([AuditEvent(at=time.time(), event="resume", actor=str(actor),
                                       detail={"site": site, "reason": _reason(reason), "paused_by": lifted.actor,
                                               "paused_at": lifted.at, "actor": actor.to_json()})])
    return lifted
