"""Query-aware dimension selection and common-direction filtering of dense embeddings."""

from heron.dimsel.feature_lens import CommonDirectionFilter
from heron.dimsel.selector import (
    DimensionSelector,
    DimensionSelectRetriever,
    masked_queries,
    mix_importance,
    prf_importance,
)

__all__ = [
    "CommonDirectionFilter",
    "DimensionSelectRetriever",
    "DimensionSelector",
    "masked_queries",
    "mix_importance",
    "prf_importance",
]
