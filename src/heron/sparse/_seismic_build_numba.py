"""numba kernels building the Seismic index (imported lazily, only with numba).

Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
Learned Sparse Representations", SIGIR 2024 (Seismic). Driven by :mod:`heron.sparse.seismic`.

The build never grows a buffer: :func:`term_counts` and :func:`kth_largest` size the pruned
posting lists, :func:`cluster` fills the exactly sized postings and blocks while counting each
block's summary entries, and :func:`fill_summaries` recomputes every summary into the exactly
sized summary arrays, each list's sorted by component (:func:`_sort_by_component`). The inverted
lists are transposed from the forward index a chunk of terms at a time (``chunk`` postings at
most), so no full-size inverted index exists.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from heron.sparse._seismic_helpers_numba import _JIT, argsort_desc


@nb.njit(**_JIT)
def term_counts(fwd_idx, fwd_val, vocab, thr):
    """Postings per term whose weight is ``>= thr`` (``int64``, shape ``(vocab,)``)."""
    cnt = np.zeros(vocab, dtype=np.int64)
    for p in range(fwd_idx.shape[0]):
        if fwd_val[p] >= thr:
            cnt[fwd_idx[p]] += 1
    return cnt


@nb.njit(**_JIT)
def kth_largest(bits, k):
    """The ``k``-th largest (1-based) of non-negative ``float32`` values given as ``uint32`` bits.

    Radix select in two passes of 16 bits (the bit patterns of non-negative floats order as the
    floats do), no copy of the data. Returns the bit pattern.
    """
    hist = np.zeros(65536, dtype=np.int64)
    for p in range(bits.shape[0]):
        hist[(bits[p] & 0x7FFFFFFF) >> 16] += 1
    run = 0
    h = 65535
    while h > 0 and run + hist[h] < k:
        run += hist[h]
        h -= 1
    k2 = k - run
    for i in range(65536):
        hist[i] = 0
    for p in range(bits.shape[0]):
        v = bits[p] & 0x7FFFFFFF
        if (v >> 16) == h:
            hist[v & 0xFFFF] += 1
    run = 0
    lo = 65535
    while lo > 0 and run + hist[lo] < k2:
        run += hist[lo]
        lo -= 1
    return (h << 16) | lo


@nb.njit(**_JIT)
def block_summary(docs, i, j, fwd_ptr, fwd_idx, fwd_val, acc, seen, touched, hist, alpha):
    """Summary of the block ``docs[i:j]``: coordinate-wise max, then the α mass cut.

    Returns ``(nt, vals, thr, mx)``: the block's ``nt`` distinct terms are ``touched[:nt]`` with
    maxima ``vals``; entries ``>= thr`` are kept; ``mx`` is the largest value. ``acc``/``seen``
    are left cleared. Deterministic, so the counting and the filling pass agree exactly.
    """
    nt = 0
    total = 0.0
    for z in range(i, j):
        d = docs[z]
        for p in range(np.int64(fwd_ptr[d]), np.int64(fwd_ptr[d + 1])):
            u = fwd_idx[p]
            if not seen[u]:
                seen[u] = True
                touched[nt] = u
                nt += 1
            if fwd_val[p] > acc[u]:
                acc[u] = fwd_val[p]
    vals = np.empty(nt, dtype=np.float32)
    mx = np.float32(0.0)
    for z in range(nt):
        u = touched[z]
        vals[z] = acc[u]
        total += vals[z]
        if vals[z] > mx:
            mx = vals[z]
        acc[u] = 0.0
        seen[u] = False
    thr = np.float32(-1.0)
    if alpha < 1.0 and mx > 0:
        # α cut without sorting: a 256-bin histogram of mass by value, walked downward
        for hb in range(256):
            hist[hb] = 0.0
        for z in range(nt):
            hb = int(vals[z] / mx * 255.999)
            hist[hb] += vals[z]
        run = 0.0
        hb = 255
        while hb > 0 and run + hist[hb] < alpha * total:
            run += hist[hb]
            hb -= 1
        thr = np.float32(hb * mx / 255.999)
    return nt, vals, thr, mx


@nb.njit(**_JIT)
def _assign(docs, L, nc, top_idx, top_val, head, touched):
    """Shallow k-means on one list: ``nc`` random postings are centroids, each document goes to
    the centroid of largest inner product (both cut to their ``doc_cut`` heaviest terms)."""
    doc_cut = top_idx.shape[1]
    assign = np.zeros(L, dtype=np.int64)
    cent = np.arange(L)
    for j in range(nc):  # nc distinct random postings (partial Fisher-Yates)
        r = j + np.random.randint(L - j)
        cent[j], cent[r] = cent[r], cent[j]
    n_ent = nc * doc_cut
    e_next = np.empty(n_ent, dtype=np.int64)
    e_cent = np.empty(n_ent, dtype=np.int64)
    e_val = np.empty(n_ent, dtype=np.float32)
    e = 0
    nt = 0
    for j in range(nc):  # inverted index over the centroids' cut vectors
        d = docs[cent[j]]
        for c in range(doc_cut):
            u = top_idx[d, c]
            if u < 0:
                break
            if head[u] == -1:
                touched[nt] = u
                nt += 1
            e_next[e] = head[u]
            e_cent[e] = j
            e_val[e] = top_val[d, c]
            head[u] = e
            e += 1
    sc = np.zeros(nc, dtype=np.float32)
    for i in range(L):
        d = docs[i]
        for j in range(nc):
            sc[j] = 0.0
        for c in range(doc_cut):
            u = top_idx[d, c]
            if u < 0:
                break
            v = top_val[d, c]
            e = head[u]
            while e != -1:
                sc[e_cent[e]] += v * e_val[e]
                e = e_next[e]
        best = 0
        for j in range(1, nc):
            if sc[j] > sc[best]:
                best = j
        assign[i] = best
    for z in range(nt):
        head[touched[z]] = -1
    return assign


@nb.njit(**_JIT)
def cluster(
    n_docs,
    vocab,
    fwd_ptr,
    fwd_idx,
    fwd_val,
    thr,
    cnt,
    keep_n,
    top_idx,
    top_val,
    centroid_fraction,
    summary_energy,
    seed,
    chunk,
    term_blocks,
    block_ptr,
    post_docs,
    blk_scale,
    blk_nsum,
    quantize,
):
    """Pruning, blocking and summary counting, filling the exactly sized outputs in place.

    ``cnt[t]`` postings of term ``t`` have weight ``>= thr``; the list keeps its ``keep_n[t]``
    heaviest (ties: lower document first), in ascending document order, clustered into
    ``ceil(β · len)`` blocks. Fills ``term_blocks`` (``V+1``), ``block_ptr``, ``post_docs``,
    ``blk_scale`` (quantization step per block) and ``blk_nsum`` (summary entries per block).
    The inverted lists of a chunk of terms holding at most ``chunk`` postings (or one term) are
    transposed from the forward index at a time. Returns the number of blocks.
    """
    np.random.seed(seed)
    head = np.empty(vocab, dtype=np.int64)
    for u in range(vocab):
        head[u] = -1
    acc = np.zeros(vocab, dtype=np.float32)
    seen = np.zeros(vocab, dtype=np.bool_)
    touched = np.empty(vocab, dtype=np.int64)
    hist = np.zeros(256, dtype=np.float64)
    fill = np.zeros(vocab, dtype=np.int64)
    nb_ = 0
    npost = 0
    term_blocks[0] = 0
    block_ptr[0] = 0
    t0 = 0
    while t0 < vocab:
        t1 = t0
        size = 0
        while t1 < vocab and (t1 == t0 or size + cnt[t1] <= chunk):
            size += cnt[t1]
            t1 += 1
        # this chunk's inverted lists (documents ascending), transposed from the forward index
        c_ptr = np.zeros(t1 - t0 + 1, dtype=np.int64)
        for t in range(t0, t1):
            c_ptr[t - t0 + 1] = c_ptr[t - t0] + cnt[t]
            fill[t] = c_ptr[t - t0]
        c_docs = np.empty(size, dtype=np.int32)
        c_vals = np.empty(size, dtype=np.float32)
        if size > 0:
            for d in range(n_docs):
                for p in range(np.int64(fwd_ptr[d]), np.int64(fwd_ptr[d + 1])):
                    u = fwd_idx[p]
                    if u >= t0 and u < t1 and fwd_val[p] >= thr:
                        c_docs[fill[u]] = d
                        c_vals[fill[u]] = fwd_val[p]
                        fill[u] += 1
        for t in range(t0, t1):
            a, b = c_ptr[t - t0], c_ptr[t - t0 + 1]
            df = b - a
            L = keep_n[t]
            if df == 0 or L == 0:
                term_blocks[t + 1] = nb_
                continue
            docs = np.empty(L, dtype=np.int32)
            if df > L:
                # static pruning: the list's L heaviest postings, in ascending doc order
                order = np.arange(df)
                argsort_desc(c_vals[a:b], order)
                keep = np.zeros(df, dtype=np.bool_)
                for z in range(L):
                    keep[order[z]] = True
                m = 0
                for z in range(df):
                    if keep[z]:
                        docs[m] = c_docs[a + z]
                        m += 1
            else:
                for z in range(L):
                    docs[z] = c_docs[a + z]
            nc = max(1, min(int(math.ceil(centroid_fraction * L)), L))
            if nc > 1:
                assign = _assign(docs, L, nc, top_idx, top_val, head, touched)
                # stable counting sort by block: documents stay ascending inside a block
                start = np.zeros(nc + 1, dtype=np.int64)
                for i in range(L):
                    start[assign[i] + 1] += 1
                for j in range(nc):
                    start[j + 1] += start[j]
                sdocs = np.empty(L, dtype=np.int32)
                sassign = np.empty(L, dtype=np.int64)
                for i in range(L):
                    j = assign[i]
                    sdocs[start[j]] = docs[i]
                    sassign[start[j]] = j
                    start[j] += 1
                docs = sdocs
                assign = sassign
            else:
                assign = np.zeros(L, dtype=np.int64)
            i = 0
            while i < L:
                j = i
                while j < L and assign[j] == assign[i]:
                    j += 1
                for z in range(i, j):
                    post_docs[npost] = docs[z]
                    npost += 1
                nt, vals, sthr, mx = block_summary(
                    docs, i, j, fwd_ptr, fwd_idx, fwd_val, acc, seen, touched, hist, summary_energy
                )
                kept = 0
                for z in range(nt):
                    if vals[z] >= sthr:
                        kept += 1
                if quantize and mx > 0:
                    blk_scale[nb_] = np.float32(mx / 255.0 * (1.0 + 1e-5))
                else:
                    blk_scale[nb_] = np.float32(1.0)
                blk_nsum[nb_] = kept
                nb_ += 1
                block_ptr[nb_] = npost
                i = j
            term_blocks[t + 1] = nb_
        t0 = t1
    return nb_


@nb.njit(**_JIT)
def _sort_by_component(comp, codes, vals, blk, s, e, perm, tmp, scratch_i, scratch_f):
    """Sort entries ``s:e`` of one list by component id, stably (blocks stay ascending within a
    component): an LSD radix sort of 8 bits per pass over a permutation, then one gather."""
    n = e - s
    if n < 2:
        return
    top = 0
    for z in range(s, e):
        if comp[z] > top:
            top = comp[z]
    for i in range(n):
        perm[i] = i
    hist = np.zeros(257, dtype=np.int64)
    shift = 0
    while (top >> shift) > 0:
        for h in range(257):
            hist[h] = 0
        for i in range(n):
            hist[((np.int64(comp[s + perm[i]]) >> shift) & 255) + 1] += 1
        for h in range(256):
            hist[h + 1] += hist[h]
        for i in range(n):
            h = (np.int64(comp[s + perm[i]]) >> shift) & 255
            tmp[hist[h]] = perm[i]
            hist[h] += 1
        for i in range(n):
            perm[i] = tmp[i]
        shift += 8
    for i in range(n):
        scratch_i[i] = comp[s + perm[i]]
    for i in range(n):
        comp[s + i] = scratch_i[i]
    for i in range(n):
        scratch_i[i] = blk[s + perm[i]]
    for i in range(n):
        blk[s + i] = scratch_i[i]
    if codes.shape[0] > 0:
        for i in range(n):
            scratch_i[i] = codes[s + perm[i]]
        for i in range(n):
            codes[s + i] = scratch_i[i]
    if vals.shape[0] > 0:
        for i in range(n):
            scratch_f[i] = vals[s + perm[i]]
        for i in range(n):
            vals[s + i] = scratch_f[i]


@nb.njit(**_JIT)
def fill_summaries(
    vocab,
    term_blocks,
    block_ptr,
    post_docs,
    fwd_ptr,
    fwd_idx,
    fwd_val,
    summary_energy,
    quantize,
    blk_scale,
    blk_sum_ptr,
    sum_comp,
    sum_codes,
    sum_f,
    sum_blk,
):
    """Recompute each block's summary (as :func:`cluster` counted it) and store every list's
    summaries component-major: the entries of term ``t``'s list are the slots
    ``blk_sum_ptr[term_blocks[t]]:blk_sum_ptr[term_blocks[t+1]]``, sorted by component id, each
    a component ``sum_comp``, the block's index within its list ``sum_blk``, and either an
    8-bit code ``sum_codes`` (``ceil(value / blk_scale[b])`` in ``[1, 255]``, rounding up) or
    the ``float32`` value ``sum_f``. A query then finds its own terms in a list by binary search
    instead of reading every entry of every block."""
    acc = np.zeros(vocab, dtype=np.float32)
    seen = np.zeros(vocab, dtype=np.bool_)
    touched = np.empty(vocab, dtype=np.int64)
    hist = np.zeros(256, dtype=np.float64)
    longest = 1
    for t in range(vocab):
        m = np.int64(blk_sum_ptr[term_blocks[t + 1]]) - np.int64(blk_sum_ptr[term_blocks[t]])
        if m > longest:
            longest = m
    perm = np.empty(longest, dtype=np.int64)
    tmp = np.empty(longest, dtype=np.int64)
    scratch_i = np.empty(longest, dtype=np.int64)
    scratch_f = np.empty(longest if sum_f.shape[0] > 0 else 0, dtype=np.float32)
    for t in range(vocab):
        b0, b1 = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        if b1 == b0:
            continue
        for bi in range(b0, b1):
            nt, vals, sthr, mx = block_summary(
                post_docs,
                np.int64(block_ptr[bi]),
                np.int64(block_ptr[bi + 1]),
                fwd_ptr,
                fwd_idx,
                fwd_val,
                acc,
                seen,
                touched,
                hist,
                summary_energy,
            )
            q = np.int64(blk_sum_ptr[bi])
            scale = blk_scale[bi]
            for z in range(nt):
                if vals[z] >= sthr:
                    sum_comp[q] = touched[z]
                    sum_blk[q] = bi - b0
                    if quantize:
                        sum_codes[q] = min(255, max(1, math.ceil(vals[z] / scale)))
                    else:
                        sum_f[q] = vals[z]
                    q += 1
        _sort_by_component(
            sum_comp, sum_codes, sum_f, sum_blk,
            np.int64(blk_sum_ptr[b0]), np.int64(blk_sum_ptr[b1]), perm, tmp, scratch_i, scratch_f,
        )  # fmt: skip
