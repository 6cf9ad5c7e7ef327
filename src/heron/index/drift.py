"""Recall drift of trained indexes as a collection grows past their training data; retrain advice.

An IVF coarse quantizer (and a PQ / SQ codebook) is trained once, on the vectors given to
``build``; :meth:`~heron.index.base.AnnIndex.add` (and :func:`heron.capabilities.ann.update_index`)
only assigns new vectors to the existing cells. When the collection grows into regions the
training sample did not cover, lists become unbalanced and a fixed ``nprobe`` covers less of the
true neighbourhood. :func:`drift_report` tracks ``growth = n_now / trained_on`` and measures
recall@k on a few sample queries against the exact scan of the index's own float copy, then
advises: keep, raise the search knob, retrain (``compact_index``) or compact tombstones.

Jégou, Douze & Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI 2011.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.index.base import AnnIndex

#: growth past the training set above which a recall loss is blamed on the training data
RETRAIN_GROWTH = 1.5
#: IVF list imbalance (now / at build) above which the growth counts as a distribution shift
SHIFT_IMBALANCE = 1.2


def recall_probe(
    index: AnnIndex,
    queries: np.ndarray | None = None,
    *,
    k: int = 10,
    n_queries: int = 50,
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> float:
    """Recall@``k`` of ``index.search`` against an exact scan of its live float copy.

    Parameters
    ----------
    index: a built index.
    queries: ``(nq, d)`` probe queries; default ``n_queries`` live vectors (seeded sample)
        perturbed by 5% Gaussian noise and re-normalised.
    k: depth of the recall.
    params: search parameters (``nprobe`` / ``ef_search`` ...), default the index's own.
    """
    if index.dim is None or len(index) == 0:
        raise ValueError("the index is empty; build it before probing its recall")
    live = np.flatnonzero(~index.dead)
    if queries is None:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(live, min(n_queries, len(live)), replace=False))
        q = index.vectors_of(rows)
        q = q + 0.05 * rng.standard_normal(q.shape).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    else:
        q = np.asarray(queries, dtype=np.float32)
    k = min(k, len(live))
    _, truth_lab = index._exact(q, live, k)
    truth = index.keys[truth_lab]
    _, found, _ = index.search(q, k, params=params)
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(found, truth)]))


def drift_report(
    index: AnnIndex,
    *,
    queries: np.ndarray | None = None,
    k: int = 10,
    n_queries: int = 50,
    target: float = 0.95,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Growth past the training set, a recall probe and advice.

    Returns
    -------
    ``{"trained_on", "count", "live", "growth", "dead_fraction", "recall", "imbalance_ratio",
    "target", "retrain", "advice"}``; ``retrain`` is true when recall is below ``target``, the
    index holds more than ``RETRAIN_GROWTH`` times the vectors it was trained on and (IVF) its
    list imbalance grew by ``SHIFT_IMBALANCE`` since the build — the new vectors fell into few
    cells, so a retrain (:func:`heron.capabilities.ann.compact_index`) helps where a larger
    ``nprobe`` would only pay for it. Below target without those signs, the advice is to raise
    the search knob.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target must be a recall in (0, 1], got {target!r}")
    trained_on = int(index.meta.get("trained_on") or index.ntotal)
    growth = index.ntotal / max(trained_on, 1)
    dead_frac = index.n_dead / max(index.ntotal, 1)
    rec = recall_probe(index, queries, k=k, n_queries=n_queries, params=params)
    trains = index.kind == "ivf" or index.codec not in ("fp32",)
    shift = None
    if index.kind == "ivf" and "imbalance_at_build" in index.meta:
        shift = index.imbalance() / max(float(index.meta["imbalance_at_build"]), 1e-9)
    shifted = shift is None or shift >= SHIFT_IMBALANCE
    retrain = bool(rec < target and trains and growth >= RETRAIN_GROWTH and shifted)
    if retrain:
        advice = (
            f"retrain: recall@{k} {rec:.3f} < {target} with {growth:.1f}x the {trained_on} vectors "
            "the index was trained on; run compact_index (rebuilds and retrains)"
        )
    elif rec < target:
        knob = "nprobe" if index.kind == "ivf" else "ef_search"
        why = (
            f"list balance unchanged (x{shift:.2f})"
            if shift is not None
            else f"growth only {growth:.1f}x"
        )
        advice = (
            f"raise {knob}: recall@{k} {rec:.3f} < {target}; {why}, so the data did not drift "
            "away from the training set (a retrain may still gain a little)"
        )
    elif dead_frac > 0.2:
        advice = f"compact: {dead_frac:.0%} of the index is tombstoned; run compact_index"
    else:
        advice = "ok"
    return {
        "trained_on": trained_on,
        "count": index.ntotal,
        "live": len(index),
        "growth": round(growth, 3),
        "dead_fraction": round(dead_frac, 4),
        "recall": round(rec, 4),
        "imbalance_ratio": None if shift is None else round(shift, 3),
        "target": target,
        "retrain": retrain,
        "advice": advice,
    }
