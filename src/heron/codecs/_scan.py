"""Dispatch of the numba top-k kernels: task splitting and merging of row-chunk results."""

from __future__ import annotations

import numpy as np

from heron._deps import has, require


def fast_available() -> bool:
    """Whether the numba kernels can be used."""
    return has("numba")


def _kernels():
    require("numba", purpose="fast compressed scans")
    from heron.codecs import _kernels

    return _kernels


def _plan(nq: int, n: int, k: int, nthreads: int) -> tuple[int, int]:
    """``(nchunks, qblock)``: split rows when there are few queries, queries when many."""
    if nq >= 2 * nthreads:
        qblock = max(1, min(16, nq // (2 * nthreads)))
        return 1, qblock
    nchunks = max(1, min(4 * nthreads, n // max(4 * k, 1024)))
    return nchunks, nq


def merge_chunks(
    scores: np.ndarray, rows: np.ndarray, k: int, *, ascending: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-chunk top lists ``(nq, nchunks*k)`` into ``(nq, k)`` sorted lists."""
    if scores.shape[1] == k:
        return scores, rows
    key = scores if ascending else -scores.astype(np.float64)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


def hamming_topk(
    qwords: np.ndarray, dbwords: np.ndarray, k: int, *, tile: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """``(dist (nq, k) int32 ascending, rows (nq, k) int64)``; padding ``nbits+1`` / ``-1``."""
    kern = _kernels()
    nchunks, qblock = _plan(len(qwords), len(dbwords), k, kern.threads())
    d, r = kern.hamming_topk(np.ascontiguousarray(qwords), dbwords, int(k), nchunks, qblock, tile)
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


def u8dot_topk(
    qw: np.ndarray, codes: np.ndarray, k: int, *, tile: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (nq, k) float32 descending, rows (nq, k))`` of ``qw @ codes.T`` with uint8 codes."""
    kern = _kernels()
    nchunks, qblock = _plan(len(qw), len(codes), k, kern.threads())
    s, r = kern.u8dot_topk(
        np.ascontiguousarray(qw, dtype=np.float32), codes, int(k), nchunks, qblock, tile
    )
    return merge_chunks(s, r, k)


def hamming_matrix(qwords: np.ndarray, dbwords: np.ndarray) -> np.ndarray:
    return _kernels().hamming_matrix(np.ascontiguousarray(qwords), np.ascontiguousarray(dbwords))
