"""heron's Seismic: approximate inner-product retrieval over learned-sparse vectors.

Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
Learned Sparse Representations", SIGIR 2024 (and the authors' Rust code, ``pyseismic-lsr``).

The index (numpy arrays + numba kernels; one thread per query, a batch split over numba's
threads):

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
   block's summary score is computed in one pass over the list's summary entries of the query's
   own terms (found through a skip array), and a block is skipped when its summary score
   is below ``heap_factor`` times the current ``k``-th best score (as in the paper and
   pyseismic-lsr). The first ``sort_blocks`` lists visit blocks in decreasing summary score,
   the rest in stored order. Surviving blocks are scored exactly with the forward index (the
   full vectors), each document once per query.

With nothing pruned (``n_postings`` at least the longest list, ``summary_energy=1``,
``query_cut`` at least the query length, ``heap_factor=1``) the result equals exact scoring.

Storage: postings are block-ordered ``int32`` document ids. A list's summaries are stored
together, sorted by component (as pyseismic-lsr's inverted summaries): per entry a component
id (``uint16`` when the vocabulary fits), the block's number within its list (``uint8`` up to
256 blocks) and an 8-bit code, read in place by the search kernel; a skip array (the component
of every 32nd entry) finds a query term's entries. Offsets are ``uint32``
unless they need ``int64``; the forward index keeps ``float16`` weights by default
(``values=``), as pyseismic-lsr does. Built without growth buffers (:func:`_build_arrays`).

Persisted as a folder of ``.npy`` arrays and ``manifest.json`` (format version, and each
array's dtype and shape, checked on load); :meth:`SeismicIndex.load` reads the forward index
into memory (huge pages) and maps the rest.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from heron._deps import require
from heron._memory import load_resident, release_pages, vm_status
from heron.limits import file_in
from heron.results import PAD_KEY, Results, check_k
from heron.sparse.exact import _check_keys, check_csr

log = logging.getLogger(__name__)

FORMAT = "heron.seismic"
FORMAT_VERSION = 3  # 3: summaries component-major per list; 2: block-major; narrow offsets

#: precisions of the forward index's weights (``values=``); float16 is half the bytes per weight
VALUES = ("float16", "float32")
F16_MAX = float(np.finfo(np.float16).max)
#: arrays read at random, one document per scored posting: kept in process memory on load
FORWARD = ("fwd_ptr", "fwd_idx", "fwd_val")


#: queries per worker thread below which a batch is answered on the calling thread alone
MIN_QUERIES_PER_THREAD = 4


def _threads() -> int:
    """Threads a batch may use: numba's setting (``NUMBA_NUM_THREADS``, default all cores)."""
    import numba

    return int(numba.get_num_threads())


def _query_parts(nq: int, threads: int) -> list[tuple[int, int]]:
    """Contiguous query ranges, one per worker thread (one range: no threads)."""
    n = max(1, min(threads, nq // MIN_QUERIES_PER_THREAD))
    bounds = [nq * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _kernel_values(v: np.ndarray) -> np.ndarray:
    """The forward weights as numba reads them: ``float16`` as its ``uint16`` bits (no numba type)."""
    return v.view(np.uint16) if v.dtype == np.float16 else v


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
    ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, cut: int, *, chunk: int = 1 << 14
):
    """Each row's ``cut`` heaviest entries (ties: lower position first), padded ``-1`` / ``0``.

    Returns ``(terms (n, cut) int32, weights (n, cut) float32)`` for a CSR ``(ptr, idx, val)``.
    Rows go ``chunk`` at a time, which bounds the sorting temporaries.
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


def _list_budget(
    kern, fwd_idx, fwd_val, vocab: int, n_postings: int, pruning: str, max_fraction: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(thr, cnt, keep_n)``: the weight threshold, postings per term at or above it, and
    postings kept per list (``int64``, shape ``(V,)``), counted on the forward index.

    ``"fixed"``: each list keeps its ``n_postings`` heaviest postings (``thr = -1``, all
    counted). ``"global"`` (the paper's and pyseismic-lsr's default): the ``n_postings · V``
    heaviest postings of the whole collection are kept (one global weight threshold, found by a
    radix select without copying the weights), each list capped at ``max_fraction · n_postings``.
    """
    nnz = len(fwd_val)
    budget = n_postings * vocab
    thr = -1.0
    if pruning == "global" and 0 < budget < nnz:
        bits = int(kern.kth_largest(fwd_val.view(np.uint32), budget))
        thr = float(np.array([bits], dtype=np.uint32).view(np.float32)[0])
    cnt = kern.term_counts(fwd_idx, fwd_val, vocab, np.float32(thr))
    cap = n_postings if pruning == "fixed" else int(max_fraction * n_postings)
    return thr, cnt, np.minimum(cnt, cap)


def _offsets_dtype(top: int):
    """The narrowest offset dtype holding ``top``: ``uint32`` or ``int64``."""
    return np.uint32 if top < 2**32 else np.int64


def _block_in_list_dtype(most: int):
    """The narrowest dtype numbering ``most`` blocks of one list: ``uint8``, ``uint16``, ``uint32``."""
    return np.uint8 if most <= 256 else np.uint16 if most <= 65536 else np.uint32


def _skips(sum_ptr: np.ndarray, sum_comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each list's skip array: the component of its every ``SKIP``-th summary entry.

    ``sum_ptr`` (``int64``, ``V+1``) bounds each list's entries in ``sum_comp``. Returns
    ``(skip_ptr (V+1), sum_skip)``: list ``t``'s skips are ``sum_skip[skip_ptr[t]:skip_ptr[t+1]]``,
    the ``i``-th being the component of entry ``sum_ptr[t] + SKIP * i``.
    """
    from heron.sparse._seismic_helpers_numba import SKIP

    per = (np.diff(sum_ptr) + SKIP - 1) // SKIP
    skip_ptr = np.zeros(len(sum_ptr), dtype=np.int64)
    np.cumsum(per, out=skip_ptr[1:])
    first = np.repeat(sum_ptr[:-1] - skip_ptr[:-1] * SKIP, per)  # entry = first + SKIP * slot
    pos = first + SKIP * np.arange(int(skip_ptr[-1]), dtype=np.int64)
    return skip_ptr.astype(_offsets_dtype(int(skip_ptr[-1]))), sum_comp[pos]


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


def _build_arrays(kern, docs, *, chunk: int, **p) -> dict[str, np.ndarray]:
    """The index arrays for a checked ``float32`` CSR ``docs`` (see :meth:`SeismicIndex.build`).

    Every output is allocated once at its exact size (block pointers: at the upper bound
    ``sum(ceil(β · len))``, trimmed by a view): a counting pass sizes the pruned lists, the
    clustering pass fills postings and blocks and counts summary entries per block, and a last
    pass writes the summaries into place.
    """
    n, vocab = docs.shape
    fwd_idx = docs.indices.astype(np.uint16 if vocab <= 65536 else np.int32)
    fwd_ptr = docs.indptr.astype(_offsets_dtype(int(docs.nnz)))
    fwd_val = np.array(docs.data, dtype=np.float32)  # a writeable copy (docs may be mapped)
    if p["values"] == "float16":
        # the index is built over the values it stores: rounded once, so summaries bound them
        fwd_val[:] = fwd_val.astype(np.float16)
    top_idx, top_val = _top_terms(fwd_ptr, fwd_idx, fwd_val, p["doc_cut"])
    release_pages(docs.indices, docs.data, docs.indptr)
    log.debug("seismic build: forward index and doc cuts %s", vm_status())
    thr, cnt, keep_n = _list_budget(
        kern, fwd_idx, fwd_val, vocab, p["n_postings"], p["pruning"], p["max_fraction"]
    )
    total = int(keep_n.sum())
    log.debug("seismic build: %d postings kept, threshold %g %s", total, thr, vm_status())
    nz = keep_n[keep_n > 0]
    max_blocks = int(np.maximum(1, np.minimum(np.ceil(p["centroid_fraction"] * nz), nz)).sum())
    term_blocks = np.zeros(vocab + 1, dtype=_offsets_dtype(max_blocks))
    block_ptr = np.zeros(max_blocks + 1, dtype=_offsets_dtype(total))
    post_docs = np.empty(total, dtype=np.int32)
    blk_scale = np.empty(max_blocks, dtype=np.float32)
    blk_nsum = np.zeros(max_blocks + 1, dtype=np.int64)
    nb = kern.cluster(
        n, vocab, fwd_ptr, fwd_idx, fwd_val, np.float32(thr), cnt, keep_n, top_idx, top_val,
        p["centroid_fraction"], p["summary_energy"], p["seed"], chunk,
        term_blocks, block_ptr, post_docs, blk_scale, blk_nsum[1:], p["quantize"],
    )  # fmt: skip
    del top_idx, top_val, cnt
    log.debug("seismic build: %d blocks clustered %s", nb, vm_status())
    blk_sum_ptr = np.cumsum(blk_nsum[: nb + 1], dtype=np.int64)  # entries before each block
    del blk_nsum
    n_sum = int(blk_sum_ptr[-1])
    most = int(np.diff(term_blocks.astype(np.int64)).max(initial=1))  # blocks in the longest list
    sum_comp = np.empty(n_sum, dtype=fwd_idx.dtype)
    sum_codes = np.empty(n_sum if p["quantize"] else 0, dtype=np.uint8)
    sum_f = np.empty(0 if p["quantize"] else n_sum, dtype=np.float32)
    sum_blk = np.empty(n_sum, dtype=_block_in_list_dtype(most))
    block_ptr, blk_scale = block_ptr[: nb + 1], blk_scale[:nb]
    kern.fill_summaries(
        vocab, term_blocks, block_ptr, post_docs, fwd_ptr, fwd_idx, fwd_val, p["summary_energy"],
        p["quantize"], blk_scale, blk_sum_ptr, sum_comp, sum_codes, sum_f, sum_blk,
    )  # fmt: skip
    sum_ptr = blk_sum_ptr[term_blocks.astype(np.int64)]
    del blk_sum_ptr
    skip_ptr, sum_skip = _skips(sum_ptr, sum_comp)
    sum_ptr = sum_ptr.astype(_offsets_dtype(n_sum))
    log.debug("seismic build: %d summary entries written %s", n_sum, vm_status())
    return dict(
        term_blocks=term_blocks, block_ptr=block_ptr, post_docs=post_docs, sum_ptr=sum_ptr,
        sum_comp=sum_comp, sum_codes=sum_codes, sum_f=sum_f, sum_blk=sum_blk, skip_ptr=skip_ptr,
        sum_skip=sum_skip, blk_scale=blk_scale,
        fwd_ptr=fwd_ptr, fwd_idx=fwd_idx,
        fwd_val=fwd_val.astype(np.float16) if p["values"] == "float16" else fwd_val,
    )  # fmt: skip


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
    chunk:
        Postings of the inverted lists transposed from the forward index at a time (default
        ``2**23``, 64 MiB of temporaries); bounds the build's scratch memory, not its result.
    values:
        Precision of the forward index's weights: ``"float16"`` (default, as pyseismic-lsr;
        each document's score is then exact for its weights rounded to half precision, a
        relative error of at most ``2**-11`` per weight) or ``"float32"`` (exact scores, a
        forward index 1.5× larger and slower to scan). Weights beyond half precision's range
        (``> 65504``) keep ``"float32"``, with a warning.
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
        chunk: int = 1 << 23,
        values: str = "float16",
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
        if values not in VALUES:
            raise ValueError(f"values must be one of {VALUES}, got {values!r}")
        docs = check_csr(docs, what="docs")
        n, vocab = docs.shape
        keys = _check_keys(keys, n)
        if values == "float16" and docs.nnz and float(np.max(docs.data)) > F16_MAX:
            log.warning(
                "Seismic: weights up to %g exceed float16's range (%g); the forward index keeps "
                "float32 (pass values='float32' to say so)",
                float(np.max(docs.data)),
                F16_MAX,
            )
            values = "float32"
        kern = _kernels()
        t0 = time.perf_counter()
        arrays = _build_arrays(
            kern,
            docs,
            n_postings=n_postings,
            centroid_fraction=centroid_fraction,
            summary_energy=summary_energy,
            doc_cut=doc_cut,
            quantize=bool(quantize),
            seed=int(seed),
            pruning=pruning,
            max_fraction=float(max_fraction),
            chunk=_check_int("chunk", chunk, 1),
            values=values,
        )
        arrays["keys"] = keys
        params = dict(
            n_postings=n_postings,
            centroid_fraction=centroid_fraction,
            summary_energy=summary_energy,
            doc_cut=doc_cut,
            quantize=bool(quantize),
            seed=int(seed),
            pruning=pruning,
            max_fraction=float(max_fraction),
            values=values,
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
        kern = _kernels()
        tail = (
            query_cut,
            k,
            np.float32(heap_factor),
            sort_blocks,
            self.n_docs,
            self.vocab_size,
            a["term_blocks"],
            a["block_ptr"],
            a["post_docs"],
            a["sum_ptr"],
            a["sum_comp"],
            a["sum_codes"],
            a["sum_f"],
            a["sum_blk"],
            a["skip_ptr"],
            a["sum_skip"],
            a["blk_scale"],
            a["fwd_ptr"],
            a["fwd_idx"],
            _kernel_values(a["fwd_val"]),
        )
        ptr = q.indptr.astype(np.int64, copy=False)
        idx = q.indices.astype(np.int64, copy=False)
        parts = _query_parts(q.shape[0], _threads())
        if len(parts) == 1:
            d, s, n_scored, n_blocks = kern.search(ptr, idx, q.data, *tail)
        else:
            # the kernel releases the GIL: slices of the batch run on the process's worker
            # threads, each with its own scratch; every query's result is the same either way
            from heron.retrieval.topk import worker_pool

            def run(lo: int, hi: int):
                a0, a1 = ptr[lo], ptr[hi]
                return kern.search(ptr[lo : hi + 1] - a0, idx[a0:a1], q.data[a0:a1], *tail)

            pool = worker_pool(len(parts))
            out = [f.result() for f in [pool.submit(run, lo, hi) for lo, hi in parts]]
            d = np.concatenate([o[0] for o in out])
            s = np.concatenate([o[1] for o in out])
            n_scored, n_blocks = sum(o[2] for o in out), sum(o[3] for o in out)
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
                        "sum_ptr",
                        "sum_comp",
                        "sum_codes",
                        "sum_f",
                        "sum_blk",
                        "skip_ptr",
                        "sum_skip",
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
                np.asarray(a["fwd_val"], dtype=np.float32),
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
            "arrays": {
                name: {"dtype": np.dtype(arr.dtype).str, "shape": list(arr.shape)}
                for name, arr in sorted(self._a.items())
            },
        }
        (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return path

    @classmethod
    def load(cls, path, *, mmap: bool = True) -> SeismicIndex:
        """Open an index saved by :meth:`save`.

        The forward index (read at random while scoring) is read into process memory, in huge
        pages where the OS allows (:func:`heron._memory.load_resident`); the inverted lists and
        summaries (read one list at a time) are memory-mapped when ``mmap``, else read too.
        """
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
        for name, spec in m["arrays"].items():
            file = file_in(path, f"{name}.npy", what="manifest.json array")
            if name in FORWARD or not mmap:
                # read at random: process memory in huge pages (docs/sparse.md: 1M synthetic,
                # mapped 4 KiB pages were 1.2x slower per query)
                arr = load_resident(file)
            else:
                # copy-on-write maps stay lazily paged from disk but keep the arrays' writeable
                # flag, so the numba kernels compiled for a built index are reused
                arr = np.asarray(np.load(file, mmap_mode="c"))
            if arr.dtype.str != spec["dtype"] or list(arr.shape) != spec["shape"]:
                raise ValueError(
                    f"Seismic index at {str(path)!r}: {name}.npy is {arr.dtype.str} {list(arr.shape)}, "
                    f"the manifest says {spec['dtype']} {spec['shape']}; the folder is damaged, rebuild the index"
                )
            arrays[name] = arr
        return cls(arrays, n_docs=m["n_docs"], vocab_size=m["vocab_size"], params=m["params"])
