"""heron's Seismic: approximate inner-product retrieval over learned-sparse vectors.

Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
Learned Sparse Representations", SIGIR 2024 (and the authors' Rust code, ``pyseismic-lsr``).

The index (numpy arrays + numba kernels, single thread):

1. **Static pruning** (``n_postings`` = λ): each term's posting list keeps only its ``λ``
   documents of largest weight for that term.
2. **Blocking** (``centroid_fraction`` = β): each pruned list is clustered into
   ``ceil(β · len)`` geometrically cohesive blocks by one round of shallow k-means — random
   documents of the list are the centroids and every document goes to the centroid of largest
   inner product, both sides cut to their ``doc_cut`` heaviest terms (the paper cuts only the
   document; cutting the centroid too keeps the build linear in practice on 2 cores).
3. **Summaries** (``summary_energy`` = α): a block's summary is the coordinate-wise maximum of
   its documents, cut to the fewest largest entries holding a fraction ``α`` of its mass, and
   quantized to 8 bits per entry. Quantization rounds *up*, so with ``α = 1`` a summary's inner
   product with a query is an upper bound of every score in its block.
4. **Query processing** (``query_cut``, ``heap_factor``): only the query's ``query_cut`` heaviest
   terms are traversed; in each of their lists the blocks are visited in decreasing summary score
   and a block is skipped once ``summary · q · heap_factor`` falls below the current ``k``-th best
   score. Surviving blocks are scored exactly with the forward index (the full vectors), each
   document once per query.

With nothing pruned (``n_postings`` at least the longest list, ``summary_energy=1``,
``query_cut`` at least the query length, ``heap_factor=1``) the result equals exact scoring.

Persisted as a folder of ``.npy`` arrays and ``manifest.json`` (format version checked on load),
memory-mapped on :meth:`SeismicIndex.load`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from heron._deps import require
from heron.results import PAD_KEY, Results, check_k
from heron.sparse.exact import _check_keys, check_csr

FORMAT = "heron.seismic"
FORMAT_VERSION = 1

_KERNELS: dict = {}


def _kernels() -> dict:
    """Compile (once) and return the numba kernels."""
    if _KERNELS:
        return _KERNELS
    numba = require("numba", purpose="the Seismic index")
    njit = numba.njit(cache=True, nogil=True)

    @njit
    def grow(a, need):
        if need <= a.shape[0]:
            return a
        b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
        b[: a.shape[0]] = a
        return b

    @njit
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
        n_postings,
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
        head = np.full(vocab, -1, dtype=np.int64)
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
            docs = inv_docs[a:b].copy()
            if df > n_postings:
                sel = np.argsort(-inv_vals[a:b], kind="mergesort")[:n_postings]
                docs = docs[sel]
                docs.sort()
            L = docs.shape[0]
            nc = int(math.ceil(centroid_fraction * L))
            nc = max(1, min(nc, L))
            assign = np.zeros(L, dtype=np.int64)
            if nc > 1:
                cent = np.random.permutation(L)[:nc]
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
                    sc[:] = 0.0
                    for c in range(doc_cut):
                        u = top_idx[d, c]
                        if u < 0:
                            break
                        v = top_val[d, c]
                        e = head[u]
                        while e != -1:
                            sc[e_cent[e]] += v * e_val[e]
                            e = e_next[e]
                    assign[i] = np.argmax(sc)
                for z in range(nt):
                    head[touched[z]] = -1
                order = np.argsort(assign * n_docs + docs)
                docs = docs[order]
                assign = assign[order]
            # emit blocks, their summaries into a list-level buffer (local block id, term, value)
            nb0 = nb
            nl = 0
            i = 0
            while i < L:
                j = i
                while j < L and assign[j] == assign[i]:
                    j += 1
                post_docs[npost : npost + (j - i)] = docs[i:j]
                npost += j - i
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
                    hist[:] = 0.0
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
            cols = np.sort(touched[:ncol])
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
            sum_codes = grow(sum_codes, pos)
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
            block_ptr[: nb + 1].copy(),
            post_docs[:npost].copy(),
            term_cols,
            col_term[:n_col].copy(),
            col_ptr[: n_col + 1].copy(),
            sum_blk[:nsum].copy(),
            sum_codes[: nsum if quantize else 0].copy(),
            sum_f[: 0 if quantize else nsum].copy(),
            blk_scale[:nb].copy(),
        )

    @njit
    def worse(s1, d1, s2, d2):
        return s1 < s2 or (s1 == s2 and d1 > d2)

    @njit
    def sift_down(hs, hd, size):
        i = 0
        while True:
            lc = 2 * i + 1
            if lc >= size:
                break
            m = lc
            r = lc + 1
            if r < size and worse(hs[r], hd[r], hs[lc], hd[lc]):
                m = r
            if worse(hs[m], hd[m], hs[i], hd[i]):
                hs[i], hs[m] = hs[m], hs[i]
                hd[i], hd[m] = hd[m], hd[i]
                i = m
            else:
                break

    @njit
    def sift_up(hs, hd, i):
        while i > 0:
            p = (i - 1) // 2
            if worse(hs[i], hd[i], hs[p], hd[p]):
                hs[i], hs[p] = hs[p], hs[i]
                hd[i], hd[p] = hd[p], hd[i]
                i = p
            else:
                break

    @njit
    def search(
        q_ptr,
        q_idx,
        q_val,
        k,
        query_cut,
        heap_factor,
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
        nq = q_ptr.shape[0] - 1
        out_d = np.full((nq, k), -1, dtype=np.int64)
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
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
            order = np.argsort(-q_val[a:b], kind="mergesort")[:query_cut]
            size = 0
            stamp = qi + 1
            for o in order:
                t = q_idx[a + o]
                b0, b1 = term_blocks[t], term_blocks[t + 1]
                nbk = b1 - b0
                if nbk == 0:
                    continue
                ss = np.zeros(nbk, dtype=np.float32)
                c0, c1 = term_cols[t], term_cols[t + 1]
                lo = c0
                for p in range(a, b):
                    u = q_idx[p]
                    lo = (
                        c0 + np.searchsorted(col_term[c0:c1], u)
                        if lo == c0
                        else lo + np.searchsorted(col_term[lo:c1], u)
                    )
                    if lo >= c1:
                        break
                    if col_term[lo] != u:
                        continue
                    w = qd[u]
                    if quant:
                        for e in range(col_ptr[lo], col_ptr[lo + 1]):
                            ss[sum_blk[e]] += w * np.float32(sum_codes[e])
                    else:
                        for e in range(col_ptr[lo], col_ptr[lo + 1]):
                            ss[sum_blk[e]] += w * sum_f[e]
                if quant:
                    for bb in range(nbk):
                        ss[bb] *= blk_scale[b0 + bb]
                border = np.argsort(-ss)
                for bb in border:
                    if size == k and ss[bb] * heap_factor < hs[0]:
                        break
                    bi = b0 + bb
                    n_blocks += 1
                    for p in range(block_ptr[bi], block_ptr[bi + 1]):
                        d = post_docs[p]
                        if visited[d] == stamp:
                            continue
                        visited[d] = stamp
                        n_scored += 1
                        s = np.float32(0.0)
                        for z in range(fwd_ptr[d], fwd_ptr[d + 1]):
                            s += qd[fwd_idx[z]] * fwd_val[z]
                        if s <= 0:
                            continue
                        if size < k:
                            hs[size] = s
                            hd[size] = d
                            sift_up(hs, hd, size)
                            size += 1
                        elif worse(hs[0], hd[0], s, d):
                            hs[0] = s
                            hd[0] = d
                            sift_down(hs, hd, size)
            # pop in best-first order
            for r in range(size - 1, -1, -1):
                out_s[qi, r] = hs[0]
                out_d[qi, r] = hd[0]
                last = size - 1
                hs[0] = hs[last]
                hd[0] = hd[last]
                size = last
                sift_down(hs, hd, size)
            for p in range(a, b):
                qd[q_idx[p]] = 0.0
        return out_d, out_s, n_scored, n_blocks

    @njit
    def top_terms(fwd_ptr, fwd_idx, fwd_val, doc_cut):
        n = fwd_ptr.shape[0] - 1
        ti = np.full((n, doc_cut), -1, dtype=np.int32)
        tv = np.zeros((n, doc_cut), dtype=np.float32)
        for d in range(n):
            a, b = fwd_ptr[d], fwd_ptr[d + 1]
            o = np.argsort(-fwd_val[a:b], kind="mergesort")[:doc_cut]
            for c in range(o.shape[0]):
                ti[d, c] = fwd_idx[a + o[c]]
                tv[d, c] = fwd_val[a + o[c]]
        return ti, tv

    _KERNELS.update(build=build, search=search, top_terms=top_terms)
    return _KERNELS


def _check_int(name: str, v: object, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def _check_unit(name: str, v: object) -> float:
    if (
        isinstance(v, bool)
        or not isinstance(v, (int, float, np.floating))
        or not 0.0 < float(v) <= 1.0
    ):
        raise ValueError(f"{name} must be a number in (0, 1], got {v!r}")
    return float(v)


class SeismicIndex:
    """A Seismic inverted index over non-negative sparse vectors (see the module docstring).

    Build with :meth:`build`, query with :meth:`search`, persist with :meth:`save` /
    :meth:`load`.

    Parameters (of :meth:`build`)
    -----------------------------
    n_postings:
        λ, posting-list length after static pruning (pyseismic default 3500).
    centroid_fraction:
        β, blocks per list as a fraction of its length, in (0, 1] (default 0.1).
    summary_energy:
        α, fraction of a block summary's mass kept, in (0, 1] (default 0.4).
    doc_cut:
        Heaviest terms of a document used when clustering (default 15).
    quantize:
        Store summaries as 8-bit codes (default True).
    seed:
        Seeds the random centroids.
    """

    def __init__(
        self, arrays: dict[str, np.ndarray], *, n_docs: int, vocab_size: int, params: dict
    ) -> None:
        self._a = arrays
        self.n_docs = int(n_docs)
        self.vocab_size = int(vocab_size)
        self.params = dict(params)
        self.keys = arrays["keys"]

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        docs,
        *,
        keys: np.ndarray | None = None,
        n_postings: int = 3500,
        centroid_fraction: float = 0.1,
        summary_energy: float = 0.4,
        doc_cut: int = 15,
        quantize: bool = True,
        seed: int = 0,
    ) -> SeismicIndex:
        """Build the index over ``docs``, a ``(n, V)`` scipy sparse matrix (weights >= 0).

        ``keys`` (``int64``, shape ``(n,)``) are returned in results (default row numbers).
        """
        n_postings = _check_int("n_postings (lambda)", n_postings, 1)
        centroid_fraction = _check_unit("centroid_fraction (beta)", centroid_fraction)
        summary_energy = _check_unit("summary_energy (alpha)", summary_energy)
        doc_cut = _check_int("doc_cut", doc_cut, 1)
        docs = check_csr(docs, what="docs")
        n, vocab = docs.shape
        keys = _check_keys(keys, n)
        k = _kernels()
        fwd_idx = docs.indices.astype(np.uint16 if vocab <= 65536 else np.int32)
        fwd_ptr = docs.indptr.astype(np.int64)
        fwd_val = docs.data.astype(np.float32)
        inv = docs.tocsc()
        inv.sort_indices()
        df = np.diff(inv.indptr)
        total = int(np.minimum(df, n_postings).sum())
        top_idx, top_val = k["top_terms"](fwd_ptr, fwd_idx, fwd_val, doc_cut)
        t0 = time.perf_counter()
        out = k["build"](
            n,
            vocab,
            inv.indptr.astype(np.int64),
            inv.indices.astype(np.int32),
            inv.data.astype(np.float32),
            fwd_ptr,
            fwd_idx,
            fwd_val,
            top_idx,
            top_val,
            n_postings,
            centroid_fraction,
            summary_energy,
            bool(quantize),
            int(seed),
            total,
        )
        del inv, top_idx, top_val
        names = (
            "term_blocks",
            "block_ptr",
            "post_docs",
            "term_cols",
            "col_term",
            "col_ptr",
            "sum_blk",
            "sum_codes",
            "sum_f",
            "blk_scale",
        )
        arrays = dict(zip(names, out))
        arrays["col_term"] = arrays["col_term"].astype(fwd_idx.dtype)
        arrays["sum_blk"] = arrays["sum_blk"].astype(
            np.uint16 if int(np.diff(arrays["term_blocks"]).max(initial=0)) <= 65536 else np.int32
        )
        arrays.update(fwd_ptr=fwd_ptr, fwd_idx=fwd_idx, fwd_val=fwd_val, keys=keys)
        params = dict(
            n_postings=n_postings,
            centroid_fraction=centroid_fraction,
            summary_energy=summary_energy,
            doc_cut=doc_cut,
            quantize=bool(quantize),
            seed=int(seed),
            build_seconds=round(time.perf_counter() - t0, 3),
        )
        return cls(arrays, n_docs=n, vocab_size=vocab, params=params)

    # ------------------------------------------------------------------ search
    def search(
        self, queries, k: int = 10, *, query_cut: int = 10, heap_factor: float = 0.9
    ) -> Results:
        """Approximate top-``k`` by inner product.

        Parameters
        ----------
        queries:
            ``(nq, V)`` scipy sparse matrix of non-negative weights.
        k:
            Hits per query.
        query_cut:
            Number of heaviest query terms whose posting lists are traversed (>= 1).
        heap_factor:
            In (0, 1]; a block is skipped when ``summary·q · heap_factor`` is below the current
            ``k``-th score. 1 is safe with ``summary_energy=1``; smaller skips more.

        Returns
        -------
        Results with ``keys``/``scores`` of shape ``(nq, k)``; ``info`` holds ``docs_scored``
        and ``blocks_visited`` (totals over the batch).
        """
        k = check_k(k)
        query_cut = _check_int("query_cut", query_cut, 1)
        heap_factor = _check_unit("heap_factor", heap_factor)
        q = check_csr(queries, what="queries", vocab_size=self.vocab_size)
        a = self._a
        d, s, n_scored, n_blocks = _kernels()["search"](
            q.indptr.astype(np.int64),
            q.indices.astype(np.int64),
            q.data.astype(np.float32),
            k,
            query_cut,
            np.float32(heap_factor),
            self.n_docs,
            self.vocab_size,
            a["term_blocks"],
            a["block_ptr"],
            a["post_docs"],
            a["term_cols"],
            a["col_term"],
            a["col_ptr"],
            a["sum_blk"],
            a["sum_codes"],
            a["sum_f"],
            a["blk_scale"],
            a["fwd_ptr"],
            a["fwd_idx"],
            a["fwd_val"],
        )
        valid = d != PAD_KEY
        d[valid] = self.keys[d[valid]]
        info = {"index": "seismic", "docs_scored": int(n_scored), "blocks_visited": int(n_blocks)}
        empty = np.diff(q.indptr) == 0
        if empty.any():
            info["empty_queries"] = np.flatnonzero(empty).tolist()
        return Results(d, s, info=info)

    # ------------------------------------------------------------------ info
    @property
    def n_blocks(self) -> int:
        return int(len(self._a["block_ptr"]) - 1)

    @property
    def n_postings_kept(self) -> int:
        return int(len(self._a["post_docs"]))

    def nbytes(self) -> dict[str, int]:
        """Bytes per component: forward index, inverted lists, summaries."""
        a = self._a
        return {
            "forward": int(a["fwd_ptr"].nbytes + a["fwd_idx"].nbytes + a["fwd_val"].nbytes),
            "postings": int(
                a["term_blocks"].nbytes + a["block_ptr"].nbytes + a["post_docs"].nbytes
            ),
            "summaries": int(
                sum(
                    a[x].nbytes
                    for x in (
                        "term_cols",
                        "col_term",
                        "col_ptr",
                        "sum_blk",
                        "sum_codes",
                        "sum_f",
                        "blk_scale",
                    )
                )
            ),
        }

    def forward(self):
        """The stored vectors as a ``(n, V)`` ``float32`` CSR matrix (rows aligned with ``keys``)."""
        sp = require("scipy.sparse", purpose="sparse vectors")
        a = self._a
        return sp.csr_matrix(
            (
                np.asarray(a["fwd_val"]),
                np.asarray(a["fwd_idx"]).astype(np.int32),
                np.asarray(a["fwd_ptr"]),
            ),
            shape=(self.n_docs, self.vocab_size),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the index to folder ``path`` (``.npy`` arrays + ``manifest.json``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, arr in self._a.items():
            np.save(path / f"{name}.npy", np.ascontiguousarray(arr))
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n_docs": self.n_docs,
            "vocab_size": self.vocab_size,
            "params": self.params,
            "arrays": sorted(self._a),
        }
        (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return path

    @classmethod
    def load(cls, path, *, mmap: bool = True) -> SeismicIndex:
        """Open an index saved by :meth:`save` (arrays memory-mapped when ``mmap``)."""
        path = Path(path)
        mf = path / "manifest.json"
        if not mf.is_file():
            raise FileNotFoundError(
                f"no Seismic index at {str(path)!r} (manifest.json missing); build one with SeismicIndex.build(...).save(path)"
            )
        m = json.loads(mf.read_text())
        if m.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} holds format {m.get('format')!r}, not {FORMAT!r}")
        if m.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"Seismic index at {str(path)!r} has format version {m.get('version')}, this heron reads version {FORMAT_VERSION}; rebuild the index"
            )
        arrays = {}
        for name in m["arrays"]:
            # copy-on-write maps stay lazily paged from disk but keep the arrays' writeable flag, so
            # the numba kernels compiled for a freshly built index are reused (no readonly variant)
            arr = np.load(path / f"{name}.npy", mmap_mode="c" if mmap else None)
            arrays[name] = np.asarray(arr)
        return cls(arrays, n_docs=m["n_docs"], vocab_size=m["vocab_size"], params=m["params"])
