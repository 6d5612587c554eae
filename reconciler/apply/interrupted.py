"""What an interrupted run created and did not record: how a later run tells it from anyone else's object.

A run killed between a creation and its outcome leaves an object the state store does not own. Before
such an action, the journal's intent records what identifies its creation (console name, deployment
target, variable target) and every live object that already matched it (:func:`recognition`); a later run
of the same action takes over only a matching object that is not among those (:func:`made_by_interrupted`).
A matching object the planner did not know of either appeared since the plan (:func:`appeared`) and is
left alone.
"""

from __future__ import annotations

from typing import Any

from reconciler.apply.errors import SiteChangedSincePlan
from reconciler.apply.fingerprints import variables_fingerprint
from reconciler.errors import ReconcilerError
from reconciler.plan.actions import Action, DeploymentWrite, TaskSequenceWrite, VariablesWrite, Verb
from reconciler.site import Site
from reconciler.state import StateStore

#: Actions that make a live object (or a target's variable set) a killed run could leave unrecorded.
CREATES = (Verb.CREATE_TASK_SEQUENCE, Verb.CREATE_DEPLOYMENT, Verb.REPLACE_DEPLOYMENT, Verb.SET_VARIABLES)


def appeared(action: Action, found: list[str]) -> list[str]:
    """Unmanaged live objects with the identity of an object the plan creates, which the plan did not see.

    The planner blocks (or adopts) a creation whose identity is taken when it plans, and records the
    namesakes it knew of; one found now and not then was made since the plan (a console, another writer).
    """
    identity = getattr(action.write, "identity", None)
    if identity is None or identity.unowned is None:  # a replace's creation: its old deployment was the one it knew
        return []
    seen = set(identity.unowned)
    return [i for i in found if i not in seen]


def recognition(action: Action, site: Site, state: StateStore) -> dict[str, Any]:
    """What lets a later run recognise what this action creates, should this run be killed first.

    The planner's match (console name, deployment target, variable target) and every live object that
    matches it now, so that none of them can ever be taken for this action's creation.
    """
    identity = getattr(action.write, "identity", None)
    if identity is None or action.verb not in CREATES:
        return {}  # an update or a delete creates nothing a later run could take over
    existing = set(identity.existing)
    write = action.write
    if isinstance(write, TaskSequenceWrite):
        existing.update(t.id for t in site.find_task_sequences(write.record.name) if t.id)
    elif isinstance(write, DeploymentWrite):
        ts_id = state.owned_id("TaskSequence", write.task_sequence)
        if ts_id:
            existing.update(d.id for d in site.find_deployments(ts_id, write.record.collection_id) if d.id)
    elif isinstance(write, VariablesWrite):
        existing.update(fp for fp in [variables_fingerprint(site, write.scope, write.target)] if fp)
    return {"match": identity.match, "existing": sorted(existing)}


def made_by_interrupted(action: Action, state: StateStore, candidates: list[str]) -> str | None:
    """The unmanaged live object an earlier, interrupted run of this very action created, if any."""
    intent = state.pending_intent(str(action.ref))
    identity = getattr(action.write, "identity", None)
    return intent.made(identity.match, candidates) if intent is not None and identity is not None else None


def claim_leftover(action: Action, state: StateStore, candidates: list[str], what: str, not_ours: str
                   ) -> str | None:
    """Which unmanaged namesake (``candidates``) a creation may take over: None when there is none.

    One that appeared since the plan was made is a change of the site, left alone (the plan is stale); of
    the others, only the object an interrupted run of this very action made is ours. ``what`` names the
    object ("a task sequence named 'X'"), ``not_ours`` says what to do about one that is not ours.
    """
    found = appeared(action, candidates)
    if found:
        raise SiteChangedSincePlan(
            f"{what} ({', '.join(found)}) appeared on the site after this plan was made and is not managed by this "
            "tool; it was left as it is: the site changed since the plan, plan again")
    if not candidates:
        return None
    made = made_by_interrupted(action, state, candidates)
    if made is None:
        raise ReconcilerError(f"{what} ({', '.join(candidates)}) {not_ours}")
    return made
