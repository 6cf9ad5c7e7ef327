"""Learned-sparse retrieval: heron's Seismic index and the exact oracle.

The pyseismic-lsr adapter and the synthetic corpus generator are benchmark code
(``benchmarks/_lib/``).

``heron.capabilities.splade`` registers the ``"splade"`` retriever on collections.
"""

from heron.sparse.exact import ExactSparseIndex
from heron.sparse.seismic import SeismicIndex

__all__ = ["ExactSparseIndex", "SeismicIndex"]
