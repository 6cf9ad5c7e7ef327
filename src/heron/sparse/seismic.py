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
4. **Query processing** (``query_cut``, ``heap_factor``, ``sort_blocks``): only the query's
   ``query_cut`` heaviest terms are traversed, heaviest first; in each of their lists every
   block's summary score is computed in one pass, and a block is skipped when its summary score
   is below ``heap_factor`` times the current ``k``-th best score (as in the paper and
   pyseismic-lsr). The first ``sort_blocks`` lists visit blocks in decreasing summary score,
   the rest in stored order. Surviving blocks are scored exactly with the forward index (the
   full vectors), each document once per query.

With nothing pruned (``n_postings`` at least the longest list, ``summary_energy=1``,
``query_cut`` at least the query length, ``heap_factor=1``) the result equals exact scoring.

Persisted as a folder of ``.npy`` arrays and ``manifest.json`` (format version checked on load),
memory-mapped on :meth:`SeismicIndex.load`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from heron._deps import require
from heron.results import PAD_KEY, Results, check_k
from heron.sparse.exact import _check_keys, check_csr

FORMAT = "heron.seismic"
FORMAT_VERSION = 1


_KERNELS = None


def _kernels():
    """The numba kernels (module :mod:`heron.sparse._seismic_numba`, imported on first use)."""
    global _KERNELS
    if _KERNELS is None:
        require("numba", purpose="the Seismic index")
        from heron.sparse import _seismic_numba

        _KERNELS = _seismic_numba
    return _KERNELS


def _top_terms(
    ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, cut: int, *, chunk: int = 1 << 16
):
    """Each row's ``cut`` heaviest entries (ties: lower position first), padded ``-1`` / ``0``.

    Returns ``(terms (n, cut) int32, weights (n, cut) float32)`` for a CSR ``(ptr, idx, val)``.
    """
    n = len(ptr) - 1
    ti = np.full((n, cut), -1, dtype=np.int32)
    tv = np.zeros((n, cut), dtype=np.float32)
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        a, b = int(ptr[r0]), int(ptr[r1])
        rows = np.repeat(np.arange(r0, r1), np.diff(ptr[r0 : r1 + 1]))
        order = np.lexsort((-val[a:b], rows))  # stable: equal weights keep their position order
        rank = np.arange(b - a) - (ptr[rows[order]] - a)
        keep = rank < cut
        o = order[keep]
        ti[rows[o], rank[keep]] = idx[a:b][o]
        tv[rows[o], rank[keep]] = val[a:b][o]
    return ti, tv


def _list_budget(inv, n_postings: int, pruning: str, max_fraction: float) -> np.ndarray:
    """Postings kept per list (``int64``, shape ``(V,)``) for a term-major CSC ``inv``.

    ``"fixed"``: each list keeps its ``n_postings`` heaviest postings. ``"global"`` (the paper's
    and pyseismic-lsr's default): the ``n_postings · V`` heaviest postings of the whole
    collection are kept (one global weight threshold), each list capped at
    ``max_fraction · n_postings``.
    """
    df = np.diff(inv.indptr).astype(np.int64)
    if pruning == "fixed":
        return np.minimum(df, n_postings)
    budget = n_postings * inv.shape[1]
    cap = int(max_fraction * n_postings)
    if budget >= inv.nnz:
        return np.minimum(df, cap)
    thr = np.partition(inv.data, inv.nnz - budget)[inv.nnz - budget]
    starts = inv.indptr[:-1].clip(max=max(inv.nnz - 1, 0))
    above = np.add.reduceat((inv.data >= thr).astype(np.int64), starts)
    above[df == 0] = 0
    return np.minimum(above, cap)


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
    pruning:
        ``"fixed"``: every list keeps its ``n_postings`` heaviest postings. ``"global"`` (the
        paper's global threshold, pyseismic-lsr's default): the ``n_postings · V`` heaviest
        postings overall are kept, each list capped at ``max_fraction · n_postings``, so
        ``n_postings`` is an *average* list length as in pyseismic-lsr.
    max_fraction:
        Cap of a list under ``"global"`` pruning, as a multiple of ``n_postings`` (default 1.5).
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
        pruning: str = "fixed",
        max_fraction: float = 1.5,
    ) -> SeismicIndex:
        """Build the index over ``docs``, a ``(n, V)`` scipy sparse matrix (weights >= 0).

        ``keys`` (``int64``, shape ``(n,)``) are returned in results (default row numbers).
        """
        n_postings = _check_int("n_postings (lambda)", n_postings, 1)
        centroid_fraction = _check_unit("centroid_fraction (beta)", centroid_fraction)
        summary_energy = _check_unit("summary_energy (alpha)", summary_energy)
        doc_cut = _check_int("doc_cut", doc_cut, 1)
        if pruning not in ("fixed", "global"):
            raise ValueError(f"pruning must be 'fixed' or 'global', got {pruning!r}")
        if (
            isinstance(max_fraction, bool)
            or not isinstance(max_fraction, (int, float))
            or max_fraction < 1
        ):
            raise ValueError(f"max_fraction must be a number >= 1, got {max_fraction!r}")
        docs = check_csr(docs, what="docs")
        n, vocab = docs.shape
        keys = _check_keys(keys, n)
        kern = _kernels()
        fwd_idx = docs.indices.astype(np.uint16 if vocab <= 65536 else np.int32)
        fwd_ptr = docs.indptr.astype(np.int64)
        fwd_val = np.array(docs.data, dtype=np.float32)  # a writeable copy (docs may be mapped)
        inv = docs.tocsc()
        inv.sort_indices()
        keep_n = _list_budget(inv, n_postings, pruning, float(max_fraction))
        total = int(keep_n.sum())
        top_idx, top_val = _top_terms(fwd_ptr, fwd_idx, fwd_val, doc_cut)
        t0 = time.perf_counter()
        out = kern.build(
            n,
            vocab,
            inv.indptr.astype(np.int64),
            inv.indices.astype(np.int32, copy=False),
            inv.data.astype(np.float32, copy=False),
            fwd_ptr,
            fwd_idx,
            fwd_val,
            top_idx,
            top_val,
            keep_n,
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
        # the kernel returns views of its growth buffers: copy (narrowing where possible) one
        # array at a time, dropping each buffer before the next copy, to bound the peak memory
        out = list(out)
        blk_dtype = np.uint16 if int(np.diff(out[0]).max(initial=0)) <= 65536 else np.int32
        narrow = {"col_term": fwd_idx.dtype, "sum_blk": blk_dtype}
        arrays = {}
        for i, name in enumerate(names):
            arrays[name] = np.array(out[i], dtype=narrow.get(name, out[i].dtype))
            out[i] = None
        arrays.update(fwd_ptr=fwd_ptr, fwd_idx=fwd_idx, fwd_val=fwd_val, keys=keys)
        params = dict(
            n_postings=n_postings,
            centroid_fraction=centroid_fraction,
            summary_energy=summary_energy,
            doc_cut=doc_cut,
            quantize=bool(quantize),
            seed=int(seed),
            pruning=pruning,
            max_fraction=float(max_fraction),
            build_seconds=round(time.perf_counter() - t0, 3),
        )
        return cls(arrays, n_docs=n, vocab_size=vocab, params=params)

    # ------------------------------------------------------------------ search
    def search(
        self,
        queries,
        k: int = 10,
        *,
        query_cut: int = 10,
        heap_factor: float = 0.9,
        sort_blocks: int = 1,
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
            In (0, 1]; a block is skipped when its summary score ``summary·q`` is below
            ``heap_factor`` times the current ``k``-th score (the paper's and pyseismic-lsr's
            meaning). 1 skips most and is safe with ``summary_energy=1``; smaller values make up
            for summaries that underestimate (``summary_energy < 1``) and skip fewer blocks.
        sort_blocks:
            The first ``sort_blocks`` traversed lists visit their blocks in decreasing summary
            score (the scan stops at the first block below the threshold); later lists visit
            blocks in stored order, skipping each one below the threshold. pyseismic-lsr sorts
            the first list only (``1``, the default); ``0`` sorts none.

        Returns
        -------
        Results with ``keys``/``scores`` of shape ``(nq, k)``; ``info`` holds ``docs_scored``
        and ``blocks_visited`` (totals over the batch).
        """
        k = check_k(k)
        query_cut = _check_int("query_cut", query_cut, 1)
        heap_factor = _check_unit("heap_factor", heap_factor)
        sort_blocks = _check_int("sort_blocks", sort_blocks, 0)
        q = check_csr(queries, what="queries", vocab_size=self.vocab_size)
        a = self._a
        d, s, n_scored, n_blocks = _kernels().search(
            q.indptr.astype(np.int64, copy=False),
            q.indices.astype(np.int64, copy=False),
            q.data,
            query_cut,
            k,
            np.float32(heap_factor),
            sort_blocks,
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
