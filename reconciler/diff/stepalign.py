"""Two lists of sibling nodes aligned by identity: the longest run of nodes that stayed, in order.

Only the nodes' keys (:func:`~reconciler.diff.stepnodes.node_key`) are compared: a longest common
subsequence by Myers' algorithm after the common prefix and suffix, past ``_MAX_EDITS`` differences in
one list difflib's faster heuristic. Where an insertion or removal could sit on either side of a run of
equal keys (the same "Restart Computer" several times), it is slid to where the most matched nodes are
identical. What is left unmatched is for :mod:`reconciler.diff.steps` to pair as moves and changes.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from reconciler.diff.stepnodes import Key, Node, node_key

#: Myers' algorithm finds a longest common subsequence in time that grows with the square of the
#: number of differences; past this many inserted plus removed nodes in one list, a rewrite that
#: large is aligned by difflib's longest-block heuristic instead (fast, not always the longest).
_MAX_EDITS = 600


def align(before: list[Node], after: list[Node]) -> list[tuple[int, int]]:
    """Matched (before index, after index) pairs of one level, increasing on both sides."""
    if not before or not after:
        return []
    kb = [node_key(n) for n in before]
    ka = [node_key(n) for n in after]
    nb, na = len(kb), len(ka)
    limit = min(nb, na)
    head = 0
    while head < limit and kb[head] == ka[head]:
        head += 1
    tail = 0
    while tail < limit - head and kb[nb - 1 - tail] == ka[na - 1 - tail]:
        tail += 1
    pairs = [(k, k) for k in range(head)]
    middle_b, middle_a = kb[head:nb - tail], ka[head:na - tail]
    if middle_b and middle_a:
        found = _lcs(middle_b, middle_a, _MAX_EDITS)
        if found is None:
            # autojunk off: in a long list, a name used in more than 1% of the steps is not noise.
            matcher = SequenceMatcher(None, middle_b, middle_a, autojunk=False)
            found = [(block.a + k, block.b + k) for block in matcher.get_matching_blocks() for k in range(block.size)]
        pairs.extend((head + i, head + j) for i, j in found)
    pairs.extend((nb - tail + k, na - tail + k) for k in range(tail))
    _slide(pairs, before, after, kb, ka)
    return pairs


def _lcs(a: list[Key], b: list[Key], max_edits: int) -> list[tuple[int, int]] | None:
    """A longest common subsequence by Myers' O(ND) algorithm, or None past ``max_edits`` differences.

    A longest one, not merely long: difflib's longest-block-first heuristic can match a run of steps
    with a copy of it far away (sequences repeat blocks of the same steps) and then report everything
    between as moved.
    """
    n, m = len(a), len(b)
    v: dict[int, int] = {1: 0}
    trace: list[dict[int, int]] = []
    for d in range(min(n + m, max_edits) + 1):
        trace.append(v)
        current: dict[int, int] = {}
        for k in range(-d, d + 1, 2):
            x = v[k + 1] if k == -d or (k != d and v[k - 1] < v[k + 1]) else v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            current[k] = x
            if x >= n and y >= m:
                return _backtrack(trace, current, n, m)
        v = current
    return None


def _backtrack(trace: list[dict[int, int]], last: dict[int, int], n: int, m: int) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    x, y = n, m
    for d in range(len(trace) - 1, -1, -1):
        previous = trace[d]  # the furthest points of round d - 1
        k = x - y
        if d == 0:
            start_x = 0
        else:
            down = k == -d or (k != d and previous[k - 1] < previous[k + 1])
            prev_k = k + 1 if down else k - 1
            prev_x = previous[prev_k]
            start_x = prev_x if down else prev_x + 1
        while x > start_x:  # the diagonal run of matches that ended this round
            x -= 1
            y -= 1
            pairs.append((x, y))
        if d:
            x, y = prev_x, prev_x - prev_k
    pairs.reverse()
    return pairs


def _slide(pairs: list[tuple[int, int]], before: list[Node], after: list[Node], kb: list[Key],
           ka: list[Key]) -> None:
    """Move each pure insertion or removal along the run of equal keys around it to where most
    matched nodes are identical (ties keep the subsequence's choice)."""
    t = 0
    while t <= len(pairs):
        pi, pj = pairs[t - 1] if t else (-1, -1)
        ni, nj = pairs[t] if t < len(pairs) else (len(before), len(after))
        removed, inserted = ni - pi - 1, nj - pj - 1
        if inserted and not removed:
            _slide_hunk(pairs, t, pj + 1, nj, ka, 1, before, after)
        elif removed and not inserted:
            _slide_hunk(pairs, t, pi + 1, ni, kb, 0, before, after)
        t += 1


def _slide_hunk(pairs: list[tuple[int, int]], t: int, start: int, end: int, keys: list[Key], side: int,
                before: list[Node], after: list[Node]) -> None:
    other = 1 - side
    length = end - start
    up = 0
    while t - up - 1 >= 0:
        k = up + 1
        pair = pairs[t - k]
        if pair[side] != start - k or pair[other] != pairs[t - 1][other] - (k - 1) or keys[start - k] != keys[end - k]:
            break
        up = k
    down = 0
    while t + down < len(pairs):
        pair = pairs[t + down]
        if pair[side] != end + down or pair[other] != pairs[t][other] + down or keys[start + down] != keys[end + down]:
            break
        down += 1
    if not up and not down:
        return
    window = pairs[t - up:t + down]

    def shifted(d: int) -> list[tuple[int, int]]:
        out = []
        for k, pair in enumerate(window):
            pos = pair[side]
            if k < up and d < 0 and up - k <= -d:
                pos += length
            elif k >= up and d > 0 and k - up < d:
                pos -= length
            out.append((pair[0], pos) if side else (pos, pair[1]))
        return out

    def score(candidate: list[tuple[int, int]]) -> int:
        return sum(1 for i, j in candidate if before[i] == after[j])

    best, best_score = 0, score(window)
    for d in sorted(range(-up, down + 1), key=abs):
        if d and (s := score(shifted(d))) > best_score:
            best, best_score = d, s
    if best:
        pairs[t - up:t + down] = shifted(best)
