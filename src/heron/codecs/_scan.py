"""Dispatch of the numba top-k kernels: task splitting and merging of row-chunk results."""

from __future__ import annotations

import numpy as np

from heron._deps import has, require

#: fewer queries than this are re-scored on the calling thread (:func:`gather_dot`)
SERIAL_QUERIES = 4


def fast_available() -> bool:
    """Whether the numba kernels can be used."""
    return has("numba")


_KERNELS = None


def _kernels():
    """:mod:`heron.codecs._kernels`, imported once (this is on every compressed query)."""
    global _KERNELS
    if _KERNELS is None:
        require("numba", purpose="fast compressed scans")
        from heron.codecs import _kernels

        _KERNELS = _kernels
    return _KERNELS


def _plan(nq: int, n: int, k: int, nthreads: int) -> tuple[int, int]:
    """``(nchunks, qblock)``: split rows when there are few queries, queries when many.

    Few queries get one row chunk per thread: numba's ``prange`` hands each thread an equal
    contiguous share anyway (static schedule), and every extra chunk pays its own warm-up (a loose
    threshold until its buffer first fills) and its own emit. Measured on the 1M x 384 bin-ham
    codes of ``benchmarks/codecs_speed.py`` (K = 300, 2 threads): 1.05 ms with 2 chunks against
    1.21 ms with 8, for a 0.82 ms streaming read.

    Many queries are cut into blocks of at most 16 (a tile of codes is read once per block), as
    few blocks as that allows, rounded up to a multiple of the thread count. Blocks of
    ``nq // (2 * nthreads)`` queries had each thread read all the codes twice or more for small
    batches: 4 to 16 queries over the 1M bin-ham codes took 4.8-10.1 ms, now 3.4-7.6 ms.
    """
    if nq >= 2 * nthreads:
        ntasks = nthreads * -(-nq // (nthreads * 16))
        return 1, -(-nq // ntasks)
    nchunks = max(1, min(nthreads, n // max(4 * k, 1024)))
    return nchunks, nq


def merge_chunks(
    scores: np.ndarray, rows: np.ndarray, k: int, *, ascending: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-chunk top lists ``(nq, nchunks*k)`` into ``(nq, k)`` sorted lists.

    Each chunk's list is already sorted (the kernels emit sorted runs), so the numba path merges
    the runs (ties keep chunk order, as a stable sort would); numpy sorts where numba is missing.
    """
    if scores.shape[1] == k:
        return scores, rows
    if fast_available() and scores.shape[1] % k == 0 and scores.dtype in (np.float32, np.int32, np.int64):
        return _kernels().merge_runs(scores, rows, k, scores.shape[1] // k, ascending)
    key = scores if ascending else -scores.astype(np.float64)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


def column_words(dbwords: np.ndarray) -> np.ndarray:
    """``(w, n)``: the ``(n, w)`` uint64 codes stored by word, the layout :func:`hamming_topk`
    scans fastest (a resident copy; the stored codes stay row-major)."""
    return np.ascontiguousarray(np.asarray(dbwords).T)


def hamming_topk(
    qwords: np.ndarray,
    dbwords: np.ndarray,
    k: int,
    *,
    tile: int = 512,
    columns: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(dist (nq, k) int32 ascending, rows (nq, k) int64)``; padding ``nbits+1`` / ``-1``.

    ``columns``: :func:`column_words` of ``dbwords`` (same results; scanned 8 rows per vector
    operation, tiles of 256 rows unless ``tile`` says otherwise). Measured on 1M x 6 words,
    K = 300, one query, 2 threads: 0.73-0.82 ms against 0.96-1.04 ms row-major, for a
    0.61 ms streaming read.
    """
    kern = _kernels()
    nchunks, qblock = _plan(len(qwords), len(dbwords), k, kern.threads())
    q = np.ascontiguousarray(qwords)
    if columns is not None:
        d, r = kern.hamming_topk_cols(q, columns, int(k), nchunks, qblock, min(tile, 256))
    else:
        d, r = kern.hamming_topk(q, dbwords, int(k), nchunks, qblock, tile)
    return merge_chunks(d, r, k, ascending=True)


def lut_topk(
    lut: np.ndarray, codes: np.ndarray, k: int, *, tile: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (nq, k) float32 descending, rows (nq, k))`` of a table scan over uint8 codes."""
    kern = _kernels()
    nchunks, qblock = _plan(len(lut), len(codes), k, kern.threads())
    s, r = kern.lut_topk(
        np.ascontiguousarray(lut, dtype=np.float32), codes, int(k), nchunks, qblock, tile
    )
    return merge_chunks(s, r, k)


def lut_rows_topk(
    lut: np.ndarray, codes: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (nq, k) float32 descending, rows (nq, k))``: the table scan of :func:`lut_topk`
    restricted to candidate ``rows`` ``(nq, C)`` (``-1`` padding); ties go to the lower row."""
    kern = _kernels()
    lut = np.ascontiguousarray(lut, dtype=np.float32)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.size and int(rows.max()) >= len(codes):
        raise ValueError(f"candidate row {int(rows.max())} out of range for {len(codes)} codes")
    fn = kern.lut_rows_topk_par if len(rows) >= 4 else kern.lut_rows_topk
    return fn(lut, codes, rows, int(k))


def i16u8_topk(
    qw: np.ndarray, codes: np.ndarray, k: int, *, tile: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (nq, k) int64 descending, rows (nq, k))`` of ``qw @ codes.T`` in integers.

    ``qw`` ``(nq, d)`` int16 with ``255 * sum(|qw[i]|) < 2**31`` (no int32 overflow), ``codes``
    ``(n, d)`` uint8. Padding: ``iinfo(int64).min`` / ``-1``.
    """
    kern = _kernels()
    qw = np.ascontiguousarray(qw, dtype=np.int16)
    if len(qw) and 255 * int(np.abs(qw.astype(np.int64)).sum(axis=1).max()) >= 2**31:
        raise ValueError("int16 query weights too large: 255 * sum(|qw|) must stay below 2**31")
    nchunks, qblock = _plan(len(qw), len(codes), k, kern.threads())
    s, r = kern.i16u8_topk(qw, np.ascontiguousarray(codes), int(k), nchunks, qblock, tile)
    return merge_chunks(s, r, k)


def gather_dot(queries: np.ndarray, rows: np.ndarray, matrix: np.ndarray) -> np.ndarray | None:
    """``(nq, K)`` float32 scores ``queries[i] . matrix[rows[i, t]]`` (``-inf`` where ``-1``).

    Reads only the candidate rows of ``matrix`` (float16 or float32, C-contiguous, typically a
    memory map). Returns ``None`` when numba or the layout is unavailable (caller falls back).
    """
    if not fast_available():
        return None
    mat = np.asarray(matrix)  # a memmap stays a view of the mapped file
    if mat.dtype not in (np.float16, np.float32) or not mat.flags.c_contiguous:
        return None
    kern = _kernels()
    q = np.ascontiguousarray(queries, dtype=np.float32)
    r = np.ascontiguousarray(rows, dtype=np.int64)
    if r.size and int(r.max()) >= len(mat):
        raise ValueError(f"candidate row {int(r.max())} out of range for {len(mat)} rows")
    out = np.empty(r.shape, dtype=np.float32)
    # a few queries run on the calling thread: an OpenMP region for them costs more than it
    # saves, and its idle workers then spin on the cores the next query's scan needs
    serial = len(r) < SERIAL_QUERIES
    if mat.dtype == np.float16:
        fn = kern.gather_dot_f16_serial if serial else kern.gather_dot_f16
        fn(q, r, mat.view(np.uint16), out)
    else:
        fn = kern.gather_dot_f32_serial if serial else kern.gather_dot_f32
        fn(q, r, mat, out)
    return out


def hamming_matrix(qwords: np.ndarray, dbwords: np.ndarray) -> np.ndarray:
    return _kernels().hamming_matrix(np.ascontiguousarray(qwords), np.ascontiguousarray(dbwords))
