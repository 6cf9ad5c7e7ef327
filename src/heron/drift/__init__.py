"""Serve new-model queries against an index built by an old model: learned maps B -> A."""

from heron.drift.maps import (
    DriftMap,
    MappedQueryEncoder,
    fit_drift_map,
    heldout_cosine,
    knn_targets,
    tune_knn,
)

__all__ = [
    "DriftMap",
    "MappedQueryEncoder",
    "fit_drift_map",
    "heldout_cosine",
    "knn_targets",
    "tune_knn",
]
