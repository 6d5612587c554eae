"""Applying an adoption: a live object this tool did not manage becomes managed under a manifest's name.

Nothing is written to the site; the state store takes ownership (from the old name, when the manifest's
``metadata.name`` changed and its console name did not). A task sequence is recorded as applied at once,
so the next plan compares it with what was last applied like any other. A function of the run and the
action, as in :mod:`reconciler.apply.tasksequences` (why is said there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.apply import tasksequences
from reconciler.plan.actions import Action, Adoption

if TYPE_CHECKING:
    from reconciler.apply.executor import Executor


def adopt(run: Executor, action: Action) -> str:
    assert action.live_id
    assert isinstance(action.write, Adoption)
    if action.write.renamed_from:  # one live object, one owner: the old name lets go
        run.state.disown(action.ref.kind, action.write.renamed_from)
    run.state.own(action.ref.kind, action.ref.name, action.live_id)
    if action.ref.kind == "TaskSequence":
        tasksequences.record_applied(run, action, action.live_id)
    return f"now managing {action.live_id}"
