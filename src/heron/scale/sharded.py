"""A sharded collection: N ordinary collections, one manifest, scatter-gather search.

Layout of a sharded collection folder::

    shards.json          format, version, shard folders, routing rule, model, dim
    shard-000.heron/     an ordinary heron collection (opens on its own with Collection.open)
    shard-001.heron/
    ...

Documents are routed by a hash of their id (:mod:`heron.scale.routing`). A search is scattered to
every shard, each returns its own top-k, and the driver merges them exactly: by score
descending, ties to the smaller *global* key (``local_key * n_shards + shard``). Capabilities
whose scores depend on corpus statistics are made global (see ``docs/scale.md``): BM25 merges
document frequencies and lengths across shards (:mod:`heron.scale.bm25_global`); fusion
(``hybrid:A+B``) fuses each component's *global* top-depth, after the merge, never per shard.
Dense query vectors are encoded once, on the driver, and sent to the shards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from heron.collection import Collection, Document
from heron.pipeline import Queries, fuse_rrf
from heron.results import Results, check_k, pad
from heron.scale import routing
from heron.scale.backends import LocalShards, RayShards, ShardsUnavailable
from heron.scale.bm25_global import merge_stats

log = logging.getLogger(__name__)

#: the component depth of a fused retriever when its spec names none (every retriever's default)
DEFAULT_DEPTH = 1000


class _Ids:
    """Resolver of global keys to string ids: those the shards sent with their hits, else asked."""

    def __init__(self, owner: ShardedCollection, known: dict[int, str]) -> None:
        self.owner, self.known = owner, known

    def __call__(self, keys: np.ndarray) -> list[str]:
        keys = np.asarray(keys, dtype=np.int64)
        unknown = [int(k) for k in keys if int(k) not in self.known]
        if unknown:
            self.known.update(self.owner._resolve(np.asarray(unknown, np.int64)))
        return [self.known.get(int(k), "") for k in keys]


class ShardedBulk:
    """The ``b`` of ``with sc.bulk() as b``: :meth:`add` routes each batch to the shards' loads."""

    def __init__(self, owner: ShardedCollection, progress: bool | None) -> None:
        self.owner, self.progress = owner, progress

    def add(self, texts: Sequence[str], *, ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any] | None] | None = None,
            vectors: np.ndarray | None = None, progress: bool | None = None) -> np.ndarray:
        """Add a batch (as :meth:`ShardedCollection.add`); returns its global keys. Visible when
        the block ends."""
        where, args = self.owner._route(texts, ids, metadata, vectors,
                                        self.progress if progress is None else progress)
        out, _ = self.owner._call("bulk_add", args, shards=list(args), write=True)
        return self.owner._global_keys(where, out)


class ShardedCollection:
    """N ordinary collections behind the :class:`~heron.Collection` API. Use :meth:`create` / :meth:`open`.

    Shards run in this process (``ray=False``; ``threads`` > 1 calls them from a thread pool) or
    in Ray actors (``ray=True`` or ``address=``; see :class:`heron.scale.backends.RayShards` for
    ``max_restarts``, ``wait_s``, ``allow_partial``, ``num_cpus``).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], backend: Any, encoder: Any = None) -> None:
        self.path, self.manifest, self.backend = path, manifest, backend
        self._encoder = encoder

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        shards: int,
        model: str | None = None,
        encoder: Any = None,
        dim: int | None = None,
        fields: Mapping[str, Mapping[str, Any]] | None = None,
        **open_kw: Any,
    ) -> ShardedCollection:
        """Create ``shards`` empty collections under ``path`` and the manifest naming them.

        ``model``/``encoder``/``dim``/``fields`` are :meth:`heron.Collection.create`'s; the model is
        loaded once here and shared by the shards. ``open_kw`` go to :meth:`open`.
        """
        n = routing.check_shards(shards)
        root = Path(path)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FileExistsError(f"{str(root)!r} exists and is not an empty folder; pick a new folder")
        if encoder is None and model != "none":
            from heron.encoders import DEFAULT_MODEL, load_encoder

            encoder = load_encoder(model or DEFAULT_MODEL)
        root.mkdir(parents=True, exist_ok=True)
        first = None
        for i in range(n):
            c = Collection.create(root / routing.shard_name(i), model=model, encoder=encoder, dim=dim, fields=fields)
            first = first or (c.model, c.dim)
            c.close()
        assert first is not None
        routing.write_manifest(root, routing.new_manifest(n, *first))
        return cls.open(root, encoder=encoder, **open_kw)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        ray: bool = False,
        address: str | None = None,
        threads: int = 1,
        encoder: Any = None,
        **ray_kw: Any,
    ) -> ShardedCollection:
        """Open a sharded collection; ``ray=True`` or ``address=`` hosts its shards in Ray actors."""
        root = Path(path).resolve()
        m = routing.read_manifest(root)
        paths = [str(root / s) for s in m["shards"]]
        if ray or address is not None:
            backend: Any = RayShards(paths, address=address, **ray_kw)
        else:
            if ray_kw:
                raise ValueError(f"options {sorted(ray_kw)} apply to Ray shards; pass ray=True")
            backend = LocalShards(paths, threads=threads)
        return cls(root, m, backend, encoder)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ properties
    @property
    def n_shards(self) -> int:
        return int(self.manifest["n_shards"])

    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def encoder(self) -> Any:
        """The dense encoder, loaded once on the driver (queries are encoded here, not per shard)."""
        if self._encoder is None:
            if self.model == "none":
                raise ValueError("this collection stores precomputed vectors (model='none'); pass query vectors, not text")
            from heron.collection.manifest import read_manifest
            from heron.encoders import load_encoder
            from heron.encoders.precision import encoder_kwargs

            spec = read_manifest(self.path / self.manifest["shards"][0])["fields"].get("dense", {})
            self._encoder = load_encoder(self.model, **encoder_kwargs(spec))
        return self._encoder

    def _call(self, method: str, args: Any, *, shards: Any = None, write: bool = False) -> tuple[dict[int, Any], list[int]]:
        return self.backend.call(method, args, shards=shards, write=write)

    def __len__(self) -> int:
        out, _ = self._call("ping", (), write=True)
        return sum(n for _, n in out.values())

    # ------------------------------------------------------------------ writes
    def add(self, texts: Sequence[str], *, ids: Sequence[str] | None = None, metadata: Sequence[Mapping[str, Any] | None] | None = None,
            vectors: np.ndarray | None = None, progress: bool | None = None) -> np.ndarray:
        """Add documents, routed by id (default ids: random UUIDs); returns global keys ``(n,)``."""
        return self._write(texts, ids, metadata, vectors, progress, replace=False)

    def upsert(self, texts: Sequence[str], *, ids: Sequence[str], metadata: Sequence[Mapping[str, Any] | None] | None = None,
               vectors: np.ndarray | None = None, progress: bool | None = None) -> np.ndarray:
        """Insert or replace documents by id (an id always routes to the same shard)."""
        if ids is None:
            raise ValueError("upsert needs ids=[...] naming the documents to insert or replace")
        return self._write(texts, ids, metadata, vectors, progress, replace=True)

    def bulk(self, progress: bool | None = None) -> Iterator[ShardedBulk]:
        """``with sc.bulk() as b: b.add(...)``: :meth:`heron.Collection.bulk` on every shard.

        Each ``b.add`` routes its batch as :meth:`add` does, and each shard writes its part into
        one new segment of its own. The block commits every shard's part at its end (each shard
        in its own transaction); an exception in the block, or a shard whose process was
        restarted before one of the block's adds, commits nothing on any shard. A shard restarted
        after the last add and before the commit has lost its part: the commit raises and names
        it, and the shards that committed keep theirs (there is no commit across shards).
        """
        return self._bulk(progress)

    @contextlib.contextmanager
    def _bulk(self, progress: bool | None) -> Iterator[ShardedBulk]:
        try:
            self._call("bulk_begin", (), write=True)
        except BaseException:
            self._abandon_bulk()
            raise
        try:
            yield ShardedBulk(self, progress)
        except BaseException:
            self._abandon_bulk()
            raise
        try:
            self._call("bulk_end", (True,), write=True)
        except BaseException:  # shards that committed keep their part; the rest let go
            self._abandon_bulk()
            raise

    def _abandon_bulk(self) -> None:
        try:
            self._call("bulk_end", (False,), write=True)
        except Exception as exc:  # a shard that cannot answer has no load to abandon after a restart
            log.warning("abandoning a bulk load: %s", exc)

    def _write(self, texts: Any, ids: Any, metadata: Any, vectors: Any, progress: Any, *, replace: bool) -> np.ndarray:
        where, args = self._route(texts, ids, metadata, vectors, progress)
        out, _ = self._call("write", {s: (*a, replace) for s, a in args.items()}, shards=list(args), write=True)
        return self._global_keys(where, out)

    def _global_keys(self, where: np.ndarray, out: dict[int, np.ndarray]) -> np.ndarray:
        keys = np.empty(len(where), dtype=np.int64)
        for s, local in out.items():
            keys[where == s] = routing.global_keys(local, s, self.n_shards)
        return keys

    def _route(self, texts: Any, ids: Any, metadata: Any, vectors: Any, progress: Any) -> tuple[np.ndarray, dict[int, tuple]]:
        """``(shard of each document, {shard: (texts, ids, metadata, vectors)})`` of one batch,
        its vectors encoded here when not given."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = [uuid.uuid4().hex for _ in texts] if ids is None else [str(i) for i in ids]
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
        if metadata is not None and len(metadata) != len(texts):
            raise ValueError(f"got {len(metadata)} metadata entries for {len(texts)} texts")
        if vectors is None and self.model != "none" and texts:
            show = len(texts) > 256 if progress is None else progress
            vectors = self.encoder.encode_documents(texts, progress=show)
        vec = None if vectors is None else np.asarray(vectors, dtype=np.float32)
        if vec is not None and vec.shape != (len(texts), self.dim):
            raise ValueError(f"vectors must have shape ({len(texts)}, {self.dim}), got {vec.shape}")
        where = routing.route(ids, self.n_shards)
        args = {}
        for s in np.unique(where).tolist():
            rows = np.flatnonzero(where == s)
            args[s] = ([texts[i] for i in rows], [ids[i] for i in rows],
                       None if metadata is None else [dict(metadata[i] or {}) for i in rows],
                       None if vec is None else vec[rows])
        return where, args

    def delete(self, ids: Sequence[str] | str) -> int:
        """Delete documents by id; returns how many were deleted."""
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        where = routing.route(ids, self.n_shards)
        args = {s: ([ids[i] for i in np.flatnonzero(where == s)],) for s in np.unique(where).tolist()}
        out, _ = self._call("delete", args, shards=list(args), write=True)
        return int(sum(out.values()))

    def get(self, ids: Sequence[str] | str) -> list[Document | None]:
        """Documents by id (``None`` for unknown ids); ``Document.key`` is the global key."""
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        where = routing.route(ids, self.n_shards)
        args = {s: ([ids[i] for i in np.flatnonzero(where == s)],) for s in np.unique(where).tolist()}
        out, _ = self._call("get", args, shards=list(args), write=True)
        docs: list[Document | None] = [None] * len(ids)
        for s, found in out.items():
            for i, d in zip(np.flatnonzero(where == s), found):
                if d is not None:
                    d["key"] = int(routing.global_keys(np.array([d["key"]]), s, self.n_shards)[0])
                    docs[i] = Document(**d)
        return docs

    def __contains__(self, doc_id: str) -> bool:
        return self.get([doc_id])[0] is not None

    # ------------------------------------------------------------------ indexes / maintenance
    def create_index(self, name: str | None = None, *, kind: str, on: str | None = None,
                     progress: bool | None = None, **params: Any) -> dict[str, Any]:
        """Build index ``name`` on every shard, in parallel (one Ray task per shard actor; no progress bar)."""
        out, _ = self._call("create_index", (name, kind, on, params), write=True)
        return out[0]

    def drop_index(self, name: str) -> bool:
        out, _ = self._call("drop_index", (name,), write=True)
        return any(out.values())

    def indexes(self) -> list[dict[str, Any]]:
        """The index records of the first shard that answers (every shard has the same indexes)."""
        out, missing = self._call("indexes", ())
        if not out:
            raise ShardsUnavailable(missing, "no shard answered")
        return out[min(out)]

    def compact(self) -> dict[str, int]:
        out, _ = self._call("compact", (), write=True)
        return {k: int(sum(o[k] for o in out.values())) for k in ("segments_before", "segments_after", "purged")}

    def info(self) -> dict[str, Any]:
        """Totals plus each shard's own :meth:`heron.Collection.info`; a shard that does not answer
        is named in ``missing_shards`` (``partial``: the totals leave it out)."""
        out, missing = self._call("info", ())
        if not out:
            raise ShardsUnavailable(missing, "no shard answered")
        per = [out[s] for s in sorted(out)]
        return {
            "path": str(self.path), "format": self.manifest["format"], "version": self.manifest["version"],
            "n_shards": self.n_shards, "routing": self.manifest["routing"], "backend": self.backend.kind,
            "model": self.model, "dim": self.dim,
            "documents": sum(p["documents"] for p in per),
            "bytes_on_disk": sum(p["bytes_on_disk"] for p in per),
            "indexes": per[0]["indexes"], "shards": per,
            "partial": bool(missing), "missing_shards": list(missing),
        }

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        """Shard 0's fields (every shard is created with the same fields)."""
        from heron.collection.manifest import read_manifest

        return dict(read_manifest(self.path / self.manifest["shards"][0])["fields"])

    def iter_documents(self, batch: int = 1000) -> Iterator[Document]:
        """Every live document, shard by shard, in local key order (``Document.key`` is global)."""
        for s in range(self.n_shards):
            after = -1
            while True:
                out, _ = self._call("documents", {s: (after, batch)}, shards=[s])
                if s not in out:
                    log.warning("shard %d did not answer: its documents are left out", s)
                    break
                rows = out[s]
                for d in rows:
                    after = d["key"]
                    d["key"] = int(routing.global_keys(np.array([after]), s, self.n_shards)[0])
                    yield Document(**d)
                if len(rows) < batch:
                    break

    def warm(self, bm25: bool = True) -> None:
        """Search every shard once and build its BM25 postings, so the first queries are not cold."""
        self.backend.warm(bm25)

    def shards_down(self, timeout_s: float = 1.0) -> list[int]:
        """Shards whose host does not answer a health probe within ``timeout_s`` (local shards: none)."""
        return self.backend.down(timeout_s)

    def calibrate(self, queries: Any, query_ids: Sequence[str], qrels: Mapping[str, Mapping[str, int]],
                  **params: Any) -> Any:
        """Fit the calibration ``search(..., min_relevance=)`` uses, on the *merged* scores (:mod:`heron.scale.calibration`)."""
        from heron.scale import calibration

        return calibration.calibrate(self, queries, query_ids, qrels, **params)

    def _resolve(self, keys: np.ndarray) -> dict[int, str]:
        shard, local = routing.split_keys(keys, self.n_shards)
        args = {s: (local[shard == s],) for s in np.unique(shard[shard >= 0]).tolist()}
        out, _ = self._call("ids", args, shards=list(args), write=True)
        found: dict[int, str] = {}
        for s, names in out.items():
            found.update(zip(keys[shard == s].tolist(), names))
        return found

    # ------------------------------------------------------------------ search
    def search(self, queries: Sequence[str] | str | Any, k: int = 10, *, using: str | None = None,
               retriever: str | None = None, filter: dict[str, Any] | None = None,
               min_relevance: float | None = None, min_hits: int = 0, **params: Any) -> Results:
        """Search every shard and merge exactly; :meth:`heron.Collection.search`'s arguments.

        ``Results.info`` holds ``partial`` (``True`` when some shard did not answer in time) and
        ``missing_shards``. ``min_relevance`` thresholds the merged top-``max(k, 100)`` with the
        calibration fitted on merged scores (:meth:`calibrate`), as a single collection does.
        Hits carry their documents (``Results.hits()``), looked up on the shards.
        """
        k = check_k(k)
        if using is not None and retriever is not None and using != retriever:
            raise ValueError(f"pass using= or retriever=, not both ({using!r} vs {retriever!r})")
        using = using if using is not None else (retriever or "dense")
        if not isinstance(using, str):
            raise TypeError(f"a sharded collection searches by retriever name or spec (str), got {type(using).__name__}")
        texts, vectors = self._queries(queries)
        depth, adapter = k, None
        if min_relevance is not None:
            from heron.scale import calibration

            adapter = calibration.adapter_of(self.path, self.manifest)
            vectors = self._vectors(texts, vectors)  # encoded once: the threshold reads them too
            if vectors is None:
                raise ValueError("min_relevance needs query vectors on a model='none' collection; pass vectors, not text")
            depth = max(k, calibration.MIN_DEPTH)
        elif min_hits:
            raise ValueError("min_hits goes with min_relevance")
        if using.startswith("hybrid:"):
            res = self._hybrid(using, texts, vectors, depth, filter, params)
        else:
            res = self._one(using, texts, vectors, depth, filter, params)
        if adapter is not None:
            res = calibration.threshold(res, adapter, vectors, self.model, min_relevance, min_hits)
        return res.cut(k).with_documents(self.get)

    def _queries(self, queries: Any) -> tuple[list[str], np.ndarray | None]:
        if isinstance(queries, Queries):
            v = queries.cached(self.model)
            return list(queries.texts), None if v is None else np.asarray(v, np.float32)
        if isinstance(queries, np.ndarray) or (isinstance(queries, list) and queries and not isinstance(queries[0], str)):
            v = np.asarray(queries, dtype=np.float32)
            v = v[None, :] if v.ndim == 1 else v
            if v.ndim != 2 or v.shape[1] != self.dim:
                raise ValueError(f"query vectors must have shape (n, {self.dim}) for this collection, got {v.shape}")
            return [f"<vector {i}>" for i in range(len(v))], v
        return list(Queries.of(queries).texts), None

    def _vectors(self, texts: list[str], vectors: np.ndarray | None) -> np.ndarray | None:
        if vectors is None and self.model != "none":
            vectors = np.asarray(self.encoder.encode_queries(texts), np.float32)  # once, here
        return vectors

    def _is_bm25(self, name: str) -> dict[str, Any] | None:
        """BM25 build parameters when ``name`` is BM25 (the retriever or a bm25 index), else ``None``."""
        if name == "bm25":
            return {}
        if name in ("dense", "hnsw", "flat", "ivf", "compressed", "seismic", "splade"):
            return None
        rec = next((r for r in self.indexes() if r["name"] == name), None)
        return dict(rec["params"]) if rec is not None and rec["kind"] == "bm25" else None

    def _one(self, spec: str, texts: list[str], vectors: Any, k: int, flt: Any, params: dict[str, Any]) -> Results:
        from heron.capabilities.spec import parse_spec

        name, sp = parse_spec(spec)
        sp.update(params)
        sp.pop("depth", None)  # k is the depth of a first stage
        bm25 = self._is_bm25(name)
        if bm25 is not None:
            return self._bm25(texts, k, {**bm25, **sp}, flt)
        args = (texts, self._vectors(texts, vectors), k, name, flt, sp)
        out, missing = self._call("search", args)
        return self._merge(out, missing, len(texts), k, {"retriever": spec})

    def _bm25(self, texts: list[str], k: int, params: dict[str, Any], flt: Any) -> Results:
        from heron.capabilities.bm25 import BM25Kind

        params = BM25Kind().normalise(params)
        first, missing = self._call("bm25_stats", (texts, params))
        if not first:
            return self._merge({}, missing, len(texts), k, {"retriever": "bm25"})
        tokens = next(iter(first.values()))[0]
        g = merge_stats([first[s][1] for s in sorted(first)])
        out, more = self._call("bm25_search", (tokens, asdict(g), k, params, flt), shards=sorted(first))
        return self._merge(out, sorted({*missing, *more}), len(texts), k, {"retriever": "bm25", "global_stats": True})

    def _hybrid(self, spec: str, texts: list[str], vectors: Any, k: int, flt: Any, params: dict[str, Any]) -> Results:
        """Reciprocal-rank fusion of each component's *global* top-depth (as :func:`heron.capabilities.spec.stage_from_spec`)."""
        from heron.capabilities.spec import parse_spec

        parts = [p for p in spec[len("hybrid:"):].split("+") if p]
        if len(parts) < 2:
            raise ValueError(f"hybrid needs at least two retrievers, e.g. hybrid:dense+bm25; got {spec!r}")
        depth = params.pop("depth", None)
        if params:
            raise ValueError(f"parameters {sorted(params)} go inside the hybrid spec's parts (hybrid:hnsw?ef_search=64+bm25)")
        runs = []
        for p in parts:
            d = parse_spec(p)[1].get("depth", depth or DEFAULT_DEPTH)
            runs.append(self._one(p, texts, vectors, check_k(d), None, {}))
        fused_depth = max(r.k for r in runs) * len(runs) if flt is not None else k
        res = fuse_rrf(runs, [1.0] * len(runs), 60.0, fused_depth)
        known: dict[int, str] = {}
        for r in runs:
            known.update(r.resolver.known)  # type: ignore[union-attr]
        missing = sorted({s for r in runs for s in r.info["missing_shards"]})
        info = {"retriever": spec, "shards": self.n_shards, "partial": bool(missing), "missing_shards": missing}
        keys, scores = res.keys, res.scores
        if flt is not None:  # as a single node: the filter applies after the fusion
            out, _ = self._call("matching", (flt,))
            allowed = np.concatenate([routing.global_keys(v, s, self.n_shards) for s, v in out.items()] or [np.zeros(0, np.int64)])
            keep = np.isin(keys, allowed) & (keys >= 0)
            order = np.argsort(~keep, axis=1, kind="stable")
            keys = np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(keys, order, 1), -1)
            scores = np.where(keys >= 0, np.take_along_axis(scores, order, 1), -np.inf)
        keys, scores = pad(keys[:, :k], scores[:, :k].astype(np.float32), k)
        return Results(keys, scores, _Ids(self, known), info)

    def _merge(self, out: dict[int, Any], missing: list[int], nq: int, k: int, info: dict[str, Any]) -> Results:
        """Exact merge of per-shard top-k: score descending, ties to the smaller global key."""
        n = self.n_shards
        known: dict[int, str] = {}
        ks, ss = [np.full((nq, 0), -1, np.int64)], [np.full((nq, 0), -np.inf, np.float32)]
        for s in sorted(out):
            keys, scores, ids = out[s]
            g = routing.global_keys(keys, s, n)
            for row, names in zip(g, ids):
                known.update(zip(row[row >= 0].tolist(), names))
            ks.append(g)
            ss.append(np.asarray(scores, np.float32))
        keys, scores = np.concatenate(ks, axis=1), np.concatenate(ss, axis=1)
        order = np.lexsort((np.where(keys >= 0, keys, np.iinfo(np.int64).max), -scores.astype(np.float64)), axis=-1)[:, :k]
        keys, scores = pad(np.take_along_axis(keys, order, 1), np.take_along_axis(scores, order, 1), k)
        full = {**info, "shards": n, "partial": bool(missing), "missing_shards": list(missing)}
        return Results(keys, scores, _Ids(self, known), full)
