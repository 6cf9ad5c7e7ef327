"""ANN indexes inside a collection: ``coll.search(q, k, retriever="hnsw", filter={...})``.

Registers the retrievers ``flat``, ``ivf`` and ``hnsw``. An index lives in
``coll.index_dir(name)`` as versioned sub-folders and a ``CURRENT`` file naming the live one;
a new version (build, update, compaction) is written to a fresh folder and switched to with an
atomic rename of ``CURRENT``, so a crash at any point leaves the previous index usable.

Live updates: the index records the collection generation it was built at. A search at a later
generation tombstones keys deleted since (in memory) and scans documents added since *exactly*
(merged with the index's hits), so a deleted id never comes back and an upserted id returns its
new vector. :func:`update_index` folds the additions into the index incrementally (no retrain)
and persists the tombstones; :func:`compact_index` rebuilds from live vectors (reclaims space,
retrains IVF/PQ).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from heron.capabilities.registry import register_retriever
from heron.index import INDEX_TYPES, AnnIndex, IndexMismatchError, load_index, make_index
from heron.index.base import read_manifest, topk_rows
from heron.pipeline import Queries, Stage
from heron.results import Results, check_k

CURRENT = "CURRENT"
#: parameters fixed at build time (a saved index with other values is rebuilt or refused)
BUILD_PARAMS = {
    "flat": ("codec",),
    "ivf": ("codec", "nlist"),
    "hnsw": ("codec", "M", "ef_construction"),
}
SEARCH_PARAMS = {"flat": (), "ivf": ("nprobe",), "hnsw": ("ef_search",)}


def index_name(kind: str, codec: str = "fp32") -> str:
    """Default folder name of an index: ``hnsw``, ``ivf-int8``, ``flat-bin`` ..."""
    return kind if codec == "fp32" else f"{kind}-{codec}"


def current_folder(coll: Any, name: str) -> Path | None:
    """The live version folder of index ``name`` (``None`` when never built)."""
    root = coll.index_dir(name)
    ptr = root / CURRENT
    if not ptr.is_file():
        return None
    folder = root / ptr.read_text().strip()
    return folder if folder.is_dir() else None


def _publish(coll: Any, name: str, idx: AnnIndex, generation: int) -> Path:
    """Write ``idx`` as a new version and switch ``CURRENT`` to it atomically; drop old versions."""
    root = coll.index_dir(name)
    old = current_folder(coll, name)
    ver = f"v{generation:08d}-{os.getpid()}-{time.time_ns() % 10**9}"
    tmp = root / f".tmp-{ver}"
    idx.save(tmp, generation=generation, model=coll.model)
    os.replace(tmp, root / ver)
    ptr_tmp = root / f".{CURRENT}.tmp{os.getpid()}"
    ptr_tmp.write_text(ver)
    os.replace(ptr_tmp, root / CURRENT)  # the commit point
    for p in root.iterdir():  # versions no reader is pointed at any more; stale temp folders
        if p.is_dir() and p.name != ver and (p == old or p.name.startswith(".tmp-")):
            shutil.rmtree(p, ignore_errors=True)
    return root / ver


def build_index(
    coll: Any, kind: str = "hnsw", *, name: str | None = None, **params: Any
) -> AnnIndex:
    """Build index ``kind`` over the collection's live dense vectors and publish it."""
    idx = make_index(kind, **params)
    snap = coll.snapshot()
    if len(snap) == 0:
        raise ValueError("the collection is empty; add documents before building an index")
    idx.build(np.asarray(snap.dense()), snap.keys)
    _publish(coll, name or index_name(kind, idx.codec), idx, snap.generation)
    idx.meta["generation"] = snap.generation
    return idx


def open_index(
    coll: Any, name: str, *, kind: str | None = None, expect: dict[str, Any] | None = None
) -> AnnIndex | None:
    """Load the live version of index ``name``; ``None`` when absent.

    Raises :class:`~heron.index.IndexMismatchError` when it does not match the collection
    (dimension, model, a generation from the future) or ``expect``-ed build parameters.
    """
    folder = current_folder(coll, name)
    if folder is None:
        return None
    manifest = read_manifest(folder)
    idx = load_index(
        folder, dim=coll.dim, model=coll.model, kind=kind, max_generation=coll.generation
    )
    for p, want in (expect or {}).items():
        have = manifest["params"].get(p)
        if want is not None and have != want:
            raise IndexMismatchError(
                f"index {name!r} was built with {p}={have!r}, not {want!r}; rebuild it (build='auto' does)"
            )
    idx.meta["generation"] = manifest.get("generation")
    return idx


def _delta(idx: AnnIndex, snap: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(stale_keys, new_keys, new_vectors)``: index keys deleted since, live keys not in the index."""
    live = idx.live_keys()
    stale = live[~np.isin(live, snap.keys)]
    new_k, new_v = [], []
    for sv in snap.segments:
        seg_keys = sv.keys
        if not sv.live.any():
            continue
        rows = np.flatnonzero(sv.live)
        rows = rows[~idx.contains(seg_keys[rows])]
        if len(rows):
            new_k.append(seg_keys[rows])
            new_v.append(np.asarray(sv.segment.dense("dense")[rows], dtype=np.float32))
    if new_k:
        return stale, np.concatenate(new_k), np.concatenate(new_v)
    return stale, np.zeros(0, np.int64), np.zeros((0, idx.dim or 0), np.float32)


def update_index(coll: Any, name: str) -> dict[str, int]:
    """Fold documents added/deleted since the index's generation into it (no rebuild) and publish."""
    idx = open_index(coll, name)
    if idx is None:
        raise ValueError(
            f"index {name!r} does not exist; build it first (build_index or a search with build='auto')"
        )
    snap = coll.snapshot()
    stale, new_k, new_v = _delta(idx, snap)
    idx.remove(stale)
    if len(new_k):
        idx.add(new_v, new_k)
    _publish(coll, name, idx, snap.generation)
    return {
        "added": int(len(new_k)),
        "tombstoned": int(len(stale)),
        "dead_total": idx.n_dead,
        "generation": snap.generation,
    }


def compact_index(coll: Any, name: str, **params: Any) -> dict[str, Any]:
    """Rebuild index ``name`` from the live vectors (reclaims tombstones, retrains IVF/PQ).

    The new index is written to a new folder and published atomically; until then, and if the
    process dies, the previous version keeps serving.
    """
    folder = current_folder(coll, name)
    if folder is None:
        raise ValueError(f"index {name!r} does not exist; build it first")
    manifest = read_manifest(folder)
    before = {"count": manifest["count"], "live": manifest["live"]}
    p = {**manifest["params"], **params}
    idx = build_index(coll, manifest["kind"], name=name, **p)
    return {"before": before, "after": {"count": idx.ntotal, "live": len(idx)}}


class AnnRetriever(Stage):
    """A collection retriever over an ANN index (``flat`` / ``ivf`` / ``hnsw``).

    Parameters
    ----------
    collection: the :class:`~heron.Collection`.
    kind: ``"flat"``, ``"ivf"`` or ``"hnsw"``.
    filter: metadata filter (see :mod:`heron.index.filters`); ``k`` hits come back whenever ``k``
        documents match.
    build: ``"auto"`` builds (or rebuilds a mismatching) index on first use; ``"never"`` refuses.
    name: index folder name (default ``index_name(kind, codec)``).
    depth: hits returned when not cut by ``% k``.
    **params: index parameters named as the papers do (``M``, ``ef_construction``, ``ef_search``,
        ``nlist``, ``nprobe``, ``codec``, ``oversample``, ``exact_below``).
    """

    def __init__(
        self,
        collection: Any,
        *,
        kind: str,
        filter: dict | None = None,
        build: str = "auto",
        name: str | None = None,
        depth: int = 1000,
        **params: Any,
    ) -> None:
        if kind not in INDEX_TYPES:
            raise ValueError(f"unknown index type {kind!r}; choose one of {sorted(INDEX_TYPES)}")
        if build not in ("auto", "never"):
            raise ValueError(f"build must be 'auto' or 'never', got {build!r}")
        valid = set(BUILD_PARAMS[kind]) | set(SEARCH_PARAMS[kind]) | {"oversample", "exact_below"}
        bad = sorted(set(params) - valid)
        if bad:
            raise ValueError(
                f"unknown parameter(s) {bad} for retriever {kind!r}; valid: {sorted(valid)}"
            )
        if filter is not None:
            from heron.index.filters import compile_filter

            compile_filter(filter)  # validate early
        self.collection, self.kind, self.filter, self.build = collection, kind, filter, build
        self.params = params
        codec = str(params.get("codec", "fp32")).lower()
        self.index_name = name or index_name(kind, codec)
        self.depth = check_k(depth)
        self.name = kind
        self._idx: AnnIndex | None = None
        self._idx_folder: Path | None = None
        self._gen: int | None = None
        self._delta: tuple[np.ndarray, np.ndarray] | None = None

    def with_depth(self, k: int) -> AnnRetriever:
        r = AnnRetriever(
            self.collection,
            kind=self.kind,
            filter=self.filter,
            build=self.build,
            name=self.index_name,
            depth=k,
            **self.params,
        )
        r._idx, r._idx_folder, r._gen, r._delta = (
            self._idx,
            self._idx_folder,
            self._gen,
            self._delta,
        )
        return r

    def index(self) -> AnnIndex:
        """The loaded index (built or rebuilt here when missing/mismatching and ``build='auto'``)."""
        folder = current_folder(self.collection, self.index_name)
        if self._idx is not None and folder == self._idx_folder:
            return self._idx
        build_p = {p: self.params[p] for p in BUILD_PARAMS[self.kind] if p in self.params}
        try:
            idx = open_index(self.collection, self.index_name, kind=self.kind, expect=build_p)
        except IndexMismatchError:
            if self.build == "never":
                raise
            idx = None
        if idx is None:
            if self.build == "never":
                raise ValueError(
                    f"index {self.index_name!r} does not exist; build it (heron.capabilities.ann.build_index) or pass build='auto'"
                )
            extra = {p: self.params[p] for p in ("oversample", "exact_below") if p in self.params}
            build_index(self.collection, self.kind, name=self.index_name, **build_p, **extra)
            folder = current_folder(self.collection, self.index_name)
            idx = open_index(self.collection, self.index_name, kind=self.kind)
        self._idx, self._idx_folder, self._gen, self._delta = idx, folder, None, None
        return idx

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        from heron.capabilities.dense import query_vectors, rescore_exact

        q = query_vectors(self.collection, queries)
        snap = self.collection.snapshot()
        if candidates is not None:
            return rescore_exact(snap, q, candidates)
        idx = self.index()
        if self._gen != snap.generation:
            stale, new_k, new_v = _delta(idx, snap)
            idx.remove(stale)  # in-memory tombstones for deletions since the index's generation
            self._delta, self._gen = (new_k, new_v), snap.generation
        new_k, new_v = self._delta
        k = self.depth
        allowed = None
        if self.filter is not None:
            from heron.index.filters import matching_keys

            allowed = matching_keys(self.collection, self.filter)
        sp = {
            p: self.params[p]
            for p in (*SEARCH_PARAMS[self.kind], "oversample", "exact_below")
            if p in self.params
        }
        scores, keys, info = idx.search(q, k, allowed=allowed, params=sp)
        if len(new_k):
            sel = np.ones(len(new_k), bool) if allowed is None else np.isin(new_k, allowed)
            if sel.any():
                dk, dv = new_k[sel], new_v[sel]
                ds, dc = topk_rows(q @ dv.T, k)
                dkeys = np.where(dc >= 0, dk[np.maximum(dc, 0)], -1)
                cs, ck = np.concatenate([scores, ds], 1), np.concatenate([keys, dkeys], 1)
                scores, cols = topk_rows(cs, k)
                keys = np.where(cols >= 0, np.take_along_axis(ck, np.maximum(cols, 0), 1), -1)
                info["strategy"] += f"+delta-exact({int(sel.sum())})"
        info.update(
            {
                "retriever": self.kind,
                "generation": snap.generation,
                "index_generation": idx.meta.get("generation"),
                "delta": int(len(new_k)),
                "tombstones": idx.n_dead,
            }
        )
        if self.filter is not None:
            info["filter_matches"] = int(len(allowed))
        return Results(keys, scores, self.collection.resolver(), info)


def write_index_config(collection: Any, config: dict, **extra: Any) -> dict:
    """Validate ``config`` and store it as the collection's ``"index"`` section; returns it.

    ``config`` = ``{"kind": "hnsw", "codec": "fp32", "M": 16, "ef_search": 64, ...}`` (what
    ``heron recommend --indexes --write`` picks). The ``ann`` retriever then searches with it:
    ``coll.search(q, 10, retriever="ann")``. Nothing is built here; the first search builds.
    """
    if isinstance(collection, (str, os.PathLike)):
        from heron.collection import Collection

        collection = Collection.open(collection)
    if not isinstance(config, dict) or config.get("kind") not in INDEX_TYPES:
        raise ValueError(
            f"index configuration needs 'kind' in {sorted(INDEX_TYPES)}, got {config!r}"
        )
    kind = config["kind"]
    params = {p: v for p, v in config.items() if p != "kind"}
    valid = set(BUILD_PARAMS[kind]) | set(SEARCH_PARAMS[kind]) | {"oversample", "exact_below"}
    bad = sorted(set(params) - valid)
    if bad:
        raise ValueError(f"unknown parameter(s) {bad} for index {kind!r}; valid: {sorted(valid)}")
    make_index(kind, **params)  # validates codec and values without building
    value = {"kind": kind, **params, **extra}
    collection.set_config("index", value)
    return value


def configured_retriever(collection: Any, **overrides: Any) -> AnnRetriever:
    """The ``ann`` retriever: the index the collection's ``"index"`` configuration names."""
    cfg = dict(collection.config.get("index") or {})
    if not cfg:
        raise ValueError(
            "this collection has no index configuration; run `heron recommend DATASET --indexes "
            "--write COLLECTION` or heron.capabilities.ann.write_index_config, or use "
            "retriever='hnsw' / 'ivf' / 'flat' with explicit parameters"
        )
    kind = cfg.pop("kind")
    valid = set(BUILD_PARAMS[kind]) | set(SEARCH_PARAMS[kind]) | {"oversample", "exact_below"}
    params = {p: v for p, v in cfg.items() if p in valid}
    params.update(overrides)
    return AnnRetriever(collection, kind=kind, **params)


for _kind in INDEX_TYPES:
    register_retriever(
        _kind, lambda collection, _k=_kind, **p: AnnRetriever(collection, kind=_k, **p)
    )
register_retriever("ann", configured_retriever)
