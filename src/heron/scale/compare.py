"""Equality of two rankings up to ties: how sharded results are checked against a single node.

Two engines that agree on every score can still order *exactly tied* hits differently (each
breaks ties by its own keys: a single node by insertion order, bm25s by its partial sort, a
sharded collection by global key). :func:`compare_rankings` therefore asks: equal scores at every
rank (to ``atol``), and the same ids at every rank whose score is not tied; within a tie the same
set of ids, except a tie group cut by the end of the list (its members beyond ``k`` are unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Comparison:
    """Counts over the compared queries (``bad`` lists up to 10 failing query indices)."""

    queries: int = 0
    identical: int = 0
    tie_order_only: int = 0
    different: int = 0
    max_score_diff: float = 0.0
    bad: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.different == 0


def _groups(scores: np.ndarray, atol: float) -> list[tuple[int, int]]:
    """Runs ``[start, end)`` of (within ``atol``) equal consecutive scores."""
    out, start = [], 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or not (
            scores[i] == scores[i - 1] or abs(float(scores[i]) - float(scores[i - 1])) <= atol
        ):
            out.append((start, i))
            start = i
    return out


def compare_rankings(
    ids_a: list[list[str]], scores_a: np.ndarray, ids_b: list[list[str]], scores_b: np.ndarray, *, atol: float = 1e-5
) -> Comparison:
    """Compare two batches of rankings (``doc_ids()`` and ``scores`` of two :class:`~heron.Results`)."""
    c = Comparison(queries=len(ids_a))
    for q, (a, b) in enumerate(zip(ids_a, ids_b)):
        sa, sb = np.asarray(scores_a[q][: len(a)], np.float64), np.asarray(scores_b[q][: len(b)], np.float64)
        if len(a) != len(b):
            c.different += 1
            c.bad.append(q) if len(c.bad) < 10 else None
            continue
        diff = float(np.max(np.abs(sa - sb))) if len(a) else 0.0
        c.max_score_diff = max(c.max_score_diff, diff)
        if diff > atol:
            c.different += 1
            c.bad.append(q) if len(c.bad) < 10 else None
            continue
        if a == b:
            c.identical += 1
            continue
        same = all(
            set(a[s:e]) == set(b[s:e]) or e == len(a) for s, e in _groups(sa, atol)
        )
        if same:
            c.tie_order_only += 1
        else:
            c.different += 1
            c.bad.append(q) if len(c.bad) < 10 else None
    return c
