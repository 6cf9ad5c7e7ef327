"""Result fusion: reciprocal rank (:class:`heron.pipeline.RRF`) and normalised score fusion."""

from heron.fusion.score import (
    NORMALISATIONS,
    ScoreFusion,
    fuse_scores,
    weight_grid,
)
from heron.pipeline import RRF, fuse_rrf

__all__ = [
    "NORMALISATIONS",
    "RRF",
    "ScoreFusion",
    "fuse_rrf",
    "fuse_scores",
    "weight_grid",
]
