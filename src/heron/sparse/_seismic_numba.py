"""numba kernels behind :mod:`heron.sparse.seismic` (imported lazily, only with numba).

Compile time matters (a cold CI box compiles every kernel once; ``cache=True`` keeps them for
later runs), so the kernels avoid numpy's sorting and searching routines, each of which costs
seconds to compile per dtype: sorting is a hand-written heapsort, lookup a hand-written binary
search, the block order a counting sort. The per-query top-k heap is heron's shared one
(:mod:`heron.retrieval._topk_numba`).

The kernels live one per module: :mod:`._seismic_build_numba` (``term_counts``, ``kth_largest``, ``cluster``,
``fill_summaries``),
:mod:`._seismic_search_numba` (``search``) and their shared helpers
(:mod:`._seismic_helpers_numba`); all are importable from here.
"""

from __future__ import annotations

from heron.sparse._seismic_build_numba import (
    block_summary,
    cluster,
    fill_summaries,
    kth_largest,
    term_counts,
)
from heron.sparse._seismic_helpers_numba import (
    _JIT,
    _after,
    _sift_worst,
    argsort_desc,
    forward_dot,
)
from heron.sparse._seismic_search_numba import search

__all__ = [
    "_JIT",
    "_after",
    "_sift_worst",
    "argsort_desc",
    "block_summary",
    "cluster",
    "fill_summaries",
    "forward_dot",
    "kth_largest",
    "search",
    "term_counts",
]
