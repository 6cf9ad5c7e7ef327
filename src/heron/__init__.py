"""heron: a retrieval engine for embedding-based search.

Quick start::

    import heron
    coll = heron.Collection.create("my-collection")
    coll.add(["first document", "second document"], ids=["a", "b"])
    res = coll.search("which document comes first?", k=1)
    print(res.doc_ids(), res.scores)

Heavy parts (torch, faiss, bm25s, ...) are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from heron.collection import Collection, Document
    from heron.pipeline import RRF, Queries, Stage
    from heron.results import Results

_LAZY = {
    "Collection": "heron.collection",
    "Document": "heron.collection",
    "SparseField": "heron.collection",
    "TokensField": "heron.collection",
    "DenseField": "heron.collection",
    "CorruptionError": "heron.collection",
    "DiskFullError": "heron.collection",
    "WriteLockTimeout": "heron.collection",
    "Results": "heron.results",
    "Queries": "heron.pipeline",
    "Stage": "heron.pipeline",
    "RRF": "heron.pipeline",
    "load_encoder": "heron.encoders",
    "load_beir": "heron.eval",
    "Client": "heron.client",
    "AsyncClient": "heron.client",
    "ShardedCollection": "heron.scale",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'heron' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "Client",
    "Collection",
    "CorruptionError",
    "DenseField",
    "DiskFullError",
    "Document",
    "ShardedCollection",
    "SparseField",
    "TokensField",
    "WriteLockTimeout",
    "Queries",
    "RRF",
    "Results",
    "Stage",
    "__version__",
    "load_beir",
    "load_encoder",
]
