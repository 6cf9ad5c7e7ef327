"""Late-interaction retrievers over a collection's ragged ``"tokens"`` field.

Registered retrievers (``coll.retriever(name, **params)``):

* ``"maxsim"``  — exact MaxSim; a brute-force retriever alone, a reranker after another stage:
  ``coll.retriever("dense") % 1000 >> coll.retriever("maxsim") % 10``.
* ``"muvera"``  — MUVERA FDE search + exact MaxSim rerank (params of
  :class:`~heron.multivector.muvera.FDEEncoder`, ``candidates``, ``rerank``; ``fde_dtype``
  ``"float16"`` (default, scanned in place) or ``"float32"``).
* ``"pooled"``  — pooled-vector MaxSim + exact rerank (``method``, ``n_vectors``, ``candidates``).

Derived data (FDEs, pooled vectors) are computed per immutable segment and stored under
``coll.index_dir("muvera-<params>")`` / ``coll.index_dir("pooled-<params>")`` with a JSON
manifest; new segments are encoded on first use, so adding documents never recomputes old ones.
A collection whose live documents sit in one segment is served zero-copy from the memory map.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

import numpy as np

from heron.capabilities.registry import register_retriever
from heron.multivector.maxsim import MaxSim
from heron.multivector.muvera import FDEEncoder, MuveraRetriever
from heron.multivector.muvera_scan import check_fde_dtype
from heron.multivector.pooling import PooledRetriever, pool_tokens
from heron.multivector.ragged import RaggedArray, _atomic_save
from heron.pipeline import Stage

VERSION = 1
_STORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def add_token_field(
    collection: Any, name: str = "tokens", *, model: str | None = None, backfill: bool = True
) -> None:
    """Declare a ragged token-vector field (computed for existing documents when ``backfill``)."""
    from heron.encoders import load_encoder

    model = model or (collection.model if collection.model != "none" else None)
    dim = int(load_encoder(model).dim) if model else None
    spec: dict[str, Any] = {"encoder": "tokens", "dtype": "float16"}
    if model:
        spec["model"] = model
    if dim:
        spec["dim"] = dim
    collection.add_field(name, kind="ragged", backfill=backfill, **spec)


def _field_spec(collection: Any, field: str) -> dict:
    spec = collection.fields.get(field)
    if spec is None or spec.get("kind") != "ragged":
        raise ValueError(
            f"collection has no ragged field {field!r} (fields: {sorted(collection.fields)}); "
            "add token vectors with heron.capabilities.multivector.add_token_field(coll)"
        )
    return spec


def token_store(
    collection: Any, field: str = "tokens"
) -> tuple[RaggedArray, list[tuple[int, int]]]:
    """Token vectors of every row of every segment of the current snapshot, dead rows tombstoned.

    Returns the store and ``[(segment_id, n_rows), ...]`` in row order (to align per-segment
    derived arrays). One segment: zero-copy memmap; several: concatenated in memory.
    """
    _field_spec(collection, field)
    snap = collection.snapshot()
    cached = _STORES.get(snap)
    if cached is not None and field in cached:
        return cached[field]
    snap._check_field(field, "ragged")
    segs = [sv for sv in snap.segments if sv.segment.has(field)]
    layout = [(sv.segment.id, int(sv.segment.rows)) for sv in segs]
    if len(segs) == 1:
        o, v = segs[0].segment.ragged(field)
        store = RaggedArray(np.asarray(o), v, keys=np.asarray(segs[0].keys), deleted=~segs[0].live)
    else:
        offs, vals, keys, dead = [np.zeros(1, np.int64)], [], [], []
        base = 0
        dim = int(collection.fields[field].get("dim", 0))
        for sv in segs:
            o, v = sv.segment.ragged(field)
            o = np.asarray(o, np.int64)
            offs.append(o[1:] + base)
            base += int(o[-1])
            vals.append(np.asarray(v))
            keys.append(np.asarray(sv.keys))
            dead.append(~sv.live)
            dim = dim or int(v.shape[1])
        values = np.concatenate(vals) if vals else np.zeros((0, dim), np.float16)
        store = RaggedArray(
            np.concatenate(offs),
            values,
            keys=np.concatenate(keys) if keys else np.zeros(0, np.int64),
            deleted=np.concatenate(dead) if dead else None,
        )
    _STORES.setdefault(snap, {})[field] = (store, layout)
    return store, layout


def _token_encoder(collection: Any, field: str) -> Any:
    spec = _field_spec(collection, field)
    if not spec.get("encoder"):
        return None
    return collection.field_encoder(field)


def _per_segment(
    collection: Any,
    index: str,
    params: dict,
    layout: list[tuple[int, int]],
    field: str,
    compute: Any,
    kind: str,
) -> list[Any]:
    """Load (or compute and store) one derived array per segment under ``index_dir(index)``."""
    d = collection.index_dir(index)
    mf = d / "manifest.json"
    meta = {
        "format": f"heron.multivector.{kind}",
        "version": VERSION,
        "params": params,
        "field": field,
    }
    if mf.exists():
        old = json.loads(mf.read_text())
        if old.get("version") != VERSION or old.get("params") != params:
            for p in d.glob("*.npy"):
                p.unlink()
    mf.write_text(json.dumps(meta, indent=1))
    out = []
    for sid, _ in layout:
        f = d / f"{sid:08d}.npy"
        if kind == "pooled":
            fo = d / f"{sid:08d}.offsets.npy"
            if not (f.exists() and fo.exists()):
                arr = compute(sid)
                _atomic_save(fo, arr.offsets)
                _atomic_save(f, np.asarray(arr.values, np.float16))
            out.append((np.load(fo), np.load(f, mmap_mode="r")))
        else:
            if not f.exists():
                _atomic_save(f, compute(sid))
            out.append(np.load(f, mmap_mode="r"))
    # arrays of segments merged away are removed with their segment by the collection's garbage
    # collector, once no reader holds them (see heron.collection.lifecycle)
    return out


def _segment_tokens(collection: Any, field: str, sid: int) -> RaggedArray:
    seg = next(sv.segment for sv in collection.snapshot().segments if sv.segment.id == sid)
    o, v = seg.ragged(field)
    return RaggedArray(np.asarray(o), v)


def maxsim_retriever(collection: Any, *, field: str = "tokens", depth: int = 1000) -> MaxSim:
    store, _ = token_store(collection, field)
    return MaxSim(
        docs=store,
        encoder=_token_encoder(collection, field),
        depth=depth,
        resolver=collection.resolver(),
    )


def muvera_retriever(
    collection: Any,
    *,
    field: str = "tokens",
    k_sim: int = 5,
    d_proj: int = 16,
    r_reps: int = 20,
    d_final: int | None = None,
    fill_empty: bool = True,
    seed: int = 42,
    candidates: int = 100,
    rerank: bool = True,
    depth: int = 100,
    fde_dtype: str = "float16",
) -> MuveraRetriever:
    dt = check_fde_dtype(fde_dtype)
    store, layout = token_store(collection, field)
    enc = FDEEncoder(
        dim=store.dim,
        k_sim=k_sim,
        d_proj=d_proj,
        r_reps=r_reps,
        d_final=d_final,
        fill_empty=fill_empty,
        seed=seed,
    )
    params = {"field": field, **enc.params()}
    if dt != np.float32:  # float32 keeps the tag (and the files) FDEs were stored under before
        params["fde_dtype"] = dt.name
    tag = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    parts = _per_segment(
        collection,
        f"muvera-{tag}",
        params,
        layout,
        field,
        lambda sid: enc.encode_documents(_segment_tokens(collection, field, sid)).astype(dt),
        "fde",
    )
    fdes = (
        parts[0]
        if len(parts) == 1
        else (np.concatenate(parts) if parts else np.zeros((0, enc.dimension), dt))
    )
    return MuveraRetriever(
        encoder=enc,
        doc_fdes=fdes,
        docs=store,
        token_encoder=_token_encoder(collection, field),
        candidates=candidates,
        rerank=rerank,
        depth=depth,
        resolver=collection.resolver(),
    )


def pooled_retriever(
    collection: Any,
    *,
    field: str = "tokens",
    method: str = "window",
    n_vectors: int = 8,
    candidates: int = 100,
    rerank: bool = True,
    depth: int = 100,
) -> PooledRetriever:
    store, layout = token_store(collection, field)
    params = {"field": field, "method": method, "n_vectors": n_vectors}
    parts = _per_segment(
        collection,
        f"pooled-{method}-{n_vectors}",
        params,
        layout,
        field,
        lambda sid: pool_tokens(
            _segment_tokens(collection, field, sid), method=method, n_vectors=n_vectors
        ),
        "pooled",
    )
    offs, vals, base = [np.zeros(1, np.int64)], [], 0
    for o, v in parts:
        offs.append(np.asarray(o[1:], np.int64) + base)
        base += int(o[-1])
        vals.append(np.asarray(v, np.float32))
    values = np.concatenate(vals) if vals else np.zeros((0, store.dim), np.float32)
    pooled = RaggedArray(np.concatenate(offs), values, keys=store.keys, deleted=store.deleted)
    return PooledRetriever(
        pooled=pooled,
        docs=store,
        token_encoder=_token_encoder(collection, field),
        candidates=candidates,
        rerank=rerank,
        depth=depth,
        resolver=collection.resolver(),
    )


class Current(Stage):
    """A multi-vector retriever that always searches the collection's current generation.

    The per-segment arrays (tokens, FDEs, pooled vectors) are views of one generation; this
    stage re-makes the inner retriever (arrays already on disk are memory-mapped, not recomputed)
    when a write has committed since, so a retriever made before a write sees it.
    """

    def __init__(self, collection: Any, make: Any, name: str, depth: int, params: dict[str, Any]) -> None:
        self.collection, self._make, self.name = collection, make, name
        self.depth, self.params = depth, params
        self._gen: int | None = None
        self._stage: Any = None
        self.rescores = name == "maxsim"

    def _inner(self) -> Any:
        gen = self.collection.snapshot().epoch  # segment layout changes with merges too
        if self._gen != gen:
            self._stage, self._gen = self._make(self.collection, depth=self.depth, **self.params), gen
        return self._stage

    def with_depth(self, k: int) -> Current:
        return Current(self.collection, self._make, self.name, k, self.params)

    def transform(self, queries: Any, candidates: Any = None) -> Any:
        return self._inner().transform(queries, candidates)


def _current(make: Any, name: str, default_depth: int) -> Any:
    def factory(collection: Any, *, depth: int = default_depth, **params: Any) -> Current:
        make(collection, depth=depth, **params)  # validate now (and build the arrays once)
        return Current(collection, make, name, depth, params)

    return factory


register_retriever("maxsim", _current(maxsim_retriever, "maxsim", 1000))
register_retriever("muvera", _current(muvera_retriever, "muvera", 100))
register_retriever("pooled", _current(pooled_retriever, "pooled", 100))
