"""The order a plan runs in: by the dependencies between its actions, then a fixed table, then name.

Each action names the objects it depends on (a parent the children it runs, a deployment its task
sequence and that sequence's content distributions, a deleted sequence the deployments and parents that
go before it). An action runs after every action of the objects it depends on; creations and changes run
before deletions, and among actions free to run, the table below and then the name decide, so the same
plan is always printed and applied in the same order. A cycle is reported with its path.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict

from reconciler.plan.actions import DELETES, Action, ContentWrite, ObjectRef, Verb

#: Among actions free to run: take-overs, then sequences, content, deployments and variables; deletions last
#: (deployments, content, sequences, variables), as the console would be used by hand.
_RANK = {
    Verb.ADOPT: 0, Verb.CREATE_TASK_SEQUENCE: 1, Verb.UPDATE_TASK_SEQUENCE: 1, Verb.MOVE_TASK_SEQUENCE: 2,
    Verb.ENABLE_TASK_SEQUENCE: 3, Verb.DISABLE_TASK_SEQUENCE: 3,
    Verb.DISTRIBUTE_CONTENT: 4, Verb.REDISTRIBUTE_CONTENT: 4,
    Verb.CREATE_DEPLOYMENT: 5, Verb.UPDATE_DEPLOYMENT: 5, Verb.REPLACE_DEPLOYMENT: 5,
    Verb.SET_VARIABLES: 6,
    Verb.REMOVE_VARIABLES: 7, Verb.DELETE_DEPLOYMENT: 8, Verb.REMOVE_CONTENT: 9, Verb.DELETE_TASK_SEQUENCE: 10,
}


class DependencyCycle(Exception):
    """Actions that depend on each other in a circle; ``path`` is the circle (``a -> b``: a needs b first), the
    first object repeated at the end."""

    def __init__(self, path: list[ObjectRef]) -> None:
        super().__init__(" -> ".join(str(r) for r in path))
        self.path = path


def _key(action: Action) -> tuple[object, ...]:
    package = action.write.package_id if isinstance(action.write, ContentWrite) else None
    return (action.verb in DELETES, _RANK[action.verb], action.ref.kind, action.ref.name, package or "")


def order_actions(actions: list[Action]) -> list[Action]:
    """The actions in an order that respects every dependency; raises DependencyCycle when none does.

    Creations and changes run first, deletions after (content leaves a DP only after what replaced it is
    in place); within each, actions of one object keep the table's order (an update before a move before
    an enable) and every dependency inside the group is respected.
    """
    changes = [a for a in actions if a.verb not in DELETES]
    deletions = [a for a in actions if a.verb in DELETES]
    return _topological(changes) + _topological(deletions)


def _topological(actions: list[Action]) -> list[Action]:
    by_ref: dict[ObjectRef, list[int]] = defaultdict(list)
    for index, action in enumerate(actions):
        by_ref[action.ref].append(index)
    after: dict[int, set[int]] = defaultdict(set)  # index -> the actions that must wait for it
    waiting_on = [0] * len(actions)

    def edge(first: int, then: int) -> None:
        if first != then and then not in after[first]:
            after[first].add(then)
            waiting_on[then] += 1

    for index, action in enumerate(actions):
        for dependency in action.depends_on:
            for first in by_ref.get(dependency, ()):
                edge(first, index)
    for indexes in by_ref.values():
        ranked = sorted(indexes, key=lambda i: _key(actions[i]))
        for first, then in itertools.pairwise(ranked):
            if _key(actions[first])[:2] != _key(actions[then])[:2]:
                edge(first, then)
    ready = [(_key(actions[i]), i) for i in range(len(actions)) if waiting_on[i] == 0]
    heapq.heapify(ready)
    out: list[Action] = []
    while ready:
        _, index = heapq.heappop(ready)
        out.append(actions[index])
        for then in after[index]:
            waiting_on[then] -= 1
            if waiting_on[then] == 0:
                heapq.heappush(ready, (_key(actions[then]), then))
    if len(out) < len(actions):
        raise DependencyCycle(_cycle(actions, after, {i for i in range(len(actions)) if waiting_on[i] > 0}))
    return out


def _cycle(actions: list[Action], after: dict[int, set[int]], stuck: set[int]) -> list[ObjectRef]:
    """One circle among the actions that could not be ordered, as object references."""
    before: dict[int, list[int]] = defaultdict(list)
    for first, thens in after.items():
        for then in thens:
            if first in stuck and then in stuck:
                before[then].append(first)
    start = min(stuck, key=lambda i: _key(actions[i]))
    path, seen = [start], {start: 0}
    current = start
    while True:
        current = min(before[current], key=lambda i: _key(actions[i]))
        if current in seen:
            circle = [*path[seen[current]:], current]
            refs = [actions[i].ref for i in circle]
            return [r for i, r in enumerate(refs) if i == 0 or r != refs[i - 1]]
        seen[current] = len(path)
        path.append(current)
