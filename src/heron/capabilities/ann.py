"""ANN indexes inside a collection: ``coll.search(q, k, using="hnsw", filter={...})``.

Registers the index kinds and retrievers ``flat``, ``ivf`` and ``hnsw``. An index is a
collection artifact (:mod:`heron.collection.artifacts`): built from a snapshot, published
atomically, resident in memory while current, collected when no reader holds it.

Live updates: a search at a later generation than the index's tombstones keys deleted since (on
a per-snapshot view of the shared resident index, once per snapshot) and scans documents added since *exactly* (merged with the index's
hits), so a deleted id never comes back and an upserted id returns its new vector.
:func:`update_index` folds the additions into a new version incrementally (no retrain);
:func:`compact_index` rebuilds from live vectors (reclaims space, retrains IVF/PQ).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron._memory import release_pages
from heron.capabilities.base import ArtifactKind, register_kind
from heron.capabilities.registry import register_retriever
from heron.index import INDEX_TYPES, AnnIndex, load_index, make_index
from heron.index.base import topk_rows
from heron.limits import plain_vectors
from heron.pipeline import Queries, Stage
from heron.results import Results, check_k

#: parameters fixed at build time (a saved index with other values is rebuilt or refused)
BUILD_PARAMS = {
    "flat": ("codec",),
    "ivf": ("codec", "nlist"),
    "hnsw": ("codec", "M", "ef_construction"),
}
SEARCH_PARAMS = {"flat": (), "ivf": ("nprobe",), "hnsw": ("ef_search",)}


def index_name(kind: str, codec: str = "fp32") -> str:
    """Default name of an index: ``hnsw``, ``ivf-int8``, ``flat-bin`` ..."""
    return kind if codec == "fp32" else f"{kind}-{codec}"


class _AnnKind(ArtifactKind):
    """ANN indexes on faiss (:mod:`heron.index`) as collection artifacts."""

    field_kind = "dense"
    default_field = "dense"

    def normalise(self, params: dict[str, Any]) -> dict[str, Any]:
        valid = set(BUILD_PARAMS[self.kind]) | {"oversample", "exact_below"}
        bad = sorted(set(params) - valid)
        if bad:
            raise ValueError(
                f"unknown build parameter(s) {bad} for index kind {self.kind!r}; valid: {sorted(valid)}"
            )
        make_index(self.kind, **params)  # validates values
        return dict(params)

    def build(self, snap: Any, field: str, params: dict[str, Any], folder: Path, *, progress: bool) -> None:
        if len(snap) == 0:
            raise ValueError("the collection is empty; add documents before building an index")
        idx = make_index(self.kind, **params)
        rows = np.asarray(snap.dense(field))
        idx.build(rows, snap.keys)
        idx.save(folder / "data", generation=snap.generation, model=snap.collection.model)
        # the build read every row of the memory-mapped segments once: unmap those pages from
        # this process (they stay in the page cache; a search that needs them maps them again)
        release_pages(rows)

    def update(
        self, old: Path, snap: Any, field: str, params: dict[str, Any], folder: Path
    ) -> dict[str, int]:
        """Fold documents added / deleted since ``old`` was built into a copy of it (no retraining)."""
        coll = snap.collection
        idx = load_index(old / "data", dim=coll.dim, model=coll.model, kind=self.kind, mmap=False)
        stale, new_k, new_v = _delta(idx, snap, field)
        idx.remove(stale)
        if len(new_k):
            idx.add(new_v, new_k)
        idx.save(folder / "data", generation=snap.generation, model=coll.model)
        return {"added": int(len(new_k)), "tombstoned": int(len(stale)), "dead_total": idx.n_dead}

    def open(self, folder: Path, record: Any, collection: Any) -> AnnIndex:
        idx = load_index(
            folder / "data", dim=collection.dim, model=collection.model, kind=self.kind,
            max_generation=collection.generation,
        )
        idx.meta["generation"] = record.generation
        return idx

    def retriever(self, collection: Any, name: str, **params: Any) -> AnnRetriever:
        return AnnRetriever(collection, kind=self.kind, name=name, **params)


for _kind in INDEX_TYPES:
    register_kind(type(f"{_kind.upper()}Kind", (_AnnKind,), {"kind": _kind}))


def build_index(coll: Any, kind: str = "hnsw", *, name: str | None = None, **params: Any) -> AnnIndex:
    """Build index ``kind`` over the collection's live dense vectors, publish it, return it."""
    rec = coll.create_index(name, kind=kind, **params)
    return coll.artifact(rec["name"], build="never")[1]


def open_index(coll: Any, name: str, **_: Any) -> AnnIndex | None:
    """The resident current version of index ``name`` (``None`` when absent or unbuilt)."""
    rec = coll.snapshot().artifacts.get(name)
    if rec is None or rec.version is None:
        return None
    return coll.artifact(name, build="never")[1]


def current_folder(coll: Any, name: str) -> Path | None:
    """The folder of the current version of index ``name`` (``None`` when never built)."""
    rec = coll.snapshot().artifacts.get(name)
    return None if rec is None or rec.version is None else rec.folder(coll.path)


def _delta(idx: AnnIndex, snap: Any, field: str = "dense") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
            new_v.append(np.asarray(sv.segment.dense(field)[rows], dtype=np.float32))
    if new_k:
        return stale, np.concatenate(new_k), np.concatenate(new_v)
    return stale, np.zeros(0, np.int64), np.zeros((0, idx.dim or 0), np.float32)


def update_index(coll: Any, name: str) -> dict[str, int]:
    """Fold documents added/deleted since the index's generation into a new version (no retrain)."""
    return coll.update_index(name)


def compact_index(coll: Any, name: str, **params: Any) -> dict[str, Any]:
    """Rebuild index ``name`` from the live vectors (reclaims tombstones, retrains IVF/PQ).

    The new version is built in a new folder and published atomically; until then, and if the
    process dies, the previous version keeps serving.
    """
    rec = coll.snapshot().artifacts.get(name)
    if rec is None or rec.version is None:
        raise ValueError(f"index {name!r} does not exist; build it first")
    old = coll.artifact(name, build="never")[1]
    before = {"count": old.ntotal, "live": len(old)}
    coll.create_index(name, kind=rec.kind, on=rec.field, **{**rec.params, **params})
    idx = coll.artifact(name, build="never")[1]
    return {"before": before, "after": {"count": idx.ntotal, "live": len(idx)}}


def _snapshot_view(idx: AnnIndex, snap: Any, name: str) -> tuple[AnnIndex, np.ndarray, np.ndarray]:
    """``(index as of snap, keys added since, their vectors)``, computed once per snapshot."""

    def delta() -> tuple[AnnIndex, np.ndarray, np.ndarray]:
        stale, new_k, new_v = _delta(idx, snap)
        view = idx
        if len(stale):  # this snapshot's tombstones, on a view: the resident index is shared
            view = copy.copy(idx)  # by every snapshot and thread, so it is never mutated here
            view.dead, view._live = idx.dead.copy(), None
            view.remove(stale)
        return view, new_k, new_v

    return snap.memo(("ann-delta", name, id(idx)), delta)


def _fast_plan(coll: Any, snap: Any, using: str) -> tuple[str, AnnIndex, Any, dict[str, Any]] | None:
    """What :func:`fast_search` needs for ``using`` at ``snap`` (``None``: the general path)."""
    from heron.capabilities.registry import RETRIEVERS

    rec = snap.artifacts.get(using)
    if rec is not None and using not in RETRIEVERS:
        kind, name = rec.kind, using
    elif using in INDEX_TYPES:
        kind, name = using, index_name(using)
    else:
        return None
    if kind not in INDEX_TYPES:
        return None
    idx, new_k, _ = _snapshot_view(AnnRetriever(coll, kind=kind, name=name).index(snap), snap, name)
    if len(new_k):  # documents added since the build are merged exactly by transform()
        return None
    # the index's own hot path (no tombstones; rescoring included), else its general search
    direct = idx._search_fast if idx.live_mask() is None else None
    extra = {
        "retriever": kind,
        "generation": snap.generation,
        "index_generation": idx.meta.get("generation"),
        "delta": 0,
        "tombstones": idx.n_dead,
    }
    return kind, idx, direct, extra


def fast_search(
    coll: Any, using: str, queries: np.ndarray, k: int, params: dict[str, Any]
) -> Results | None:
    """``coll.search(vectors, k, using=INDEX, ef_search=/nprobe=)`` with no filter: the hot path.

    Returns what the general path (:class:`AnnRetriever` in a pipeline) returns — the same keys,
    scores, ``info`` and document lookup — from one snapshot check, one cached per-snapshot plan
    (the resident index as of the snapshot) and the index's own search; no stage objects, no
    query copies. ``None`` where the general path is needed: build parameters or other options
    given, documents added since the index was built, queries that are not ``(n, dim)`` finite
    C-contiguous float32, fewer live documents than ``k``.
    """
    q = plain_vectors(queries, coll.dim, k)
    if q is None:
        return None
    snap = coll.snapshot()
    plan = snap.memo(("ann-fast", using), lambda: _fast_plan(coll, snap, using))
    if plan is None or k > len(snap):
        return None
    kind, idx, direct, extra = plan
    allowed = SEARCH_PARAMS[kind]
    for p in params:
        if p not in allowed and p != "oversample":
            return None
    hit = None
    if direct is not None and "oversample" not in params:
        hit = direct(q, k, params, idx.oversample)
    scores, keys, info = hit if hit is not None else idx.search(q, k, params=params)
    info.update(extra)
    return Results(keys, scores, snap.resolver(), info, coll.get)


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

    rescores = True

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
        valid = set(BUILD_PARAMS[kind]) | set(SEARCH_PARAMS[kind]) | {
            "oversample", "exact_below", "candidates",
        }
        bad = sorted(set(params) - valid)
        if bad:
            raise ValueError(
                f"unknown parameter(s) {bad} for retriever {kind!r}; valid: {sorted(valid)}"
            )
        if "candidates" in params:
            if "oversample" in params:
                raise ValueError("pass candidates= (documents) or oversample= (a multiple of k), not both")
            check_k(params["candidates"])
        if filter is not None:
            from heron.index.filters import compile_filter

            compile_filter(filter)  # validate early
        self.collection, self.kind, self.filter, self.build = collection, kind, filter, build
        self.params = params
        codec = str(params.get("codec", "fp32")).lower()
        self.index_name = name or index_name(kind, codec)
        self.depth = check_k(depth)
        self.name = kind

    def with_depth(self, k: int) -> AnnRetriever:
        return AnnRetriever(
            self.collection,
            kind=self.kind,
            filter=self.filter,
            build=self.build,
            name=self.index_name,
            depth=k,
            **self.params,
        )

    def index(self, snap: Any = None) -> AnnIndex:
        """The resident index (built or rebuilt once when missing/mismatching and ``build='auto'``)."""
        build_p = {p: self.params[p] for p in BUILD_PARAMS[self.kind] if p in self.params}
        _, idx = self.collection.artifact(
            self.index_name, kind=self.kind, field="dense", params=build_p, build=self.build, snap=snap
        )
        return idx

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        from heron.capabilities.dense import query_vectors, rescore_exact

        q = query_vectors(self.collection, queries)
        snap = self.collection.snapshot()
        if candidates is not None:
            return rescore_exact(snap, q, candidates)
        idx, new_k, new_v = _snapshot_view(self.index(snap), snap, self.index_name)
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
        if "candidates" in self.params:  # first-stage documents -> the index's multiple of k
            sp["oversample"] = max(1.0, self.params["candidates"] / k)
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
        return Results(keys, scores, snap.resolver(), info)


def write_index_config(collection: Any, config: dict, **extra: Any) -> dict:
    """Validate ``config`` and store it as the collection's ``"index"`` section; returns it.

    ``config`` = ``{"kind": "hnsw", "codec": "fp32", "M": 16, "ef_search": 64, ...}`` (what
    ``heron recommend --indexes --write`` picks). The ``ann`` retriever then searches with it:
    ``coll.search(q, 10, retriever="ann")``. Nothing is built here; the first search builds.
    """
    if isinstance(collection, (str, os.PathLike)):
        raise TypeError("pass an open collection (heron.Collection.open(path)), not a path")
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
