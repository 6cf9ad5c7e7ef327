"""numba kernels behind :mod:`heron.multivector.maxsim` (imported lazily, only with numba).

One fused pass per document: gather its token vectors straight from the (memory-mapped) store,
convert float16 -> float32 in registers (LLVM ``fpext`` from the uint16 bit patterns, one
``vcvtph2ps`` per 8 values with F16C: numba has no float16 type),
dot every token with every query token, keep the maximum per query token, and sum the maxima
per query. No float32 copy of the corpus or of the candidates is ever made, which is what made
the numpy path slow (numpy's float16 -> float32 conversion costs ~20 ns/element here).

Documents are processed in parallel (``prange`` over chunks of documents); the score of each
(query, document) pair is a plain sum, so results do not depend on the number of threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from heron._numba_ext import half_bits_to_f32

_JIT = {"nogil": True, "cache": True, "fastmath": True}


@nb.njit(parallel=True, **_JIT)
def maxsim_rows_f16(
    q: np.ndarray,
    qoff: np.ndarray,
    values: np.ndarray,
    offsets: np.ndarray,
    rows: np.ndarray,
    out: np.ndarray,
    n_chunks: int,
) -> None:
    """MaxSim of stacked queries against documents ``rows`` of a float16 token store.

    Parameters
    ----------
    q: ``(M, d)`` float32, the tokens of all queries stacked.
    qoff: ``(n_queries + 1,)`` int64 spans of each query in ``q``.
    values: ``(n_tokens, d)`` uint16, the float16 bit patterns of the document tokens.
    offsets: ``(n_docs + 1,)`` int64 spans of each document in ``values``.
    rows: ``(R,)`` int64 documents to score (``-1`` = none).
    out: ``(n_queries, R)`` float32, written; ``-inf`` for ``-1`` rows, empty documents and
        empty queries.
    n_chunks: parallel work items (documents are split into this many contiguous chunks).
    """
    M, d = q.shape
    nq = qoff.shape[0] - 1
    R = rows.shape[0]
    per = (R + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        best = np.empty(M, dtype=np.float32)
        xf = np.empty(d, dtype=np.float32)
        for i in range(c * per, min(R, (c + 1) * per)):
            r = rows[i]
            t0 = offsets[r] if r >= 0 else 0
            t1 = offsets[r + 1] if r >= 0 else 0
            for a in range(M):
                best[a] = -np.inf
            for t in range(t0, t1):
                for j in range(d):
                    xf[j] = half_bits_to_f32(values[t, j])
                for a in range(M):
                    s = np.float32(0.0)
                    for j in range(d):
                        s += q[a, j] * xf[j]
                    if s > best[a]:
                        best[a] = s
            for b in range(nq):
                if qoff[b + 1] == qoff[b] or t1 == t0:
                    out[b, i] = -np.inf
                else:
                    s = np.float32(0.0)
                    for a in range(qoff[b], qoff[b + 1]):
                        s += best[a]
                    out[b, i] = s


@nb.njit(parallel=True, **_JIT)
def maxsim_rows_f32(
    q: np.ndarray,
    qoff: np.ndarray,
    values: np.ndarray,
    offsets: np.ndarray,
    rows: np.ndarray,
    out: np.ndarray,
    n_chunks: int,
) -> None:
    """:func:`maxsim_rows_f16` for a float32 token store (``values`` ``(n_tokens, d)`` float32)."""
    M, d = q.shape
    nq = qoff.shape[0] - 1
    R = rows.shape[0]
    per = (R + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        best = np.empty(M, dtype=np.float32)
        for i in range(c * per, min(R, (c + 1) * per)):
            r = rows[i]
            t0 = offsets[r] if r >= 0 else 0
            t1 = offsets[r + 1] if r >= 0 else 0
            for a in range(M):
                best[a] = -np.inf
            for t in range(t0, t1):
                for a in range(M):
                    s = np.float32(0.0)
                    for j in range(d):
                        s += q[a, j] * values[t, j]
                    if s > best[a]:
                        best[a] = s
            for b in range(nq):
                if qoff[b + 1] == qoff[b] or t1 == t0:
                    out[b, i] = -np.inf
                else:
                    s = np.float32(0.0)
                    for a in range(qoff[b], qoff[b + 1]):
                        s += best[a]
                    out[b, i] = s
