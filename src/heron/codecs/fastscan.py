"""The asymmetric sign-code scan through faiss' 4-bit fast scan, with an exactness certificate.

A sign code of ``d`` bits (:class:`heron.codecs.binary.BinaryCodec`, ``scoring="asym"``; the
``b`` planes of :class:`heron.codecs.rbin.ResidualBinaryCodec` together) is also a
product-quantisation code: ``d/4`` sub-quantisers of 4 bits whose 16 centroids are the sign
patterns ``(+-1, +-1, +-1, +-1)``. Its asymmetric score ``w . sign`` is then the PQ inner product,
which faiss' fast scan (``IndexPQFastScan``; André, Kermarrec & Le Scouarnec, "Cache locality is
not enough: high-performance nearest neighbor search with product quantization fast scan",
VLDB 2015, and "Quicker ADC", IEEE TPAMI 2019) computes with the 16-entry tables of the query held
in SIMD registers as 8-bit integers: one shuffle instruction looks up 32 codes, where the float
table scan (:func:`heron.codecs._scan.lut_topk`) makes one memory look-up per code byte.

The 8-bit tables round each entry to the nearest multiple of ``1/a`` (``a`` is faiss' per-query
scale), so a code's approximate score is within ``eps = (d/4) * 0.5 / a`` of its exact score. The
scan fetches more candidates than asked for from each shard, scores them exactly with the float
byte tables, and **certifies** the result: a code not fetched from a shard scores at most
``last + eps`` exactly (``last`` the lowest approximate score fetched there), so once the
``k``-th exact score is above the highest such bound, the top ``k`` is the exact one, ties
included (a row tied with the ``k``-th that was left out cannot certify). Queries that do not
certify fetch 4x more, and those left after that go back to the float table scan.

The shards (one per thread) are a resident copy of the codes, built in ~90 ms per 1M codes
(faiss packs them from an ``IndexPQ``); each shard is searched on its own thread with faiss' own
OpenMP held to one thread, so no spinning OpenMP team is left behind to slow the next call.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from heron._deps import has, require

#: below this many rows the float table scan is as fast as the shards' dispatch
MIN_ROWS = 32_768

#: queries scored together (bounds the float tables: 512 x width x 256 float32)
QUERY_BLOCK = 512

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


def usable(n: int, width: int) -> bool:
    """Whether the fast scan applies: enough rows, and ``d/4`` tables of 8-bit entries whose sum
    fits faiss' 16-bit accumulators (``width <= 128`` bytes, so ``d <= 1024``)."""
    return n >= MIN_ROWS and 2 * width * 255 < 65_536


def _pool(size: int) -> ThreadPoolExecutor:
    """Worker threads that search one shard each, faiss' OpenMP held to one thread in each."""
    global _POOL, _POOL_SIZE, _POOL_PID
    with _POOL_LOCK:
        if _POOL_PID != os.getpid():  # a forked child has the pool object but not its threads
            _POOL = None
        if _POOL is None or _POOL_SIZE < size:
            faiss = require("faiss", purpose="the fast binary scan")
            old = _POOL
            _POOL = ThreadPoolExecutor(
                size,
                thread_name_prefix="heron-fastscan",
                initializer=faiss.omp_set_num_threads,
                initargs=(1,),
            )
            _POOL_SIZE, _POOL_PID = size, os.getpid()
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def _sign_centroids(m: int) -> np.ndarray:
    """``(m, 16, 4)`` float32: centroid ``v`` of every sub-quantiser is bit ``i`` of ``v`` as
    ``+-1`` in dimension ``i`` (codes packed little bit order, low nibble first)."""
    v = np.arange(16)[:, None] >> np.arange(4)[None, :]
    cent = ((v & 1) * 2 - 1).astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(cent, (m, 16, 4)))


class SignFastScan:
    """Fast-scan shards over packed sign codes ``(n, width)`` uint8, searched in parallel.

    Parameters
    ----------
    codes: ``(n, width)`` uint8 sign codes, 8 dimensions per byte, little bit order.
    shards: how many row ranges (and threads) to split the scan into.
    """

    def __init__(self, codes: np.ndarray, *, shards: int) -> None:
        faiss = require("faiss", purpose="the fast binary scan")
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        n, width = codes.shape
        self.n, self.width = n, width
        self.d, self.m = 8 * width, 2 * width
        shards = max(1, min(int(shards), n))
        bounds = np.linspace(0, n, shards + 1).astype(np.int64)
        self.starts = bounds[:-1]
        self.sizes = np.diff(bounds)
        cent = _sign_centroids(self.m).ravel()
        self.shards: list[Any] = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            pq = faiss.IndexPQ(self.d, self.m, 4, faiss.METRIC_INNER_PRODUCT)
            faiss.copy_array_to_vector(cent, pq.pq.centroids)
            pq.is_trained = True
            pq.add_sa_codes(codes[a:b])
            self.shards.append(faiss.IndexPQFastScan(pq))  # packs the codes in 32-row blocks
        self._faiss = faiss
        # faiss scales a query's tables by a = 255 / (largest table span); a sign table's span
        # is 2 * sum |w| over its 4 dimensions. Checked once against faiss' own scale: where a
        # faiss rounds otherwise, every query asks faiss (one more table computation each).
        probe = np.random.default_rng(0).standard_normal((4, self.d)).astype(np.float32)
        self._ask_faiss = not np.allclose(
            self._eps_own(probe), self._eps_faiss(probe), rtol=1e-4, atol=0
        )

    @property
    def nbytes(self) -> int:
        return int(sum(s.codes.nbytes() for s in self.shards))

    def eps(self, w: np.ndarray) -> np.ndarray:
        """``(nq,)``: the most an approximate score can differ from the exact one, from the
        scale faiss gives each query's 8-bit tables."""
        return self._eps_faiss(w) if self._ask_faiss else self._eps_own(w)

    def _eps_own(self, w: np.ndarray) -> np.ndarray:
        span = 2 * np.abs(w.reshape(len(w), self.m, 4)).sum(axis=2).max(axis=1)
        return self._eps_of(255.0 / span.astype(np.float64))

    def _eps_of(self, a: np.ndarray) -> np.ndarray:
        # rounding to nearest: 0.5/a per table; a relative and an absolute slack for float sums
        return (self.m * 0.5 / a * (1 + 1e-3) + 1e-6).astype(np.float32)

    def _eps_faiss(self, w: np.ndarray) -> np.ndarray:
        faiss = self._faiss
        nq = len(w)
        lut = np.empty((nq, self.m * 16), dtype=np.uint8)
        norm = np.empty((nq, 2), dtype=np.float32)
        self.shards[0].compute_quantized_LUT(
            nq,
            faiss.swig_ptr(w),
            faiss.swig_ptr(lut),
            faiss.swig_ptr(norm),
            faiss.FastScanDistancePostProcessing(),
        )
        return self._eps_of(norm[:, 0].astype(np.float64))

    def candidates(self, w: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows (nq, shards*fetch) int64 with -1 padding, bound (nq,) float32)``.

        ``bound``: the highest approximate score a row not fetched can have (``-inf`` where a
        shard was fetched whole)."""
        w = np.ascontiguousarray(w, dtype=np.float32)
        nq = len(w)
        pool = _pool(len(self.shards))
        futures = [
            pool.submit(s.search, w, int(min(fetch, size)))
            for s, size in zip(self.shards, self.sizes)
        ]
        rows = np.full((nq, len(self.shards) * fetch), -1, dtype=np.int64)
        bound = np.full(nq, -np.inf, dtype=np.float32)
        for j, (f, start, size) in enumerate(zip(futures, self.starts, self.sizes)):
            dist, lab = f.result()
            got = lab.shape[1]
            rows[:, j * fetch : j * fetch + got] = np.where(lab >= 0, lab + start, -1)
            if size > fetch:
                bound = np.maximum(bound, dist[:, -1])
        return rows, bound

    def topk(
        self, w: np.ndarray, codes: np.ndarray, k: int, tables: Any, rescore: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact top ``k`` of ``w . sign(code)`` for the queries that certify.

        ``tables(w)`` gives the float byte tables ``(nq, width, 256)`` and
        ``rescore(tables, codes, rows, k)`` their exact top ``k`` among candidate rows. Returns
        ``(scores (nq, k), rows (nq, k), left)`` where ``left`` lists the queries that did not
        certify (their rows are ``-1``; the caller scans them in full).
        """
        nq = len(w)
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        out_r = np.full((nq, k), -1, dtype=np.int64)
        todo = np.arange(nq)
        eps = self.eps(np.ascontiguousarray(w, dtype=np.float32))
        fetch = k + k // 4 + 32
        for _ in range(2):
            if not len(todo):
                break
            rows, bound = self.candidates(w[todo], fetch)
            ok = np.zeros(len(todo), dtype=bool)
            for b in range(0, len(todo), QUERY_BLOCK):
                sl = slice(b, b + QUERY_BLOCK)
                s, r = rescore(tables(w[todo[sl]]), codes, rows[sl], k)
                good = s[:, k - 1] > bound[sl] + eps[todo[sl]]
                out_s[todo[sl][good]] = s[good]
                out_r[todo[sl][good]] = r[good]
                ok[sl] = good
            todo = todo[~ok]
            fetch *= 4
        return out_s, out_r, todo


def sign_topk(
    codec: Any,
    given: np.ndarray,
    codes: np.ndarray,
    w: np.ndarray,
    k: int,
    tables: Any,
    table_scan: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``w . sign(code)`` over packed sign codes, through the fast scan where it
    applies (``codec.fast_scan``, faiss installed, :func:`usable`, ``k <= n/8``, and ``given``
    the codec's resident codes, see :meth:`heron.codecs.base.Codec._resident`), else
    ``table_scan(w, codes, k)``; the same ``(scores, rows)`` either way.

    ``w`` ``(nq, 8 * width)`` float32 (one weight per code bit), ``codes`` ``(n, width)``
    uint8 (``given``, contiguous), ``tables(w, width)`` their float byte tables.
    """
    from heron.codecs import _scan

    n, width = codes.shape
    if not (codec.fast_scan and has("faiss") and usable(n, width) and k <= n // 8):
        return table_scan(w, codes, k)
    shards = _scan._kernels().threads()
    fast = codec._resident(given, lambda c: SignFastScan(c, shards=shards))
    if fast is None:
        return table_scan(w, codes, k)
    s, r, left = fast.topk(w, codes, k, lambda ww: tables(ww, width), _scan.lut_rows_topk)
    if len(left):
        s[left], r[left] = table_scan(w[left], codes, k)
    return s, r
