"""Small helpers shared by the faiss-backed indexes: import, selectors, file I/O."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron._deps import require

_FAISS: Any = None


def faiss_module() -> Any:
    global _FAISS
    if _FAISS is None:
        _FAISS = require("faiss", purpose="approximate indexes (ivf, hnsw)")
    return _FAISS


#: batches smaller than this run faiss on one OpenMP thread (see :func:`threads_for`)
SMALL_BATCH = 8


class threads_for:  # noqa: N801 (a context manager used like a function)
    """Run a faiss search of ``nq`` queries on one OpenMP thread when the batch is small.

    faiss opens an OpenMP parallel region per search call even for one query; the idle worker
    spins at the barrier, and on a loaded machine that cost dominates: a single-query
    ``IndexBinaryIVF`` search measured 117 ms with 2 threads and 0.02 ms with 1 (50k x 384,
    nlist 512, nprobe 16, 2-core box at load ~14). Small batches of the IVF and binary indexes
    therefore run single-threaded; large batches keep faiss' parallelism. Not used for the float
    HNSW graphs: faiss opens no parallel region for one query there, and switching the thread
    count costs the next parallel region a team resize (measured ~2x on single HNSW queries).
    """

    __slots__ = ("faiss", "prev", "small")

    def __init__(self, nq: int) -> None:
        self.small = nq < SMALL_BATCH
        self.faiss = faiss_module() if self.small else None
        self.prev = 0

    def __enter__(self) -> None:
        if self.small:
            self.prev = self.faiss.omp_get_max_threads()
            if self.prev != 1:
                self.faiss.omp_set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        if self.small and self.prev != 1:
            self.faiss.omp_set_num_threads(self.prev)


class BitmapSelector:
    """A faiss ``IDSelectorBitmap`` over labels that keeps its bitmap alive.

    faiss reads bit ``i & 7`` of byte ``i >> 3`` (little bit order), as ``np.packbits(...,
    bitorder="little")`` writes it.
    """

    def __init__(self, mask: np.ndarray) -> None:
        faiss = faiss_module()
        self.bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
        self.sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(self.bits))


def write(index: Any, path: Path, *, binary: bool = False, skip_storage: bool = False) -> None:
    """Write a faiss index to ``path`` (via a temporary file). faiss reports a failed write as a
    ``RuntimeError`` whose text carries the OS's reason; a full disk is re-raised as the
    ``OSError(ENOSPC)`` it is, so callers handle it like any other full-disk write."""
    faiss = faiss_module()
    tmp = path.with_name(path.name + ".tmp")
    try:
        if skip_storage:
            faiss.write_index(index, str(tmp), faiss.IO_FLAG_SKIP_STORAGE)
        else:
            (faiss.write_index_binary if binary else faiss.write_index)(index, str(tmp))
    except RuntimeError as exc:
        tmp.unlink(missing_ok=True)
        msg = str(exc)
        for code in (errno.ENOSPC, errno.EDQUOT):
            if os.strerror(code) in msg:
                raise OSError(code, f"{os.strerror(code)}: faiss could not write {path}") from exc
        raise
    tmp.replace(path)


def read(path: Path, *, binary: bool = False) -> Any:
    faiss = faiss_module()
    return (faiss.read_index_binary if binary else faiss.read_index)(str(path))


def can_view_codes(storage: Any) -> bool:
    """Whether ``storage`` (a faiss ``IndexFlatCodes``: flat, SQ or PQ) keeps its codes in a
    ``MaybeOwnedVector`` that can point at memory faiss does not own (faiss 1.11 and later)."""
    return hasattr(getattr(storage, "codes", None), "view_data")


def codes_array(storage: Any) -> np.ndarray:
    """The codes of ``storage`` as a ``(ntotal * code_size,)`` uint8 view (no copy)."""
    c = storage.codes
    n = int(c.size())
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    return faiss_module().rev_swig_ptr(c.data(), n)


def view_codes(storage: Any, buf: np.ndarray) -> None:
    """Point the codes of ``storage`` at ``buf`` (C-contiguous, exactly its codes' bytes) and free
    faiss' own copy. The caller keeps ``buf`` alive as long as ``storage`` reads it, and calls
    :func:`own_codes` before anything that resizes the codes (an ``add``): faiss aborts the
    process when a viewed vector is resized."""
    faiss = faiss_module()
    if not buf.flags.c_contiguous:
        raise ValueError("codes to view must be C-contiguous")
    c = storage.codes
    p = faiss.cast_integer_to_uint8_ptr(buf.ctypes.data)
    c.view_data, c.view_size = p, buf.nbytes
    c.c_ptr, c.c_size = p, buf.nbytes
    c.is_owned = False
    c.owned_data.swap(faiss.UInt8Vector())  # the swapped-out copy is freed with the temporary


def own_codes(storage: Any, reserve: int = 0) -> None:
    """Copy viewed codes back into memory faiss owns (and may grow); a no-op when it owns them.

    ``reserve`` extra bytes of capacity are set aside, so that adding that many bytes of codes
    next does not reallocate (and copy) the whole vector again."""
    faiss = faiss_module()
    c = storage.codes
    if c.is_owned:
        return
    n = int(c.size())
    owned = faiss.UInt8Vector()
    owned.resize(n + max(0, int(reserve)))  # shrinking keeps the capacity
    owned.resize(n)
    if n:
        faiss.rev_swig_ptr(owned.data(), n)[:] = faiss.rev_swig_ptr(c.data(), n)
    c.owned_data.swap(owned)
    c.is_owned = True
    c.c_ptr, c.c_size = c.owned_data.data(), n
    c.view_data, c.view_size = None, 0


def codes_to_hugepages(storage: Any) -> np.ndarray | None:
    """Move the codes of ``storage`` into anonymous memory advised for huge pages
    (:func:`heron._memory.hugepage_empty`) and return that buffer (keep it alive), or ``None``
    where faiss cannot view outside memory.

    A graph walk reads codes at random: in 4 KiB pages almost every read of a 1M-row graph misses
    the TLB, and in 2 MiB pages the walk measured 15-20 % faster at 1M (docs/ann.md).
    """
    from heron._memory import hugepage_empty

    if not can_view_codes(storage):
        return None
    src = codes_array(storage)
    buf = hugepage_empty(len(src))
    buf[:] = src
    view_codes(storage, buf)
    return buf


def float_scalar_type(codec: str) -> Any | None:
    """faiss ``ScalarQuantizer`` type for a heron float/int codec name (``None`` for fp32)."""
    faiss = faiss_module()
    return {
        "fp16": faiss.ScalarQuantizer.QT_fp16,
        "bf16": getattr(faiss.ScalarQuantizer, "QT_bf16", faiss.ScalarQuantizer.QT_fp16),
        "int8": faiss.ScalarQuantizer.QT_8bit,
        "int4": faiss.ScalarQuantizer.QT_4bit,
    }.get(codec)


def pq_m(codec: str) -> int | None:
    """Number of PQ sub-quantizers of a ``pq<M>`` codec name (``None`` otherwise)."""
    if codec.startswith("pq") and codec[2:].isdigit() and int(codec[2:]) > 0:
        return int(codec[2:])
    return None


def is_binary(codec: str) -> bool:
    return codec in ("bin", "bin-ham")


def valid_float_codec(codec: str) -> bool:
    return codec in ("fp32", "fp16", "bf16", "int8", "int4") or pq_m(codec) is not None


def binary_codec(x: np.ndarray) -> Any:
    """A heron 1-bit codec (centred, ITQ-rotated signs, Hamming scoring) fitted on ``x``."""
    from heron.codecs.spec import parse_spec

    return parse_spec("bin-ham").fit(x)


def hamming_to_score(dist: np.ndarray, nbits: int) -> np.ndarray:
    """Hamming distances to the dot product of the two sign vectors (``nbits - 2 * dist``)."""
    out = (nbits - 2 * np.asarray(dist, dtype=np.float32)).astype(np.float32)
    return out


def postfilter(
    search: Any, q: np.ndarray, depth: int, mask: np.ndarray, selectivity: float, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Oversample ``depth / selectivity`` candidates from ``search(q, n)`` and keep allowed ones.

    Used where the library has no in-search filter (binary indexes). Rows that end with fewer
    than ``depth`` allowed hits are padded; the caller falls back to exact for them.
    """
    n = int(min(cap, max(depth, np.ceil(depth / max(selectivity, 1e-9) * 1.5))))
    s, lab = search(q, n)
    ok = (lab >= 0) & mask[np.maximum(lab, 0)]
    out_s = np.full((len(q), depth), -np.inf, np.float32)
    out_l = np.full((len(q), depth), -1, np.int64)
    for i in range(len(q)):
        r = np.flatnonzero(ok[i])[:depth]
        out_s[i, : len(r)] = s[i, r]
        out_l[i, : len(r)] = lab[i, r]
    return out_s, out_l


def save_structure(idx: Any, folder: Path, *, skip_storage: bool = False) -> None:
    """Write a faiss-backed index's structure (and its 1-bit codec, for Hamming indexes);
    ``skip_storage`` writes an HNSW graph without its vectors (faiss' ``IO_FLAG_SKIP_STORAGE``)."""
    write(idx._index, folder / "faiss.index", binary=idx.binary, skip_storage=skip_storage)
    if idx.binary:
        idx._bin.save(folder / "codec")


def load_structure(idx: Any, folder: Path, *, what: str) -> None:
    """Read what :func:`save_structure` wrote; refuse a structure whose count disagrees."""
    from heron.index.base import IndexMismatchError

    idx._index = read(folder / "faiss.index", binary=idx.binary)
    if idx.binary:
        from heron.codecs.base import load_codec

        idx._bin = load_codec(folder / "codec", dim=idx.dim)
    if idx._index.ntotal != idx.ntotal:
        raise IndexMismatchError(
            f"index at {str(folder)!r}: {what} holds {idx._index.ntotal} vectors but the manifest says {idx.ntotal}; rebuild the index"
        )


def search_direct(
    idx: Any, q: np.ndarray, k: int, depth: int, oversample: float, sp: Any, *, one_thread: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The unfiltered hot path of a faiss-backed :class:`~heron.index.base.AnnIndex`.

    faiss' C entry point ``search_c`` with preallocated outputs and search parameters ``sp``
    (its Python wrapper re-validates what ``search()`` checked), ``depth`` candidates per query,
    then, when ``oversample > 0``, the candidates re-scored exactly from the float copy
    (:meth:`~heron.index.base.AnnIndex._rescore`): the same steps as the general path.
    ``one_thread`` runs small batches on one OpenMP thread (:class:`threads_for`).

    Returns ``(scores (nq, k), keys (nq, k), info)`` as ``AnnIndex.search`` does.
    """
    n = len(q)
    s = np.empty((n, depth), dtype=np.float32)
    lab = np.empty((n, depth), dtype=np.int64)
    ptr = idx._swig_ptr
    if one_thread:
        with threads_for(n):
            idx._index.search_c(n, ptr(q), depth, ptr(s), ptr(lab), sp)
    else:
        idx._index.search_c(n, ptr(q), depth, ptr(s), ptr(lab), sp)
    if (lab[0, -1] < 0) if n == 1 else (lab[:, -1].min() < 0):  # fewer than depth found
        s[lab < 0] = -np.inf
    return finish_direct(idx, q, k, s, lab, oversample)


def finish_direct(
    idx: Any, q: np.ndarray, k: int, s: np.ndarray, lab: np.ndarray, oversample: float,
    strategy: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The tail of :func:`search_direct` for first-stage hits ``(s, lab)`` (``(nq, depth)``,
    padded with ``(-inf, -1)``): re-score when ``oversample > 0``, keys, ``info``."""
    strategy = strategy or idx.kind
    if oversample > 0:
        s, lab = idx._rescore(q, lab, k)
        strategy = f"{strategy}+rescore(x{oversample:g})"
    info = {
        "index": idx.kind,
        "codec": idx.codec,
        "matching": len(idx.keys),
        "selectivity": 1.0,
        "strategy": strategy,
    }
    return s, idx.keys_of_labels(lab), info
