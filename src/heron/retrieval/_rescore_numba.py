"""numba kernel of :func:`heron.retrieval.rescore.rescore_topk` (imported lazily, only with numba).

The candidates of a compressed first stage are a few dozen rows scattered over a float copy of
gigabytes: each is a cache miss per line. The kernel asks for the lines of the row
:data:`AHEAD` candidates ahead while it multiplies the current one, so the misses overlap
instead of queueing behind each dot product, and keeps the ``k`` best in a sorted array (ties to
the earlier candidate) without materialising a gathered copy.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from heron._numba_ext import prefetch

_JIT = {"nogil": True, "cache": True, "fastmath": True}
#: candidates prefetched ahead of the one being scored (8 rows of 1.5 KB: ~190 lines in flight)
AHEAD = 8
#: float32 values per 64-byte cache line
_LINE = 16


@nb.njit(inline="always", **_JIT)
def _fetch_row(flat: np.ndarray, row: int, d: int) -> None:
    base = row * d
    for o in range(0, d, _LINE):
        prefetch(flat, base + o)


@nb.njit(inline="always", **_JIT)
def _one(q: np.ndarray, x: np.ndarray, flat: np.ndarray, lab: np.ndarray, k: int,
         out_s: np.ndarray, out_i: np.ndarray) -> None:  # pragma: no cover - compiled
    m = lab.shape[0]
    d = x.shape[1]
    for j in range(min(AHEAD, m)):
        if lab[j] >= 0:
            _fetch_row(flat, lab[j], d)
    size = 0
    for j in range(m):
        if j + AHEAD < m and lab[j + AHEAD] >= 0:
            _fetch_row(flat, lab[j + AHEAD], d)
        r = lab[j]
        if r < 0:
            continue
        acc = np.float32(0.0)
        for t in range(d):
            acc += q[t] * x[r, t]
        if not acc > -np.inf:  # -inf and NaN are never returned
            continue
        if size == k and not acc > out_s[k - 1]:
            continue
        # insert after every kept score >= acc (ties stay with the earlier candidate)
        p = size if size < k else k - 1
        while p > 0 and out_s[p - 1] < acc:
            out_s[p] = out_s[p - 1]
            out_i[p] = out_i[p - 1]
            p -= 1
        out_s[p] = acc
        out_i[p] = r
        if size < k:
            size += 1


@nb.njit(**_JIT)
def rescore(q: np.ndarray, x: np.ndarray, lab: np.ndarray, k: int):  # pragma: no cover - compiled
    """Top ``k`` of each query's candidate rows by exact inner product.

    ``q`` ``(nq, d)`` float32, ``x`` ``(n, d)`` float32 C-contiguous, ``lab`` ``(nq, m)`` int64 rows
    of ``x`` (``-1`` = none). Returns ``(scores (nq, k) float32, rows (nq, k) int64)``, best first,
    padded with ``(-inf, -1)``.
    """
    nq = lab.shape[0]
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    flat = x.reshape(-1)
    for i in range(nq):
        _one(q[i], x, flat, lab[i], k, out_s[i], out_i[i])
    return out_s, out_i


@nb.njit(parallel=True, **_JIT)
def rescore_parallel(q: np.ndarray, x: np.ndarray, lab: np.ndarray, k: int):  # pragma: no cover - compiled
    """:func:`rescore` with the queries spread over numba's threads (large batches)."""
    nq = lab.shape[0]
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    flat = x.reshape(-1)
    for i in nb.prange(nq):
        _one(q[i], x, flat, lab[i], k, out_s[i], out_i[i])
    return out_s, out_i
