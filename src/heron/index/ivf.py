"""Inverted-file indexes (IVF) over float, scalar-quantised, PQ or 1-bit codes (faiss).

Jégou, Douze & Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI 2011 (IVFADC);
Sivic & Zisserman, "Video Google", ICCV 2003 (the inverted file). Parameters keep the papers'
names:

* ``nlist`` — number of coarse k-means cells: more cells, shorter lists, but each probe covers
  less of the data (default ``4 * sqrt(n)``, at most ``n / 39`` so every cell trains);
* ``nprobe`` — cells scanned per query: the recall / latency knob at query time.

Lists store the codec's codes: ``fp32`` (``IndexIVFFlat``), ``fp16`` / ``int8`` / ``int4``
(``IndexIVFScalarQuantizer``), ``pq<m>`` (``IndexIVFPQ``) or ``bin`` — heron's 1-bit ITQ codes in
a Hamming inverted file (``IndexBinaryIVF``); compressed codes are re-scored from the float copy
(``oversample``). The coarse quantizer is trained once, on the vectors given to ``build``; as the
collection grows past them :func:`heron.index.drift.recall_drift` measures the loss and advises a
retrain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from heron.index import _faiss as F
from heron.index.base import AnnIndex, check_param
from heron.limits import first_stage_depth


class IVFIndex(AnnIndex):
    """Inverted file with a flat coarse quantizer (faiss).

    Parameters
    ----------
    nlist: number of cells (``None``: ``4 * sqrt(n)`` at build time).
    nprobe: default number of cells probed per query.
    codec: ``"fp32"``, ``"fp16"``, ``"int8"``, ``"int4"``, ``"pq<m>"`` or ``"bin"`` (Hamming IVF).
    oversample, exact_below: see :class:`~heron.index.base.AnnIndex`.
    """

    kind: ClassVar[str] = "ivf"
    codecs: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8", "int4", "pq<m>", "bin")

    def __init__(
        self,
        *,
        nlist: int | None = None,
        nprobe: int = 16,
        codec: str = "fp32",
        oversample: float | None = None,
        exact_below: float = 0.02,
    ) -> None:
        codec = codec.lower() if isinstance(codec, str) else codec
        if isinstance(codec, str) and codec == "bin-ham":
            codec = "bin"
        if not isinstance(codec, str) or not (F.valid_float_codec(codec) or F.is_binary(codec)):
            raise ValueError(
                f"index 'ivf' does not store codec {codec!r}; choose one of {list(self.codecs)}"
            )
        self.nlist = None if nlist is None else check_param("nlist", nlist)
        self.nprobe = check_param("nprobe", nprobe)
        self._index: Any = None
        self._bin: Any = None
        # nprobe -> faiss SearchParametersIVF: each call names its nprobe (no shared attribute
        # write that a concurrent search with another nprobe could overwrite before faiss reads it)
        self._by_nprobe: dict[int, Any] = {}
        self._swig_ptr: Any = None
        self._lists: Any = None  # heron's view of 8-bit lists (:meth:`_sq8_lists`); False: none
        super().__init__(codec=codec, oversample=oversample, exact_below=exact_below)

    @classmethod
    def _codec_names(cls) -> tuple[str, ...]:
        return ()

    def _params_for(self, nprobe: int, sel: Any = None) -> Any:
        """faiss search parameters naming ``nprobe`` (cached when there is no selector)."""
        if sel is None:
            hit = self._by_nprobe.get(nprobe)
            if hit is not None:
                return hit
        sp = F.faiss_module().SearchParametersIVF()
        sp.nprobe = nprobe
        if sel is not None:
            sp.sel = sel
            sp._keep = sel  # the C++ side holds a raw pointer
            return sp
        if len(self._by_nprobe) > 64:
            self._by_nprobe.clear()
        self._by_nprobe[nprobe] = sp
        return sp

    def params(self) -> dict[str, Any]:
        return {**super().params(), "nlist": self.nlist, "nprobe": self.nprobe}

    def search_params(self) -> tuple[str, ...]:
        return ("nprobe",)

    @property
    def binary(self) -> bool:
        return F.is_binary(self.codec)

    def _build(self, x: np.ndarray) -> None:
        faiss = F.faiss_module()
        n, d = x.shape
        auto = max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
        nlist = self.nlist or auto
        if nlist > n:
            raise ValueError(
                f"nlist={nlist} is larger than the {n} vectors to train on; use nlist <= {max(1, n // 39)}"
            )
        self.nlist = nlist
        rng = np.random.default_rng(0)
        cap = max(64 * nlist, 50_000)  # faiss asks for >= 39 per cell
        sample = x if n <= cap else x[np.sort(rng.choice(n, cap, replace=False))]
        if self.binary:
            self._bin = F.binary_codec(x)
            nbits = self._bin.width * 8
            self._index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(nbits), nbits, nlist)
            self._index.train(self._bin.encode(sample))
            return
        quant = faiss.IndexFlatIP(d)
        ip = faiss.METRIC_INNER_PRODUCT
        if self.codec == "fp32":
            idx = faiss.IndexIVFFlat(quant, d, nlist, ip)
        elif F.pq_m(self.codec):
            m = F.pq_m(self.codec)
            if d % m:
                raise ValueError(
                    f"codec {self.codec!r}: dimension {d} is not divisible by {m}; pick pq<m> with m dividing {d}"
                )
            idx = faiss.IndexIVFPQ(quant, d, nlist, m, 8, ip)
        else:
            idx = faiss.IndexIVFScalarQuantizer(
                quant, d, nlist, F.float_scalar_type(self.codec), ip
            )
        idx.cp.min_points_per_centroid = 1
        idx.train(sample)
        self._index = idx
        self._quant = quant
        self._by_nprobe, self._swig_ptr, self._lists = {}, faiss.swig_ptr, None

    def build(self, vectors: np.ndarray, keys: np.ndarray) -> IVFIndex:
        super().build(vectors, keys)
        self.meta["imbalance_at_build"] = self.imbalance()
        return self

    def imbalance(self) -> float:
        """List-size imbalance factor (``n * sum(len_i^2) / ntotal^2``; 1.0 = perfectly even).

        Growth into regions the coarse quantizer was not trained on piles vectors into a few
        cells and raises it; :func:`heron.index.drift.drift_report` compares it with the value
        at build time.
        """
        if self._index is None or self._index.ntotal == 0:
            return 1.0
        return float(self._index.invlists.imbalance_factor())

    def _add(self, x: np.ndarray) -> None:
        self._lists = None  # faiss may move the lists it grows
        self._index.add(self._bin.encode(x) if self.binary else x)

    def _sq8_lists(self) -> _SQ8Lists | None:
        """The inverted lists as heron's scan reads them, or ``None`` where it cannot.

        Built on the first search after a build, load or add: faiss' 8-bit residual lists
        (``IndexIVFScalarQuantizer``, ``QT_8bit``, inner product, lists in memory) with numba
        installed. Anything else (``fp16``, ``int4``, ``pq<m>``, ``bin``, an IVF index written
        by other settings) keeps faiss' own scan.
        """
        if self._lists is None:
            self._lists = (not self.binary and _SQ8Lists.of(self._index)) or False
        return self._lists or None

    def memory_bytes(self) -> int:
        if self._index is None:
            return 0
        n = self._index.ntotal
        code = self._index.code_size
        centroids = self.nlist * (self._bin.width if self.binary else (self.dim or 0) * 4)
        return int(n * (code + 8) + centroids + self.keys.nbytes + self.dead.nbytes)

    def _raw_search(
        self, q: np.ndarray, depth: int, nprobe: int, sel: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        nprobe = min(nprobe, self.nlist or nprobe)
        if self.binary:
            self._index.nprobe = nprobe
            codes = self._bin.query_codes(q)
            with F.threads_for(len(q)):
                dist, lab = self._index.search(codes, depth)
            s = F.hamming_to_score(dist, self._bin.width * 8)
        else:
            p = self._params_for(nprobe, sel)
            with F.threads_for(len(q)):
                s, lab = self._index.search(q, depth, params=p)
        s = np.asarray(s, dtype=np.float32)
        s[lab < 0] = -np.inf
        return s, lab

    def _search_fast(
        self, q: np.ndarray, k: int, params: dict[str, Any], oversample: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        if self.binary:
            return None
        nprobe = params.get("nprobe", self.nprobe) if params else self.nprobe
        if nprobe is not self.nprobe:
            nprobe = check_param("nprobe", nprobe)
        nprobe = min(nprobe, self.nlist or nprobe)
        depth = k if oversample <= 0 else first_stage_depth(k, oversample, len(self.keys))
        lists = self._sq8_lists()
        if lists is not None:
            s, lab = lists.search(q, nprobe, depth)
            return F.finish_direct(self, q, k, s, lab, oversample)
        sp = self._params_for(nprobe)
        return F.search_direct(self, q, k, depth, oversample, sp, one_thread=True)

    def _search_labels(
        self,
        q: np.ndarray,
        depth: int,
        mask: np.ndarray | None,
        selectivity: float,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, str]:
        nprobe = check_param("nprobe", params.get("nprobe", self.nprobe))
        name = "ivf-bin" if self.binary else "ivf"
        if mask is None:
            s, lab = self._raw_search(q, depth, nprobe)
            return s, lab, name
        if self.binary:
            s, lab = F.postfilter(
                lambda qq, n: self._raw_search(qq, n, nprobe),
                q,
                depth,
                mask,
                selectivity,
                cap=max(4096, depth),
            )
            strategy = f"{name}+postfilter"
        else:
            sel = self.selector_for(mask)
            s, lab = self._raw_search(q, depth, nprobe, sel.sel)
            strategy = f"{name}+selector"
        filled = self.fill_short_rows(q, s, lab, mask, depth)
        if filled:
            strategy += f"+exact-fallback({filled})"
        return s, lab, strategy

    def _save_structure(self, folder: Path) -> None:
        F.save_structure(self, folder)

    def _load_structure(self, folder: Path) -> None:
        F.load_structure(self, folder, what="the inverted file")
        self._by_nprobe, self._swig_ptr, self._lists = {}, F.faiss_module().swig_ptr, None


class _SQ8Lists:
    """faiss' 8-bit inverted lists read in place by heron's kernels (unfiltered searches).

    The coarse step scores the centroids on every numba thread (:func:`scan_topk`; faiss' own
    quantizer search of one query runs on one core), then :mod:`heron.index._ivf_sq8_numba`
    scans the probed lists at their faiss addresses. Same candidates as faiss' search (up to float
    rounding of the scores); 1M x 384, nlist 4,096, nprobe 4: 178 -> 102 µs per query (docs/ann.md).
    """

    __slots__ = ("centroids", "vmin", "vdiff", "code_addr", "id_addr", "sizes", "owner")

    @classmethod
    def of(cls, index: Any) -> _SQ8Lists | None:
        from heron._deps import has

        if index is None or not has("numba"):
            return None
        faiss = F.faiss_module()
        ivf = faiss.downcast_index(index)
        if not isinstance(ivf, faiss.IndexIVFScalarQuantizer):
            return None
        d = ivf.d
        trained = faiss.vector_to_array(ivf.sq.trained).astype(np.float32)
        lists = faiss.downcast_InvertedLists(ivf.invlists)
        if (
            ivf.sq.qtype != faiss.ScalarQuantizer.QT_8bit
            or ivf.code_size != d
            or len(trained) != 2 * d
            or not ivf.by_residual
            or ivf.metric_type != faiss.METRIC_INNER_PRODUCT
            or not isinstance(lists, faiss.ArrayInvertedLists)
        ):
            return None
        self = cls()
        self.owner = ivf  # the lists' memory belongs to it
        nlist = ivf.nlist
        self.centroids = np.ascontiguousarray(ivf.quantizer.reconstruct_n(0, nlist), np.float32)
        self.vmin = np.ascontiguousarray(trained[:d])
        self.vdiff = np.ascontiguousarray(trained[d:])
        self.sizes = np.array([lists.list_size(i) for i in range(nlist)], dtype=np.int64)
        self.code_addr = np.array([int(lists.get_codes(i)) for i in range(nlist)], dtype=np.int64)
        self.id_addr = np.array([int(lists.get_ids(i)) for i in range(nlist)], dtype=np.int64)
        return self

    def search(self, q: np.ndarray, nprobe: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, labels)`` ``(nq, depth)``, best first, padded with ``(-inf, -1)``."""
        from heron.index import _ivf_sq8_numba as kern
        from heron.retrieval.topk import SCAN_MAX_QUERIES, scan_topk

        if len(q) <= SCAN_MAX_QUERIES:
            coarse, probe = scan_topk(q, self.centroids, nprobe)
        else:  # faiss' quantizer search is the faster one for large batches (1,000 queries:
            # 20.6 ms against 29.5 ms for exact_search over 4,096 centroids)
            coarse, probe = self.owner.quantizer.search(q, nprobe)
        args = (self.vmin, self.vdiff)
        tail = (self.code_addr, self.id_addr, self.sizes, depth)
        if len(q) == 1:
            return kern.scan_lists_one(q[0], *args, coarse[0], probe[0], *tail)
        return kern.scan_lists(q, *args, coarse, probe, *tail)
