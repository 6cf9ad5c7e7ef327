"""Exact dense retrieval: inner product of the query with every live vector, top-k.

On normalised vectors the inner product is the cosine similarity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.capabilities.registry import register_retriever
from heron.limits import as_finite_vectors
from heron.pipeline import Queries, Stage, rescore
from heron.results import PAD_KEY, Results, check_k, pad
from heron.retrieval.topk import exact_search


def query_vectors(collection: Any, queries: Queries) -> np.ndarray:
    """Dense query vectors ``(n_queries, dim)`` for a collection (precomputed ones are used as given)."""
    v = queries.cached(collection.model) if collection.model != "none" else queries.cached("none")
    if v is None:
        v = queries.embed(collection.encoder)
    return as_finite_vectors(v, dim=collection.dim, rows=len(queries), what="query vectors")


def search_segments(
    snapshot: Any, q: np.ndarray, k: int, field: str = "dense"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` over every segment of a snapshot; returns ``(keys, scores)`` ``(nq, k)``."""
    nq = q.shape[0]
    all_k, all_s = [np.full((nq, 0), PAD_KEY, np.int64)], [np.full((nq, 0), -np.inf, np.float32)]
    for sv in snapshot.segments:
        if not sv.live.any():
            continue
        s, rows = exact_search(
            q, sv.segment.dense(field), k, valid=None if sv.all_live else sv.live
        )
        keys = np.where(rows >= 0, np.asarray(sv.segment.keys)[np.maximum(rows, 0)], PAD_KEY)
        all_k.append(keys)
        all_s.append(s)
    keys, scores = np.concatenate(all_k, axis=1), np.concatenate(all_s, axis=1)
    if keys.shape[1] > k or len(all_k) > 2:
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        keys, scores = np.take_along_axis(keys, order, 1), np.take_along_axis(scores, order, 1)
    return pad(keys, scores, k)


class DenseRetriever(Stage):
    """Exact dense retrieval over a collection's ``dense`` field.

    As a first stage it scans every live vector (blocked matrix product + partial sort, see
    :func:`heron.retrieval.topk.exact_search`); given candidates it re-scores them exactly.

    Parameters
    ----------
    collection: the :class:`~heron.Collection`.
    depth: hits returned when not cut by ``% k``.
    """

    rescores = True

    def __init__(self, collection: Any, *, depth: int = 1000, field: str = "dense") -> None:
        self.collection = collection
        self.depth = check_k(depth)
        self.field = field
        self.name = "dense"

    def with_depth(self, k: int) -> DenseRetriever:
        return DenseRetriever(self.collection, depth=k, field=self.field)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        q = query_vectors(self.collection, queries)
        snap = self.collection.snapshot()
        if candidates is not None:
            return rescore_exact(snap, q, candidates, self.field)
        keys, scores = search_segments(snap, q, self.depth, self.field)
        return Results(
            keys,
            scores,
            snap.resolver(),
            {"retriever": "dense", "generation": snap.generation},
        )


def rescore_exact(snap: Any, q: np.ndarray, candidates: Results, field: str = "dense") -> Results:
    """Exact inner products of each query with its candidates (dead keys drop to padding)."""
    rows = snap.rows_of(candidates.keys.ravel()).reshape(candidates.keys.shape)
    mat = snap.dense(field)
    scores = np.full(rows.shape, -np.inf, dtype=np.float32)
    ok = rows >= 0
    for i in range(rows.shape[0]):
        r = rows[i][ok[i]]
        if len(r):
            scores[i][ok[i]] = np.asarray(mat[r], dtype=np.float32) @ q[i]
    keys = np.where(ok, candidates.keys, PAD_KEY)
    return rescore(Results(keys, scores, candidates.resolver, candidates.info), scores)


register_retriever("dense", lambda collection, **p: DenseRetriever(collection, **p))
