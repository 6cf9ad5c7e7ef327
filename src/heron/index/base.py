"""The contract every approximate (and exact) index of heron follows.

An index maps document *keys* (the collection's never-reused ``int64`` keys) to vectors and
answers top-k inner-product queries. Internally each vector gets a *label* (its insertion
position, ``0..n-1``); the library structure (faiss) only ever sees labels, heron maps them back
to keys, so deleting is a tombstone on the label and a compaction rebuilds with fresh labels.

Every index keeps a *rescoring copy* of the float vectors (``vectors.npy``, memory-mapped, rows
aligned with labels; or, where the structure stores exact float32 rows itself, a view of them:
:meth:`AnnIndex._structure_rows`) so that compressed first stages are re-scored exactly (the oversample +
rescore recipe of :mod:`heron.codecs.search`) and restrictive filters are answered by an exact
scan over the matching rows.

Persistence: a folder with ``index.json`` (format, version, kind, parameters, codec spec, count,
dimension, model, collection generation), ``keys.npy``, ``dead.npy`` and the library's own file;
:func:`read_manifest` checks the version and :func:`check_compatible` refuses an index whose
count, dimension, codec or model does not match what the caller expects (both in
:mod:`.persist`; the input checks are in :mod:`.validate`; every name is importable from here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from heron.index.persist import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    IndexMismatchError,
    check_compatible,
    load_index,
    read_manifest,
    write_index,
)
from heron.index.validate import as_keys, as_vectors, check_param
from heron.limits import check_number, check_oversample, first_stage_depth
from heron.retrieval.rescore import rescore_topk
from heron.retrieval.topk import merge_topk, topk_rows

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "AnnIndex",
    "IndexMismatchError",
    "as_keys",
    "as_vectors",
    "check_compatible",
    "check_param",
    "load_index",
    "merge_topk",
    "read_manifest",
    "topk_rows",
]

_F32 = np.dtype(np.float32)


class AnnIndex:
    """Base class: labels, keys, tombstones, the rescoring copy, persistence.

    Subclasses set :attr:`kind` and implement ``_build``, ``_add``, ``_search_labels`` and
    ``_save_structure`` / ``_load_structure``.

    Parameters
    ----------
    codec:
        Codec spec of the stored codes (``"fp32"``, ``"fp16"``, ``"int8"``, ``"int4"``,
        ``"pq<M>"``, ``"bin"`` ...; see :mod:`heron.codecs.spec`).
    oversample:
        Default rescoring factor: ``ceil(oversample * k)`` candidates are re-scored exactly from
        the float copy (``0`` returns the compressed scores as they are).
    exact_below:
        Selectivity (fraction of the index's vectors matching a filter) under which a filtered
        search scans the matching rows exactly instead of walking the index.
    """

    kind: ClassVar[str] = "base"
    #: codecs this index type stores natively (others raise with the list)
    codecs: ClassVar[tuple[str, ...]] = ("fp32",)

    def __init__(
        self, *, codec: str = "fp32", oversample: float | None = None, exact_below: float = 0.02
    ) -> None:
        names = self._codec_names()
        if not isinstance(codec, str) or (names and codec.lower() not in names):
            raise ValueError(
                f"index {self.kind!r} does not store codec {codec!r}; choose one of {list(self.codecs)}"
            )
        self.codec = codec.lower()
        if oversample is None:
            oversample = 0.0 if self.codec == "fp32" else 4.0
        self.oversample = check_oversample(oversample)
        self.exact_below = check_number(exact_below, "exact_below (a fraction)", low=0, high=1)
        self.dim: int | None = None
        self.keys = np.zeros(0, dtype=np.int64)  # label -> key
        self.dead = np.zeros(0, dtype=bool)  # tombstones by label
        self._vec_parts: list[np.ndarray] = []  # rescoring copy, rows aligned with labels
        self._rows: np.ndarray | None = None  # view of the structure's own float rows (cached)
        self._order: tuple[np.ndarray, np.ndarray] | None = None
        self.meta: dict[str, Any] = {}
        # hot-path cache: (keys array, dead array, n_dead) -> live mask and its faiss selector,
        # recomputed only when tombstones or labels change (not on every query)
        self._live: tuple[Any, ...] | None = None
        self._keys_ext: np.ndarray | None = None

    @classmethod
    def _codec_names(cls) -> tuple[str, ...]:
        return tuple(cls.codecs)

    # ------------------------------------------------------------------ params
    def params(self) -> dict[str, Any]:
        """Constructor parameters (persisted in the manifest)."""
        return {"codec": self.codec, "oversample": self.oversample, "exact_below": self.exact_below}

    # ------------------------------------------------------------------ sizes
    @property
    def ntotal(self) -> int:
        """Labels ever added (live + tombstoned)."""
        return int(len(self.keys))

    def __len__(self) -> int:
        return int(self.ntotal - self.dead.sum())

    @property
    def n_dead(self) -> int:
        if self._live is not None:  # counted once per mutation, not per search
            return int(self.ntotal - self._live[2])
        return int(self.dead.sum())

    def memory_bytes(self) -> int:
        """Bytes of the in-memory search structure (excludes the memory-mapped float copy)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ mutations
    def build(self, vectors: np.ndarray, keys: np.ndarray) -> AnnIndex:
        """Train (where the structure learns anything) and add ``vectors`` ``(n, d)`` under ``keys`` ``(n,)``."""
        x = as_vectors(vectors)
        k = as_keys(keys, len(x))
        if len(x) == 0:
            raise ValueError("cannot build an index over 0 vectors; add documents first")
        self.dim = int(x.shape[1])
        self.keys = np.zeros(0, dtype=np.int64)
        self.dead = np.zeros(0, dtype=bool)
        self._vec_parts = []
        self._build(x)
        self.meta["trained_on"] = int(len(x))
        self._append(x, k)
        return self

    def add(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        """Add vectors incrementally (no retraining); a key already live raises."""
        if self.dim is None:
            raise ValueError("the index is not built; call build(vectors, keys) first")
        x = as_vectors(vectors, dim=self.dim)
        k = as_keys(keys, len(x))
        if len(k) and self.contains(k).any():
            raise ValueError(
                "some keys are already in the index; remove them first (upsert = remove + add)"
            )
        if len(x):
            self._append(x, k)

    def _append(self, x: np.ndarray, k: np.ndarray) -> None:
        self._add(x)
        self.keys = np.concatenate([self.keys, k])
        self.dead = np.concatenate([self.dead, np.zeros(len(k), dtype=bool)])
        self._rows = None  # the structure may have moved its rows
        if self._structure_rows() is None:
            self._vec_parts.append(x)
        self._order = None
        self._live = None
        self._keys_ext = None

    def remove(self, keys: np.ndarray) -> int:
        """Tombstone ``keys``; returns how many live vectors were removed (unknown keys ignored)."""
        labels = self.labels_of(np.asarray(keys, dtype=np.int64))
        labels = labels[labels >= 0]
        labels = labels[~self.dead[labels]]
        if len(labels):
            self.dead[labels] = True
            self._live = None
        return int(len(labels))

    def upsert(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        """Replace (or insert) the vectors of ``keys``: tombstone the old label, add a new one."""
        self.remove(keys)
        self.add(vectors, keys)

    # ------------------------------------------------------------------ lookups
    def labels_of(self, keys: np.ndarray) -> np.ndarray:
        """Live-or-dead label of each key (the newest one), ``-1`` where absent."""
        if self._order is None:
            # newest label wins for a key re-added after removal: stable sort on (key, -label)
            order = np.lexsort((-np.arange(self.ntotal), self.keys))
            sk = self.keys[order]
            first = np.ones(len(sk), dtype=bool)
            first[1:] = sk[1:] != sk[:-1]
            self._order = (order[first], sk[first])
        order, sk = self._order
        keys = np.asarray(keys, dtype=np.int64)
        if not len(sk):
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(sk, keys), 0, len(sk) - 1)
        return np.where(sk[pos] == keys, order[pos], -1).astype(np.int64)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Whether each key is live in the index."""
        lab = self.labels_of(keys)
        return (
            (lab >= 0) & ~self.dead[np.maximum(lab, 0)] if self.ntotal else np.zeros(len(lab), bool)
        )

    def live_keys(self) -> np.ndarray:
        return self.keys[~self.dead]

    def _structure_rows(self) -> np.ndarray | None:
        """``(ntotal, d)`` float32 view of the exact vectors the structure itself stores (a float32
        graph's storage), or ``None``: then the index keeps a separate rescoring copy.

        Where the structure holds them, they are not written twice (no ``vectors.npy``) and the
        rescoring copy is this view. Subclasses that can return one cache it in ``self._rows``
        (cleared whenever vectors are added, since the structure may reallocate)."""
        return None

    def _rows_file(self) -> Path | None:
        """A heron-managed ``.npy`` file (a collection segment's ``dense.npy``, or the
        ``vectors.npy`` this index was opened from) that holds exactly the structure's float rows,
        or ``None``. When given, :func:`~heron.index.persist.write_index` links ``vectors.npy`` to
        it and the structure is saved without its own copy of the rows."""
        return None

    def rescoring_parts(self) -> list[np.ndarray]:
        """The rescoring copy as row blocks aligned with labels (one block once loaded)."""
        rows = self._structure_rows()
        return [rows] if rows is not None else self._vec_parts

    def vectors_of(self, labels: np.ndarray) -> np.ndarray:
        """Float rows of the rescoring copy for ``labels`` (any shape of non-negative ints)."""
        labels = np.asarray(labels, dtype=np.int64)
        parts = self.rescoring_parts()
        if len(parts) == 1:
            return np.asarray(parts[0][labels.ravel()], dtype=np.float32).reshape(
                *labels.shape, -1
            )
        ends = np.cumsum([len(p) for p in parts])
        flat = labels.ravel()
        out = np.empty((len(flat), self.dim or 0), dtype=np.float32)
        part = np.searchsorted(ends, flat, side="right")
        starts = ends - np.array([len(p) for p in parts])
        for pi in np.unique(part):
            sel = part == pi
            out[sel] = parts[pi][flat[sel] - starts[pi]]
        return out.reshape(*labels.shape, -1)

    # ------------------------------------------------------------------ search
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Top ``k`` keys per query by inner product.

        Parameters
        ----------
        queries: ``(nq, d)`` float32.
        k: hits per query.
        allowed: optional int64 keys a filter matched; only those (and only live ones) come back.
        params: search-time parameters (``nprobe`` / ``ef_search`` / ``oversample`` / ``exact_below``).

        Returns
        -------
        ``(scores (nq, k) float32, keys (nq, k) int64, info)`` sorted descending, padded
        ``-inf`` / ``-1``; ``info["strategy"]`` names how the search ran.
        """
        if type(k) is not int or k < 1:
            from heron.results import check_k

            k = int(check_k(k))
        dim = self.dim
        if dim is None:
            raise ValueError("the index is not built; call build(vectors, keys) first")
        q = queries
        if not (  # fast path: already (nq, d) C-contiguous float32 (no copy, no re-validation)
            type(q) is np.ndarray
            and q.dtype is _F32
            and q.ndim == 2
            and q.shape[1] == dim
            and q.flags.c_contiguous
        ):
            q = as_vectors(queries, dim=dim, what="queries")
        oversample, exact_below = self.oversample, self.exact_below
        if params:
            if "oversample" in params or "exact_below" in params:
                params = dict(params)
                oversample = check_oversample(params.pop("oversample", oversample))
                exact_below = check_number(
                    params.pop("exact_below", exact_below),
                    "exact_below (a fraction)",
                    low=0,
                    high=1,
                )
            self._check_search_params(params)
        else:
            params = {}
        mask: np.ndarray | None = None
        if allowed is not None:
            lab = self.labels_of(np.asarray(allowed, dtype=np.int64))
            mask = np.zeros(self.ntotal, dtype=bool)
            mask[lab[lab >= 0]] = True
            mask &= ~self.dead
        else:
            mask = self.live_mask()
            if mask is None:
                fast = self._search_fast(q, k, params, oversample)
                if fast is not None:  # plain top-k: one library call (+ rescoring), one key lookup
                    return fast
        n_ok = (
            self.ntotal
            if mask is None
            else (self._live[2] if mask is self._live_mask_cached() else int(mask.sum()))
        )
        info: dict[str, Any] = {"index": self.kind, "codec": self.codec, "matching": n_ok}
        if n_ok == 0:
            info["strategy"] = "empty"
            return (
                np.full((len(q), k), -np.inf, np.float32),
                np.full((len(q), k), -1, np.int64),
                info,
            )
        selectivity = n_ok / max(self.ntotal, 1)
        info["selectivity"] = round(selectivity, 6)
        if mask is not None and (
            allowed is not None and (selectivity < exact_below or n_ok <= 4 * k)
        ):
            info["strategy"] = "exact-over-matching"
            s, lab = self._exact(q, np.flatnonzero(mask), k)
        else:
            depth = first_stage_depth(k, oversample, n_ok)
            s, lab, strategy = self._search_labels(q, depth, mask, selectivity, params)
            info["strategy"] = strategy + (f"+rescore(x{oversample:g})" if oversample > 0 else "")
            if oversample > 0:
                s, lab = self._rescore(q, lab, k)
            else:
                s, lab = s[:, :k], lab[:, :k]
            if s.shape[1] < k:
                s = np.concatenate(
                    [s, np.full((len(q), k - s.shape[1]), -np.inf, np.float32)], axis=1
                )
                lab = np.concatenate(
                    [lab, np.full((len(q), k - lab.shape[1]), -1, np.int64)], axis=1
                )
        return s.astype(np.float32, copy=False), self.keys_of_labels(lab), info

    def _search_fast(
        self, q: np.ndarray, k: int, params: dict[str, Any], oversample: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        """Hot path for an unfiltered search with no tombstones (``None``: no fast path).

        ``oversample`` > 0 asks for ``ceil(oversample * k)`` candidates re-scored exactly
        (:meth:`_rescore`); an index without a fast path for that returns ``None``.
        """
        return None

    def keys_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """Keys of ``labels`` (``-1`` stays ``-1``) in one gather: the key table ends with ``-1``."""
        ext = self._keys_ext
        if ext is None or len(ext) != len(self.keys) + 1:
            ext = self._keys_ext = np.append(self.keys, np.int64(-1))
        return ext[labels]

    def live_mask(self) -> np.ndarray | None:
        """``~dead`` by label, or ``None`` when nothing is tombstoned (cached until a mutation)."""
        if self._live is None:
            n_dead = int(self.dead.sum())
            mask = None if n_dead == 0 else ~self.dead
            self._live = (mask, None, self.ntotal - n_dead)
        return self._live[0]

    def _live_mask_cached(self) -> np.ndarray | None:
        return None if self._live is None else self._live[0]

    def selector_for(self, mask: np.ndarray) -> Any:
        """A faiss bitmap selector for ``mask`` (cached for the live mask)."""
        from heron.index._faiss import BitmapSelector

        live = self._live
        if live is not None and mask is live[0]:
            if live[1] is None:
                self._live = (live[0], BitmapSelector(mask), live[2])
            return self._live[1]
        return BitmapSelector(mask)

    def _check_search_params(self, params: dict[str, Any]) -> None:
        allowed = self.search_params()
        for name in params:
            if name not in allowed and name not in ("oversample", "exact_below"):
                raise ValueError(
                    f"unknown search parameter {name!r} for index {self.kind!r}; valid: {sorted(allowed) + ['oversample', 'exact_below']}"
                )

    def search_params(self) -> tuple[str, ...]:
        return ()

    def fill_short_rows(
        self, q: np.ndarray, s: np.ndarray, lab: np.ndarray, mask: np.ndarray, depth: int
    ) -> int:
        """Answer exactly, in place, the rows with fewer than ``depth`` hits while more match.

        Returns the number of rows filled (so ``k`` comes back whenever ``k`` documents match).
        """
        counts = (lab >= 0).sum(axis=1)
        if counts.min() >= depth:  # the common case: no O(n) mask count per query
            return 0
        want = min(depth, int(mask.sum()))
        short = np.flatnonzero(counts < want)
        if len(short):
            es, el = self._exact(q[short], np.flatnonzero(mask), depth)
            s[short], lab[short] = es, el
        return int(len(short))

    def _exact(self, q: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scan over ``labels`` from the float copy (blocked)."""
        best_s = np.full((len(q), 0), -np.inf, np.float32)
        best_l = np.full((len(q), 0), -1, np.int64)
        for s0 in range(0, len(labels), 65536):
            lab = labels[s0 : s0 + 65536]
            sc = q @ self.vectors_of(lab).T
            ts, tc = topk_rows(sc, k)
            tl = np.where(tc >= 0, lab[np.maximum(tc, 0)], -1)
            best_s, best_l = merge_topk(
                np.concatenate([best_s, ts], 1), np.concatenate([best_l, tl], 1), k
            )
        if best_s.shape[1] < k:  # no labels at all
            best_s, best_l = merge_topk(best_s, best_l, k)
        return best_s, best_l

    def _rescore(self, q: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of each query with its candidate labels; top ``k``."""
        parts = self.rescoring_parts()
        if len(parts) == 1:  # read in place, rows prefetched ahead (no gathered copy)
            return rescore_topk(q, parts[0], labels, k)
        vec = self.vectors_of(np.maximum(labels, 0))  # (nq, K, d): K rows gathered per query
        if len(q) == 1:
            sc = (vec[0] @ q[0])[None, :]
        else:  # one small gemv per query (no einsum plan)
            sc = np.matmul(vec, q[:, :, None])[:, :, 0]
        if sc.dtype != np.float32:
            sc = sc.astype(np.float32)
        if (labels < 0).any():  # fewer than K found: padding never wins
            sc[labels < 0] = -np.inf
        return merge_topk(sc, labels, k)

    def _search_labels(
        self,
        q: np.ndarray,
        depth: int,
        mask: np.ndarray | None,
        selectivity: float,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, str]:
        raise NotImplementedError

    def _build(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def _add(self, x: np.ndarray) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ persistence
    def save(
        self, folder: str | os.PathLike, *, generation: int | None = None, model: str | None = None
    ) -> Path:
        """Write the index to ``folder`` (arrays, the library's file, ``index.json`` last)."""
        return write_index(self, folder, generation=generation, model=model)

    def _save_structure(self, folder: Path) -> None:
        raise NotImplementedError

    def _load_structure(self, folder: Path) -> None:
        raise NotImplementedError
