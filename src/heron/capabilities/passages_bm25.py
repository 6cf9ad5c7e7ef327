"""BM25 over a chunked collection's passages: ``coll.retriever("passages_bm25")``.

The passages are those of the collection's passages field (same chunk spec, same situated text:
title / heading path and neighbours as the dense passages see them), so dense and lexical
retrieval rank the same units and fuse naturally (``hybrid:passages+passages_bm25``). A document
scores as its best passage (max); ``results.info["passages"]`` names that passage as the dense
``passages`` retriever does. The index is built in memory once per snapshot (not persisted).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.capabilities.bm25 import BM25Index
from heron.capabilities.passages import _default_field
from heron.capabilities.registry import register_retriever
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k

#: passages retrieved per document hit wanted, before aggregation to documents
OVERSAMPLE = 4


def passage_bm25(collection: Any, field: str, snap: Any, params: dict[str, Any]) -> tuple:
    """``(index, owner_keys, local_index)`` of the snapshot's passages (memoised per snapshot)."""

    def build() -> tuple:
        passages, owner, local = live_passages(collection, field, snap)
        idx = BM25Index(**params).build(
            [p.encoded for p in passages], np.arange(len(passages), dtype=np.int64)
        )
        return idx, owner, local

    return snap.memo(("passages_bm25", field, tuple(sorted(params.items()))), build)


def best_passages(
    pk: np.ndarray, ps: np.ndarray, owner: np.ndarray, local: np.ndarray, k: int,
    candidates: Results | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passage hits -> document hits, each document scored by its best passage (max).

    ``pk``/``ps`` ``(n_queries, depth)``: passage numbers (``-1`` padding) and scores, best
    first; ``owner``/``local``: each passage's document key and its index in that document.
    Returns ``keys``, ``scores``, ``passages`` of shape ``(n_queries, k)``; with
    ``candidates`` only their documents are kept (a re-ranking stage).
    """
    nq = len(pk)
    out_k = np.full((nq, k), PAD_KEY, np.int64)
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_p = np.full((nq, k), -1, np.int64)
    for i in range(nq):
        ok = pk[i] >= 0
        docs = owner[pk[i][ok]]
        _, first = np.unique(docs, return_index=True)  # hits are sorted: first = best
        first = np.sort(first)[:k]
        n = len(first)
        out_k[i, :n] = docs[first]
        out_s[i, :n] = ps[i][ok][first]
        out_p[i, :n] = local[pk[i][ok][first]]
    if candidates is not None:  # as a re-ranker: keep the candidates' documents only
        keep = np.stack([np.isin(out_k[i], candidates.keys[i]) for i in range(nq)])
        out_k, out_s = np.where(keep, out_k, PAD_KEY), np.where(keep, out_s, -np.inf)
        order = np.argsort(-out_s, axis=1, kind="stable")
        out_k, out_s = np.take_along_axis(out_k, order, 1), np.take_along_axis(out_s, order, 1)
        out_p = np.take_along_axis(np.where(keep, out_p, -1), order, 1)
    return out_k, out_s, out_p


def live_passages(collection: Any, field: str, snap: Any) -> tuple[list, np.ndarray, np.ndarray]:
    """``(passages, owner_keys, local_index)`` of the snapshot's live documents, chunked by the
    passages field ``field`` (its situated text is ``passage.encoded``)."""
    enc = collection.field_encoder(field)
    live = set(np.asarray(snap.keys).tolist())
    texts, titles, keys = [], [], []
    for doc in collection.iter_documents():
        if doc.key in live:
            texts.append(doc.text)
            titles.append(str(doc.metadata.get("title") or ""))
            keys.append(doc.key)
    offsets, passages = enc.chunk(texts, titles)
    counts = np.diff(offsets)
    owner = np.repeat(np.asarray(keys, dtype=np.int64), counts)
    local = np.arange(len(passages)) - np.repeat(offsets[:-1], counts)
    return passages, owner, local.astype(np.int64)


class PassageBM25Retriever(Stage):
    """Documents ranked by their best passage's BM25 score (parameters of
    :class:`~heron.capabilities.bm25.BM25Index`; ``field`` names the passages field)."""

    def __init__(
        self, collection: Any, *, field: str | None = None, depth: int = 1000, **params: Any
    ) -> None:
        self.collection = collection
        self.field = field or _default_field(collection)
        self.depth = check_k(depth)
        BM25Index(**params)  # validate now
        self.params = params
        self.name = "passages_bm25"

    def with_depth(self, k: int) -> PassageBM25Retriever:
        return PassageBM25Retriever(self.collection, field=self.field, depth=k, **self.params)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        snap = self.collection.snapshot()
        idx, owner, local = passage_bm25(self.collection, self.field, snap, self.params)
        k = self.depth
        pk, ps = idx.search(queries.texts, min(max(k * OVERSAMPLE, k), max(len(owner), 1)))
        out_k, out_s, out_p = best_passages(pk, ps, owner, local, k, candidates)
        info = {"retriever": "passages_bm25", "score": "bm25", "field": self.field, "passages": out_p}
        return Results(out_k, out_s, snap.resolver(), info)


register_retriever("passages_bm25", lambda collection, **p: PassageBM25Retriever(collection, **p))

__all__ = ["PassageBM25Retriever", "best_passages", "live_passages", "passage_bm25"]
