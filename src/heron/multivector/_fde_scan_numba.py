"""numba kernel behind :func:`heron.multivector.muvera_scan.fde_search` (imported lazily, only with numba).

A fused exact inner-product scan of float16 FDEs **in place**: each document row is read once as
its uint16 bit patterns, widened to float32 in registers (LLVM ``fpext``, ``vcvtph2ps`` with
F16C; numba has no float16 type) into a row-sized scratch buffer, dotted with every query, and
offered to a per-query top-``k`` heap. No float32 copy of the FDE matrix, and no score vector, is
ever made: the extra memory of a scan is ``n_chunks * (d + m * k)`` floats. Rows are split into
``n_chunks`` contiguous ranges scanned in parallel, each with its own heaps, merged at the end
(same heap order as :func:`heron.retrieval.topk.exact_search`: ties go to the smaller row).
Dhulipala et al., "MUVERA", NeurIPS 2024, store their FDEs compressed for the same reason.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from heron._numba_ext import half_bits_to_f32
from heron.retrieval._topk_numba import heap_replace_top, heap_sort, heap_worse

_JIT = {"nogil": True, "cache": True, "fastmath": True}


@nb.njit(parallel=True, **_JIT)
def scan_f16(
    queries: np.ndarray,
    bits: np.ndarray,
    valid: np.ndarray,
    has_valid: bool,
    k: int,
    n_chunks: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of a float16 matrix by inner product, read in place.

    Parameters
    ----------
    queries: ``(m, d)`` float32.
    bits: ``(n, d)`` uint16, the float16 bit patterns of the matrix (a view, may be a memmap).
    valid: ``(n,)`` bool rows allowed (read only when ``has_valid``).
    has_valid: whether ``valid`` applies.
    k: hits per query.
    n_chunks: parallel work items.

    Returns
    -------
    ``(scores (m, k) float32 descending, rows (m, k) int64)``, padded with ``-inf`` / ``-1``.
    """
    m, d = queries.shape
    n = bits.shape[0]
    part_s = np.full((n_chunks, m, k), -np.inf, dtype=np.float32)
    part_i = np.full((n_chunks, m, k), -1, dtype=np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        ps = part_s[c]
        pi = part_i[c]
        xf = np.empty(d, dtype=np.float32)
        thr = np.empty(m, dtype=np.float32)
        for a in range(m):
            thr[a] = ps[a, 0]
        for r in range(c * step, min(n, (c + 1) * step)):
            if has_valid and not valid[r]:
                continue
            row = bits[r]
            for j in range(d):
                xf[j] = half_bits_to_f32(row[j])
            for a in range(m):
                q = queries[a]
                acc = np.float32(0.0)
                for j in range(d):
                    acc += q[j] * xf[j]
                if acc > thr[a]:
                    heap_replace_top(ps[a], pi[a], k, acc, r)
                    thr[a] = ps[a, 0]
    out_s = np.full((m, k), -np.inf, dtype=np.float32)
    out_i = np.full((m, k), -1, dtype=np.int64)
    for a in nb.prange(m):
        hs = out_s[a]
        hi = out_i[a]
        for c in range(n_chunks):
            for j in range(k):
                s = part_s[c, a, j]
                i = part_i[c, a, j]
                if i >= 0 and heap_worse(hs[0], hi[0], s, i):
                    heap_replace_top(hs, hi, k, s, i)
        heap_sort(hs, hi, k)
    return out_s, out_i
