"""Learned-sparse retrieval: Seismic (heron's numba index, or the authors' Rust ``pyseismic-lsr``
through :mod:`heron.sparse.pyseismic`) and the exact oracle.

``heron.capabilities.splade`` registers the ``"splade"`` retriever on collections.
"""

from heron.sparse.exact import ExactSparseIndex
from heron.sparse.seismic import SeismicIndex

__all__ = ["ExactSparseIndex", "SeismicIndex"]
