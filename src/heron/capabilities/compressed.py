"""Compressed dense retrieval over a :class:`heron.Collection` (retriever ``"compressed"``).

The collection's codec configuration lives in ``coll.config["codec"]`` (``{"spec", "oversample",
"rescore"}``, written by ``heron recommend --write`` or :func:`write_codec_config`); the fitted
codec, the codes and the row->key map live under ``coll.index_dir("codec")`` and are rebuilt
when the collection's generation or the spec changes. Rescoring reads the collection's own
memory-mapped float32 segments (``rescore="float32"``) or a float16 copy kept beside the codes.

``coll.search(q, 10, retriever="compressed", codec="bin", oversample=10)``
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron.capabilities.registry import register_retriever
from heron.codecs.base import load_codec
from heron.codecs.search import rescore_rows
from heron.codecs.spec import parse_spec
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k, pad

DEFAULT_CONFIG = {"spec": "bin", "oversample": 10, "rescore": "float32"}
INDEX_NAME = "codec"


def _open(collection: Any) -> Any:
    if isinstance(collection, (str, os.PathLike)):
        from heron.collection import Collection

        return Collection.open(collection)
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


class CompressedRetriever(Stage):
    """Two-stage retrieval: exact scan over compressed codes, then exact rescoring.

    Parameters
    ----------
    collection: the collection.
    codec: codec spec (default: the collection's configured one, else ``"bin"``).
    oversample: first-stage depth as a multiple of ``k``; 0 = no rescoring.
    rescore: ``"float32"`` (the collection's segments) or ``"float16"`` (a copy beside the codes).
    depth: hits returned when not cut by ``% k``.
    """

    def __init__(
        self,
        collection: Any,
        *,
        codec: str | None = None,
        oversample: float | None = None,
        rescore: str | None = None,
        depth: int = 1000,
    ) -> None:
        cfg = {**DEFAULT_CONFIG, **(collection.config.get("codec") or {})}
        self.collection = collection
        self.spec = codec or cfg["spec"]
        parse_spec(self.spec)
        self.oversample = float(cfg["oversample"] if oversample is None else oversample)
        if self.oversample < 0:
            raise ValueError(f"oversample must be >= 0 (0 disables rescoring), got {oversample!r}")
        self.rescore = rescore or cfg["rescore"]
        if self.rescore not in ("float16", "float32"):
            raise ValueError(f"rescore must be 'float16' or 'float32', got {self.rescore!r}")
        self.depth = check_k(depth)
        self.name = f"compressed[{self.spec}]"

    def with_depth(self, k: int) -> CompressedRetriever:
        return CompressedRetriever(
            self.collection,
            codec=self.spec,
            oversample=self.oversample,
            rescore=self.rescore,
            depth=k,
        )

    def _index(self, snap: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray | None]:
        folder = Path(self.collection.index_dir(INDEX_NAME))
        state_path = folder / "state.json"
        want = {
            "generation": int(snap.generation),
            "spec": self.spec,
            "model": self.collection.model,
            "dim": int(self.collection.dim),
        }
        if state_path.is_file() and json.loads(state_path.read_text()) == want:
            codec = load_codec(
                folder / "codec", dim=self.collection.dim, model=self.collection.model
            )
            codes = np.load(folder / "codes.npy")
            keys = np.load(folder / "keys.npy")
        else:
            x = np.asarray(snap.dense(), dtype=np.float32)
            codec = parse_spec(self.spec).fit(x)
            codes = codec.encode(x)
            keys = np.asarray(snap.keys, dtype=np.int64)
            codec.save(folder / "codec", model=self.collection.model)
            np.save(folder / "codes.npy", codes)
            np.save(folder / "keys.npy", keys)
            np.save(folder / "rescore16.npy", x.astype(np.float16))
            state_path.write_text(json.dumps(want))
        f16 = (
            np.load(folder / "rescore16.npy", mmap_mode="r") if self.rescore == "float16" else None
        )
        return codec, codes, keys, f16

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        from heron.capabilities.dense import query_vectors, rescore_exact

        q = query_vectors(self.collection, queries)
        snap = self.collection.snapshot()
        if candidates is not None:
            return rescore_exact(snap, q, candidates)
        info = {
            "retriever": "compressed",
            "codec": self.spec,
            "oversample": self.oversample,
            "generation": snap.generation,
        }
        if len(snap.keys) == 0:
            r = Results.empty(len(q), self.depth)
            return Results(r.keys, r.scores, self.collection.resolver(), info)
        codec, codes, keys, f16 = self._index(snap)
        k = self.depth
        if self.oversample == 0:
            scores, rows = codec.topk(q, codes, k)
        else:
            first = max(k, int(np.ceil(self.oversample * k)))
            _, cand = codec.topk(q, codes, first)
            scores, rows = rescore_rows(q, cand, f16 if f16 is not None else snap.dense(), k)
        out_keys = np.where(rows >= 0, keys[np.maximum(rows, 0)], PAD_KEY)
        out_keys, scores = pad(out_keys, scores, k)
        return Results(out_keys, scores, self.collection.resolver(), info)


register_retriever("compressed", lambda collection, **p: CompressedRetriever(collection, **p))
