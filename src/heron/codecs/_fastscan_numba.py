"""heron's 4-bit fast scan: the top candidates of sign codes under 8-bit tables (numba, AVX-512).

The kernel behind :class:`heron.codecs.fastscan.SignLutScan`. Codes are stored interleaved in
blocks of 64 (:func:`interleave`): 4-byte word ``j`` of 16 consecutive codes lies in 64 consecutive
bytes, so one ``vpermb`` looks up one nibble of 64 bytes, each in the 16-entry table of its own
byte position, and one ``vpdpbusd`` adds each code's four results
(:func:`heron._numba_ext.lut16_block64`; after the fast-scan layout of André, Kermarrec &
Le Scouarnec, "Cache locality is not enough: high-performance nearest neighbor search with
product quantization fast scan", VLDB 2015, on 64-byte registers). The top-k is fused into the scan: a
block's sums are compared with the running threshold inside the same call, and only the rows
above it reach the candidate buffer (the buffer of :mod:`heron.retrieval._topk_numba`).

Imported lazily, only with numba, and compiled only where
:func:`heron._numba_ext.lut16_available`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from heron._numba_ext import lut16_block64 as _lut16_block64
from heron._numba_ext import trailing_zeros64 as _trailing_zeros64
from heron.retrieval._topk_numba import buffer_compact, buffer_emit

#: codes per block (one 64-byte register of one byte position)
BLOCK = 64


def words(width: int) -> int:
    """4-byte words of a ``width``-byte code (the last one zero padded)."""
    return -(-width // 4)


def interleave(codes: np.ndarray) -> np.ndarray:
    """``(nblocks * words(width) * 256,)`` uint8: ``(n, width)`` codes in blocks of 64, word by
    word: byte ``t`` of word ``j`` of code ``64 b + 16 s + i`` at
    ``((b * words + j) * 4 + s) * 64 + 4 i + t``. Codes are zero padded to whole words and the
    last block with zero codes.

    The copy is allocated by numpy, which asks Linux for transparent huge pages on large arrays
    (``madvise``): the hardware prefetcher then streams across 2 MB pages instead of stopping at
    every 4 KB one. On the 1M x 384 codes the scan took 0.97-0.98 ms from such a copy against
    1.08-1.11 ms from one numba allocated (paired with a 0.60-0.67 ms streaming read of a numpy
    array, which has huge pages too).
    """
    n, width = codes.shape
    out = np.empty(-(-n // BLOCK) * words(width) * 4 * BLOCK, dtype=np.uint8)
    _interleave_into(codes, out)
    return out


@njit(nogil=True, cache=True)
def _interleave_into(codes, out):  # pragma: no cover - compiled
    n, width = codes.shape
    nw = (width + 3) // 4
    nb = (n + BLOCK - 1) // BLOCK
    for b in range(nb):
        base = b * nw * 4 * BLOCK
        for j in range(nw):
            for s in range(4):
                row = base + (j * 4 + s) * BLOCK
                for i in range(16):
                    r = b * BLOCK + s * 16 + i
                    for t in range(4):
                        p = 4 * j + t
                        out[row + 4 * i + t] = codes[r, p] if r < n and p < width else 0


def lut16_topk(
    il: np.ndarray,
    luts: np.ndarray,
    width: int,
    n: int,
    K: int,
    nchunks: int,
    qblock: int,
    *,
    submit: Callable[..., Any] | None = None,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``K`` highest table sums per query and row chunk, with the bound on the rest.

    ``il`` the interleaved codes (:func:`interleave`) of ``n`` rows of ``width`` bytes; ``luts``
    ``(nq, words(width) * 128)`` uint8 (each query's tables, laid out as
    :func:`heron._numba_ext.lut16_block64` reads them).
    The ``ceil(nq / qblock) * nchunks`` tasks (a block of queries against a chunk of rows, whole
    blocks of 64) run on numba's threads (``prange``), or, given ``submit`` (an executor's,
    returning a future), in ``workers`` runs: the first on the calling thread, the others
    submitted (the kernel releases the GIL; for a forked child, where GNU OpenMP cannot start).
    Returns ``(sums (nq, nchunks*K) float32, rows (nq, nchunks*K) int64, bound (nq,) float32)``:
    each chunk's list descending, padded with ``-1`` / ``-1``; ``bound`` the highest sum a row
    left out can have (``-1`` where no row was left out).
    """
    args = (il, luts, width, n, K, nchunks, qblock)
    if submit is None:
        return _lut16_prange(*args)  # allocates its own outputs: one call
    nq = luts.shape[0]
    out_s = np.empty((nq, nchunks * K), dtype=np.float32)
    out_i = np.empty((nq, nchunks * K), dtype=np.int64)
    bounds = np.full((nq, nchunks), -1.0, dtype=np.float32)
    outs = (out_s, out_i, bounds)
    ntasks = -(-nq // qblock) * nchunks
    runs = max(1, min(workers, ntasks))
    cuts = [ntasks * r // runs for r in range(runs + 1)]
    futures = [submit(lut16_tasks, *args, cuts[r], cuts[r + 1], *outs) for r in range(1, runs)]
    lut16_tasks(*args, 0, cuts[1], *outs)
    for f in futures:
        f.result()
    return out_s, out_i, bounds.max(axis=1)


@njit(parallel=True, cache=True)
def _lut16_prange(il, luts, width, n, K, nchunks, qblock):  # pragma: no cover - compiled
    nq = luts.shape[0]
    out_s = np.empty((nq, nchunks * K), dtype=np.float32)
    out_i = np.empty((nq, nchunks * K), dtype=np.int64)
    bounds = np.full((nq, nchunks), -1.0, dtype=np.float32)
    ntasks = (nq + qblock - 1) // qblock * nchunks
    for t in prange(ntasks):
        lut16_tasks(il, luts, width, n, K, nchunks, qblock, t, t + 1, out_s, out_i, bounds)
    bound = np.empty(nq, dtype=np.float32)
    for q in range(nq):
        bound[q] = bounds[q].max()
    return out_s, out_i, bound


@njit(nogil=True, cache=True)
def lut16_tasks(
    il, luts, width, n, K, nchunks, qblock, t0, t1, out_s, out_i, bounds
):  # pragma: no cover - compiled
    """Tasks ``t0 .. t1`` of :func:`lut16_topk`, written into its ``out_s``, ``out_i`` and
    ``bounds`` ``(nq, nchunks)``. Task ``t`` is query block ``t // nchunks`` against row chunk
    ``t % nchunks``; each query keeps a buffer of up to ``2K + 64`` candidates behind a threshold
    that the next block's comparison in :func:`heron._numba_ext.lut16_block64` uses."""
    nq = luts.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    cap = 2 * K + BLOCK
    nw = (width + 3) // 4
    lstride = nw * 128
    sums = np.empty(BLOCK, dtype=np.uint32)
    for task in range(t0, t1):
        b = task // nchunks
        c = task % nchunks
        q0 = b * qblock
        q1 = min(nq, q0 + qblock)
        nb = q1 - q0
        k0 = c * nblocks // nchunks
        k1 = (c + 1) * nblocks // nchunks
        bs = np.empty((nb, cap), dtype=np.float32)
        bi = np.empty((nb, cap), dtype=np.int64)
        cnt = np.zeros(nb, dtype=np.int64)
        thr = np.full(nb, -1.0, dtype=np.float32)
        floor = np.zeros(nb, dtype=np.uint32)
        dropped = np.zeros(nb, dtype=np.bool_)
        for blk in range(k0, k1):
            base = blk * nw * 4 * BLOCK
            row0 = blk * BLOCK
            for qq in range(nb):
                mask = _lut16_block64(il, base, luts, (q0 + qq) * lstride, nw, sums, floor[qq])
                if mask == 0:
                    continue
                ct = cnt[qq]
                th = thr[qq]
                while mask != 0:
                    j = np.int64(_trailing_zeros64(mask))
                    mask &= mask - np.uint64(1)
                    row = row0 + j
                    s = np.float32(sums[j])
                    if row < n and s > th:
                        bs[qq, ct] = s
                        bi[qq, ct] = row
                        ct += 1
                if ct >= 2 * K:
                    ct, th = buffer_compact(bs[qq], bi[qq], ct, K)
                    thr[qq] = th
                    floor[qq] = np.uint32(th + 1.0)
                    dropped[qq] = True
                cnt[qq] = ct
        for qq in range(nb):
            qi = q0 + qq
            o = out_s[qi, c * K : (c + 1) * K]
            buffer_emit(bs[qq], bi[qq], cnt[qq], K, o, out_i[qi, c * K : (c + 1) * K], -1.0, False)
            if dropped[qq] or cnt[qq] > K:
                bounds[qi, c] = o[K - 1]


@njit(cache=True)
def sign_tables(w, width):  # pragma: no cover - compiled
    """The 8-bit nibble tables of sign codes for the weights ``w`` ``(nq, 8 * width)``.

    Table ``2p + h`` holds, for each 4-bit value ``v``, ``sum_i w[8p + 4h + i] * (+1 if bit i of
    v else -1)``, shifted to start at 0 and scaled by one ``a`` per query so that the widest table
    spans 255 (faiss' scale for its fast scan); entries are rounded to the nearest integer.
    Returns ``(luts (nq, words(width) * 128) uint8, a (nq,) float64, offset (nq,) float64)``:
    for each 4-byte word ``j``, the low-nibble tables of bytes ``4j .. 4j+3`` side by side (64
    bytes), then their high-nibble tables (:func:`heron._numba_ext.lut16_block64`); a padding
    byte's tables are zero. A code's approximate score is ``sum / a + offset``, within
    ``width / a`` of the exact one.
    """
    nq = w.shape[0]
    t = np.empty((nq, 2 * width, 16), dtype=np.float64)
    a = np.empty(nq, dtype=np.float64)
    off = np.zeros(nq, dtype=np.float64)
    nw = (width + 3) // 4
    luts = np.zeros((nq, nw * 128), dtype=np.uint8)
    for q in range(nq):
        span = 0.0
        for p in range(width):
            for h in range(2):
                g = 2 * p + h
                lo = np.inf
                hi = -np.inf
                for v in range(16):
                    s = 0.0
                    for i in range(4):
                        x = np.float64(w[q, 8 * p + 4 * h + i])
                        s += x if (v >> i) & 1 else -x
                    t[q, g, v] = s
                    lo = min(lo, s)
                    hi = max(hi, s)
                for v in range(16):
                    t[q, g, v] -= lo
                off[q] += lo
                span = max(span, hi - lo)
        a[q] = 255.0 / span if span > 0 else 1.0
        for p in range(width):
            for h in range(2):
                at = (p // 4) * 128 + h * 64 + (p % 4) * 16
                for v in range(16):
                    luts[q, at + v] = np.uint8(min(np.floor(t[q, 2 * p + h, v] * a[q] + 0.5), 255.0))
    return luts, a, off


@njit(cache=True)
def sign_prepare(w, width):  # pragma: no cover - compiled
    """:func:`sign_tables` and each query's ``eps = width / a``, the most its approximate
    scores can differ from the exact ones (with a relative 1e-3 and an absolute 1e-6 of slack
    for the float32 sums of the exact re-scoring): ``(luts, a, off, eps (nq,) float32)``."""
    luts, a, off = sign_tables(w, width)
    eps = np.empty(len(a), dtype=np.float32)
    for q in range(len(a)):
        eps[q] = np.float32(width / a[q] * (1 + 1e-3) + 1e-6)
    return luts, a, off, eps
