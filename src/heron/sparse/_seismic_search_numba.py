"""numba kernel answering Seismic queries (imported lazily, only with numba).

Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
Learned Sparse Representations", SIGIR 2024 (Seismic). The per-query top-k heap is heron's
shared one (:mod:`heron.retrieval._topk_numba`). Driven by :mod:`heron.sparse.seismic`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from heron._numba_ext import prefetch
from heron.retrieval._topk_numba import heap_push, heap_replace_top, heap_sort, heap_worse
from heron.sparse._seismic_helpers_numba import _JIT, SKIP, argsort_desc, forward_dot


@nb.njit(inline="always", **_JIT)
def _prefetch_vector(fwd_ptr, fwd_idx, fwd_val, d, vstep):
    """Ask for every cache line of document ``d``'s forward vector (ids and values).

    Measured at 1M (docs/sparse.md): prefetching only a vector's first lines left the rest to
    demand misses; the whole vector, two documents ahead, made scoring ~1.3x faster.
    """
    o, e = np.int64(fwd_ptr[d]), np.int64(fwd_ptr[d + 1])
    for x in range(o, e, 64 // fwd_idx.itemsize):
        prefetch(fwd_idx, x)
    for x in range(o, e, vstep):
        prefetch(fwd_val, x)


@nb.njit(inline="always", **_JIT)
def _summary_scores(
    q_idx, q_val, a, b, sum_comp, sum_codes, sum_f, sum_blk, quant, e0, e1, skip, s0, s1,
    blk_scale, b0, nbk, ss, grp,
):  # fmt: skip
    """``ss[:nbk]``: the summary score of each block of one list, whose entries ``e0:e1`` are
    sorted by component; ``skip[s0:s1]`` is the component of every ``SKIP``-th entry.

    Two phases, so that the cache misses overlap instead of following one another: one merge
    walk of the query's terms (ascending) over the skip array gives each term its group of
    ``SKIP`` entries, whose lines are prefetched; then each group is scanned for its term. The
    list's entries of other terms are never read (pyseismic-lsr answers from an inverted
    summary too). Measured at 1M, query_cut 15 (docs/sparse.md): 119 µs per query for one
    binary search per term, 78 µs this way.
    """
    for bb in range(nbk):
        ss[bb] = 0.0
    j = s0
    for p in range(a, b):
        c = q_idx[p]
        while j + 1 < s1 and skip[j + 1] < c:
            j += 1
        pos = e0 + (j - s0) * SKIP
        grp[p - a] = pos
        prefetch(sum_comp, pos)
        prefetch(sum_comp, pos + SKIP - 1)
        prefetch(sum_blk, pos)
        if quant:
            prefetch(sum_codes, pos)
        else:
            prefetch(sum_f, pos)
    for p in range(a, b):
        c = q_idx[p]
        pos = grp[p - a]
        while pos < e1 and sum_comp[pos] < c:
            pos += 1
        w = q_val[p]
        while pos < e1 and sum_comp[pos] == c:
            if quant:
                ss[sum_blk[pos]] += w * np.float32(sum_codes[pos])
            else:
                ss[sum_blk[pos]] += w * sum_f[pos]
            pos += 1
    if quant:
        for bb in range(nbk):
            ss[bb] *= blk_scale[b0 + bb]


@nb.njit(**_JIT)
def search(
    q_ptr,
    q_idx,
    q_val,
    query_cut,
    k,
    heap_factor,
    sort_blocks,
    n_docs,
    vocab,
    term_blocks,
    block_ptr,
    post_docs,
    sum_ptr,
    sum_comp,
    sum_codes,
    sum_f,
    sum_blk,
    skip_ptr,
    sum_skip,
    blk_scale,
    fwd_ptr,
    fwd_idx,
    fwd_val,
):
    """Seismic query processing (Bruch et al., SIGIR 2024, Algorithm 2), one query at a time.

    Per query: the query as a dense vector ``qd`` over the vocabulary (set, then reset), its
    ``query_cut`` heaviest terms in decreasing weight (ties: lower term id first). For each
    term's list:
    every block's summary score (:func:`_summary_scores`: the list's summary entries of the
    query's own terms, found through the list's skip array, read in place), then the blocks in order (decreasing summary score for the first
    ``sort_blocks`` lists, stored order after), skipping a block whose summary score is below
    ``heap_factor`` times the current ``k``-th score, scoring the others' documents exactly from
    the forward index (``fwd_val``: ``float32``, or ``float16`` as ``uint16`` bits), each
    document once per query (``visited``: one bit per document, its set words cleared after each
    query, never reallocated).
    All scratch space is allocated once per call.
    """
    nq = q_ptr.shape[0] - 1
    out_d = np.empty((nq, k), dtype=np.int64)
    out_s = np.empty((nq, k), dtype=np.float32)
    for qi in range(nq):
        for r in range(k):
            out_d[qi, r] = -1
            out_s[qi, r] = -np.inf
    max_nb = 1
    for t in range(vocab):
        nbt = np.int64(term_blocks[t + 1]) - np.int64(term_blocks[t])
        if nbt > max_nb:
            max_nb = nbt
    max_q = 1
    for qi in range(nq):
        if q_ptr[qi + 1] - q_ptr[qi] > max_q:
            max_q = q_ptr[qi + 1] - q_ptr[qi]
    qorder = np.empty(max_q, dtype=np.int64)
    qgrp = np.empty(max_q, dtype=np.int64)
    ss = np.zeros(max_nb, dtype=np.float32)
    border = np.empty(max_nb, dtype=np.int64)
    qd = np.zeros(vocab, dtype=np.float32)
    # one bit per document (n/8 bytes of scratch, in L2 at 1M), cleared word by word after
    # each query
    visited = np.zeros((n_docs + 63) // 64, dtype=np.uint64)
    dirty = np.empty(max(1, (n_docs + 63) // 64), dtype=np.int64)
    n_dirty = 0
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    quant = sum_f.shape[0] == 0
    vstep = 64 // fwd_val.itemsize  # values per cache line
    n_scored = 0
    n_blocks = 0
    for qi in range(nq):
        a, b = q_ptr[qi], q_ptr[qi + 1]
        for p in range(a, b):
            qd[q_idx[p]] = q_val[p]
        size = 0
        thr = np.float32(-np.inf)  # heap_factor x the k-th best score once the heap is full
        nqt = b - a
        for z in range(nqt):
            qorder[z] = z
        argsort_desc(q_val[a:b], qorder[:nqt])
        for o in range(min(query_cut, nqt)):
            t = q_idx[a + qorder[o]]
            b0, b1 = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
            nbk = b1 - b0
            if nbk == 0:
                continue
            # every block's summary score, from the list's entries of the query's own terms
            _summary_scores(
                q_idx, q_val, a, b, sum_comp, sum_codes, sum_f, sum_blk, quant,
                np.int64(sum_ptr[t]), np.int64(sum_ptr[t + 1]),
                sum_skip, np.int64(skip_ptr[t]), np.int64(skip_ptr[t + 1]), blk_scale, b0, nbk, ss, qgrp,
            )  # fmt: skip
            for bb in range(nbk):
                border[bb] = bb
            ordered = o < sort_blocks
            if ordered:
                argsort_desc(ss, border[:nbk])
            for z in range(nbk):
                bb = border[z]
                if ss[bb] < thr:
                    if ordered:
                        break
                    continue
                bi = b0 + bb
                n_blocks += 1
                p0, p1 = np.int64(block_ptr[bi]), np.int64(block_ptr[bi + 1])
                # software pipelining: the pointer of the document 3 ahead, its whole vector 2 ahead
                for p in range(p0, min(p0 + 3, p1)):
                    prefetch(fwd_ptr, post_docs[p])
                if p0 + 1 < p1:
                    _prefetch_vector(fwd_ptr, fwd_idx, fwd_val, post_docs[p0 + 1], vstep)
                for p in range(p0, p1):
                    if p + 3 < p1:
                        prefetch(fwd_ptr, post_docs[p + 3])
                        prefetch(visited, post_docs[p + 3] >> 6)
                    if p + 2 < p1:
                        _prefetch_vector(fwd_ptr, fwd_idx, fwd_val, post_docs[p + 2], vstep)
                    d = post_docs[p]
                    wd = d >> 6
                    bit = np.uint64(1) << np.uint64(d & 63)
                    if visited[wd] & bit:
                        continue
                    if visited[wd] == 0:
                        dirty[n_dirty] = wd
                        n_dirty += 1
                    visited[wd] |= bit
                    n_scored += 1
                    s = forward_dot(
                        qd, fwd_idx, fwd_val, np.int64(fwd_ptr[d]), np.int64(fwd_ptr[d + 1])
                    )
                    if s <= 0:
                        continue
                    if size < k:
                        heap_push(hs, hd, size, s, d)
                        size += 1
                        if size == k:
                            thr = heap_factor * hs[0]
                    elif heap_worse(hs[0], hd[0], s, d):
                        heap_replace_top(hs, hd, size, s, d)
                        thr = heap_factor * hs[0]
        heap_sort(hs, hd, size)  # best first
        for r in range(size):
            out_s[qi, r] = hs[r]
            out_d[qi, r] = hd[r]
        for p in range(a, b):
            qd[q_idx[p]] = 0.0
        for z in range(n_dirty):
            visited[dirty[z]] = 0
        n_dirty = 0
    return out_d, out_s, n_scored, n_blocks
