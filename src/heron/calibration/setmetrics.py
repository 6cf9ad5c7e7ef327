"""Precision / recall / F1 of variable-length result sets, and count matching by bisection."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def set_prf(
    ids: Sequence[Sequence[str]], query_ids: Sequence[str], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """Macro-averaged precision, recall and F1 of returned sets against relevant sets (rel > 0).

    An empty returned set has precision 0 (so returning nothing is never free), recall 0, F1 0.
    Also returns ``micro_f1`` (pooled counts) and ``avg_count`` (mean returned set size).
    """
    p, r, f = [], [], []
    tp_all = ret_all = rel_all = 0
    for q, got in zip(query_ids, ids):
        rel = {d for d, g in qrels.get(str(q), {}).items() if g > 0}
        tp = len(rel.intersection(got))
        tp_all, ret_all, rel_all = tp_all + tp, ret_all + len(got), rel_all + len(rel)
        pi = tp / len(got) if got else 0.0
        ri = tp / len(rel) if rel else 0.0
        p.append(pi)
        r.append(ri)
        f.append(2 * pi * ri / (pi + ri) if pi + ri > 0 else 0.0)
    mp, mr = tp_all / max(ret_all, 1), tp_all / max(rel_all, 1)
    return {
        "precision": float(np.mean(p)),
        "recall": float(np.mean(r)),
        "f1": float(np.mean(f)),
        "micro_f1": 2 * mp * mr / (mp + mr) if mp + mr > 0 else 0.0,
        "avg_count": float(np.mean([len(g) for g in ids])),
    }


def match_count(
    avg_count: Callable[[float], float], target: float, lo: float, hi: float, *, iters: int = 40
) -> float:
    """Parameter ``t`` in ``[lo, hi]`` whose ``avg_count(t)`` is closest to ``target``.

    ``avg_count`` must be non-increasing in ``t`` (a higher threshold returns fewer hits).
    """
    best, best_gap = lo, abs(avg_count(lo) - target)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        c = avg_count(mid)
        if abs(c - target) < best_gap:
            best, best_gap = mid, abs(c - target)
        if c > target:
            lo = mid
        else:
            hi = mid
    return best
