"""numba kernel behind :class:`heron.multivector.muvera.FDEEncoder` (imported lazily, only with numba).

One pass per document and repetition: add each token's (weighted) projected vector into its
SimHash partition, divide document blocks by the partition's weight (average), and fill a
document's empty partitions with the token whose SimHash code is nearest in Hamming distance
(first such token on ties, as the numpy path). Documents run in parallel (``prange``); each
block is a plain sequential sum, so results do not depend on the number of threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = {"nogil": True, "cache": True}


@nb.njit(parallel=True, **_JIT)
def fde_blocks(
    codes: np.ndarray,
    proj: np.ndarray,
    w: np.ndarray,
    offs: np.ndarray,
    n_part: int,
    is_query: bool,
    fill: bool,
    popcount: np.ndarray,
    out: np.ndarray,
) -> None:
    """Accumulate FDE blocks in place.

    Parameters
    ----------
    codes: ``(n_tok, R)`` int64 partition of every token in each of ``R`` repetitions.
    proj: ``(n_tok, R, d_proj)`` float32 projected tokens.
    w: ``(n_tok,)`` float32 positive token weights (ones for the paper's plain sums/averages).
    offs: ``(n_sets + 1,)`` int64 token offsets of each set (query or document).
    n_part: partitions per repetition, ``2**k_sim``.
    is_query: sums (queries) or weighted averages + filling (documents).
    fill: fill a document's empty partitions (documents only).
    popcount: ``(65536,)`` uint8 popcount table.
    out: ``(n_sets, R, n_part, d_proj)`` float32, zero on entry.
    """
    n = offs.shape[0] - 1
    R = codes.shape[1]
    dp = proj.shape[2]
    for i in nb.prange(n):
        a = offs[i]
        b = offs[i + 1]
        if b == a:
            continue
        wsum = np.zeros(n_part, dtype=np.float32)
        for r in range(R):
            for c in range(n_part):
                wsum[c] = 0.0
            for t in range(a, b):
                c = codes[t, r]
                wt = w[t]
                wsum[c] += wt
                for j in range(dp):
                    out[i, r, c, j] += wt * proj[t, r, j]
            if is_query:
                continue
            for c in range(n_part):
                if wsum[c] > 0:
                    for j in range(dp):
                        out[i, r, c, j] = out[i, r, c, j] / wsum[c]
                elif fill:
                    best = a
                    best_h = 1 << 30
                    for t in range(a, b):
                        h = np.int64(popcount[codes[t, r] ^ c])
                        if h < best_h:
                            best_h = h
                            best = t
                    for j in range(dp):
                        out[i, r, c, j] = proj[best, r, j]
