"""numba kernel building the Seismic index (imported lazily, only with numba).

Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
Learned Sparse Representations", SIGIR 2024 (Seismic). Driven by :mod:`heron.sparse.seismic`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from heron.sparse._seismic_helpers_numba import _JIT, argsort_desc, grow, sort_int


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
