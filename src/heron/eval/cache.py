"""On-disk cache of dataset encodings, so evaluations and benchmarks encode a corpus once.

Dense embeddings (:func:`dataset_embeddings`), SPLADE vectors (:func:`dataset_sparse`) and
per-token vectors (:func:`cached_token_vectors`, :func:`cached_token_ids`) of a BEIR dataset.
Files live under ``$HERON_CACHE`` (default ``~/.cache/heron``) as plain ``.npy`` arrays (token
vectors as ragged folders) with a JSON sidecar naming the model, dataset and row order; no pickle.
The encoders and kernels know nothing of datasets: the caches live here, above them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heron._deps import require
from heron.multivector.ragged import RaggedArray
from heron.multivector.tokens import encode_tokens_to, token_ids


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


def encoder_tag(encoder: object) -> str:
    """The cache name of an encoder's vectors: its model name, plus its precision unless float32
    (so float32 caches written before precisions existed stay valid, and a bfloat16 encoder never
    reads float32 vectors as its own)."""
    p = getattr(encoder, "precision", None)
    name = str(encoder.name)
    pooling = getattr(encoder, "pooling", None)
    if isinstance(pooling, str):  # a pooling other than the model's own
        name = f"{name}+{pooling}"
    return name if p in (None, "float32") else f"{name}@{p}"


#: a query set larger than this gets a progress bar while it is encoded (a few seconds on 2 cores)
QUERY_PROGRESS_OVER = 1000


def query_progress(progress: bool, queries: Sequence[str]) -> bool:
    """Whether encoding ``queries`` shows a bar: asked for, and long enough to take a while."""
    return bool(progress) and len(queries) > QUERY_PROGRESS_OVER


def dataset_embeddings(dataset, encoder, *, split: str = "test", progress: bool = True) -> dict:
    """Cached dense embeddings of a :class:`~heron.eval.beir.BeirDataset`.

    Returns a dict with ``doc_ids``, ``doc_emb`` ``(n_docs, d)``, ``query_ids``, ``queries``,
    ``query_emb`` ``(n_queries, d)`` for the ``split``'s judged queries, and ``qrels``.
    """
    qids, qtexts, qrels = dataset.split(split)
    docs = dataset.documents()
    tag = f"{dataset.name}-{encoder_tag(encoder)}"
    doc_emb = cached_array(
        f"{tag}-docs",
        dataset.doc_ids,
        lambda: encoder.encode_documents(docs, progress=progress),
        meta={"model": encoder.name},
    )
    q_emb = cached_array(
        f"{tag}-queries-{split}",
        qids,
        lambda: encoder.encode_queries(qtexts, progress=query_progress(progress, qtexts)),
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


def cached_sparse(name: str, ids: Sequence[str], compute):
    """Like :func:`cached_array` for a CSR matrix (three ``.npy`` arrays + shape)."""
    sp = require("scipy.sparse", purpose="sparse vectors")

    box: dict = {}

    def part(field: str):
        def make():
            if "m" not in box:
                box["m"] = sp.csr_matrix(compute(), dtype=np.float32)
            m = box["m"]
            nnz = np.diff(m.indptr)
            if field == "nnz":
                return nnz.astype(np.int64)
            # pad ragged rows into a (n, max_nnz) table so the row-keyed cache can hold it
            width = max(1, int(nnz.max(initial=0)))
            arr = np.zeros((m.shape[0], width), dtype=np.float32 if field == "data" else np.int32)
            for i in range(m.shape[0]):
                a, b = m.indptr[i], m.indptr[i + 1]
                arr[i, : b - a] = (m.data if field == "data" else m.indices)[a:b]
            return arr

        return make

    nnz = cached_array(f"{name}-nnz", ids, part("nnz"))
    idx = cached_array(f"{name}-idx", ids, part("indices"))
    val = cached_array(f"{name}-val", ids, part("data"))
    vocab = box["m"].shape[1] if "m" in box else None
    indptr = np.concatenate([[0], np.cumsum(nnz)]).astype(np.int64)
    mask = np.arange(idx.shape[1])[None, :] < nnz[:, None]
    if vocab is None:
        vocab = 30522 if not idx.size else max(30522, int(idx.max()) + 1)
    return sp.csr_matrix((val[mask], idx[mask], indptr), shape=(len(ids), vocab))


def dataset_sparse(
    dataset, encoder: Any, *, split: str = "test", progress: bool = True
) -> dict:
    """Cached SPLADE vectors of a BEIR dataset: ``doc_vecs`` ``(n_docs, V)``, ``query_vecs`` for ``split``."""
    qids, qtexts, qrels = dataset.split(split)
    docs = dataset.documents()
    tag = f"{dataset.name}-{encoder_tag(encoder)}-sparse{encoder.max_length}"
    d = cached_sparse(
        f"{tag}-docs", dataset.doc_ids, lambda: encoder.encode_documents(docs, progress=progress)
    )
    q = cached_sparse(
        f"{tag}-queries-{split}",
        qids,
        lambda: encoder.encode_queries(qtexts, progress=query_progress(progress, qtexts)),
    )
    v = encoder.vocab_size
    d.resize((d.shape[0], v))
    q.resize((q.shape[0], v))
    return {
        "doc_ids": dataset.doc_ids,
        "doc_vecs": d,
        "query_ids": qids,
        "queries": qtexts,
        "query_vecs": q,
        "qrels": qrels,
    }


def cached_token_vectors(
    dataset: Any, encoder: Any, *, split: str = "test", progress: bool = True
) -> dict:
    """Cached token vectors of a :class:`~heron.eval.beir.BeirDataset`.

    Stored under ``$HERON_CACHE/tokens/<dataset>-<model>-<hash>/`` (float16 ragged folders).

    Returns
    -------
    dict with ``doc_ids``, ``docs`` (:class:`RaggedArray`, memory-mapped, row ``i`` = document
    ``doc_ids[i]``), ``query_ids``, ``queries`` (texts), ``query_tokens`` (:class:`RaggedArray`)
    and ``qrels`` of the ``split``.
    """
    qids, qtexts, qrels = dataset.split(split)
    h = hashlib.sha1("\x1f".join(dataset.doc_ids).encode()).hexdigest()[:12]
    safe_model = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.name)[-60:]
    root = cache_dir() / "tokens" / f"{dataset.name}-{safe_model}-{h}"
    dpath = root / "docs"
    if not (dpath / "manifest.json").exists():
        encode_tokens_to(dpath, dataset.documents(), encoder, progress=progress)
    qh = hashlib.sha1("\x1f".join(qids).encode()).hexdigest()[:12]
    qpath = root / f"queries-{split}-{qh}"
    if not (qpath / "manifest.json").exists():
        encode_tokens_to(qpath, qtexts, encoder, progress=query_progress(progress, qtexts))
    docs = RaggedArray.open(dpath)
    queries = RaggedArray.open(qpath)
    if len(docs) != len(dataset.doc_ids) or len(queries) != len(qids):
        raise ValueError(
            f"token cache at {str(root)!r} does not match the dataset; delete the folder to rebuild it"
        )
    return {
        "doc_ids": dataset.doc_ids,
        "docs": docs,
        "query_ids": qids,
        "queries": qtexts,
        "query_tokens": queries,
        "qrels": qrels,
    }


def cached_token_ids(dataset: Any, encoder: Any, docs: RaggedArray) -> np.ndarray:
    """Vocabulary id of every stored document token of ``dataset`` (cached next to its tokens).

    Returns ``(n_tokens,)`` int32, aligned with ``docs.values``; raises if the tokenizer's count
    differs from the stored token counts (then the cache does not belong to this encoder).
    """
    h = hashlib.sha1("\x1f".join(dataset.doc_ids).encode()).hexdigest()[:12]
    safe_model = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.name)[-60:]
    path = cache_dir() / "tokens" / f"{dataset.name}-{safe_model}-{h}" / "docs-token-ids.npy"
    if path.exists():
        ids = np.load(path)
    else:
        ids = token_ids(dataset.documents(), encoder)
        if len(ids) == docs.values.shape[0]:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, ids)
            tmp.replace(path)
    if len(ids) != docs.values.shape[0]:
        raise ValueError(
            f"tokenizer gives {len(ids)} tokens but the store holds {docs.values.shape[0]}; "
            "the token cache was built with another encoder or settings"
        )
    return ids

