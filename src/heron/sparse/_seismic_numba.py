"""numba kernels behind :mod:`heron.sparse.seismic` (imported lazily, only with numba).

Compile time matters (a cold CI box compiles every kernel once; ``cache=True`` keeps them for
later runs), so the kernels avoid numpy's sorting and searching routines, each of which costs
seconds to compile per dtype: sorting is a hand-written heapsort, lookup a hand-written binary
search, the block order a counting sort. The per-query top-k heap is heron's shared one
(:mod:`heron.retrieval._topk_numba`).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from heron._numba_ext import prefetch
from heron.retrieval._topk_numba import heap_push, heap_replace_top, heap_sort, heap_worse

_JIT = {"nogil": True, "cache": True}


@nb.njit(inline="always", **_JIT)
def sparse_dot(qd, idx, val, z0, z1):
    """``sum(qd[idx[z]] * val[z] for z in range(z0, z1))`` with four independent accumulators."""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    z = z0
    while z + 4 <= z1:
        s0 += qd[idx[z]] * val[z]
        s1 += qd[idx[z + 1]] * val[z + 1]
        s2 += qd[idx[z + 2]] * val[z + 2]
        s3 += qd[idx[z + 3]] * val[z + 3]
        z += 4
    while z < z1:
        s0 += qd[idx[z]] * val[z]
        z += 1
    return (s0 + s1) + (s2 + s3)


@nb.njit(inline="always", **_JIT)
def _after(vals, x, y):
    """Whether index ``x`` ranks after ``y`` by value descending, ties by index ascending."""
    return vals[x] < vals[y] or (vals[x] == vals[y] and x > y)


@nb.njit(**_JIT)
def _sift_worst(vals, order, i, n):
    """Sift ``order[i]`` down a heap of ``order[:n]`` whose root ranks last (see :func:`_after`)."""
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _after(vals, order[c + 1], order[c]):
            c += 1
        if _after(vals, order[c], order[i]):
            order[i], order[c] = order[c], order[i]
            i = c
        else:
            break


@nb.njit(**_JIT)
def argsort_desc(vals, order):
    """Sort ``order`` (indices into ``vals``) in place: ``vals`` descending, ties index ascending.

    Heapsort: the heap's root is the hit ranking last, popped to the back repeatedly.
    """
    n = order.shape[0]
    for start in range((n - 2) // 2, -1, -1):
        _sift_worst(vals, order, start, n)
    for end in range(n - 1, 0, -1):
        order[0], order[end] = order[end], order[0]
        _sift_worst(vals, order, 0, end)


@nb.njit(**_JIT)
def sort_int(a):
    """Sort an integer array ascending in place (heapsort over a max-heap)."""
    n = a.shape[0]
    for start in range((n - 2) // 2, -1, -1):
        i = start
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and a[c + 1] > a[c]:
                c += 1
            if a[c] > a[i]:
                a[i], a[c] = a[c], a[i]
                i = c
            else:
                break
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= end:
                break
            if c + 1 < end and a[c + 1] > a[c]:
                c += 1
            if a[c] > a[i]:
                a[i], a[c] = a[c], a[i]
                i = c
            else:
                break


@nb.njit(**_JIT)
def lower_bound(a, lo, hi, v):
    """First position in ``a[lo:hi]`` (sorted ascending) whose value is >= ``v``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(**_JIT)
def grow(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    for i in range(a.shape[0]):
        b[i] = a[i]
    return b


@nb.njit(**_JIT)
def build(
    n_docs,
    vocab,
    inv_ptr,
    inv_docs,
    inv_vals,
    fwd_ptr,
    fwd_idx,
    fwd_val,
    top_idx,
    top_val,
    keep_n,
    centroid_fraction,
    summary_energy,
    quantize,
    seed,
    total_postings,
):
    np.random.seed(seed)
    term_blocks = np.zeros(vocab + 1, dtype=np.int64)
    block_ptr = np.zeros(total_postings + 1, dtype=np.int64)
    post_docs = np.empty(total_postings, dtype=np.int32)
    term_cols = np.zeros(vocab + 1, dtype=np.int64)
    col_term = np.empty(1024, dtype=np.int32)
    col_ptr = np.zeros(1025, dtype=np.int64)
    sum_blk = np.empty(1024, dtype=np.int32)
    sum_codes = np.empty(1024, dtype=np.uint8)
    sum_f = np.empty(1024, dtype=np.float32)
    blk_scale = np.empty(1024, dtype=np.float32)
    lb_term = np.empty(1024, dtype=np.int64)
    lb_blk = np.empty(1024, dtype=np.int32)
    lb_val = np.empty(1024, dtype=np.float32)
    cnt = np.zeros(vocab, dtype=np.int64)
    fill = np.zeros(vocab, dtype=np.int64)
    n_col = 0
    hist = np.zeros(256, dtype=np.float64)
    head = np.empty(vocab, dtype=np.int64)
    for u in range(vocab):
        head[u] = -1
    acc = np.zeros(vocab, dtype=np.float32)
    seen = np.zeros(vocab, dtype=np.bool_)
    touched = np.empty(vocab, dtype=np.int64)
    doc_cut = top_idx.shape[1]
    nb = 0
    npost = 0
    nsum = 0
    for t in range(vocab):
        a, b = inv_ptr[t], inv_ptr[t + 1]
        df = b - a
        if df == 0:
            term_blocks[t + 1] = nb
            term_cols[t + 1] = n_col
            continue
        n_postings = keep_n[t]
        if df > n_postings:
            # static pruning: keep the list's keep_n[t] heaviest postings, in ascending doc order
            order = np.arange(df)
            argsort_desc(inv_vals[a:b], order)
            keep = np.zeros(df, dtype=np.bool_)
            for z in range(n_postings):
                keep[order[z]] = True
            docs = np.empty(n_postings, dtype=np.int32)
            L = 0
            for z in range(df):
                if keep[z]:
                    docs[L] = inv_docs[a + z]
                    L += 1
        else:
            docs = np.empty(df, dtype=np.int32)
            for z in range(df):
                docs[z] = inv_docs[a + z]
            L = df
        nc = int(math.ceil(centroid_fraction * L))
        nc = max(1, min(nc, L))
        assign = np.zeros(L, dtype=np.int64)
        if nc > 1:
            # nc distinct random postings (partial Fisher-Yates) are the centroids
            cent = np.arange(L)
            for j in range(nc):
                r = j + np.random.randint(L - j)
                cent[j], cent[r] = cent[r], cent[j]
            # inverted index over the centroids' full vectors
            n_ent = nc * doc_cut
            e_next = np.empty(n_ent, dtype=np.int64)
            e_cent = np.empty(n_ent, dtype=np.int64)
            e_val = np.empty(n_ent, dtype=np.float32)
            e = 0
            nt = 0
            for j in range(nc):
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
        # emit blocks, their summaries into a list-level buffer (local block id, term, value)
        nb0 = nb
        nl = 0
        i = 0
        while i < L:
            j = i
            while j < L and assign[j] == assign[i]:
                j += 1
            for z in range(i, j):
                post_docs[npost] = docs[z]
                npost += 1
            # summary: coordinate-wise max over the block's documents
            nt = 0
            total = 0.0
            for z in range(i, j):
                d = docs[z]
                for p in range(fwd_ptr[d], fwd_ptr[d + 1]):
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
            if summary_energy < 1.0 and mx > 0:
                # α cut without sorting: a 256-bin histogram of mass by value, walked downward
                for hb in range(256):
                    hist[hb] = 0.0
                for z in range(nt):
                    hb = int(vals[z] / mx * 255.999)
                    hist[hb] += vals[z]
                run = 0.0
                hb = 255
                while hb > 0 and run + hist[hb] < summary_energy * total:
                    run += hist[hb]
                    hb -= 1
                thr = np.float32(hb * mx / 255.999)
            if quantize:
                scale = np.float32(mx / 255.0 * (1.0 + 1e-5)) if mx > 0 else np.float32(1.0)
            else:
                scale = np.float32(1.0)
            blk_scale = grow(blk_scale, nb + 1)
            blk_scale[nb] = scale
            lb_term = grow(lb_term, nl + nt)
            lb_blk = grow(lb_blk, nl + nt)
            lb_val = grow(lb_val, nl + nt)
            for z in range(nt):
                if vals[z] >= thr:
                    lb_term[nl] = touched[z]
                    lb_blk[nl] = nb - nb0
                    lb_val[nl] = vals[z]
                    nl += 1
            nb += 1
            block_ptr[nb] = npost
            i = j
        term_blocks[t + 1] = nb
        # transpose the list's summaries: distinct terms sorted, entries grouped by term
        ncol = 0
        for z in range(nl):
            u = lb_term[z]
            if cnt[u] == 0:
                touched[ncol] = u
                ncol += 1
            cnt[u] += 1
        cols = np.empty(ncol, dtype=np.int64)
        for z in range(ncol):
            cols[z] = touched[z]
        sort_int(cols)
        col_term = grow(col_term, n_col + ncol)
        col_ptr = grow(col_ptr, n_col + ncol + 1)
        pos = nsum
        for c in range(ncol):
            u = cols[c]
            col_term[n_col + c] = u
            col_ptr[n_col + c] = pos
            fill[u] = pos
            pos += cnt[u]
            cnt[u] = 0
        col_ptr[n_col + ncol] = pos
        sum_blk = grow(sum_blk, pos)
        if quantize:  # only the representation in use grows (saves 4 bytes per entry)
            sum_codes = grow(sum_codes, pos)
        else:
            sum_f = grow(sum_f, pos)
        for z in range(nl):
            u = lb_term[z]
            q = fill[u]
            fill[u] += 1
            bl = lb_blk[z]
            sum_blk[q] = bl
            if quantize:
                c = math.ceil(lb_val[z] / blk_scale[nb0 + bl])
                sum_codes[q] = min(255, max(1, c))
            else:
                sum_f[q] = lb_val[z]
        nsum = pos
        n_col += ncol
        term_cols[t + 1] = n_col
    return (
        term_blocks,
        block_ptr[: nb + 1],
        post_docs[:npost],
        term_cols,
        col_term[:n_col],
        col_ptr[: n_col + 1],
        sum_blk[:nsum],
        sum_codes[: nsum if quantize else 0],
        sum_f[: 0 if quantize else nsum],
        blk_scale[:nb],
    )


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
    term_cols,
    col_term,
    col_ptr,
    sum_blk,
    sum_codes,
    sum_f,
    blk_scale,
    fwd_ptr,
    fwd_idx,
    fwd_val,
):
    """Seismic query processing (Bruch et al., SIGIR 2024, Algorithm 2), one query at a time.

    Per query: the query as a dense vector ``qd`` over the vocabulary (set, then reset), its
    ``query_cut`` heaviest terms in decreasing weight (ties: lower term id first). For each
    term's list:
    every block's summary score in one pass over the list's transposed summaries (only the
    query's own terms), then the blocks in order (decreasing summary score for the first
    ``sort_blocks`` lists, stored order after), skipping a block whose summary score is below
    ``heap_factor`` times the current ``k``-th score, scoring the others' documents exactly from
    the forward index, each document once per query (``visited`` stamp, never reallocated).
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
        if term_blocks[t + 1] - term_blocks[t] > max_nb:
            max_nb = term_blocks[t + 1] - term_blocks[t]
    max_q = 1
    for qi in range(nq):
        if q_ptr[qi + 1] - q_ptr[qi] > max_q:
            max_q = q_ptr[qi + 1] - q_ptr[qi]
    qorder = np.empty(max_q, dtype=np.int64)
    ss = np.zeros(max_nb, dtype=np.float32)
    border = np.empty(max_nb, dtype=np.int64)
    qd = np.zeros(vocab, dtype=np.float32)
    visited = np.zeros(n_docs, dtype=np.int32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    quant = sum_f.shape[0] == 0
    n_scored = 0
    n_blocks = 0
    for qi in range(nq):
        a, b = q_ptr[qi], q_ptr[qi + 1]
        for p in range(a, b):
            qd[q_idx[p]] = q_val[p]
        size = 0
        thr = np.float32(-np.inf)  # heap_factor x the k-th best score once the heap is full
        stamp = qi + 1
        nqt = b - a
        for z in range(nqt):
            qorder[z] = z
        argsort_desc(q_val[a:b], qorder[:nqt])
        for o in range(min(query_cut, nqt)):
            t = q_idx[a + qorder[o]]
            b0, b1 = term_blocks[t], term_blocks[t + 1]
            nbk = b1 - b0
            if nbk == 0:
                continue
            for bb in range(nbk):
                ss[bb] = 0.0
            c0, c1 = term_cols[t], term_cols[t + 1]
            lo = c0
            for p in range(a, b):
                u = q_idx[p]
                lo = lower_bound(col_term, lo, c1, u)
                if lo >= c1:
                    break
                if col_term[lo] != u:
                    continue
                w = q_val[p]
                if quant:
                    for e in range(col_ptr[lo], col_ptr[lo + 1]):
                        ss[sum_blk[e]] += w * np.float32(sum_codes[e])
                else:
                    for e in range(col_ptr[lo], col_ptr[lo + 1]):
                        ss[sum_blk[e]] += w * sum_f[e]
            if quant:
                for bb in range(nbk):
                    ss[bb] *= blk_scale[b0 + bb]
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
                p0, p1 = block_ptr[bi], block_ptr[bi + 1]
                for p in range(p0, min(p0 + 2, p1)):
                    prefetch(fwd_ptr, post_docs[p])
                for p in range(p0, p1):
                    # software pipelining: the pointer of the document 2 ahead, the vector 1 ahead
                    if p + 2 < p1:
                        prefetch(fwd_ptr, post_docs[p + 2])
                        prefetch(visited, post_docs[p + 2])
                    if p + 1 < p1:
                        o = fwd_ptr[post_docs[p + 1]]
                        prefetch(fwd_idx, o)
                        prefetch(fwd_val, o)
                        prefetch(fwd_val, o + 16)
                    d = post_docs[p]
                    if visited[d] == stamp:
                        continue
                    visited[d] = stamp
                    n_scored += 1
                    s = sparse_dot(qd, fwd_idx, fwd_val, fwd_ptr[d], fwd_ptr[d + 1])
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
    return out_d, out_s, n_scored, n_blocks
