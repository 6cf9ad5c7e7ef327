"""Exact learned-sparse retrieval: the scipy inner-product oracle beside every approximation.

Scores are ``q · d`` over non-negative sparse vectors. The document matrix is kept term-major
(``(V, n)`` CSR, i.e. an inverted index), so a batch of queries is one sparse-sparse product
that touches only the posting lists of the query terms (term-at-a-time), then an exact top-k.
Documents sharing no term with a query (score 0) are not returned: a row holds fewer than ``k``
hits, padded with key ``-1`` / score ``-inf``, when fewer than ``k`` documents match.
"""

from __future__ import annotations

import numpy as np

from heron._deps import require
from heron.results import PAD_KEY, Results, check_k
from heron.retrieval.topk import topk_candidates


def check_csr(x, *, what: str, vocab_size: int | None = None):
    """Validate and normalise a sparse matrix to ``float32`` CSR with sorted indices."""
    sp = require("scipy.sparse", purpose="sparse vectors")
    if not sp.issparse(x):
        raise TypeError(
            f"{what} must be a scipy sparse matrix of shape (n, vocab), got {type(x).__name__}"
        )
    if not (sp.isspmatrix_csr(x) and x.dtype == np.float32):  # fast path: already float32 CSR
        x = sp.csr_matrix(x, dtype=np.float32)
    if vocab_size is not None and x.shape[1] != vocab_size:
        raise ValueError(
            f"{what} has {x.shape[1]} columns but the index vocabulary has {vocab_size} terms; "
            "encode with the same model (vocabulary) the index was built with"
        )
    if x.nnz and float(x.data.min()) < 0:
        raise ValueError(
            f"{what} has negative weights (min {float(x.data.min())}); learned-sparse weights must be >= 0"
        )
    if not x.has_sorted_indices:
        x = x.copy()
        x.sort_indices()
    return x


def topk_sparse_rows(scores, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (by value desc, then column asc) of the positive entries of each CSR row.

    Returns ``(rows (n, k) int64 padded -1, values (n, k) float32 padded -inf)``. A row holds
    thousands of matches: one ``partition`` per row finds its ``k``-th value, and only the entries
    at least as good go to the shared selector (:func:`heron.retrieval.topk.topk_candidates`,
    which orders ties by column whatever the order of the row's indices).
    """
    n = scores.shape[0]
    keys = np.full((n, k), PAD_KEY, dtype=np.int64)
    vals = np.full((n, k), -np.inf, dtype=np.float32)
    for i in range(n):
        a, b = scores.indptr[i], scores.indptr[i + 1]
        data = scores.data[a:b].astype(np.float32)
        keep = data > 0
        if b - a > k:
            keep &= data >= np.partition(data, b - a - k)[b - a - k]
        pick = np.flatnonzero(keep)
        if len(pick):
            ts, tc = topk_candidates(
                np.zeros(len(pick), np.int64), scores.indices[a:b][pick], data[pick], 1, k
            )
            keys[i], vals[i] = tc[0], ts[0]
    return keys, vals


class ExactSparseIndex:
    """Exhaustive inner-product search over sparse vectors (the oracle).

    Parameters
    ----------
    docs:
        ``(n, V)`` scipy sparse matrix of non-negative weights.
    keys:
        Optional ``int64`` keys of the rows, shape ``(n,)`` (default ``0..n-1``).
    batch_size:
        Queries per sparse product (bounds the memory of the ``(batch, n)`` score matrix).
    """

    def __init__(self, docs, *, keys: np.ndarray | None = None, batch_size: int = 32) -> None:
        docs = check_csr(docs, what="docs")
        self.n_docs, self.vocab_size = docs.shape
        # term-major copy: row t is the posting list of term t
        self._inverted = docs.T.tocsr()
        self.keys = _check_keys(keys, self.n_docs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = batch_size

    def search(self, queries, k: int = 10) -> Results:
        """Exact top-``k`` by inner product for a ``(nq, V)`` sparse query matrix."""
        k = check_k(k)
        q = check_csr(queries, what="queries", vocab_size=self.vocab_size)
        out_k = np.full((q.shape[0], k), PAD_KEY, dtype=np.int64)
        out_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        for s in range(0, q.shape[0], self.batch_size):
            block = q[s : s + self.batch_size] @ self._inverted
            rk, rs = topk_sparse_rows(block.tocsr(), k)
            out_k[s : s + self.batch_size] = rk
            out_s[s : s + self.batch_size] = rs
        valid = out_k != PAD_KEY
        out_k[valid] = self.keys[out_k[valid]]
        return Results(out_k, out_s, info={"index": "exact-sparse"})


def _check_keys(keys, n: int) -> np.ndarray:
    if keys is None:
        return np.arange(n, dtype=np.int64)
    keys = np.asarray(keys)
    if keys.shape != (n,) or not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(
            f"keys must be an int array of shape ({n},), got {keys.dtype} {keys.shape}"
        )
    return keys.astype(np.int64, copy=False)
