"""The collections a server holds open, each addressed by name, and the server's limits.

A name is the collection folder's name without a ``.heron`` suffix. A sharded collection's
folder (its ``shards.json`` manifest, :mod:`heron.scale`) is served as one collection, a
:class:`~heron.scale.ShardedCollection`: its shards in this process, or hosted by Ray actors when
the catalog is given ``ray``. The server opens every
collection once at start-up, warms its encoder with one query and keeps it (and the artifacts
its snapshots hold) resident until shutdown. New collections are created in the server's root
folder (the folder of collections it was started on, else the parent of its first collection).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heron import limits as hl
from heron.server.errors import ApiError

log = logging.getLogger("heron.server")
MANIFEST = "heron.json"
#: a sharded collection's manifest (``heron.scale.routing.MANIFEST``)
SHARDED = "shards.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ServerLimits:
    """Per-request limits (all at most heron's own, :mod:`heron.limits`).

    Attributes
    ----------
    max_k: hits per query.
    max_queries: queries in one search request.
    max_query_chars: characters of one query text.
    max_documents: documents in one add/upsert/get/delete request.
    max_body_bytes: bytes of one request body (larger: 413 ``too_large``).
    """

    max_k: int = 1000
    max_queries: int = 256
    max_query_chars: int = 10_000
    max_documents: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, cap in (
            ("max_k", hl.MAX_K),
            ("max_queries", hl.MAX_QUERY_BATCH),
            ("max_query_chars", hl.MAX_QUERY_CHARS),
            ("max_documents", hl.MAX_BATCH),
            ("max_body_bytes", 2**40),
        ):
            hl.check_number(getattr(self, name), f"ServerLimits.{name}", low=1, high=cap, integer=True)


def collection_name(path: Path) -> str:
    return path.name[: -len(".heron")] if path.name.endswith(".heron") else path.name


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith(".heron"):
        raise ApiError(
            400,
            f"bad collection name {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting "
            "with a letter or digit",
            field="name",
        )
    return name


class Catalog:
    """Named open collections; ``get`` raises a 404 :class:`ApiError` for unknown names."""

    def __init__(
        self, paths: Sequence[str | Path] | str | Path, encoders: Mapping[str, Any] | None = None, *,
        ray: bool | str | None = None, shard_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise ValueError("heron serve needs at least one collection or folder of collections")
        self.paths: dict[str, Path] = {}
        self.root: Path | None = None
        for p in map(Path, paths):
            if (p / MANIFEST).is_file() or (p / SHARDED).is_file():
                self._register(p)
                self.root = self.root or p.parent
            elif p.is_dir():
                self.root = self.root or p
                for sub in sorted(p.iterdir()):
                    if (sub / MANIFEST).is_file() or (sub / SHARDED).is_file():
                        self._register(sub)
            else:
                raise FileNotFoundError(
                    f"{str(p)!r} is neither a collection nor a folder; create one with heron index"
                )
        self.open: dict[str, Any] = {}
        self.lock = threading.Lock()
        #: loaded encoders, shared by the collections of one model and precision
        self.encoders: dict[str, Any] = dict(encoders or {})
        if ray is not None and not isinstance(ray, (bool, str)):
            raise TypeError(f"ray must be True, False or a Ray address (str), got {ray!r}")
        #: how sharded collections open: ``ShardedCollection.open`` keyword arguments
        self.shard_open: dict[str, Any] = dict(shard_options or {})
        if ray:
            self.shard_open.update({"ray": True} if ray is True or ray == "local" else {"address": ray})

    def _register(self, path: Path) -> None:
        name = collection_name(path)
        if name in self.paths and self.paths[name] != path:
            raise ValueError(f"two collections are named {name!r}: {self.paths[name]} and {path}")
        self.paths[name] = path

    # ------------------------------------------------------------------ life cycle
    def open_all(self) -> None:
        from heron.collection import Collection

        for name, path in self.paths.items():
            if is_sharded_path(path):
                from heron.scale import ShardedCollection

                coll = ShardedCollection.open(path, encoder=self._shared_encoder(path), **self.shard_open)
            else:
                coll = Collection.open(path, encoder=self._shared_encoder(path))
            self.open[name] = coll
            warm(coll)
            log.info("opened collection %r (%s) from %s", name, self.open[name].model, path)

    def close_all(self) -> None:
        for coll in self.open.values():
            coll.close()
        self.open.clear()

    def _encoder_key(self, manifest: Mapping[str, Any]) -> str:
        from heron.encoders.precision import encoder_kwargs

        kw = encoder_kwargs(manifest.get("fields", {}).get("dense", {}))
        return manifest["model"] + ("?" + json.dumps(kw, sort_keys=True) if kw else "")

    def _shared_encoder(self, path: Path) -> Any:
        """The (thread-safe) encoder for the collection at ``path``, loaded once per model."""
        from heron.collection.manifest import read_manifest

        if is_sharded_path(path):  # every shard has the model of shard 0
            from heron.scale.routing import read_manifest as read_sharded  # shard names checked

            path = path / read_sharded(path)["shards"][0]
        manifest = read_manifest(path)
        if manifest["model"] == "none":
            return None
        key = self._encoder_key(manifest)
        enc = self.encoders.get(key, self.encoders.get(manifest["model"]))
        if enc is None:
            from heron.encoders import load_encoder
            from heron.encoders.precision import encoder_kwargs

            enc = load_encoder(manifest["model"], **encoder_kwargs(manifest["fields"].get("dense", {})))
        enc = enc if isinstance(enc, LockedEncoder) else LockedEncoder(enc)
        self.encoders[key] = enc
        return enc

    # ------------------------------------------------------------------ access
    def get(self, name: str) -> Any:
        coll = self.open.get(name)
        if coll is None:
            raise ApiError(404, f"no collection {name!r}; collections are {sorted(self.open)}")
        return coll

    def names(self) -> list[str]:
        return sorted(self.open)

    def shards_down(self) -> dict[str, list[int]]:
        """``{name: [shard, ...]}`` of the sharded collections with shards that do not answer a probe."""
        out = {}
        for name, coll in list(self.open.items()):
            if is_sharded(coll):
                down = coll.shards_down(timeout_s=2.0)
                if down:
                    out[name] = down
        return out

    def create(self, name: str, model: str | None, dim: int | None) -> Any:
        from heron.collection import Collection

        check_name(name)
        with self.lock:
            if name in self.open:
                raise ApiError(409, f"collection {name!r} exists", field="name")
            if self.root is None:
                raise ApiError(400, "this server has no folder to create collections in")
            path = self.root / f"{name}.heron"
            from heron.encoders import DEFAULT_MODEL

            enc = None if model == "none" else self.encoders.get(model or DEFAULT_MODEL)
            if enc is None and model != "none":
                enc = self._load(model or DEFAULT_MODEL)
            if enc is not None and not isinstance(enc, LockedEncoder):
                enc = LockedEncoder(enc)
            coll = Collection.create(path, model=model, dim=dim, encoder=enc)
            if model != "none":
                self.encoders.setdefault(model or DEFAULT_MODEL, enc)
            self.paths[name], self.open[name] = path, coll
        warm(coll)
        return coll

    @staticmethod
    def _load(model: str) -> Any:
        from heron.encoders import load_encoder

        try:
            return LockedEncoder(load_encoder(model))
        except (OSError, ValueError, TypeError, ImportError) as exc:
            raise ApiError(400, f"cannot load model {model!r}: {exc}", field="model") from None

    def drop(self, name: str) -> None:
        """Close collection ``name`` and delete its folder."""
        with self.lock:
            coll = self.get(name)
            del self.open[name]
            path = self.paths.pop(name)
        coll.close()
        shutil.rmtree(path, ignore_errors=True)


def is_sharded_path(path: Path) -> bool:
    return (path / SHARDED).is_file() and not (path / MANIFEST).is_file()


def is_sharded(coll: Any) -> bool:
    """Whether ``coll`` is a :class:`~heron.scale.ShardedCollection` (without importing Ray)."""
    from heron.scale import ShardedCollection

    return isinstance(coll, ShardedCollection)


def unsupported(coll: Any, what: str, why: str = "") -> None:
    """A 400 naming ``what`` a sharded collection cannot do (never a 500 from a missing method)."""
    if is_sharded(coll):
        raise ApiError(400, f"{what} is not supported on a sharded collection{': ' + why if why else ''}",
                       field=what.split()[0])


def warm(coll: Any) -> None:
    """One search, so the encoder is loaded and the snapshot and its arrays are resident
    (a sharded collection: every shard searched once, its BM25 postings built)."""
    if is_sharded(coll):
        coll.warm()
        if coll.model != "none":
            coll.encoder.encode_queries(["warm up"])
        return
    if coll.model == "none" or len(coll) == 0:
        if coll.model != "none":
            coll.encoder.encode_queries(["warm up"])
        return
    coll.search("warm up", k=1)


class LockedEncoder:
    """An encoder whose ``encode*`` calls run one at a time.

    Encoders are not thread-safe (an OpenVINO or ONNX Runtime request object is reused between
    calls: "Infer Request is busy"), and the server runs requests in a threadpool; every other
    attribute (``name``, ``dim``, ``precision`` ...) is the wrapped encoder's.
    """

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._encoder, name)
        if not (name.startswith("encode") and callable(attr)):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked
