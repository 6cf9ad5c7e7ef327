"""Top-k: the one home of heron's top-k selection (numpy here, numba in :mod:`._topk_numba`).

* :func:`topk_rows` — the top ``k`` columns of every row of a score matrix;
* :func:`topk_candidates` — the top ``k`` of scattered ``(row, column, score)`` candidates (sparse
  score matrices, merged blocks);
* :func:`merge_topk` — the top ``k`` of concatenated per-row hit lists carrying their own ids;
* :func:`pad_topk` — pad ``(n, k0)`` hit lists to ``k`` columns;
* :func:`exact_search` — exact top-``k`` rows of a (possibly memory-mapped) matrix by inner
  product, the fused GEMM + heap scan described below.

Every function keeps one ordering contract: hits sorted by score descending, ties broken by the
smaller column (row, id); NaN and ``-inf`` scores are never returned; missing hits are padded
with score ``-inf`` and column ``-1``. The numba kernels (:mod:`heron.retrieval._topk_numba`)
keep the same contract with a binary min-heap (``heap_push`` / ``heap_replace_top`` /
``heap_sort``) that the fused kernels of the codecs and of Seismic call too.

:func:`exact_search` has two execution strategies, chosen per call:

* **blocked** (many queries): the rows are split into one contiguous range per worker thread;
  each worker (BLAS limited to one thread through ``threadpoolctl``) scores a tile of
  ``block_size`` rows against the queries by one matrix product and folds the tile's scores
  into its own per-query min-heaps of the ``k`` best hits while the tile is still in its core's
  cache; the workers' heaps are merged at the end. Almost every score is rejected by one
  comparison with the heap's root (the running ``k``-th best), so the partial sort costs little
  more than reading the scores once — unlike ``argpartition``, which moves every score. This is
  the GEMM + heap scheme of faiss ``IndexFlatIP`` (Johnson, Douze & Jégou, "Billion-scale
  similarity search with GPUs", IEEE TBD 2019), split by rows instead of handing each block
  from a threaded BLAS call to a parallel fold (the two thread pools then wait and spin against
  each other on a 2-core machine). Without ``threadpoolctl`` it does exactly that, with larger
  blocks.
* **scan** (a few float32 queries): one parallel numba pass computes the dot products row by row
  and keeps the heaps, so no score vector is written and the matrix is read exactly once: the
  latency is bounded by memory bandwidth.

Without numba, a pure-numpy implementation (blocked matrix product + ``argpartition``) gives the
same results, slower.

Rows masked out by ``valid`` are never returned either.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from heron._deps import has

#: Rows of the matrix scored per block in the blocked strategy: a tile per worker thread that
#: stays in its core's cache (threaded), or a large block for one threaded BLAS call (fallback).
DEFAULT_BLOCK_SIZE = 2048
_FALLBACK_BLOCK_SIZE = 16384
#: Up to this many float32 queries use the fused scan instead of the blocked strategy.
SCAN_MAX_QUERIES = 16
#: Bytes of one worker's score tile (queries are processed in chunks that fit it); the fallback's
#: single buffer is four times this.
_SCORE_BUFFER_BYTES = 8 << 20
METHODS = ("auto", "numba", "numpy")


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of each row of ``scores``.

    Parameters
    ----------
    scores:
        ``(n, m)`` real scores (any float or integer dtype); NaN and ``-inf`` are never returned.
    k:
        Hits per row (non-negative int); may exceed ``m``, the rest is padding.

    Returns
    -------
    top_scores:
        ``(n, k)`` float32, descending, padded with ``-inf``.
    cols:
        ``(n, k)`` int64 column numbers, padded with ``-1``; ties go to the smaller column.

    Notes
    -----
    One ``partition`` per row finds the ``k``-th best score; only the candidates at least as good
    (``k`` per row, more on ties) are sorted, so the cost is linear in ``m``.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, m), got shape {s.shape}")
    k = _check_count(k)
    n, m = s.shape
    if n == 0 or m == 0 or k == 0:
        return _padded(n, k)
    floating = np.issubdtype(s.dtype, np.floating)
    if floating and m <= _SMALL_ROWS:
        return _topk_small(s, k)
    if m > k:
        kth = np.partition(s, m - k, axis=1)[:, m - k]
        if floating and np.isnan(kth).any():  # NaN sorts last in partition: drop them first
            s = np.where(np.isnan(s), -np.inf, s)
            kth = np.partition(s, m - k, axis=1)[:, m - k]
        cand = s >= kth[:, None]  # NaN compares False
        if floating and (kth == -np.inf).any():
            cand &= s > -np.inf
    else:
        cand = s > -np.inf if floating else np.ones(s.shape, dtype=bool)
    flat = np.flatnonzero(cand)  # row-major: columns ascending within a row (2-D nonzero is slower)
    rows, cols = np.divmod(flat, m)
    return _select(rows, cols, s.reshape(-1)[flat] if s.flags.c_contiguous else s[rows, cols], n, k)


#: Rows up to this many columns are sorted whole (one stable argsort): for the few-times-``k``
#: candidates of a rescoring, partition + select cost ~30 µs of numpy calls against ~5 µs.
_SMALL_ROWS = 512


def _topk_small(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`topk_rows` for float rows of a few hundred columns: one stable sort per row."""
    n, m = s.shape
    kk = min(k, m)
    # -s ascending, stable: the best score first, ties to the smaller column; -inf (as +inf) and
    # NaN sort after every finite score
    cols = np.argsort(-s, axis=1, kind="stable")[:, :kk]
    if n == 1:
        top = s[0][cols[0]][None, :].astype(np.float32, copy=False)
    else:
        top = np.take_along_axis(s, cols, axis=1).astype(np.float32, copy=False)
    # -inf and NaN are never returned; they sort last, so the last column tells whether any came
    if not (top[0, -1] > -np.inf if n == 1 else (top[:, -1] > -np.inf).all()):
        bad = ~(top > -np.inf)
        top = np.where(bad, np.float32(-np.inf), top)
        cols = np.where(bad, -1, cols)
    if kk < k:
        ps, pc = _padded(n, k)
        ps[:, :kk], pc[:, :kk] = top, cols
        return ps, pc
    return top, cols.astype(np.int64, copy=False)


def topk_candidates(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n_rows: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` per row of scattered candidates ``(rows[i], cols[i], scores[i])``.

    ``rows``, ``cols`` and ``scores`` are 1-D of equal length, in any order, with no duplicate
    ``(row, col)`` pair; rows lie in ``0 .. n_rows-1``. Returns ``(top_scores (n_rows, k) float32,
    cols (n_rows, k) int64)`` with the ordering contract of :func:`topk_rows`. All candidates are
    sorted once: meant for a few times ``k`` candidates per row (merges); for thousands per row
    use :func:`topk_rows` on each row.
    """
    rows, cols, vals = np.asarray(rows), np.asarray(cols), np.asarray(scores)
    if not rows.shape == cols.shape == vals.shape or rows.ndim != 1:
        raise ValueError(
            f"rows, cols and scores must be 1-D of one length, got {rows.shape}, {cols.shape}, {vals.shape}"
        )
    k = _check_count(k)
    keep = vals > -np.inf  # drops NaN too
    if not keep.all():
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    order = np.lexsort((cols, rows))  # row-major, columns ascending
    return _select(rows[order], cols[order], vals[order], int(n_rows), k)


def merge_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of per-row hit lists laid side by side: ``scores``/``ids`` ``(n, m)`` -> ``(n, k)``.

    Ties go to the earlier column, so concatenating sorted lists in ascending id order (earlier
    blocks first) keeps "ties to the smaller id". Padding ids are ``-1``.
    """
    top, cols = topk_rows(scores, k)
    ids = np.asarray(ids)
    if len(cols) == 1 and cols.shape[1] and ids.shape[1]:  # one row: plain indexing (take_along_axis costs ~4 µs)
        c = cols[0]
        one = ids[0][c].astype(np.int64, copy=False)
        if c[-1] < 0:  # padding sorts last
            one = np.where(c >= 0, one, -1)
        return top, one[None, :]
    out = np.take_along_axis(ids, np.maximum(cols, 0), axis=1).astype(np.int64, copy=False)
    return top, np.where(cols >= 0, out, -1)


def pad_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``(n, k0)`` hit lists to ``(n, k)`` with ``-inf`` / ``-1`` (or cut them to ``k``)."""
    n, k0 = scores.shape
    if k0 >= k:
        return scores[:, :k].astype(np.float32), ids[:, :k].astype(np.int64)
    ps, pi = _padded(n, k)
    ps[:, :k0], pi[:, :k0] = scores, ids
    return ps, pi


def _select(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` per row of candidates given row-major (columns ascending within a row)."""
    out_s, out_c = _padded(n, k)
    if rows.size == 0:
        return out_s, out_c
    key = -vals.astype(np.float64) if not np.issubdtype(vals.dtype, np.floating) else -vals
    counts = np.bincount(rows, minlength=n)
    if rows.size == n * k and (counts == k).all():  # the usual case: exactly k per row
        key = key.reshape(n, k)
        order = np.argsort(key, axis=1, kind="stable")  # stable: ties keep the smaller column
        out_s[:] = np.take_along_axis(vals.reshape(n, k), order, axis=1)
        out_c[:] = np.take_along_axis(cols.reshape(n, k), order, axis=1)
        return out_s, out_c
    order = np.lexsort((key, rows))  # stable: ties keep the smaller column
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(rows.size) - first[rows]
    sel = rank < k
    out_s[rows[sel], rank[sel]] = vals[sel]
    out_c[rows[sel], rank[sel]] = cols[sel]
    return out_s, out_c


def _padded(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)


def _check_count(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    return int(k)


def exact_search(
    queries: np.ndarray,
    matrix: np.ndarray,
    k: int,
    *,
    valid: np.ndarray | None = None,
    block_size: int | None = None,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``matrix`` by inner product with each query.

    Parameters
    ----------
    queries:
        ``(n_queries, d)``; converted to float32.
    matrix:
        ``(n, d)`` float32 or float16, may be an ``np.memmap`` (it is read block by block, never
        copied whole).
    k:
        Hits per query (positive int); may exceed ``n``, the rest is padding.
    valid:
        Optional boolean mask ``(n,)``; rows where it is False are never returned.
    block_size:
        Rows of ``matrix`` scored at a time by the blocked strategy; None picks
        :data:`DEFAULT_BLOCK_SIZE` for the threaded strategy, a larger block otherwise.
    method:
        ``"auto"`` (numba kernels when numba is installed, else numpy), ``"numba"`` or ``"numpy"``.

    Returns
    -------
    scores:
        ``(n_queries, k)`` float32, descending, padded with ``-inf``.
    rows:
        ``(n_queries, k)`` int64 row numbers, padded with ``-1``; ties go to the smaller row.
    """
    q, valid = _check(queries, matrix, k, valid, block_size, method)
    nq, n = q.shape[0], matrix.shape[0]
    if nq == 0 or n == 0:
        return (
            np.full((nq, k), -np.inf, dtype=np.float32),
            np.full((nq, k), -1, dtype=np.int64),
        )
    if method == "numpy" or (method == "auto" and not has("numba")):
        return _numpy_search(q, matrix, k, valid, block_size or _FALLBACK_BLOCK_SIZE)
    from heron.retrieval import _topk_numba as kern

    has_valid = valid is not None
    mask = valid if valid is not None else np.zeros(1, dtype=np.bool_)
    dense = _as_plain_array(matrix)
    if nq <= SCAN_MAX_QUERIES and dense is not None:
        n_chunks = max(1, min(_num_threads() * 8, n // 1024 or 1))
        return kern.scan(q, dense, mask, has_valid, k, n_chunks)

    threads = _num_threads()
    limit = _blas_limiter()
    tile = block_size or DEFAULT_BLOCK_SIZE
    if threads > 1 and limit is not None and n >= 2 * tile:
        return _threaded_blocked(q, matrix, k, valid, tile, threads, limit)
    block_size = block_size or _FALLBACK_BLOCK_SIZE
    heap_s, heap_i = _blocked_range(q, matrix, k, mask, has_valid, block_size, 0, n, parallel=True)
    kern.sort_heaps(heap_s, heap_i)
    return heap_s, heap_i


def scan_topk(queries: np.ndarray, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_search` for inputs already checked: ``(nq, d)`` C-contiguous float32 queries
    and a plain ``(n, d)`` float32 matrix, ``0 < k <= n``, no mask. A few queries run the fused
    scan on every numba thread, without the ~6 µs :func:`exact_search` spends checking (IVF
    centroids: 4,096 x 384 in ~60 µs); more queries, or no numba, go to :func:`exact_search`.
    """
    if len(queries) <= SCAN_MAX_QUERIES and has("numba"):
        from heron.retrieval import _topk_numba as kern

        n_chunks = max(1, min(_num_threads() * 8, matrix.shape[0] // 1024 or 1))
        return kern.scan(queries, matrix, _NO_MASK, False, k, n_chunks)
    return exact_search(queries, matrix, k)


_NO_MASK = np.zeros(1, dtype=np.bool_)


def _blocked_range(
    q: np.ndarray,
    matrix: np.ndarray,
    k: int,
    mask: np.ndarray,
    has_valid: bool,
    block_size: int,
    lo: int,
    hi: int,
    *,
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Unsorted heaps ``(nq, k)`` of rows ``lo .. hi``: BLAS product per block, then the fold.

    ``parallel`` folds with every numba thread (BLAS threaded too); otherwise the calling thread
    folds alone (a worker of :func:`_threaded_blocked`, BLAS limited to one thread).
    """
    from heron.retrieval import _topk_numba as kern

    fold = kern.select_block if parallel else kern.select_tile
    nq = q.shape[0]
    heap_s = np.full((nq, k), -np.inf, dtype=np.float32)
    heap_i = np.full((nq, k), -1, dtype=np.int64)
    budget = _SCORE_BUFFER_BYTES * (4 if parallel else 1)
    chunk = max(1, min(nq, budget // (4 * block_size)))
    buf = np.empty((chunk, block_size), dtype=np.float32)
    for start in range(lo, hi, block_size):
        block = np.asarray(matrix[start : min(start + block_size, hi)])
        if block.dtype != np.float32:
            block = block.astype(np.float32)
        width = block.shape[0]
        for q0 in range(0, nq, chunk):
            qc = q[q0 : q0 + chunk]
            out = buf[: qc.shape[0], :width] if width == block_size else None
            scores = np.matmul(qc, block.T, out=out)
            fold(scores, start, mask, has_valid, heap_s, heap_i, q0)
    return heap_s, heap_i


def _threaded_blocked(
    q: np.ndarray,
    matrix: np.ndarray,
    k: int,
    valid: np.ndarray | None,
    block_size: int,
    threads: int,
    limit: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked search split by rows over ``threads`` workers, each with single-threaded BLAS.

    Each worker multiplies its own tiles and folds them into its own heaps while they are still
    in its core's cache; the heaps are merged at the end (lower rows first, so ties still go to
    the smaller row). Unlike one threaded GEMM followed by a parallel fold, no thread pool ever
    waits for (or spins against) another between the two steps.
    """
    from heron.retrieval import _topk_numba as kern

    n = matrix.shape[0]
    has_valid = valid is not None
    mask = valid if valid is not None else np.zeros(1, dtype=np.bool_)
    n_blocks = -(-n // block_size)
    cuts = [min(n, (n_blocks * t // threads) * block_size) for t in range(threads + 1)]
    ranges = [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    with limit(limits=1, user_api="blas"):
        futures = [
            worker_pool(len(ranges)).submit(
                _blocked_range, q, matrix, k, mask, has_valid, block_size, a, b, parallel=False
            )
            for a, b in ranges
        ]
        parts = [f.result() for f in futures]
    for hs, hi in parts:
        kern.sort_heaps(hs, hi)
    if len(parts) == 1:
        return parts[0]
    return merge_topk(
        np.concatenate([p[0] for p in parts], axis=1),
        np.concatenate([p[1] for p in parts], axis=1),
        k,
    )


_POOL: list[Any] = []
_LIMITER: list[Any] = []


def worker_pool(workers: int) -> Any:
    """The process's worker threads for kernels that release the GIL (:func:`_threaded_blocked`,
    batched Seismic queries): made on first use, grown when more workers are asked for; idle
    workers block on a queue, they never spin."""
    from concurrent.futures import ThreadPoolExecutor

    if not _POOL or _POOL[0]._max_workers < workers:
        _POOL[:] = [ThreadPoolExecutor(max_workers=workers, thread_name_prefix="heron-topk")]
    return _POOL[0]


def _blas_limiter() -> Any:
    """``ThreadpoolController.limit`` of the loaded BLAS libraries (found once), or None without
    ``threadpoolctl``."""
    if not _LIMITER:
        if not has("threadpoolctl"):
            _LIMITER.append(None)
        else:
            from threadpoolctl import ThreadpoolController

            _LIMITER.append(ThreadpoolController().limit)
    return _LIMITER[0]


# ---------------------------------------------------------------------------------- helpers
def _check(
    queries: Any, matrix: Any, k: Any, valid: Any, block_size: Any, method: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if block_size is not None and (
        isinstance(block_size, bool)
        or not isinstance(block_size, int | np.integer)
        or block_size <= 0
    ):
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2:
        raise ValueError(
            f"matrix must be a 2-D numpy array (n, d), got {type(matrix).__name__} "
            f"with shape {getattr(matrix, 'shape', None)}"
        )
    if matrix.dtype not in (np.float32, np.float16):
        raise TypeError(
            f"matrix must be float32 or float16, got {matrix.dtype}; convert it with .astype(np.float32)"
        )
    q = np.asarray(queries)
    if q.ndim != 2:
        raise ValueError(
            f"queries must be 2-D (n_queries, d), got shape {q.shape}; use queries[None, :] for one query"
        )
    if q.shape[1] != matrix.shape[1]:
        raise ValueError(
            f"dimension mismatch: queries have d={q.shape[1]} but the matrix has d={matrix.shape[1]}; "
            "encode the queries with the model that built the matrix"
        )
    q = np.ascontiguousarray(q, dtype=np.float32)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.dtype != np.bool_ or valid.shape != (matrix.shape[0],):
            raise ValueError(
                f"valid must be a boolean mask of shape ({matrix.shape[0]},), "
                f"got dtype {valid.dtype} shape {valid.shape}"
            )
        valid = np.ascontiguousarray(valid)
    return q, valid


def _as_plain_array(matrix: np.ndarray) -> np.ndarray | None:
    """A plain C-contiguous float32 ndarray view of ``matrix`` (memmaps included), or None."""
    if matrix.dtype != np.float32 or not matrix.flags.c_contiguous:
        return None
    return np.asarray(matrix)


def _num_threads() -> int:
    try:
        import numba

        return int(numba.get_num_threads())
    except ImportError:  # pragma: no cover
        return os.cpu_count() or 1


def _numpy_search(
    q: np.ndarray, matrix: np.ndarray, k: int, valid: np.ndarray | None, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pure-numpy reference: blocked matrix product, ``partition`` for each block's k-th best
    score, then an exact merge of the candidates (:func:`topk_candidates`)."""
    nq = q.shape[0]
    qid_all = np.repeat(np.arange(nq), k)
    best_s, best_i = _padded(nq, k)
    for start in range(0, matrix.shape[0], block_size):
        block = np.asarray(matrix[start : start + block_size], dtype=np.float32)
        s = q @ block.T
        s[np.isnan(s)] = -np.inf
        if valid is not None:
            s[:, ~valid[start : start + block.shape[0]]] = -np.inf
        width = s.shape[1]
        if width > k:
            kth = np.partition(s, width - k, axis=1)[:, width - k]
            # keep candidates at least as good as the current k-th best, too
            kth = np.maximum(kth, best_s[:, -1])
            cand = (s >= kth[:, None]) & (s > -np.inf)
        else:
            cand = s > -np.inf
        cq, cc = np.nonzero(cand)
        keep = best_i.ravel() >= 0
        best_s, best_i = topk_candidates(
            np.concatenate([qid_all[keep], cq]),
            np.concatenate([best_i.ravel()[keep], cc + start]),
            np.concatenate([best_s.ravel()[keep], s[cq, cc]]),
            nq,
            k,
        )
    return best_s, best_i
