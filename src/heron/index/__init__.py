"""Approximate (and exact) indexes over compressed vectors with live updates and filters.

``make_index("hnsw", M=32, ef_construction=40, codec="fp32").build(vectors, keys)`` (those are the
HNSW defaults, :data:`heron.index.hnsw.DEFAULT_M` / ``DEFAULT_EF_CONSTRUCTION``);
``index.search(queries, k, allowed=keys, params={"ef_search": 128})``; ``index.add`` /
``index.remove`` / ``index.upsert``; ``index.save(folder)`` / :func:`load_index`. Collections use
them through the ``flat`` / ``ivf`` / ``hnsw`` retrievers (:mod:`heron.capabilities.ann`).
"""

from __future__ import annotations

from typing import Any

from heron.index.base import AnnIndex, IndexMismatchError, load_index
from heron.index.flat import FlatIndex
from heron.index.hnsw import HNSWIndex
from heron.index.ivf import IVFIndex

#: index kind -> class
INDEX_TYPES: dict[str, type[AnnIndex]] = {"flat": FlatIndex, "ivf": IVFIndex, "hnsw": HNSWIndex}


def make_index(kind: str, **params: Any) -> AnnIndex:
    """An unbuilt index of ``kind`` (``"flat"``, ``"ivf"``, ``"hnsw"``) with ``params``."""
    cls = INDEX_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown index type {kind!r}; choose one of {sorted(INDEX_TYPES)}")
    import inspect

    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = [p for p in params if p not in valid]
    if bad:
        raise ValueError(f"unknown parameter(s) {bad} for index {kind!r}; valid: {valid}")
    return cls(**params)


__all__ = [
    "INDEX_TYPES",
    "AnnIndex",
    "FlatIndex",
    "HNSWIndex",
    "IVFIndex",
    "IndexMismatchError",
    "load_index",
    "make_index",
]
