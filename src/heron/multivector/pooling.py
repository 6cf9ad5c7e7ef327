"""Training-free token pooling for multi-stage late-interaction search.

After the "Visual RAG Toolkit" (Faysse et al. / the ColPali community's multi-stage retrieval):
each document's token vectors are pooled into a handful of vectors — contiguous (sliding)
window means, k-means cluster means, or one global mean — which are cheap to score with MaxSim
(or to put in a single-vector index); the top candidates are then reranked by exact MaxSim on
the full token vectors. Pooling by k-means follows Clavié, Chaffin & Adams, "Reducing the
Footprint of Multi-Vector Retrieval with Minimal Performance Impact via Token Pooling" (2024).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.multivector.maxsim import maxsim_batch, query_tokens, rerank_maxsim
from heron.multivector.ragged import RaggedArray
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k
from heron.retrieval.topk import topk_rows

METHODS = ("window", "kmeans", "mean")


def pool_tokens(
    docs: RaggedArray,
    *,
    method: str = "window",
    n_vectors: int = 8,
    window: int | None = None,
    stride: int | None = None,
    n_iter: int = 10,
    normalize: bool = True,
    seed: int = 0,
) -> RaggedArray:
    """Pool each document's tokens into at most ``n_vectors`` vectors.

    Parameters
    ----------
    docs: token store, ``n_docs`` documents of ``(n_i, d)`` tokens.
    method:
        ``"window"``: means of contiguous token windows. By default the window is
        ``ceil(n_i / n_vectors)`` tokens (non-overlapping), so every document gets at most
        ``n_vectors`` vectors; pass ``window``/``stride`` for fixed sliding windows (then the
        count is capped at ``n_vectors`` by widening the stride).
        ``"kmeans"``: means of ``min(n_vectors, n_i)`` k-means clusters of the document's tokens.
        ``"mean"``: one global mean per document (``n_vectors`` ignored).
    normalize: L2-normalise the pooled vectors.
    n_iter, seed: k-means iterations and seed.

    Returns
    -------
    A :class:`RaggedArray` (float32) of pooled vectors with the same ``keys`` and ``deleted``
    mask; documents without tokens stay empty.
    """
    if method not in METHODS:
        raise ValueError(f"pooling method must be one of {METHODS}, got {method!r}")
    if (
        isinstance(n_vectors, bool)
        or not isinstance(n_vectors, (int, np.integer))
        or n_vectors <= 0
    ):
        raise ValueError(f"n_vectors must be a positive int, got {n_vectors!r}")
    lens = docs.lengths()
    n = len(docs)
    if method == "mean":
        group_counts = np.minimum(lens, 1)
    elif method == "window":
        group_counts = np.zeros(n, dtype=np.int64)
    else:
        group_counts = np.minimum(lens, n_vectors)
    out_lists: list[np.ndarray] = []
    rng = np.random.default_rng(seed)
    step = 2048
    for s in range(0, n, step):
        rows = np.arange(s, min(s + step, n))
        vals, offs = docs.gather(rows)
        if method == "mean":
            out_lists.extend(
                _segment_means(vals, offs, np.repeat(np.arange(len(rows)), np.diff(offs)))
            )
        elif method == "window":
            out_lists.extend(_window_pool(vals, offs, n_vectors, window, stride))
        else:
            for i in range(len(rows)):
                x = vals[offs[i] : offs[i + 1]]
                out_lists.append(_kmeans_pool(x, min(n_vectors, len(x)), n_iter, rng))
    if method == "window":
        group_counts = np.array([len(a) for a in out_lists], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(group_counts, out=offsets[1:])
    values = (
        np.concatenate(out_lists, axis=0).astype(np.float32)
        if offsets[-1]
        else np.zeros((0, docs.dim), np.float32)
    )
    if normalize and len(values):
        values /= np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    return RaggedArray(offsets, values, keys=docs.keys.copy(), deleted=docs.deleted.copy())


def _segment_means(vals: np.ndarray, offs: np.ndarray, group: np.ndarray) -> list[np.ndarray]:
    """Mean of consecutive tokens sharing a group id; returns one array per document."""
    out: list[np.ndarray] = []
    if len(vals) == 0:
        return [np.zeros((0, vals.shape[1]), np.float32) for _ in range(len(offs) - 1)]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sums = np.add.reduceat(vals, starts, axis=0)
    counts = np.diff(np.r_[starts, len(vals)])
    means = sums / counts[:, None]
    doc_of_group = np.searchsorted(offs, starts, side="right") - 1
    bounds = np.searchsorted(doc_of_group, np.arange(len(offs)))
    for i in range(len(offs) - 1):
        out.append(means[bounds[i] : bounds[i + 1]])
    return out


def _window_pool(
    vals: np.ndarray, offs: np.ndarray, n_vectors: int, window: int | None, stride: int | None
) -> list[np.ndarray]:
    lens = np.diff(offs)
    if window is None and stride is None:
        w = np.maximum(1, -(-lens // n_vectors))  # ceil
        local = np.arange(len(vals)) - np.repeat(offs[:-1], lens)
        seg = np.repeat(np.arange(len(lens)), lens) * (n_vectors + 1) + local // np.repeat(w, lens)
        return _segment_means(vals, offs, seg)
    out: list[np.ndarray] = []
    for i in range(len(lens)):
        x = vals[offs[i] : offs[i + 1]]
        if len(x) == 0:
            out.append(np.zeros((0, vals.shape[1]), np.float32))
            continue
        w = int(window or max(1, -(-len(x) // n_vectors)))
        st = int(stride or w)
        starts = list(range(0, max(len(x) - w, 0) + 1, st))
        if starts[-1] + w < len(x):
            starts.append(len(x) - w)
        if len(starts) > n_vectors:  # widen the stride to respect the cap
            starts = list(np.linspace(0, max(len(x) - w, 0), n_vectors).round().astype(int))
        out.append(np.stack([x[a : a + w].mean(axis=0) for a in starts]))
    return out


def _kmeans_pool(x: np.ndarray, k: int, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    if k == 0:
        return np.zeros((0, x.shape[1]), np.float32)
    if k >= len(x):
        return x.copy()
    c = x[np.linspace(0, len(x) - 1, k).round().astype(int)].copy()
    for _ in range(n_iter):
        a = np.argmax(x @ c.T, axis=1)
        onehot = np.zeros((len(x), k), np.float32)
        onehot[np.arange(len(x)), a] = 1.0
        sums = onehot.T @ x  # one BLAS call instead of a slow np.add.at
        cnt = np.bincount(a, minlength=k)
        empty = cnt == 0
        if empty.any():
            sums[empty] = x[rng.integers(0, len(x), empty.sum())]
            cnt[empty] = 1
        newc = sums / cnt[:, None]
        newc /= np.maximum(np.linalg.norm(newc, axis=1, keepdims=True), 1e-12)
        if np.allclose(newc, c):
            break
        c = newc
    a = np.argmax(x @ c.T, axis=1)
    onehot = np.zeros((len(x), k), np.float32)
    onehot[np.arange(len(x)), a] = 1.0
    sums = onehot.T @ x
    cnt = np.bincount(a, minlength=k)
    return (sums[cnt > 0] / cnt[cnt > 0, None]).astype(np.float32)


class PooledRetriever(Stage):
    """Multi-stage retrieval: MaxSim over pooled vectors for candidates, exact MaxSim rerank.

    Parameters
    ----------
    pooled: pooled vectors (:func:`pool_tokens`), rows aligned with ``docs``.
    docs: full token store for the exact rerank.
    token_encoder: text -> token vectors encoder (optional with precomputed query tokens).
    candidates: pooled hits reranked per query.
    rerank: ``False`` returns the pooled ranking.
    depth: hits returned.
    """

    name = "pooled"

    def __init__(
        self,
        *,
        pooled: RaggedArray,
        docs: RaggedArray,
        token_encoder: Any | None = None,
        candidates: int = 100,
        rerank: bool = True,
        depth: int = 100,
        resolver: Any = None,
    ) -> None:
        if len(pooled) != len(docs) or not np.array_equal(pooled.keys, docs.keys):
            raise ValueError(
                "pooled vectors must have one row per document of docs, with the same keys; re-pool after changes"
            )
        if pooled.dim != docs.dim:
            raise ValueError(
                f"pooled dimension {pooled.dim} does not match the token dimension {docs.dim}"
            )
        self.pooled, self.docs, self.token_encoder = pooled, docs, token_encoder
        self.candidates, self.rerank, self.depth, self.resolver = (
            check_k(candidates),
            bool(rerank),
            check_k(depth),
            resolver,
        )

    def with_depth(self, k: int) -> PooledRetriever:
        return PooledRetriever(
            pooled=self.pooled,
            docs=self.docs,
            token_encoder=self.token_encoder,
            candidates=self.candidates,
            rerank=self.rerank,
            depth=k,
            resolver=self.resolver,
        )

    def pooled_search(self, qt: list[np.ndarray], k: int) -> Results:
        sc = maxsim_batch(qt, self.pooled.values, self.pooled.offsets)
        dead = self.docs.deleted | self.pooled.deleted
        if dead.any():
            sc[:, dead] = -np.inf
        s, r = topk_rows(sc, k)
        keys = np.where(r >= 0, self.docs.keys[np.maximum(r, 0)], PAD_KEY)
        return Results(keys, s, self.resolver, {"stage": "pooled"})

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        qt = query_tokens(queries, self.token_encoder, self.docs.dim)
        if not self.rerank:
            return self.pooled_search(qt, self.depth)
        cand = self.pooled_search(qt, max(self.candidates, self.depth))
        return rerank_maxsim(qt, self.docs, cand, depth=self.depth)
