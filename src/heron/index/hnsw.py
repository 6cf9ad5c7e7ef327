"""HNSW graphs over float, scalar-quantised, PQ or 1-bit codes (faiss).

Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
Navigable Small World graphs", TPAMI 2018. Parameters keep the paper's names:

* ``M`` — neighbours per node (``2M`` on layer 0): more memory (``~8 * M`` bytes a vector for
  the links) and a slower build for higher recall at a given ``ef``;
* ``ef_construction`` — candidate list while inserting: a slower build, a better graph;
* ``ef_search`` — candidate list while searching: the recall / latency knob at query time.

The graph stores the codec's codes: ``fp32`` (``IndexHNSWFlat``), ``fp16`` / ``int8`` /
``int4`` (``IndexHNSWSQ``), ``pq<M>`` (``IndexHNSWPQ``) or ``bin`` — heron's 1-bit ITQ codes in a
Hamming graph (``IndexBinaryHNSW``). Compressed codes are re-scored from the float copy
(``oversample``). Filters run inside the graph walk with a faiss ``IDSelectorBitmap`` (the
binary graph has none: it oversamples and post-filters), and very selective filters switch to an
exact scan of the matching rows (see :class:`~heron.index.base.AnnIndex`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from heron.index import _faiss as F
from heron.index.base import AnnIndex, IndexMismatchError, check_param
from heron.index.persist import _whole_npy_file
from heron.limits import first_stage_depth

#: build defaults when the caller gives none, measured on 100k and 300k anchored 384-d vectors
#: (docs/ann.md "Defaults", ``benchmarks/hnsw_defaults.py``). At 300k, M=32 with
#: efConstruction=40 built in 76 s against 138 s for M=16 / efConstruction=100, and reached
#: recall@10 0.992 at ef 64 and 0.999 at ef 128 (M=16 / efConstruction=40, built in 69 s: 0.960
#: and 0.981, and more distance computations at equal recall). efConstruction=200 (the previous
#: default, with M=32) bought 0.005-0.007 recall at a given ef for a 3x slower build at 100k.
#: At 1M, M=32 built 1.5x slower than M=16 and was faster at every recall above 0.967 (0.98:
#: 0.45 ms against 0.59 ms per query); M=16 was faster below it.
DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 40
DEFAULT_EF_SEARCH = 64


class HNSWIndex(AnnIndex):
    """Hierarchical navigable small-world graph (faiss).

    Parameters
    ----------
    M: graph degree (paper's ``M``; default :data:`DEFAULT_M`).
    ef_construction: build-time candidate list (paper's ``efConstruction``; default
        :data:`DEFAULT_EF_CONSTRUCTION`).
    ef_search: default search-time candidate list (paper's ``ef``; default :data:`DEFAULT_EF_SEARCH`).
    codec: ``"fp32"``, ``"fp16"``, ``"int8"``, ``"int4"``, ``"pq<m>"`` or ``"bin"`` (Hamming graph).
    oversample, exact_below: see :class:`~heron.index.base.AnnIndex`.
    """

    kind: ClassVar[str] = "hnsw"
    codecs: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8", "int4", "pq<m>", "bin")

    def __init__(
        self,
        *,
        M: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        codec: str = "fp32",
        oversample: float | None = None,
        exact_below: float = 0.02,
    ) -> None:
        codec = codec.lower() if isinstance(codec, str) else codec
        if isinstance(codec, str) and codec == "bin-ham":
            codec = "bin"
        if not isinstance(codec, str) or not (F.valid_float_codec(codec) or F.is_binary(codec)):
            raise ValueError(
                f"index 'hnsw' does not store codec {codec!r}; choose one of {list(self.codecs)}"
            )
        self.M = check_param("M", M, low=2)
        self.ef_construction = check_param("ef_construction", ef_construction)
        self.ef_search = check_param("ef_search", ef_search)
        self._index: Any = None
        self._bin: Any = None  # heron binary codec for the Hamming graph
        # ef -> faiss SearchParametersHNSW: each call names its ef (no shared efSearch write that a
        # concurrent search with another ef could overwrite before faiss reads it)
        self._by_ef: dict[int, Any] = {}
        self._swig_ptr: Any = None  # faiss.swig_ptr, bound when the graph is built or loaded
        # memory the graph's storage reads in place (faiss does not own it): kept alive here
        self._codes_buf: np.ndarray | None = None
        self._storage_ref: Any = None  # a storage index this object (not the graph) owns
        self._rows_path: Path | None = None  # heron-managed .npy holding exactly the float rows
        super().__init__(codec=codec, oversample=oversample, exact_below=exact_below)

    @classmethod
    def _codec_names(cls) -> tuple[str, ...]:  # validated in __init__
        return ()

    def __init_subclass__(cls, **kw: Any) -> None:  # pragma: no cover
        super().__init_subclass__(**kw)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
        }

    def search_params(self) -> tuple[str, ...]:
        return ("ef_search",)

    @property
    def binary(self) -> bool:
        return F.is_binary(self.codec)

    # -- structure ------------------------------------------------------------
    def _build(self, x: np.ndarray) -> None:
        faiss = F.faiss_module()
        self._swig_ptr, self._by_ef = faiss.swig_ptr, {}
        d = x.shape[1]
        if self.binary:
            self._bin = F.binary_codec(x)
            nbits = self._bin.width * 8
            self._index = faiss.IndexBinaryHNSW(nbits, self.M)
        elif self.codec == "fp32":
            self._index = faiss.IndexHNSWFlat(d, self.M, faiss.METRIC_INNER_PRODUCT)
        elif F.pq_m(self.codec):
            m = F.pq_m(self.codec)
            if d % m:
                raise ValueError(
                    f"codec {self.codec!r}: dimension {d} is not divisible by {m}; pick pq<m> with m dividing {d}"
                )
            self._index = faiss.IndexHNSWPQ(d, m, self.M, 8, faiss.METRIC_INNER_PRODUCT)
        else:
            self._index = faiss.IndexHNSWSQ(
                d, F.float_scalar_type(self.codec), self.M, faiss.METRIC_INNER_PRODUCT
            )
        self._index.hnsw.efConstruction = self.ef_construction
        if not self.binary and not self._index.is_trained:
            rng = np.random.default_rng(0)
            sample = (
                x if len(x) <= 100_000 else x[np.sort(rng.choice(len(x), 100_000, replace=False))]
            )
            self._index.train(sample)

    def _add(self, x: np.ndarray) -> None:
        if self.binary:
            self._index.add(self._bin.encode(x))
            return
        if self._codes_buf is not None:  # faiss aborts on growing codes it does not own
            storage = F.faiss_module().downcast_index(self._index.storage)
            F.own_codes(storage, reserve=len(x) * int(storage.code_size))
            self._codes_buf = None
        first = self._index.ntotal == 0
        self._index.add(x)
        # built over one whole segment file: the saved graph can leave its rows in that file
        self._rows_path = _whole_npy_file(x) if first and self.codec == "fp32" else None

    def _rows_file(self) -> Path | None:
        if self.codec != "fp32" or not hasattr(F.faiss_module(), "IO_FLAG_SKIP_STORAGE"):
            return None
        return self._rows_path

    def memory_bytes(self) -> int:
        if self._index is None:
            return 0
        n = self._index.ntotal
        levels = self._index.hnsw.levels.size() if hasattr(self._index.hnsw.levels, "size") else n
        links = (
            self._index.hnsw.neighbors.size() * 4
            if hasattr(self._index.hnsw.neighbors, "size")
            else 0
        )
        if self.binary:
            code = self._index.code_size
        else:  # the graph's vectors live in its storage index (flat / SQ / PQ codes)
            code = F.faiss_module().downcast_index(self._index.storage).code_size
        return int(n * code + links + levels * 4 + self.keys.nbytes + self.dead.nbytes)

    def _structure_rows(self) -> np.ndarray | None:
        """A float32 graph's vectors, in place (``IndexHNSWFlat`` keeps them exact)."""
        rows = self._rows
        if rows is None and self.codec == "fp32" and self._index is not None:
            faiss = F.faiss_module()
            n, d = int(self._index.ntotal), int(self._index.d)
            if n == 0:
                return None
            xb = faiss.downcast_index(self._index.storage).get_xb()
            rows = self._rows = faiss.rev_swig_ptr(xb, n * d).reshape(n, d)
        return rows

    def _search_fast(
        self, q: np.ndarray, k: int, params: dict[str, Any], oversample: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        if self.binary:
            return None
        ef = params.get("ef_search", self.ef_search) if params else self.ef_search
        if ef is not self.ef_search:
            ef = check_param("ef_search", ef)
        # a compressed graph walks its codes for ceil(oversample * k) candidates, re-scored from
        # the float copy (the same steps, in the same order, as the general path)
        depth = k if oversample <= 0 else first_stage_depth(k, oversample, len(self.keys))
        ef = max(ef, depth)
        sp = self._by_ef.get(ef) or self._params_for(ef)
        # the float HNSW opens no OpenMP region for one query (no thread-count switch)
        return F.search_direct(self, q, k, depth, oversample, sp, one_thread=False)

    def _params_for(self, ef: int) -> Any:
        """faiss search parameters naming ``ef`` (cached; the graph's own defaults otherwise)."""
        sp = self._by_ef.get(ef)
        if sp is None:  # bounded queue and relative-distance check as the graph's own defaults
            sp = F.faiss_module().SearchParametersHNSW()
            sp.efSearch = ef
            if len(self._by_ef) > 64:
                self._by_ef.clear()
            self._by_ef[ef] = sp
        return sp

    def _raw_search(
        self, q: np.ndarray, depth: int, ef: int, sel: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = F.faiss_module()
        if self.binary:
            self._index.hnsw.efSearch = ef
            codes = self._bin.query_codes(q)
            with F.threads_for(len(q)):
                dist, lab = self._index.search(codes, depth)
            s = F.hamming_to_score(dist, self._bin.width * 8)
            s[lab < 0] = -np.inf
            return s, lab
        if sel is None:
            s, lab = self._index.search(q, depth, params=self._params_for(ef))
        else:
            p = faiss.SearchParametersHNSW()
            p.efSearch = ef
            p.sel = sel
            s, lab = self._index.search(q, depth, params=p)
        s[lab < 0] = -np.inf
        return s, lab

    def _search_labels(
        self,
        q: np.ndarray,
        depth: int,
        mask: np.ndarray | None,
        selectivity: float,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, str]:
        ef = check_param("ef_search", params.get("ef_search", self.ef_search))
        ef = max(ef, depth)
        name = "hnsw-bin" if self.binary else "hnsw"
        if mask is None:
            s, lab = self._raw_search(q, depth, ef)
            return s, lab, name
        # a filter (or tombstones) narrows the graph walk: widen ef by 1/selectivity (bounded)
        ef_f = int(min(max(ef, ef / max(selectivity, 1e-9)), max(ef, 1024)))
        if self.binary:
            s, lab = F.postfilter(
                lambda qq, n: self._raw_search(qq, n, max(ef_f, n)),
                q,
                depth,
                mask,
                selectivity,
                cap=max(4096, depth),
            )
            self.fill_short_rows(q, s, lab, mask, depth)
            return s, lab, f"{name}+postfilter(ef={ef_f})"
        sel = self.selector_for(mask)
        s, lab = self._raw_search(q, depth, ef_f, sel.sel)
        self.fill_short_rows(q, s, lab, mask, depth)
        return s, lab, f"{name}+selector(ef={ef_f})"

    # -- persistence ------------------------------------------------------------
    def _save_structure(self, folder: Path) -> None:
        F.save_structure(self, folder, skip_storage=self._rows_file() is not None)

    def _load_structure(self, folder: Path) -> None:
        F.load_structure(self, folder, what="the graph")
        faiss = F.faiss_module()
        self._swig_ptr, self._by_ef = faiss.swig_ptr, {}
        self._codes_buf = self._storage_ref = self._rows_path = None
        if self.binary:
            return
        if self._index.storage is None:  # saved without its rows: they are vectors.npy
            self._attach_rows(folder / "vectors.npy")
        else:  # the walk reads codes at random: huge pages (docs/ann.md)
            self._codes_buf = F.codes_to_hugepages(faiss.downcast_index(self._index.storage))

    def _attach_rows(self, path: Path) -> None:
        """Give a graph read without its storage the float rows of ``path`` as its storage.

        The rows are read into huge-page memory (:func:`heron._memory.load_resident`) unless
        :func:`~heron.index.persist.load_index` already read them into memory (``mmap=False``);
        faiss reads them in place where it can, and copies them otherwise.
        """
        from heron._memory import load_resident

        faiss = F.faiss_module()
        parts = self._vec_parts
        mapped = bool(parts) and _file_backed(parts[0])
        rows = load_resident(path) if mapped or not parts else parts[0]
        n, d = int(self._index.ntotal), int(self._index.d)
        if rows.shape != (n, d) or rows.dtype != np.float32 or not rows.flags.c_contiguous:
            raise IndexMismatchError(
                f"index at {str(path.parent)!r}: the graph holds {n} x {d} vectors but "
                f"vectors.npy holds {rows.shape} {rows.dtype}; rebuild the index"
            )
        flat = faiss.IndexFlat(d, self._index.metric_type)
        if F.can_view_codes(flat):
            flat.ntotal = n
            F.view_codes(flat, rows.reshape(-1).view(np.uint8))
            self._codes_buf = rows
        else:  # pragma: no cover - faiss before 1.11: a copy faiss owns
            flat.add(rows)
        self._index.storage = flat
        self._index.own_fields = False  # this object owns it (and frees it after the graph)
        self._storage_ref = flat
        self._rows = rows if self._codes_buf is not None else None
        self._rows_path = path
        self._vec_parts = []


def _file_backed(a: np.ndarray) -> bool:
    """Whether ``a`` views a file mapping (``np.load(..., mmap_mode=...)``)."""
    x: Any = a
    while isinstance(x, np.ndarray):
        if isinstance(x, np.memmap):
            return True
        x = x.base
    return False
