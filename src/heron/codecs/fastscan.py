"""The asymmetric sign-code scan through a 4-bit fast scan, with an exactness certificate.

A sign code of ``d`` bits (:class:`heron.codecs.binary.BinaryCodec`, ``scoring="asym"``; the
``b`` planes of :class:`heron.codecs.rbin.ResidualBinaryCodec` together) is also a
product-quantisation code: ``d/4`` sub-quantisers of 4 bits whose 16 centroids are the sign
patterns ``(+-1, +-1, +-1, +-1)``. Its asymmetric score ``w . sign`` is then the PQ inner product,
which a fast scan (André, Kermarrec & Le Scouarnec, "Cache locality is not enough:
high-performance nearest neighbor search with product quantization fast scan", VLDB 2015, and
"Quicker ADC", IEEE TPAMI 2019) computes with the 16-entry tables of the query held in SIMD
registers as 8-bit integers: one shuffle instruction looks up many codes at once, where the float
table scan (:func:`heron.codecs._scan.lut_topk`) makes one memory look-up per code byte.

Two fast scans, one certificate (:func:`engine` picks):

- :class:`SignLutScan`, heron's own (:mod:`heron.codecs._fastscan_numba`): codes interleaved in
  blocks of 64 by 4-byte words, one AVX-512 VBMI ``vpermb`` per nibble of 64 bytes (each byte
  reading its own table) and one VNNI ``vpdpbusd`` adding each code's four results, the top-k
  fused into the scan, on numba's threads. Where the CPU has VBMI and VNNI (Ice Lake and later,
  Zen 4 and later).
- :class:`SignFastScan`, faiss' ``IndexPQFastScan`` (32-code blocks), one shard per thread with
  faiss' own OpenMP held to one thread. Elsewhere, where faiss is installed.

On 1M x 384 ``bin`` codes heron's top-k took 1.17 / 1.52 ms single-query at k = 10 / 300 where
faiss' took 2.24 / 1.92, and answered 1.4-1.7x faiss' queries per second batched
(``benchmarks/binary_fastscan.py``; docs/compression.md).

The 8-bit tables round each entry to the nearest multiple of ``1/a`` (``a`` the query's scale),
so a code's approximate score is within ``eps`` of its exact score (``eps = (d/4) * 0.5 / a``).
The scan fetches more candidates than asked for from each shard (row chunk), scores them exactly
with the float byte tables, and **certifies** the result: a code not fetched from a shard scores
at most ``last + eps`` exactly (``last`` the lowest approximate score fetched there), so once the
``k``-th exact score is above the highest such bound, the top ``k`` is the exact one, ties
included (a row tied with the ``k``-th that was left out cannot certify). Candidates that cannot
reach the top ``k`` by their approximate scores are dropped before re-scoring (:func:`_prune`).
Queries that do not certify fetch 4x more, and those left after that go back to the float table
scan.
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

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_PID = 0
_POOL_LOCK = threading.Lock()

#: the process that imported this module; another pid is a forked child
_IMPORT_PID = os.getpid()


def engine() -> str | None:
    """Which fast scan runs here: ``"heron"`` (:class:`SignLutScan`, where numba compiles for a
    CPU with AVX-512 VBMI), else ``"faiss"`` (:class:`SignFastScan`, where faiss is installed),
    else ``None`` (the float table scan)."""
    if has("numba"):
        from heron._numba_ext import lut16_available

        if lut16_available():
            return "heron"
    return "faiss" if has("faiss") else None


#: what a codec's ``fast_scan`` may be: ``True`` (:func:`engine` picks), ``False`` (the float
#: table scan), or one fast scan by name
CHOICES = (True, False, "heron", "faiss")


def check_choice(fast_scan: Any) -> bool | str:
    """``fast_scan`` validated (one of :data:`CHOICES`): a named scan must run here."""
    if isinstance(fast_scan, str):
        if fast_scan not in ("heron", "faiss"):
            raise ValueError(f"fast_scan must be True, False, 'heron' or 'faiss', got {fast_scan!r}")
        if fast_scan == "faiss" and not has("faiss"):
            raise ValueError("fast_scan='faiss' needs faiss: pip install 'heron[faiss]', or pass True")
        if fast_scan == "heron" and engine() != "heron":
            raise ValueError(
                "fast_scan='heron' needs numba compiling for a CPU with AVX-512 VBMI, which this "
                "one is not; pass True (the best scan here) or 'faiss'"
            )
        return fast_scan
    if isinstance(fast_scan, (bool, np.bool_)):
        return bool(fast_scan)
    raise ValueError(f"fast_scan must be True, False, 'heron' or 'faiss', got {fast_scan!r}")


def usable(n: int, width: int, kind: str | None = "faiss") -> bool:
    """Whether the fast scan ``kind`` applies: enough rows, and codes of at most 128 bytes
    (``d <= 1024``: faiss' 8-bit table entries must sum within its 16-bit accumulators)."""
    if kind == "heron":
        return n >= MIN_ROWS and width <= SignLutScan.MAX_WIDTH
    return kind == "faiss" and n >= MIN_ROWS and 2 * width * 255 < 65_536


def _one_omp_thread() -> None:
    if has("faiss"):
        require("faiss", purpose="the fast binary scan").omp_set_num_threads(1)


def _pool(size: int) -> ThreadPoolExecutor:
    """Worker threads that scan one shard (or run of tasks) each, faiss' OpenMP held to one
    thread in each."""
    global _POOL, _POOL_SIZE, _POOL_PID
    with _POOL_LOCK:
        if _POOL_PID != os.getpid():  # a forked child has the pool object but not its threads
            _POOL = None
        if _POOL is None or _POOL_SIZE < size:
            old = _POOL
            _POOL = ThreadPoolExecutor(
                size, thread_name_prefix="heron-fastscan", initializer=_one_omp_thread
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


def _prune(rows: np.ndarray, approx: np.ndarray, k: int, slack: np.ndarray) -> np.ndarray:
    """``rows`` with ``-1`` for the candidates that cannot be in the exact top ``k``.

    With ``L`` the ``k``-th highest approximate score of a query's candidates, ``k`` of them
    score at least ``L - eps`` exactly; a candidate whose approximate score is below
    ``L - 2 eps`` (``slack = 2 eps``) scores below ``L - eps``, under all ``k``, ties included.
    """
    if approx.shape[1] <= k:
        return rows
    kth = -np.partition(-approx, k - 1, axis=1)[:, k - 1]
    return np.where(approx < (kth - slack)[:, None], -1, rows)


class _Certified:
    """The certificate shared by the two candidate scans. A scan gives, for float32 weights
    ``w`` ``(nq, 8 * width)``, :meth:`prepare` (what its queries need: tables, scales),
    ``eps`` (how far an approximate score can be from the exact one) and :meth:`raw_of` (the
    candidates' values and rows, and the bound on the rest); :meth:`topk` prunes, re-scores and
    certifies them (:func:`heron.codecs._kernels.certify_topk`)."""

    #: a bound from :meth:`raw_of` below this means every row was fetched
    NONE_BELOW = float("-inf")

    def prepare(self, w: np.ndarray) -> Any:
        return w

    def eps_of(self, prep: Any) -> np.ndarray:
        raise NotImplementedError

    def raw_of(
        self, prep: Any, sel: np.ndarray, fetch: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The candidates of the queries ``sel`` of ``prep``: ``(vals (m, C), rows (m, C) int64
        with -1 padding, bound (m,), a (m,) float64, off (m,) float64)``; a value ``v`` is the
        approximate score ``v / a + off``; ``bound`` the highest value a row not fetched can
        have (below :attr:`NONE_BELOW` where every row was fetched)."""
        raise NotImplementedError

    def eps(self, w: np.ndarray) -> np.ndarray:
        """``(nq,)``: the most an approximate score can differ from the exact one."""
        return self.eps_of(self.prepare(np.ascontiguousarray(w, dtype=np.float32)))

    def candidates_of(
        self, prep: Any, sel: np.ndarray, fetch: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`raw_of` as ``(rows, approximate scores (-inf padding), bound as a score
        (-inf where every row was fetched))``."""
        vals, rows, bound, a, off = self.raw_of(prep, sel, fetch)
        approx = np.where(rows >= 0, vals / a[:, None] + off[:, None], -np.inf)
        real = np.where(bound >= self.NONE_BELOW, bound / a + off, -np.inf)
        return rows, approx.astype(np.float32), real.astype(np.float32)

    def candidates(self, w: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows (nq, threads*fetch) int64 with -1 padding, bound (nq,) float32)``: the
        ``fetch`` best rows by approximate score of each shard (one per thread; heron's kernel
        scans each query of a batch in one row chunk and fetches ``threads * fetch`` there);
        ``bound`` the highest approximate score a row not fetched can have (``-inf`` where every
        row was fetched)."""
        w = np.ascontiguousarray(w, dtype=np.float32)
        rows, _, bound = self.candidates_of(self.prepare(w), np.arange(len(w)), fetch)
        return rows, bound

    def topk(
        self, w: np.ndarray, codes: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact top ``k`` of ``w . sign(code)`` for the queries that certify.

        The candidates are scored exactly through the float byte tables of the full table scan
        (:func:`heron.codecs._kernels.byte_tables`), so the scores are its own, bit for bit.
        Returns ``(scores (nq, k), rows (nq, k), left)`` where ``left`` lists the queries that did
        not certify (their rows are ``-1``; the caller scans them in full).
        """
        from heron.codecs import _scan

        kern = _scan._kernels()
        w = np.ascontiguousarray(w, dtype=np.float32)
        nq = len(w)
        prep = self.prepare(w)
        eps = self.eps_of(prep)
        fetch = k + k // 4 + 32
        todo = np.arange(nq)
        out_s = out_r = None
        for _ in range(2):
            vals, rows, bound, a, off = self.raw_of(prep, todo, fetch)
            fn = kern.certify_topk_par if len(todo) >= 4 else kern.certify_topk
            ws = w if len(todo) == nq else np.ascontiguousarray(w[todo])
            s, r, good = fn(
                vals, rows, bound, a, off, self.NONE_BELOW, eps[todo], ws, codes, int(k)
            )
            if out_s is None and good.all():
                return s, r, todo[:0]  # every query certified at once: the usual case
            if out_s is None:
                out_s = np.full((nq, k), -np.inf, dtype=np.float32)
                out_r = np.full((nq, k), -1, dtype=np.int64)
            out_s[todo[good]] = s[good]
            out_r[todo[good]] = r[good]
            todo = todo[~good]
            if not len(todo):
                break
            fetch *= 4
        return out_s, out_r, todo


class SignLutScan(_Certified):
    """heron's own fast scan over packed sign codes ``(n, width)`` uint8 (AVX-512 VBMI).

    The codes are copied once, interleaved in blocks of 64
    (:func:`heron.codecs._fastscan_numba.interleave`, the same bytes as the codes, on huge pages).
    A query's ``2 * width`` nibble tables are shifted to start at 0 and scaled by one ``a`` so that
    the widest spans 255, as faiss scales its own; the sums are 32-bit.
    Each entry is rounded to the nearest multiple of ``1/a``: a code's approximate score is within
    ``width / a`` of its exact one. :func:`heron.codecs._fastscan_numba.lut16_topk` returns each row chunk's top sums (one
    chunk per thread for a single query, blocks of queries otherwise).
    """

    #: widest code scanned: faiss' limit (its sums are 16-bit), so that both scans cover the
    #: same codes (heron's sums are 32-bit)
    MAX_WIDTH = 128
    #: the kernel's bound is ``-1`` where every row of a chunk was fetched (sums are >= 0)
    NONE_BELOW = 0.0

    def __init__(self, codes: np.ndarray) -> None:
        from heron.codecs import _fastscan_numba

        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.n, self.width = codes.shape
        if self.width > self.MAX_WIDTH:
            raise ValueError(f"codes of {self.width} bytes exceed {self.MAX_WIDTH}")
        self._kern = _fastscan_numba
        self.il = _fastscan_numba.interleave(codes)

    @property
    def nbytes(self) -> int:
        return int(self.il.nbytes)

    def tables(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(luts (nq, width * 128) uint8, a (nq,), offset (nq,))`` of float32 weights ``w``
        ``(nq, 8 * width)``: approximate score = ``sum of looked-up entries / a + offset``
        (:func:`heron.codecs._fastscan_numba.sign_tables`)."""
        return self._kern.sign_tables(np.ascontiguousarray(w, dtype=np.float32), self.width)

    def prepare(self, w: np.ndarray) -> Any:
        """:meth:`tables` and ``eps`` in one call
        (:func:`heron.codecs._fastscan_numba.sign_prepare`)."""
        return self._kern.sign_prepare(np.ascontiguousarray(w, dtype=np.float32), self.width)

    def eps_of(self, prep: Any) -> np.ndarray:
        # rounding to nearest: 0.5/a for each of the 2 * width tables (sign_prepare)
        return prep[3]

    def raw_of(
        self, prep: Any, sel: np.ndarray, fetch: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        from heron.codecs import _scan

        luts, a, off = prep[:3]
        if len(sel) != len(luts):
            luts, a, off = luts[sel], a[sel], off[sel]
        threads = _scan._kernels().threads()
        nchunks, qblock = _scan._plan(len(luts), self.n, fetch, threads)
        # as deep as faiss' one shard per thread: a batch scans each query in one row chunk
        fetch = fetch * threads // nchunks
        # numba's threads, as heron's other scans use (their OpenMP team is the one already
        # spinning after a scan); a forked child, where GNU OpenMP cannot start, uses a pool
        pool = os.getpid() != _IMPORT_PID and threads > 1
        sums, rows, bound = self._kern.lut16_topk(
            self.il,
            luts,
            self.width,
            self.n,
            int(fetch),
            nchunks,
            qblock,
            submit=_pool(threads - 1).submit if pool else None,
            workers=threads,
        )
        return sums, rows, bound, a, off


class SignFastScan(_Certified):
    """faiss' fast-scan shards over packed sign codes ``(n, width)`` uint8, searched in parallel.

    The shards (one per thread) are a resident copy of the codes, built in ~90 ms per 1M codes
    (faiss packs them from an ``IndexPQ``); each is searched on its own thread with faiss' own
    OpenMP held to one thread, so no spinning OpenMP team is left behind to slow the next call.

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

    def eps_of(self, prep: Any) -> np.ndarray:
        """From the scale faiss gives each query's 8-bit tables."""
        return self._eps_faiss(prep) if self._ask_faiss else self._eps_own(prep)

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

    def raw_of(
        self, prep: Any, sel: np.ndarray, fetch: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        w = prep if len(sel) == len(prep) else np.ascontiguousarray(prep[sel])
        nq = len(w)
        pool = _pool(len(self.shards))
        futures = [
            pool.submit(s.search, w, int(min(fetch, size)))
            for s, size in zip(self.shards, self.sizes)
        ]
        rows = np.full((nq, len(self.shards) * fetch), -1, dtype=np.int64)
        approx = np.full(rows.shape, -np.inf, dtype=np.float32)
        bound = np.full(nq, -np.inf, dtype=np.float32)
        for j, (f, start, size) in enumerate(zip(futures, self.starts, self.sizes)):
            dist, lab = f.result()
            got = lab.shape[1]
            rows[:, j * fetch : j * fetch + got] = np.where(lab >= 0, lab + start, -1)
            approx[:, j * fetch : j * fetch + got] = np.where(lab >= 0, dist, -np.inf)
            if size > fetch:
                bound = np.maximum(bound, dist[:, -1])
        return approx, rows, bound, np.ones(nq), np.zeros(nq)


def sign_topk(
    codec: Any,
    given: np.ndarray,
    codes: np.ndarray,
    w: np.ndarray,
    k: int,
    table_scan: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``w . sign(code)`` over packed sign codes, through the fast scan where it
    applies (``codec.fast_scan``: ``True`` for :func:`engine`'s, or one by name; :func:`usable`,
    ``k <= n/8``, and ``given`` the codec's resident codes, see
    :meth:`heron.codecs.base.Codec._resident`), else ``table_scan(w, codes, k)``; the same
    ``(scores, rows)`` either way.

    ``w`` ``(nq, 8 * width)`` float32 (one weight per code bit), ``codes`` ``(n, width)``
    uint8 (``given``, contiguous).
    """
    from heron.codecs import _scan

    n, width = codes.shape
    choice = codec.fast_scan
    kind = choice if isinstance(choice, str) else engine() if choice else None
    if not (usable(n, width, kind) and k <= n // 8):
        return table_scan(w, codes, k)
    if kind == "heron":
        cls, make = SignLutScan, SignLutScan
    else:
        shards = _scan._kernels().threads()
        cls, make = SignFastScan, lambda c: SignFastScan(c, shards=shards)
    fast = codec._resident(given, make)
    if fast is not None and not isinstance(fast, cls):  # the other scan's copy: replaced
        codec._resident_of = (given, make(given))
        fast = codec._resident_of[1]
    if fast is None:
        return table_scan(w, codes, k)
    s, r, left = fast.topk(w, codes, k)
    if len(left):
        s[left], r[left] = table_scan(w[left], codes, k)
    return s, r
