"""Exact inner-product scan of stored MUVERA FDEs, float32 or float16, read in place.

Dhulipala et al., "MUVERA: Multi-Vector Retrieval via Fixed Dimensional Encodings", NeurIPS
2024, store document FDEs compressed (PQ) because the FDE scan is memory-bound: at 10,240 dims a
float32 FDE is 40 KB per document, so a query over NFCorpus (3,633 documents) reads 149 MB.
Stored as float16 the same scan reads half that, and :func:`fde_search` never widens the matrix
as a whole: with numba the fused kernel of :mod:`._fde_scan_numba` widens one row at a time in
registers; without numba (or for many queries at once) rows are widened and multiplied in
blocks of at most :data:`BLOCK_BYTES` of float32. float32 FDEs go through
:func:`heron.retrieval.topk.exact_search` unchanged (the exact baseline).
"""

from __future__ import annotations

import numpy as np

from heron.results import check_k

#: FDE storage dtypes accepted by :func:`fde_search` and ``coll.retriever("muvera", fde_dtype=...)``.
FDE_DTYPES = ("float16", "float32")
#: float32 bytes of one widened block on the blocked path (rows per block = BLOCK_BYTES / (4 d)).
BLOCK_BYTES = 8 << 20
#: At most this many queries use the fused single-pass kernel; more go through blocks.
FUSED_MAX_QUERIES = 16


def check_fde_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of an FDE storage name (one of :data:`FDE_DTYPES`)."""
    if str(dtype) not in FDE_DTYPES:
        raise ValueError(f"fde_dtype must be one of {FDE_DTYPES}, got {dtype!r}")
    return np.dtype(str(dtype))


def fde_search(
    queries: np.ndarray,
    fdes: np.ndarray,
    k: int,
    *,
    valid: np.ndarray | None = None,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` document FDEs by inner product with each query FDE.

    Parameters
    ----------
    queries: ``(m, D)`` query FDEs (converted to float32).
    fdes: ``(n, D)`` float16 or float32 document FDEs, may be a memmap (never copied whole).
    k: hits per query.
    valid: optional ``(n,)`` bool mask of rows that may be returned.
    method: ``"auto"`` (the fused numba kernel for float16 when numba is installed), ``"numba"``
        or ``"numpy"`` (blocked widening + matmul).

    Returns
    -------
    ``(scores (m, k) float32 descending, rows (m, k) int64)``, padded with ``-inf`` / ``-1``.
    """
    from heron._deps import has
    from heron.retrieval.topk import exact_search

    k = check_k(k)
    if method not in ("auto", "numba", "numpy"):
        raise ValueError(f"method must be 'auto', 'numba' or 'numpy', got {method!r}")
    if fdes.ndim != 2 or fdes.dtype not in (np.float16, np.float32):
        raise TypeError(
            f"fdes must be a 2-d float16 or float32 array, got {fdes.dtype} with shape {fdes.shape}"
        )
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if q.shape[1] != fdes.shape[1]:
        raise ValueError(f"query FDEs have {q.shape[1]} dims, the stored FDEs {fdes.shape[1]}")
    if valid is not None and valid.shape != (fdes.shape[0],):
        raise ValueError(f"valid must have shape ({fdes.shape[0]},), got {valid.shape}")
    n, d = fdes.shape
    block = max(1, BLOCK_BYTES // (4 * max(d, 1)))
    if fdes.dtype == np.float32:
        return exact_search(q, fdes, k, valid=valid, method=method)
    use_numba = method == "numba" or (method == "auto" and has("numba"))
    if (
        use_numba
        and q.shape[0] <= FUSED_MAX_QUERIES
        and n > 0
        and q.shape[0] > 0
        and fdes.flags.c_contiguous
    ):
        from heron.multivector._fde_scan_numba import scan_f16
        from heron.retrieval.topk import _num_threads

        mask = valid if valid is not None else np.zeros(1, dtype=np.bool_)
        n_chunks = max(1, min(_num_threads() * 8, n // 64 or 1))
        return scan_f16(q, np.asarray(fdes).view(np.uint16), mask, valid is not None, k, n_chunks)
    return exact_search(q, fdes, k, valid=valid, block_size=block, method=method)
