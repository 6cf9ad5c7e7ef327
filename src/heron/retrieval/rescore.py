"""Exact rescoring of a first stage's candidates: the oversample + rescore step of every
compressed search (Shakir, Aarsen & Lee, "Binary and Scalar Embedding Quantization", 2024; the
"rescoring" of Jégou et al., "Searching in one billion vectors: re-rank with source coding",
ICASSP 2011).

:func:`rescore_topk` takes candidate row numbers and the float rows they point into and returns
the ``k`` best by exact inner product. With numba it reads the rows in place, prefetching a few
candidates ahead (:mod:`heron.retrieval._rescore_numba`); otherwise it gathers them with numpy.
"""

from __future__ import annotations

import numpy as np

from heron._deps import has

#: batches of at least this many queries spread over numba's threads
PARALLEL_QUERIES = 16


def rescore_topk(
    queries: np.ndarray, rows: np.ndarray, labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of each query's candidates by exact inner product.

    Parameters
    ----------
    queries: ``(nq, d)`` float32.
    rows: ``(n, d)`` float rows the labels index (may be memory-mapped).
    labels: ``(nq, m)`` int row numbers of ``rows``; ``-1`` marks no candidate.
    k: hits per query.

    Returns
    -------
    ``(scores (nq, k) float32, labels (nq, k) int64)``, best first; ties go to the earlier
    candidate; padded with ``(-inf, -1)``; a candidate scoring ``-inf`` or NaN is never returned.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    lab = np.ascontiguousarray(labels, dtype=np.int64)
    if (
        has("numba")
        and rows.dtype == np.float32
        and rows.ndim == 2
        and rows.flags.c_contiguous
        and q.shape[1] == rows.shape[1]
    ):
        from heron.retrieval import _rescore_numba as kern

        fn = kern.rescore_parallel if len(q) >= PARALLEL_QUERIES else kern.rescore
        return fn(q, np.asarray(rows), lab, int(k))
    return _numpy(q, rows, lab, k)


def _numpy(q: np.ndarray, rows: np.ndarray, lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from heron.retrieval.topk import merge_topk

    vec = np.asarray(rows[np.maximum(lab, 0).ravel()], dtype=np.float32).reshape(*lab.shape, -1)
    sc = np.matmul(vec, q[:, :, None])[:, :, 0].astype(np.float32, copy=False)
    sc[lab < 0] = -np.inf
    return merge_topk(sc, lab, k)
