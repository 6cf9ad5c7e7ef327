"""Normalised score fusion (convex combination of per-run normalised scores).

Fox & Shaw, "Combination of Multiple Searches", TREC-2 1994 (CombSUM); Lee, "Analyses of
Multiple Evidence Combination", SIGIR 1997 (min-max normalisation); Bruch, Gai & Ingber, "An
Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023 (convex combination beats RRF
when its weight is tuned on a little training data).

Each run's scores are normalised per query over its own returned list (``"minmax"`` to [0, 1],
``"zscore"`` to mean 0 / std 1), then ``score(d) = sum_i w_i * norm_i(d)``; a document missing
from run ``i`` contributes that run's floor (0 for min-max, the run's minimum for z-score).
Weights are given, or fitted on *training* queries only with
:func:`heron.eval.fusion.fit_fusion_weights` (it needs judgements, so it lives with the evaluation).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np

from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k
from heron.retrieval.topk import topk_rows

NORMALISATIONS = ("minmax", "zscore")


def _normalise(scores: np.ndarray, valid: np.ndarray, norm: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row normalised scores ``(n, k)`` and each row's floor ``(n,)`` for missing documents."""
    s = np.where(valid, scores.astype(np.float64), np.nan)
    # a query a run found nothing for is an all-NaN row: it normalises to NaN (missing) quietly
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice|Mean of empty slice|Degrees of freedom")
        if norm == "minmax":
            lo, hi = np.nanmin(s, axis=1, keepdims=True), np.nanmax(s, axis=1, keepdims=True)
            span = hi - lo
            out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1), 1.0)
            floor = np.zeros(len(s))
        else:
            mu, sd = np.nanmean(s, axis=1, keepdims=True), np.nanstd(s, axis=1, keepdims=True)
            out = np.where(sd > 0, (s - mu) / np.where(sd > 0, sd, 1), 0.0)
            floor = np.nan_to_num(np.nanmin(out, axis=1), nan=0.0)
    out = np.where(valid, out, np.nan)
    return out, floor


def fuse_scores(
    runs: Sequence[Results],
    weights: Sequence[float],
    *,
    norm: str = "minmax",
    depth: int | None = None,
) -> Results:
    """Fuse result batches by a weighted sum of normalised scores; top ``depth`` per query."""
    if norm not in NORMALISATIONS:
        raise ValueError(f"norm must be one of {NORMALISATIONS}, got {norm!r}")
    if len(runs) < 1 or len(weights) != len(runs):
        raise ValueError(
            f"need one weight per run, got {len(weights)} weights for {len(runs)} runs"
        )
    n = runs[0].n_queries
    if any(r.n_queries != n for r in runs):
        raise ValueError("all fused runs must have the same number of queries")
    depth = check_k(depth if depth is not None else max(r.k for r in runs))
    normed = [_normalise(r.scores, r.valid(), norm) for r in runs]
    keys_out = np.full((n, depth), PAD_KEY, dtype=np.int64)
    scores_out = np.full((n, depth), -np.inf, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    for qi in range(n):
        ks = np.concatenate([r.keys[qi] for r in runs])
        real = ks != PAD_KEY
        if not real.any():
            continue
        uniq = np.unique(ks[real])
        tot = np.zeros(len(uniq))
        for (vals, floor), r, wi in zip(normed, runs, w):
            got = np.full(len(uniq), floor[qi])
            rk = r.keys[qi]
            m = rk != PAD_KEY
            pos = np.searchsorted(uniq, rk[m])
            got[pos] = vals[qi][m]
            tot += wi * got
        top, cols = topk_rows(tot[None, :], depth)  # ties: the smaller key (uniq is sorted)
        hit = cols[0] >= 0
        keys_out[qi, hit] = uniq[cols[0, hit]]
        scores_out[qi, hit] = top[0, hit]
    resolver = next((r.resolver for r in runs if r.resolver is not None), None)
    return Results(keys_out, scores_out, resolver, {"fusion": norm, "weights": w.tolist()})


class ScoreFusion(Stage):
    """Pipeline stage fusing several stages by normalised scores (see the module docstring).

    Parameters
    ----------
    stages: the stages to fuse (each run on the same queries and candidates).
    weights: one non-negative weight per stage (default equal).
    norm: ``"minmax"`` (default) or ``"zscore"``.
    depth: hits kept after fusion (default: the largest input depth).
    """

    def __init__(
        self,
        *stages: Stage,
        weights: Sequence[float] | None = None,
        norm: str = "minmax",
        depth: int | None = None,
    ) -> None:
        if len(stages) < 2:
            raise ValueError(f"ScoreFusion needs at least two stages, got {len(stages)}")
        if norm not in NORMALISATIONS:
            raise ValueError(f"norm must be one of {NORMALISATIONS}, got {norm!r}")
        if weights is None:
            weights = [1.0 / len(stages)] * len(stages)
        weights = [float(x) for x in weights]
        if len(weights) != len(stages) or any(x < 0 for x in weights) or sum(weights) <= 0:
            raise ValueError(
                f"ScoreFusion needs one non-negative weight per stage ({len(stages)}), not all zero; got {weights}"
            )
        self.stages, self.weights, self.norm = list(stages), weights, norm
        self.depth = depth or max(s.depth for s in stages)
        self.name = (
            "fuse[" + norm + "](" + ", ".join(f"{w:g}*{s!r}" for s, w in zip(stages, weights)) + ")"
        )

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        runs = [s.transform(queries, candidates) for s in self.stages]
        return fuse_scores(runs, self.weights, norm=self.norm, depth=self.depth)

    def compile(self) -> Stage:
        return ScoreFusion(
            *[s.compile() for s in self.stages],
            weights=self.weights,
            norm=self.norm,
            depth=self.depth,
        )

    def with_depth(self, k: int) -> Stage:
        return ScoreFusion(*self.stages, weights=self.weights, norm=self.norm, depth=k)


def weight_grid(n_runs: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """All weight vectors on the simplex with the given step (each weight a multiple of ``step``)."""
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step}")
    m = int(round(1 / step))
    out = []
    for c in itertools.product(range(m + 1), repeat=n_runs - 1):
        if sum(c) <= m:
            out.append(tuple(x / m for x in (*c, m - sum(c))))
    return out
