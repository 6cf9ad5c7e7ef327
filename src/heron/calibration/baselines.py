"""Baseline ways to cut a ranked list into a variable-length result set.

Each takes first-stage :class:`~heron.results.Results` with raw cosine scores and returns
Results padded after the last kept hit (same width).
"""

from __future__ import annotations

import numpy as np

from heron.calibration.cosine_adapter import threshold_results
from heron.results import Results, check_k


def topk_cutoff(candidates: Results, k: int) -> Results:
    """Keep the first ``k`` hits of every query."""
    k = check_k(k)
    ranks = np.broadcast_to(np.arange(candidates.k), candidates.keys.shape)
    return threshold_results(candidates, np.where(ranks < k, 1.0, 0.0), 0.5)


def global_threshold(candidates: Results, threshold: float, *, min_hits: int = 0) -> Results:
    """Keep hits whose raw score is at least ``threshold`` (the same for every query)."""
    return threshold_results(candidates, candidates.scores, float(threshold), min_hits=min_hits)


def minmax_threshold(candidates: Results, threshold: float) -> Results:
    """Per-query min-max normalise the scores over the candidate list, keep those ``>= threshold``."""
    s = np.where(candidates.valid(), candidates.scores, np.nan).astype(np.float64)
    lo, hi = np.nanmin(s, axis=1, keepdims=True), np.nanmax(s, axis=1, keepdims=True)
    norm = np.where(np.isnan(s), -np.inf, (s - lo) / np.maximum(hi - lo, 1e-12))
    return threshold_results(candidates, norm, float(threshold))
