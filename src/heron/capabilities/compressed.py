"""Compressed dense retrieval over a :class:`heron.Collection` (retriever ``"compressed"``).

The collection's codec configuration lives in ``coll.config["codec"]`` (``{"spec", "oversample",
"rescore"}``, written by ``heron recommend --write`` or :func:`write_codec_config`); the fitted
codec, the codes and the row->key map are a collection artifact (``compressed-<spec>``, kind
``compressed``): built once, resident while current; documents added later are scanned exactly
and deleted ones masked until the artifact is rebuilt (``coll.create_index``). Rescoring reads the collection's own
memory-mapped float32 segments (``rescore="float32"``) or a float16 copy kept beside the codes.

``coll.search(q, 10, retriever="compressed", codec="bin", oversample=10)``
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron._memory import save_blocks
from heron.capabilities.base import ArtifactKind, register_kind
from heron.capabilities.registry import register_retriever
from heron.codecs.base import load_codec
from heron.codecs.search import rescore_rows
from heron.codecs.spec import parse_spec
from heron.limits import check_oversample
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k, pad

DEFAULT_CONFIG = {"spec": "bin", "oversample": 10, "rescore": "float32"}
INDEX_NAME = "codec"


def _open(collection: Any) -> Any:
    if isinstance(collection, (str, os.PathLike)):
        raise TypeError("pass an open collection (heron.Collection.open(path)), not a path")
    return collection


def write_codec_config(collection: Any, config: dict, **extra: Any) -> dict:
    """Validate and store ``config`` as the collection's ``"codec"`` section; returns it."""
    coll = _open(collection)
    spec = config.get("spec")
    parse_spec(spec)
    rescore = config.get("rescore", "float32")
    if rescore == "none":
        rescore, oversample = "float32", 0
    else:
        oversample = config.get("oversample", 10)
    if rescore not in ("float16", "float32"):
        raise ValueError(f"codec rescore must be 'float16', 'float32' or 'none', got {rescore!r}")
    value = {"spec": spec, "oversample": oversample, "rescore": rescore, **extra}
    coll.set_config("codec", value)
    return value


_CHECKED_SPECS: set[str] = set()


def _check_spec(spec: Any) -> None:
    """:func:`parse_spec` once per spec string (it builds a codec; this is on every query)."""
    if isinstance(spec, str) and spec in _CHECKED_SPECS:
        return
    parse_spec(spec)
    if len(_CHECKED_SPECS) > 256:  # bounded: specs can come from users (the server)
        _CHECKED_SPECS.clear()
    _CHECKED_SPECS.add(spec)


class CompressedRetriever(Stage):
    """Two-stage retrieval: exact scan over compressed codes, then exact rescoring.

    Parameters
    ----------
    collection: the collection.
    codec: codec spec (default: the collection's configured one, else ``"bin"``).
    oversample: first-stage depth as a multiple of ``k``; 0 = no rescoring.
    candidates: first-stage depth as a number of documents (the name every retriever with a
        first stage uses; an alternative to ``oversample``).
    rescore: ``"float32"`` (the collection's segments) or ``"float16"`` (a copy beside the codes).
    depth: hits returned when not cut by ``% k``.
    """

    rescores = True

    def __init__(
        self,
        collection: Any,
        *,
        codec: str | None = None,
        oversample: float | None = None,
        rescore: str | None = None,
        depth: int = 1000,
        name: str | None = None,
        candidates: int | None = None,
    ) -> None:
        cfg = {**DEFAULT_CONFIG, **(collection.config.get("codec") or {})}
        if candidates is not None and oversample is not None:
            raise ValueError("pass candidates= (documents) or oversample= (a multiple of k), not both")
        self.candidates = None if candidates is None else check_k(candidates)
        self.collection = collection
        self.spec = codec or cfg["spec"]
        _check_spec(self.spec)
        self.oversample = check_oversample(cfg["oversample"] if oversample is None else oversample)
        self.rescore = rescore or cfg["rescore"]
        if self.rescore not in ("float16", "float32"):
            raise ValueError(f"rescore must be 'float16' or 'float32', got {self.rescore!r}")
        self.depth = check_k(depth)
        self.index_name = name or f"compressed-{self.spec}"
        self.name = f"compressed[{self.spec}]"

    def with_depth(self, k: int) -> CompressedRetriever:
        other = copy.copy(self)  # every parameter was validated by __init__
        other.depth = check_k(k)
        return other

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        from heron.capabilities.dense import query_vectors, rescore_exact

        q = query_vectors(self.collection, queries)
        snap = self.collection.snapshot()
        if candidates is not None:
            return rescore_exact(snap, q, candidates)
        return self.search_vectors(snap, q, self.depth)

    def _artifact(self, snap: Any) -> tuple[Any, CodesArtifact]:
        """``collection.artifact(...)`` for this retriever's codes at ``snap``, looked up once
        per snapshot where the snapshot already holds a usable record (one built here belongs
        to a later snapshot)."""
        seen = snap.memo(("compressed-artifacts",), dict)
        key = (self.index_name, self.spec)
        got = seen.get(key)
        if got is None:
            got = self.collection.artifact(
                self.index_name, kind="compressed", field="dense", params={"spec": self.spec}, snap=snap
            )
            if snap.artifacts.get(self.index_name) is got[0]:
                seen[key] = got
        return got

    def search_vectors(self, snap: Any, q: np.ndarray, k: int) -> Results:
        """The top ``k`` of the query vectors ``q`` ``(nq, dim)`` float32 at ``snap``: what
        :meth:`transform` returns for them at depth ``k``, without building :class:`Queries`
        (``coll.search(vectors, ...)``'s hot path)."""
        info = {
            "retriever": "compressed",
            "codec": self.spec,
            "oversample": self.oversample,
            "candidates": self.candidates,
            "generation": snap.generation,
        }
        if len(snap.keys) == 0:
            r = Results.empty(len(q), k)
            return Results(r.keys, r.scores, snap.resolver(), info)
        rec, art = self._artifact(snap)
        alive, new_keys, new_vecs = snap.memo(("codes-delta", rec.version), lambda: art.delta(snap))
        n_dead = int(len(alive) - alive.sum()) if alive is not None else 0
        if self.candidates is not None:
            first_stage = max(k, self.candidates)
        else:
            first_stage = max(k, int(np.ceil(self.oversample * k))) if self.oversample else 0
        if first_stage == 0:
            scores, rows = art.codec.topk(q, art.codes, k + n_dead)
        else:
            first = first_stage + n_dead
            _, cand = art.codec.topk(q, art.codes, min(first, len(art.keys)))
            if n_dead:
                cand = np.where((cand >= 0) & alive[np.maximum(cand, 0)], cand, -1)
            if self.rescore == "float16":
                scores, rows = rescore_rows(q, cand, art.f16, k + n_dead)
            else:
                rmap = snap.memo(("codes-rows", rec.version), lambda: art.rows_in(snap))
                if rmap is None:
                    scores, rows = rescore_rows(q, cand, snap.dense(), k + n_dead)
                else:
                    srows = np.where(cand >= 0, rmap[np.maximum(cand, 0)], -1)
                    scores, srows = rescore_rows(q, srows, snap.dense(), k + n_dead)
                    out_keys = np.where(srows >= 0, snap.keys[np.maximum(srows, 0)], PAD_KEY)
                    return self._finish(
                        snap, q, k, out_keys, scores, new_keys, new_vecs, info, ordered=not n_dead
                    )
        if n_dead:
            rows = np.where((rows >= 0) & alive[np.maximum(rows, 0)], rows, -1)
            scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        out_keys = np.where(rows >= 0, art.keys[np.maximum(rows, 0)], PAD_KEY)
        return self._finish(
            snap, q, k, out_keys, scores, new_keys, new_vecs, info, ordered=not n_dead
        )

    def _finish(self, snap, q, k, keys, scores, new_keys, new_vecs, info, ordered=False) -> Results:
        """Merge the delta, order, pad to ``k``. ``ordered``: the rows already come best first
        (the scan and the rescoring emit sorted lists; masking dead rows breaks that)."""
        if len(new_keys):  # documents added since the codes were built: scanned exactly
            ds = q @ new_vecs.T
            keys = np.concatenate([keys, np.broadcast_to(new_keys, ds.shape)], 1)
            scores = np.concatenate([scores, ds.astype(np.float32)], 1)
            info["delta"] = int(len(new_keys))
            ordered = False
        if not ordered:
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            keys = np.take_along_axis(keys, order, 1)
            scores = np.take_along_axis(scores, order, 1)
        keys = np.where(np.isfinite(scores), keys, PAD_KEY)
        keys, scores = pad(keys, scores, k)
        return Results(keys, scores, snap.resolver(), info)


class CodesArtifact:
    """A fitted codec, the codes of the documents it was built from, their keys, a float16 copy.

    Arrays are memory-mapped; :meth:`delta` tells which rows are dead in a later snapshot and
    which documents it added.
    """

    def __init__(self, folder: Path, collection: Any) -> None:
        self.codec = load_codec(folder / "codec", dim=collection.dim, model=collection.model)
        self.codes = np.load(folder / "codes.npy", mmap_mode="r")
        self.keys = np.load(folder / "keys.npy")
        self.f16 = np.load(folder / "rescore16.npy", mmap_mode="r")

    def delta(self, snap: Any) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """``(alive (n_codes,) bool or None when all live, new_keys (m,), new_vectors (m, d))``."""
        live = np.isin(self.keys, snap.keys)
        new = ~np.isin(snap.keys, self.keys)
        rows = np.flatnonzero(new)
        vecs = np.asarray(snap.dense()[rows], dtype=np.float32) if len(rows) else np.zeros(
            (0, self.codes.shape[1] if self.codes.ndim == 2 else 0), np.float32
        )
        return (None if live.all() else live), snap.keys[rows], vecs

    def rows_in(self, snap: Any) -> np.ndarray | None:
        """Row of each code's document in ``snap.dense()`` (``None`` when they coincide)."""
        if len(snap.keys) == len(self.keys) and np.array_equal(snap.keys, self.keys):
            return None
        return snap.rows_of(self.keys)


@register_kind
class CompressedKind(ArtifactKind):
    """Compressed codes + rescoring copy (``kind="compressed"``, parameter ``spec``)."""

    kind = "compressed"
    field_kind = "dense"
    build_params = ("spec",)

    def normalise(self, params: dict[str, Any]) -> dict[str, Any]:
        params = super().normalise(params)
        parse_spec(params.setdefault("spec", DEFAULT_CONFIG["spec"]))
        return params

    def build(self, snap: Any, field: str, params: dict[str, Any], folder: Path, *, progress: bool) -> None:
        x = np.asarray(snap.dense(field), dtype=np.float32)
        if len(x) == 0:
            raise ValueError("the collection is empty; add documents before building an index")
        codec = parse_spec(params["spec"]).fit(x)
        codec.save(folder / "codec", model=snap.collection.model)
        # block by block: a whole encode (or cast) of 1M x 384 held its float temporaries at once
        save_blocks(folder / "codes.npy", len(x), lambda s, e: codec.encode(x[s:e]))
        np.save(folder / "keys.npy", np.asarray(snap.keys, dtype=np.int64))
        save_blocks(folder / "rescore16.npy", len(x), lambda s, e: x[s:e].astype(np.float16))

    def open(self, folder: Path, record: Any, collection: Any) -> CodesArtifact:
        return CodesArtifact(folder, collection)

    def retriever(self, collection: Any, name: str, **params: Any) -> CompressedRetriever:
        params.setdefault("codec", collection.snapshot().artifacts[name].params["spec"])
        return CompressedRetriever(collection, name=name, **params)


register_retriever("compressed", lambda collection, **p: CompressedRetriever(collection, **p))
