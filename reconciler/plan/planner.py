"""From desired state, live state and the state store to a Plan.

Reads only: the planner never touches the site. Objects whose fingerprints match what was last
applied on both sides are in sync without further work, so a plan with nothing to do costs little
more than reading the manifests. Each kind is planned by its own module, in the order in which they
depend on each other; the actions are then put in dependency order and the plan gets its ID, a digest
of what it would do, so the same inputs give the same plan.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping

from reconciler.collector import paused
from reconciler.config import Scope
from reconciler.errors import ReconcilerError, Source
from reconciler.plan.actions import Blocked, Plan
from reconciler.plan.content import plan_content
from reconciler.plan.context import MANAGED_KINDS, Planning, live_variables_fingerprint, spec_fingerprint
from reconciler.plan.deployments import plan_deployments
from reconciler.plan.document import plan_digest
from reconciler.plan.order import DependencyCycle, order_actions
from reconciler.plan.orphans import delete_threshold, plan_orphans
from reconciler.plan.paths import with_paths
from reconciler.plan.scope import plan_scope
from reconciler.plan.tasksequences import plan_task_sequences, renamed_children
from reconciler.plan.variables import plan_variables
from reconciler.secrets import SecretReader
from reconciler.site.records import LiveState
from reconciler.source.loader import DesiredState
from reconciler.state import StateStore

log = logging.getLogger("reconciler.plan")

#: Default --max-delete: the share of managed objects one plan may delete.
MAX_DELETE_PERCENT = 10.0


class IncompleteManifests(ReconcilerError):
    """Some manifests could not be read: a plan without them would treat their objects as gone."""


class UnknownTarget(ReconcilerError):
    """A ``--target`` names no manifest and no managed object: a typo would otherwise plan nothing."""


def resolve_targets(targets: Iterable[str], desired: DesiredState, state: StateStore) -> tuple[str, ...]:
    """``--target`` values as ``Kind/name``, the kind spelled as the manifests spell it (any case accepted)."""
    kinds = {k.casefold(): k for k in MANAGED_KINDS}
    known = {o.key for o in desired.objects} | {f"{k}/{n}" for (k, n) in state.owned()}
    out = []
    for target in targets:
        kind, _, name = target.partition("/")
        if not name or kind.casefold() not in kinds:
            raise UnknownTarget(f"--target {target!r}: use KIND/NAME, KIND one of {', '.join(sorted(kinds.values()))}")
        key = f"{kinds[kind.casefold()]}/{name}"
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise UnknownTarget(f"--target {target!r} matches no manifest and no managed object"
                                + (f"; did you mean {close[0]!r}?" if close else ""))
        out.append(key)
    return tuple(out)


def make_plan(desired: DesiredState, live: LiveState, state: StateStore, *, adopt: bool = False,
              prune: bool = False, targets: Iterable[str] = (), max_delete: float = MAX_DELETE_PERCENT,
              secrets: SecretReader | None = None, paths: Mapping[str, str] | None = None,
              scope: Scope | None = None) -> Plan:
    """Plan what makes the site equal to the manifests. Reads only.

    ``scope`` (``reconcile.yaml``'s ``scope:``) blocks every manifest that reaches outside it; None restricts
    nothing, and the plan says so.

    ``paths`` (``Site.paths()``) says how each write reaches the site; each action is marked with its path, and
    one no path can do is blocked.

    With ``secrets`` (``--refresh-secrets``) the plan also reads each secret the managed objects use and
    compares its keyed hash with the one stored at the last apply, so a rotated password behind an
    unchanged ``valueFrom`` becomes an update; without it, a plan never reads a secret.
    """
    if desired.unread:
        # A file that could not be read defines objects the plan cannot see: planning would call them orphans.
        listing = ", ".join(desired.unread[:3]) + (" …" if len(desired.unread) > 3 else "")
        raise IncompleteManifests(f"{len(desired.unread)} manifest file(s) or folder(s) could not be read "
                                  f"({listing}); no plan is made from an incomplete set, so nothing is pruned")
    with paused():
        return _make_plan(desired, live, state, adopt, prune, tuple(targets), max_delete, secrets, paths or {}, scope)


def _make_plan(desired: DesiredState, live: LiveState, state: StateStore, adopt: bool, prune: bool,
               targets: tuple[str, ...], max_delete: float, secrets: SecretReader | None,
               paths: Mapping[str, str], scope: Scope | None = None) -> Plan:
    p = Planning(desired, live, state, adopt, prune, targets, secrets)
    plan_task_sequences(p)
    renamed_children(p)
    plan_content(p)
    plan_deployments(p)
    plan_variables(p)
    plan_orphans(p)
    plan_scope(p, scope)
    delete_threshold(p, max_delete)
    plan = p.plan
    plan.content_pairs = p.content_pairs
    # An interrupted run's intent on an object this plan has nothing to do for is finished (or moot): applying
    # the plan resolves it. One this plan acts on is resolved by that action's own outcome.
    touched = {str(a.ref) for a in plan.actions} | {str(b.ref) for b in plan.blocked}
    plan.settles = {obj: intent.plan_id for obj, intent in sorted(p.pending.items())
                    if obj not in touched and (not targets or obj in targets)}
    try:
        plan.actions = order_actions(plan.actions)
    except DependencyCycle as cycle:
        first = cycle.path[0]
        plan.blocked.append(Blocked(first, f"these objects depend on each other in a circle: {cycle}; a parent "
                                    "cannot run a child sequence that runs it", None, "", "dependency-cycle"))
    with_paths(plan, paths)
    plan.blocked.sort(key=lambda b: (b.source.file if b.source else "", b.source.line or 0 if b.source else 0))
    plan.plan_id = plan_digest(plan)
    log.debug("plan %s: %d action(s), %d blocked, %d warning(s), %d orphan(s)", plan.plan_id, len(plan.actions),
              len(plan.blocked), len(plan.warnings), len(plan.orphans))
    return plan


__all__ = ["MAX_DELETE_PERCENT", "IncompleteManifests", "Source", "UnknownTarget", "live_variables_fingerprint",
           "make_plan", "resolve_targets", "spec_fingerprint"]
