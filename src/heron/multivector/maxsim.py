"""Exact late-interaction (MaxSim / Chamfer) scoring: the oracle every approximation is judged by.

Khattab & Zaharia, "ColBERT: Efficient and Effective Passage Search via Contextualized Late
Interaction over BERT", SIGIR 2020. For a query ``Q`` (``(m, d)``) and a document ``D``
(``(n, d)``)::

    MaxSim(Q, D) = sum_i max_j <q_i, d_j>

which MUVERA (Dhulipala et al., NeurIPS 2024) calls the (asymmetric) Chamfer similarity.

Two implementations give the same scores (to float rounding):

* ``"numba"`` (default when numba is installed and the queries have few tokens): one fused
  parallel pass per document that reads its float16 (or float32) tokens straight from the
  memory-mapped store, converts them in registers, and keeps the per-query-token maxima
  (:mod:`heron.multivector._maxsim_numba`). Used by the whole-corpus oracle *and* the reranker,
  so speed comparisons between them are fair.
* ``"numpy"``: one BLAS product of all query tokens against a block of documents, then
  ``np.maximum.reduceat`` over each document's token span and ``np.add.reduceat`` over each
  query's span. Faster for large query batches (many hundreds of query tokens), where the
  conversion of each block is amortised over the whole batch.

A document with zero tokens scores ``-inf`` (it can never be retrieved by MaxSim).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from heron.multivector.ragged import RaggedArray
from heron.pipeline import Queries, Stage, rescore
from heron.results import PAD_KEY, Results, check_k
from heron.retrieval.topk import topk_rows

QueryTokens = Sequence[np.ndarray] | RaggedArray
METHODS = ("auto", "numba", "numpy")
#: With ``method="auto"``, query batches with more stacked tokens than this use BLAS blocks.
NUMBA_MAX_QUERY_TOKENS = 256


def as_token_list(queries: QueryTokens, dim: int | None = None) -> list[np.ndarray]:
    """Normalise query token input to a list of ``float32`` ``(m_i, d)`` arrays, checking ``d``."""
    if isinstance(queries, RaggedArray):
        out = [np.asarray(queries[i], dtype=np.float32) for i in range(len(queries))]
    elif isinstance(queries, np.ndarray) and queries.ndim == 2:
        out = [np.asarray(queries, dtype=np.float32)]
    else:
        out = [np.asarray(q, dtype=np.float32) for q in queries]
    for i, q in enumerate(out):
        if q.ndim != 2:
            raise ValueError(
                f"query {i}: token vectors must be a 2-d (n_tokens, d) array, got shape {q.shape}"
            )
        if dim is not None and q.shape[0] and q.shape[1] != dim:
            raise ValueError(
                f"query {i}: token dimension {q.shape[1]} does not match the documents' {dim}; encode queries and documents with the same model"
            )
    return out


def _segment_max(s: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Column-segment maxima of ``s`` ``(m, n_tok)`` over spans ``offsets`` -> ``(m, n_seg)``; empty spans give ``-inf``."""
    lens = np.diff(offsets)
    out = np.full((s.shape[0], len(lens)), -np.inf, dtype=np.float32)
    nz = lens > 0
    if s.shape[1] and nz.any():
        out[:, nz] = np.maximum.reduceat(s, offsets[:-1][nz], axis=1)
    return out


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """MaxSim of one query ``(m, d)`` and one document ``(n, d)`` (``-inf`` if either is empty)."""
    q = np.asarray(query, dtype=np.float32)
    d = np.asarray(doc, dtype=np.float32)
    if len(q) == 0 or len(d) == 0:
        return float("-inf")
    return float((q @ d.T).max(axis=1).sum())


def maxsim_scores(
    query: np.ndarray, values: np.ndarray, offsets: np.ndarray, *, block_tokens: int = 1 << 16
) -> np.ndarray:
    """MaxSim of one query against documents given as ``values`` + ``offsets``.

    Parameters
    ----------
    query: ``(m, d)`` query token vectors.
    values: ``(n_tokens, d)`` document token vectors (any float dtype; memmaps are read in blocks).
    offsets: ``(n_docs + 1,)`` spans of each document in ``values``.
    block_tokens: document tokens scored per matrix product.

    Returns
    -------
    ``(n_docs,)`` float32 scores (``-inf`` for documents without tokens, or for an empty query).
    """
    return maxsim_batch([query], values, offsets, block_tokens=block_tokens)[0]


def maxsim_batch(
    queries: QueryTokens,
    values: np.ndarray,
    offsets: np.ndarray,
    *,
    block_tokens: int = 1 << 15,
    progress: bool = False,
    method: str = "auto",
) -> np.ndarray:
    """MaxSim of every query against every document, shape ``(n_queries, n_docs)``.

    Parameters
    ----------
    queries: list of ``(m_i, d)`` query token arrays (or a :class:`RaggedArray`).
    values: ``(n_tokens, d)`` float16/float32 document tokens (memmaps are read in place).
    offsets: ``(n_docs + 1,)`` spans of each document in ``values``.
    block_tokens: document tokens per BLAS product (``"numpy"`` method).
    progress: show a progress bar (``"numpy"`` method).
    method: ``"auto"`` (numba kernel for up to :data:`NUMBA_MAX_QUERY_TOKENS` stacked query
        tokens, else BLAS blocks), ``"numba"`` or ``"numpy"``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    qs = as_token_list(queries, int(values.shape[1]))
    qlens = np.array([len(q) for q in qs], dtype=np.int64)
    qoff = np.zeros(len(qs) + 1, dtype=np.int64)
    np.cumsum(qlens, out=qoff[1:])
    n_docs = len(offsets) - 1
    out = np.full((len(qs), n_docs), -np.inf, dtype=np.float32)
    if qoff[-1] == 0 or n_docs == 0:
        return out
    if _use_numba(method, int(qoff[-1]), values):
        rows = np.arange(n_docs, dtype=np.int64)
        return _numba_rows(qs, qoff, values, offsets, rows)
    qall = np.concatenate([q for q in qs if len(q)], axis=0)
    qnz = qlens > 0
    # keep the (query tokens x block) score matrix under ~256 MB
    block_tokens = int(max(256, min(block_tokens, (1 << 26) // max(len(qall), 1))))
    # split documents into blocks of about block_tokens tokens (whole documents per block)
    bounds = [0]
    while bounds[-1] < n_docs:
        start = bounds[-1]
        stop = int(np.searchsorted(offsets, offsets[start] + block_tokens, side="right")) - 1
        bounds.append(min(max(stop, start + 1), n_docs))
    it: Any = range(len(bounds) - 1)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="exact MaxSim", unit="block")
    for b in it:
        d0, d1 = bounds[b], bounds[b + 1]
        t0, t1 = int(offsets[d0]), int(offsets[d1])
        block = np.asarray(values[t0:t1], dtype=np.float32)
        s = qall @ block.T
        per_tok = _segment_max(s, offsets[d0 : d1 + 1] - t0)  # (total_q_tok, n_block_docs)
        out[qnz, d0:d1] = np.add.reduceat(per_tok, qoff[:-1][qnz], axis=0)
    return out


def exact_maxsim_search(
    queries: QueryTokens,
    docs: RaggedArray,
    k: int,
    *,
    block_tokens: int = 1 << 15,
    query_batch: int = 64,
    progress: bool = False,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim top-``k`` over a whole token store (the brute-force oracle).

    ``method`` selects the scoring kernel (see :func:`maxsim_batch`).
    Returns ``(scores (n_queries, k) float32, rows (n_queries, k) int64)``, padded ``-inf``/``-1``;
    deleted documents and documents without tokens are never returned.
    """
    k = check_k(k)
    qs = as_token_list(queries, docs.dim)
    scores = np.full((len(qs), k), -np.inf, dtype=np.float32)
    rows = np.full((len(qs), k), -1, dtype=np.int64)
    for s in range(0, len(qs), query_batch):
        sc = maxsim_batch(
            qs[s : s + query_batch],
            docs.values,
            docs.offsets,
            block_tokens=block_tokens,
            progress=progress,
            method=method,
        )
        if docs.deleted.any():
            sc[:, docs.deleted] = -np.inf
        ts, tr = topk_rows(sc, k)
        scores[s : s + len(ts)], rows[s : s + len(ts)] = ts, tr
    return scores, rows


def maxsim_rerank_rows(
    query: np.ndarray,
    docs: RaggedArray,
    rows: np.ndarray,
    *,
    block_tokens: int = 1 << 16,
    method: str = "auto",
) -> np.ndarray:
    """Exact MaxSim of one query against the documents at ``rows`` (``-1`` -> ``-inf``), shape ``(len(rows),)``.

    With numba (``method="auto"``/``"numba"``) the candidates' tokens are read in place from the
    store by the fused kernel; ``"numpy"`` gathers them into float32 blocks of ``block_tokens``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.full(len(rows), -np.inf, dtype=np.float32)
    query = np.asarray(query, dtype=np.float32)
    if len(query) == 0 or len(rows) == 0:
        return out
    if _use_numba(method, len(query), docs.values):
        qoff = np.array([0, len(query)], dtype=np.int64)
        return _numba_rows([query], qoff, docs.values, docs.offsets, rows)[0]
    lens = np.where(rows >= 0, docs.lengths()[np.maximum(rows, 0)], 0)
    start = 0
    while start < len(rows):
        stop = start + 1
        acc = lens[start]
        while stop < len(rows) and acc + lens[stop] <= block_tokens:
            acc += lens[stop]
            stop += 1
        vals, offs = docs.gather(rows[start:stop])
        if len(vals):
            out[start:stop] = _segment_max(query @ vals.T, offs).sum(axis=0)
        start = stop
    return out


def _use_numba(method: str, n_query_tokens: int, values: Any) -> bool:
    """Whether the fused numba kernel scores this batch (see :func:`maxsim_batch`)."""
    from heron._deps import has

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "numpy":
        return False
    ok = np.dtype(values.dtype).name in ("float16", "float32") and has("numba")
    if method == "numba":
        if not ok:
            raise ValueError(
                f"method='numba' needs numba installed and float16/float32 tokens (got {np.dtype(values.dtype).name}); "
                "use method='numpy' or pip install 'heron[fast]'"
            )
        return True
    return ok and n_query_tokens <= NUMBA_MAX_QUERY_TOKENS


def _numba_rows(
    qs: list[np.ndarray],
    qoff: np.ndarray,
    values: Any,
    offsets: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray:
    """Run the fused kernel: scores ``(n_queries, len(rows))`` of queries ``qs`` against ``rows``."""
    from heron.multivector import _maxsim_numba as kern
    from heron.retrieval.topk import _num_threads

    qall = np.ascontiguousarray(
        np.concatenate(qs, axis=0) if len(qs) else np.zeros((0, values.shape[1])),
        dtype=np.float32,
    )
    out = np.empty((len(qs), len(rows)), dtype=np.float32)
    n_chunks = max(1, min(_num_threads() * 8, len(rows)))
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    v = np.asarray(values)  # a memmap becomes a plain ndarray view (no copy)
    if v.dtype == np.float16:
        kern.maxsim_rows_f16(qall, qoff, v.view(np.uint16), offsets, rows, out, n_chunks)
    else:
        kern.maxsim_rows_f32(qall, qoff, v, offsets, rows, out, n_chunks)
    return out


class TokenQueryEncoder:
    """Adapter: exposes an encoder's ``encode_tokens`` as ``encode_queries`` so :class:`Queries` memoises it."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.dim = int(encoder.dim)

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self.encoder.encode_tokens(list(texts))


def query_tokens(queries: Queries, encoder: Any | None, dim: int) -> list[np.ndarray]:
    """Token vectors of a :class:`Queries` batch: precomputed under ``"tokens:<model>"`` / ``"tokens"``, else encoded."""
    if encoder is not None:
        key = f"tokens:{encoder.name}"
        got = queries.cached(key)
        if got is None:
            got = queries.cached("tokens")
        if got is None:
            got = queries.embed(TokenQueryEncoder(encoder), kind="tokens")
    else:
        got = queries.cached("tokens")
        if got is None:
            raise ValueError(
                "no query token vectors: pass an encoder, or Queries.put('tokens', [...]) with one (m_i, d) array per query"
            )
    toks = as_token_list(got, dim)
    if len(toks) != len(queries):
        raise ValueError(f"got token vectors for {len(toks)} queries, expected {len(queries)}")
    return toks


class MaxSim(Stage):
    """Exact MaxSim as a retriever (brute force over all documents) or as a reranker.

    With ``candidates`` (``dense % 1000 >> maxsim % 10``) it re-scores each candidate exactly;
    without, it scores every live document (the oracle).

    Parameters
    ----------
    docs: token store; its ``keys`` are the collection keys of the documents.
    encoder: token encoder for query texts (``encode_tokens``); optional when query token
        vectors are put on the :class:`Queries` (key ``"tokens"`` or ``"tokens:<model>"``).
    depth: hits returned (a cut-off ``% k`` sets it).
    resolver: key -> doc id mapper attached to results.
    """

    rescores = True

    name = "maxsim"

    def __init__(
        self,
        *,
        docs: RaggedArray,
        encoder: Any | None = None,
        depth: int = 1000,
        resolver: Any = None,
    ) -> None:
        if not isinstance(docs, RaggedArray):
            raise TypeError(
                f"docs must be a RaggedArray of token vectors, got {type(docs).__name__}"
            )
        self.docs, self.encoder, self.depth, self.resolver = docs, encoder, check_k(depth), resolver
        if encoder is not None and int(getattr(encoder, "dim", docs.dim)) != docs.dim:
            raise ValueError(
                f"encoder dimension {encoder.dim} does not match the stored token dimension {docs.dim}; use the model the tokens were encoded with"
            )

    def with_depth(self, k: int) -> MaxSim:
        return MaxSim(docs=self.docs, encoder=self.encoder, depth=k, resolver=self.resolver)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        qt = query_tokens(queries, self.encoder, self.docs.dim)
        if candidates is None:
            s, r = exact_maxsim_search(qt, self.docs, self.depth)
            keys = np.where(r >= 0, self.docs.keys[np.maximum(r, 0)], PAD_KEY)
            return Results(keys, s, self.resolver, {"stage": "maxsim-exact"})
        return rerank_maxsim(qt, self.docs, candidates, depth=self.depth)


def rerank_maxsim(
    qt: list[np.ndarray], docs: RaggedArray, candidates: Results, *, depth: int | None = None
) -> Results:
    """Re-score ``candidates`` by exact MaxSim with query tokens ``qt``; keys not in ``docs`` score ``-inf``."""
    if len(qt) != candidates.n_queries:
        raise ValueError(f"got {len(qt)} queries for {candidates.n_queries} candidate rows")
    scores = np.full(candidates.keys.shape, -np.inf, dtype=np.float32)
    for i, q in enumerate(qt):
        rows = docs.rows_of(candidates.keys[i])
        scores[i] = maxsim_rerank_rows(q, docs, rows)
    out = rescore(candidates, scores, depth)
    out.info["stage"] = "maxsim-rerank"
    return out
