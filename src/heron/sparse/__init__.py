"""Learned-sparse retrieval: heron's Seismic index, the exact oracle, a pyseismic-lsr adapter.

``heron.capabilities.splade`` registers the ``"splade"`` retriever on collections.
"""

from heron.sparse.exact import ExactSparseIndex
from heron.sparse.seismic import SeismicIndex

__all__ = ["ExactSparseIndex", "SeismicIndex"]
