"""On-disk cache of dataset embeddings, so benchmarks and experiments encode a corpus once.

Files live under ``$HERON_CACHE`` (default ``~/.cache/heron``) as plain ``.npy`` arrays with a
JSON sidecar naming the model, dataset and row order; no pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    d = Path(os.environ.get("HERON_CACHE", Path.home() / ".cache" / "heron"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _key(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def cached_array(
    name: str, ids: Sequence[str], compute: Callable[[], np.ndarray], *, meta: dict | None = None
) -> np.ndarray:
    """Return a cached array for ``name`` over rows ``ids``, computing and storing it if absent.

    The cache key covers ``name`` and the exact row ids, so a changed dataset recomputes.
    """
    key = _key(name, *ids)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    path = cache_dir() / f"{safe}-{key}.npy"
    if path.exists():
        return np.load(path)
    arr = np.ascontiguousarray(compute())
    if arr.shape[0] != len(ids):
        raise ValueError(f"computed {arr.shape[0]} rows for {len(ids)} ids in cache entry {name!r}")
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    side = {
        "name": name,
        "rows": len(ids),
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        **(meta or {}),
    }
    path.with_suffix(".json").write_text(json.dumps(side, indent=1))
    return arr


def dataset_embeddings(dataset, encoder, *, split: str = "test", progress: bool = True) -> dict:
    """Cached dense embeddings of a :class:`~heron.eval.beir.BeirDataset`.

    Returns a dict with ``doc_ids``, ``doc_emb`` ``(n_docs, d)``, ``query_ids``, ``queries``,
    ``query_emb`` ``(n_queries, d)`` for the ``split``'s judged queries, and ``qrels``.
    """
    qids, qtexts, qrels = dataset.split(split)
    docs = dataset.documents()
    tag = f"{dataset.name}-{encoder.name}"
    doc_emb = cached_array(
        f"{tag}-docs",
        dataset.doc_ids,
        lambda: encoder.encode_documents(docs, progress=progress),
        meta={"model": encoder.name},
    )
    q_emb = cached_array(
        f"{tag}-queries-{split}",
        qids,
        lambda: encoder.encode_queries(qtexts),
        meta={"model": encoder.name},
    )
    return {
        "doc_ids": dataset.doc_ids,
        "doc_emb": doc_emb,
        "query_ids": qids,
        "queries": qtexts,
        "query_emb": q_emb,
        "qrels": qrels,
    }
