"""Benchmark: the step diff on large trees made of real task sequences.

Builds a tree of about N steps (default 2,000) from the sequences in the corpus
(``shared/corpus/ts-xml``, read with the XML codec, each one a top-level group), then times
``diff_steps`` on: the tree and itself, the tree and a deep copy, the tree and a copy with 1% of
its steps edited (a fifth each inserted, removed, moved within their group, moved to another group,
changed), the same in one flat list of N siblings, and the edited pair read back through the codec's
canonical form with ``opaque_references``. Prints the best of several runs in milliseconds.

    python bench/step_diff.py           # N = 2,000
    python bench/step_diff.py 10000     # another size
"""

from __future__ import annotations

import copy
import random
import sys
import time
from pathlib import Path
from typing import Any

from reconciler.diff.steps import diff_steps, iter_nodes
from reconciler.tsxml.sequence import read_sequence

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "ts-xml"
if not CORPUS.exists():
    CORPUS = Path("/work/shared/corpus/ts-xml")


def real_sequences() -> list[list[dict[str, Any]]]:
    out = []
    for path in sorted(CORPUS.glob("*.xml")):
        try:
            out.append(read_sequence(path.read_bytes(), where=path.name).spec["steps"])
        except Exception:  # a corpus file the codec refuses is not what this measures
            continue
    return out


def count(steps: list[dict[str, Any]]) -> int:
    return sum(1 for _, node in iter_nodes(steps) if "group" not in node)


def big_tree(size: int) -> list[dict[str, Any]]:
    sequences = real_sequences()
    tree: list[dict[str, Any]] = []
    n = 0
    while count(tree) < size:
        steps = copy.deepcopy(sequences[n % len(sequences)])
        tree.append({"group": f"Sequence {n}", "steps": steps})
        n += 1
    return tree


def flat(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [copy.deepcopy(node) for _, node in iter_nodes(tree) if "group" not in node]


def edit(tree: list[dict[str, Any]], share: float, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = copy.deepcopy(tree)
    steps = [node for _, node in iter_nodes(out) if "group" not in node]
    lists = [out] + [node["steps"] for _, node in iter_nodes(out) if "group" in node]

    def holder(node: dict[str, Any]) -> list[dict[str, Any]]:
        return next(nodes for nodes in lists if any(n is node for n in nodes))

    for k, node in enumerate(rng.sample(steps, max(5, int(len(steps) * share)))):
        nodes = holder(node)
        index = next(i for i, n in enumerate(nodes) if n is node)
        kind = k % 5
        if kind == 0:
            nodes.insert(index, {"name": f"Inserted {k}", "type": "RunCommandLine",
                                 "settings": {"commandLine": f"cmd /c echo {k}"}})
        elif kind == 1:
            del nodes[index]
        elif kind == 2:
            nodes.insert(0, nodes.pop(index))
        elif kind == 3:
            rng.choice(lists).append(nodes.pop(index))
        else:
            node["disabled"] = not node.get("disabled")
            node["condition"] = {"variable": {"name": f"Edit{k}", "operator": "exists"}}
    return out


def best(fn: Any, runs: int = 7) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000, result


def main(sizes: list[int]) -> None:
    for size in sizes:
        tree = big_tree(size)
        steps = count(tree)
        edited = edit(tree, 0.01)
        plain, plain_edited = flat(tree), edit(flat(tree), 0.01)
        twin = copy.deepcopy(tree)
        print(f"{steps:,} steps in {len(tree)} top-level groups")
        for label, before, after, opaque in (
            ("identical (same lists)", tree, tree, False),
            ("identical (deep copy)", tree, twin, False),
            ("1% edited", tree, edited, False),
            ("1% edited, opaque references", tree, edited, True),
            (f"flat list of {len(plain):,}, 1% edited", plain, plain_edited, False),
        ):
            ms, changes = best(lambda b=before, a=after, o=opaque: diff_steps(b, a, opaque_references=o))
            ops: dict[str, int] = {}
            for change in changes:
                ops[change.op.value] = ops.get(change.op.value, 0) + 1
            summary = ", ".join(f"{n} {op}" for op, n in sorted(ops.items())) or "no changes"
            print(f"  {label:<38} {ms:8.2f} ms   {summary}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000])
