"""numba top-k: the shared heap and threshold buffer, and the kernels of ``exact_search``.

Imported lazily, only with numba. The kernels of :func:`heron.retrieval.topk.exact_search` keep,
per query, a binary min-heap of the ``k`` best ``(score, row)`` pairs seen so far: the root is the *worst* kept hit, so a new score is compared with one number (the
threshold) and almost every candidate is rejected by that single comparison. Hits are ordered by
score descending, ties broken by the smaller row number; padding is ``(-inf, -1)``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = {"nogil": True, "cache": True}
#: Scores tested at once against the threshold before any is looked at individually.
_GROUP = 32


# ------------------------------------------------------------------- the shared binary heap
# A min-heap of hits ``hs[:size], hi[:size]`` whose root ``hs[0], hi[0]`` is the *worst* kept hit
# (lowest score; on equal scores the larger id). Every fused top-k kernel of heron keeps its
# per-query best hits in one: this module's scans, Seismic's query processing
# (heron.sparse._seismic_numba).


@nb.njit(inline="always", **_JIT)
def heap_worse(s1: float, i1: int, s2: float, i2: int) -> bool:
    """Whether hit ``(s1, i1)`` ranks below ``(s2, i2)`` (lower score, or equal score and larger id)."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@nb.njit(inline="always", **_JIT)
def heap_replace_top(hs: np.ndarray, hi: np.ndarray, size: int, s: float, i: int) -> None:
    """Replace the root (worst hit) of the heap ``hs[:size], hi[:size]`` with ``(s, i)``; sift down."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and heap_worse(hs[right], hi[right], hs[child], hi[child]):
            child = right
        if heap_worse(hs[child], hi[child], s, i):
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hs[pos] = s
    hi[pos] = i


@nb.njit(inline="always", **_JIT)
def heap_push(hs: np.ndarray, hi: np.ndarray, size: int, s: float, i: int) -> None:
    """Add ``(s, i)`` to the heap ``hs[:size], hi[:size]`` (which grows to ``size + 1``); sift up."""
    pos = size
    while pos > 0:
        parent = (pos - 1) // 2
        if heap_worse(s, i, hs[parent], hi[parent]):
            hs[pos] = hs[parent]
            hi[pos] = hi[parent]
            pos = parent
        else:
            break
    hs[pos] = s
    hi[pos] = i


@nb.njit(inline="always", **_JIT)
def heap_sort(hs: np.ndarray, hi: np.ndarray, size: int) -> None:
    """Heap sort in place: afterwards ``hs[:size]`` is descending (best hit first)."""
    for end in range(size - 1, 0, -1):
        s, i = hs[end], hi[end]
        hs[end] = hs[0]
        hi[end] = hi[0]
        # sift (s, i) down from the root of the heap hs[:end]
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= end:
                break
            right = child + 1
            if right < end and heap_worse(hs[right], hi[right], hs[child], hi[child]):
                child = right
            if heap_worse(hs[child], hi[child], s, i):
                hs[pos] = hs[child]
                hi[pos] = hi[child]
                pos = child
            else:
                break
        hs[pos] = s
        hi[pos] = i


# -------------------------------------------------------- the shared threshold buffer
# The codec scans (heron.codecs._kernels) keep a buffer of up to ``2K`` candidates above a running
# threshold and compact it to the ``K`` best when full (the bucket/threshold idea of faiss'
# ``HeapWithBuckets``): cheaper than a heap when most candidates arrive early. Candidates enter in
# ascending row order, and compaction and emission are stable, so ties keep the smaller row.


@nb.njit(**_JIT)
def buffer_compact(bs, bi, cnt, K):  # pragma: no cover - compiled
    """Keep the ``K`` largest of ``bs[:cnt]`` at the front (stable); return (K, K-th largest)."""
    tmp = bs[:cnt].copy()
    kth = np.partition(tmp, cnt - K)[cnt - K]
    cs = bs[:cnt].copy()
    ci = bi[:cnt].copy()
    j = 0
    for t in range(cnt):
        if cs[t] > kth:
            bs[j] = cs[t]
            bi[j] = ci[t]
            j += 1
    for t in range(cnt):
        if j >= K:
            break
        if cs[t] == kth:
            bs[j] = cs[t]
            bi[j] = ci[t]
            j += 1
    return j, kth


@nb.njit(**_JIT)
def buffer_compact_small(bd, bi, cnt, K, nbins):  # pragma: no cover - compiled
    """Keep the ``K`` smallest integer distances (``0..nbins``) of ``bd[:cnt]`` (stable, by a
    histogram); return (K, new strict bound)."""
    hist = np.zeros(nbins + 1, dtype=np.int64)
    for t in range(cnt):
        hist[bd[t]] += 1
    acc = 0
    kth = 0
    for v in range(nbins + 1):
        acc += hist[v]
        if acc >= K:
            kth = v
            break
    cd = bd[:cnt].copy()
    ci = bi[:cnt].copy()
    j = 0
    for t in range(cnt):
        if cd[t] < kth:
            bd[j] = cd[t]
            bi[j] = ci[t]
            j += 1
    for t in range(cnt):
        if j >= K:
            break
        if cd[t] == kth:
            bd[j] = cd[t]
            bi[j] = ci[t]
            j += 1
    return j, kth


@nb.njit(**_JIT)
def buffer_emit(bs, bi, cnt, K, out_s, out_i, pad, ascending):  # pragma: no cover - compiled
    """Write the best ``K`` of ``bs[:cnt]`` sorted (descending, or ascending distances) into
    ``out_s[:K], out_i[:K]``, stable (ties keep the smaller row), padded with ``pad`` / ``-1``."""
    if ascending:
        order = np.argsort(bs[:cnt], kind="mergesort")
    else:
        order = np.argsort(-bs[:cnt], kind="mergesort")
    m = min(K, cnt)
    for t in range(m):
        out_s[t] = bs[order[t]]
        out_i[t] = bi[order[t]]
    for t in range(m, K):
        out_s[t] = pad
        out_i[t] = -1


@nb.njit(**_JIT)
def buffer_emit_small(bd, bi, cnt, K, out_d, out_i, nbins):  # pragma: no cover - compiled
    """As :func:`buffer_emit` (ascending) for integer distances ``0..nbins``: a stable counting
    sort, ``O(cnt + nbins)`` instead of a comparison sort (the Hamming scans emit up to ``2K``
    entries per row chunk). Within one distance the buffer holds rows in ascending order (as
    :func:`buffer_compact_small` leaves it), so ties keep the smaller row. Padding is
    ``nbins + 1`` / ``-1``."""
    if cnt > K:
        cnt, _ = buffer_compact_small(bd, bi, cnt, K, nbins)
    start = np.zeros(nbins + 2, dtype=np.int64)
    for t in range(cnt):
        start[bd[t] + 1] += 1
    for v in range(1, nbins + 2):
        start[v] += start[v - 1]
    for t in range(cnt):
        v = bd[t]
        pos = start[v]
        out_d[pos] = v
        out_i[pos] = bi[t]
        start[v] = pos + 1
    for t in range(cnt, K):
        out_d[t] = nbins + 1
        out_i[t] = -1


# ------------------------------------------------------------------------- exact_search kernels


@nb.njit(inline="always", **_JIT)
def _fold_row(
    srow: np.ndarray,
    row0: int,
    valid: np.ndarray,
    has_valid: bool,
    hs: np.ndarray,
    hi: np.ndarray,
    k: int,
) -> None:
    """Fold one query's scores ``srow`` (rows ``row0 ..``) into its heap ``hs, hi``."""
    width = srow.shape[0]
    thr = hs[0]
    j = 0
    while j < width:
        stop = min(j + _GROUP, width)
        # one vectorised test for a whole group; NaN > thr is False, so NaN never enters
        hit = False
        for t in range(j, stop):
            hit |= srow[t] > thr
        if hit:
            for t in range(j, stop):
                s = srow[t]
                if s > thr:
                    r = row0 + t
                    if has_valid and not valid[r]:
                        continue
                    heap_replace_top(hs, hi, k, s, r)
                    thr = hs[0]
        j = stop


@nb.njit(parallel=True, **_JIT)
def select_block(
    scores: np.ndarray,
    row0: int,
    valid: np.ndarray,
    has_valid: bool,
    heap_s: np.ndarray,
    heap_i: np.ndarray,
    q0: int,
) -> None:
    """Fold a block of scores into the running heaps, parallel over queries.

    ``scores`` is ``(m, nb)``: queries ``q0 .. q0+m`` against matrix rows ``row0 .. row0+nb``.
    Rows arrive in ascending order, so a score equal to the threshold never displaces a kept
    hit (the kept one has the smaller row).
    """
    k = heap_s.shape[1]
    for a in nb.prange(scores.shape[0]):
        _fold_row(scores[a], row0, valid, has_valid, heap_s[q0 + a], heap_i[q0 + a], k)


@nb.njit(**_JIT)
def select_tile(
    scores: np.ndarray,
    row0: int,
    valid: np.ndarray,
    has_valid: bool,
    heap_s: np.ndarray,
    heap_i: np.ndarray,
    q0: int,
) -> None:
    """:func:`select_block` on the calling thread only (each worker of the threaded blocked
    search folds its own tiles into its own heaps; the GIL is released)."""
    k = heap_s.shape[1]
    for a in range(scores.shape[0]):
        _fold_row(scores[a], row0, valid, has_valid, heap_s[q0 + a], heap_i[q0 + a], k)


@nb.njit(parallel=True, **_JIT)
def sort_heaps(heap_s: np.ndarray, heap_i: np.ndarray) -> None:
    """Sort every query's heap in place into descending order."""
    for a in nb.prange(heap_s.shape[0]):
        heap_sort(heap_s[a], heap_i[a], heap_s.shape[1])


@nb.njit(parallel=True, fastmath=True, **_JIT)
def scan(
    queries: np.ndarray,
    matrix: np.ndarray,
    valid: np.ndarray,
    has_valid: bool,
    k: int,
    n_chunks: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused scan for a few queries: dot products and top-k in one pass over ``matrix``.

    The matrix is read exactly once (memory-bandwidth bound); no score vector is materialised.
    ``n_chunks`` contiguous row ranges are scanned in parallel, each with its own heaps, which are
    then merged. Returns sorted ``(scores (m, k), rows (m, k))``.
    """
    m, d = queries.shape
    n = matrix.shape[0]
    part_s = np.full((n_chunks, m, k), -np.inf, dtype=np.float32)
    part_i = np.full((n_chunks, m, k), -1, dtype=np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        lo = c * step
        hi_row = min(n, lo + step)
        ps = part_s[c]
        pi = part_i[c]
        thr = np.empty(m, dtype=np.float32)
        for a in range(m):
            thr[a] = ps[a, 0]
        for r in range(lo, hi_row):
            if has_valid and not valid[r]:
                continue
            x = matrix[r]
            for a in range(m):
                q = queries[a]
                acc = np.float32(0.0)
                for t in range(d):
                    acc += q[t] * x[t]
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
