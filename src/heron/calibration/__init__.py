"""Calibrated relevance: raw cosine -> relevance probability, and variable-length results."""

from heron.calibration.baselines import global_threshold, minmax_threshold, topk_cutoff
from heron.calibration.cosine_adapter import CosineAdapter, RelevanceThreshold, label_candidates
from heron.calibration.setmetrics import match_count, set_prf

__all__ = [
    "CosineAdapter",
    "RelevanceThreshold",
    "global_threshold",
    "label_candidates",
    "match_count",
    "minmax_threshold",
    "set_prf",
    "topk_cutoff",
]
