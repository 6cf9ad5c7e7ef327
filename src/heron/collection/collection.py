"""An on-disk collection: documents, metadata and vectors, safe for concurrent readers.

Layout of a collection folder::

    heron.json        versioned manifest (format, model, dim, fields, config)
    docs.sqlite       documents, metadata, segment registry, commit generation (WAL)
    segments/NNNNNNNN immutable memory-mappable .npy segments (see heron.collection.segments)
    indexes/NAME/     derived structures (BM25, codecs, ANN, Seismic...), rebuilt when stale
    .writer.lock      one writer at a time (flock)

A write (``add``/``upsert``/``delete``) takes the writer lock, writes a new segment folder,
then commits documents + the segment's registration + a new generation number in one SQLite
transaction. A crash at any point leaves the last committed state intact: an unregistered
segment folder is ignored by readers and removed by the next writer. Readers take a
:class:`~heron.collection.snapshot.Snapshot` (one read transaction) and only ever see committed
generations.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heron.collection.manifest import (
    FIELD_KINDS,
    MANIFEST,
    CollectionError,
    new_manifest,
    read_manifest,
    write_json_atomic,
)
from heron.collection.segments import Segment, add_field_to_segment, segment_name, write_segment
from heron.collection.snapshot import SegmentView, Snapshot
from heron.collection.store import Store
from heron.encoders.base import check_texts
from heron.results import Results


@dataclass
class Document:
    """A stored document."""

    id: str
    text: str
    metadata: dict = field(default_factory=dict)
    key: int = -1


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Collection:
    """A folder of documents and their vectors. Use :meth:`create` or :meth:`open`.

    Parameters are set at creation and stored in the manifest; see :meth:`create`.
    """

    def __init__(
        self, path: Path, manifest: dict[str, Any], store: Store, encoder: Any = None
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.store = store
        self._encoder = encoder
        self._snap_lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._segments: dict[int, Segment] = {}
        self._field_encoders: dict[str, Any] = {}

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        model: str | None = None,
        encoder: Any = None,
        dim: int | None = None,
        fields: Mapping[str, Mapping[str, Any]] | None = None,
        exist_ok: bool = False,
    ) -> Collection:
        """Create a collection folder.

        Parameters
        ----------
        path: folder to create (must not hold a collection unless ``exist_ok``).
        model: dense model name/path (default all-MiniLM-L6-v2); loaded lazily.
        encoder: an already-built encoder object (``name``, ``dim``, ``encode_*``); overrides ``model``.
        dim: vector dimension when adding precomputed vectors with no encoder (``model="none"``).
        fields: extra per-document fields ``{name: {"kind": "sparse"|"ragged"|"dense", ...}}``.
        exist_ok: open an existing collection at ``path`` instead of failing.
        """
        root = Path(path)
        if (root / MANIFEST).exists():
            if exist_ok:
                return cls.open(root, encoder=encoder)
            raise FileExistsError(
                f"a collection already exists at {str(root)!r}; open it with Collection.open(path) or pass exist_ok=True"
            )
        if root.exists() and any(root.iterdir()):
            raise FileExistsError(
                f"{str(root)!r} exists and is not empty; pick a new folder for the collection"
            )
        if encoder is not None:
            model_name, d = encoder.name, int(encoder.dim)
        elif model == "none":
            if not isinstance(dim, int) or dim <= 0:
                raise ValueError(
                    f"model='none' needs the vector dimension: pass dim=<positive int>, got {dim!r}"
                )
            model_name, d = "none", dim
        else:
            from heron.encoders import DEFAULT_MODEL, load_encoder

            encoder = load_encoder(model or DEFAULT_MODEL)
            model_name, d = encoder.name, int(encoder.dim)
        if dim is not None and dim != d:
            raise ValueError(
                f"dim={dim} does not match the model's dimension {d}; drop dim or pick the matching model"
            )
        from heron.encoders.precision import field_record

        all_fields: dict[str, dict[str, Any]] = {
            "dense": {"kind": "dense", "dim": d, "encoder": model_name, **field_record(encoder)}
        }
        for name, spec in (fields or {}).items():
            all_fields[name] = _check_field_spec(name, spec)
        root.mkdir(parents=True, exist_ok=True)
        (root / "segments").mkdir(exist_ok=True)
        (root / "indexes").mkdir(exist_ok=True)
        Store(root, create=True)
        write_json_atomic(root / MANIFEST, new_manifest(model=model_name, dim=d, fields=all_fields))
        return cls.open(root, encoder=encoder)

    @classmethod
    def open(cls, path: str | os.PathLike, *, encoder: Any = None) -> Collection:
        """Open an existing collection; checks the manifest's format version."""
        root = Path(path)
        manifest = read_manifest(root)
        store = Store(root)
        if encoder is not None and manifest["model"] not in ("none", encoder.name):
            raise ValueError(
                f"encoder {encoder.name!r} does not match the collection's model {manifest['model']!r}; "
                "open it without an encoder (it loads its own) or migrate it (heron migrate)"
            )
        if encoder is not None and manifest["model"] != "none":
            from heron.encoders.precision import check_encoder_precision

            check_encoder_precision(encoder, manifest["fields"].get("dense", {}))
        return cls(root, manifest, store, encoder)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ properties
    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return self.manifest["fields"]

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.setdefault("config", {})

    @property
    def encoder(self) -> Any:
        """The dense encoder (loaded on first use)."""
        if self._encoder is None:
            if self.model == "none":
                raise ValueError(
                    "this collection stores precomputed vectors (model='none'); pass query vectors, not text"
                )
            from heron.encoders import load_encoder
            from heron.encoders.precision import encoder_kwargs

            # the precision the stored vectors were encoded at, so queries and new documents match
            self._encoder = load_encoder(self.model, **encoder_kwargs(self.fields.get("dense", {})))
        return self._encoder

    def index_dir(self, name: str) -> Path:
        """Folder for a derived structure (created on demand)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad index name {name!r}; use a plain folder name like 'bm25'")
        d = self.path / "indexes" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def set_config(self, section: str, value: Any) -> None:
        """Persist ``value`` (JSON-serialisable) as manifest ``config[section]``."""
        json.dumps(value)
        with self._writer():
            self.manifest = read_manifest(self.path)
            self.manifest.setdefault("config", {})[section] = value
            write_json_atomic(self.path / MANIFEST, self.manifest)

    def __len__(self) -> int:
        (n,) = (
            self.store.connect().execute("SELECT COUNT(*) FROM docs WHERE deleted = 0").fetchone()
        )
        return int(n)

    @property
    def generation(self) -> int:
        (g,) = (
            self.store.connect()
            .execute("SELECT value FROM state WHERE name='generation'")
            .fetchone()
        )
        return int(g)

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> Snapshot:
        """The latest committed state (cached until the next commit)."""
        con = self.store.connect()
        con.execute("BEGIN")
        try:
            (gen,) = con.execute("SELECT value FROM state WHERE name='generation'").fetchone()
            snap = self._snapshot
            if snap is not None and snap.generation == gen:
                return snap
            segs = con.execute("SELECT id FROM segments ORDER BY id").fetchall()
            dead = con.execute("SELECT key FROM docs WHERE deleted = 1").fetchall()
        finally:
            con.execute("COMMIT")
        dead_keys = np.fromiter((k for (k,) in dead), dtype=np.int64, count=len(dead))
        views = []
        for (sid,) in segs:
            seg = self._segments.get(sid)
            if seg is None:
                seg = Segment(self.path / "segments" / segment_name(sid), sid)
                self._segments[sid] = seg
            keys = np.asarray(seg.keys)
            live = ~np.isin(keys, dead_keys) if len(dead_keys) else np.ones(len(keys), dtype=bool)
            views.append(SegmentView(seg, live))
        snap = Snapshot(self, int(gen), views)
        with self._snap_lock:
            if self._snapshot is None or self._snapshot.generation < snap.generation:
                self._snapshot = snap
        return snap

    def get(self, ids: Sequence[str] | str) -> list[Document | None]:
        """Documents by id (``None`` for ids not in the collection)."""
        single = isinstance(ids, str)
        ids = [ids] if single else [str(i) for i in ids]
        con = self.store.connect()
        out: list[Document | None] = []
        for i in ids:
            row = con.execute(
                "SELECT key, id, text, metadata FROM docs WHERE id = ? AND deleted = 0", (i,)
            ).fetchone()
            out.append(Document(row[1], row[2], json.loads(row[3]), int(row[0])) if row else None)
        return out

    def __contains__(self, doc_id: str) -> bool:
        return self.get([doc_id])[0] is not None

    def iter_documents(self, batch: int = 1000) -> Iterator[Document]:
        con = self.store.connect()
        last = -1
        while True:
            rows = con.execute(
                "SELECT key, id, text, metadata FROM docs WHERE deleted = 0 AND key > ? ORDER BY key LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for k, i, t, m in rows:
                yield Document(i, t, json.loads(m), int(k))
            last = rows[-1][0]

    def resolver(self) -> Any:
        """A function mapping keys to string ids (used by :class:`Results`)."""

        def resolve(keys: np.ndarray) -> list[str]:
            return self.snapshot().ids(keys)

        return resolve

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        lock_path = self.path / ".writer.lock"
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                self._cleanup_orphans()
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _cleanup_orphans(self) -> None:
        registered = {
            segment_name(s)
            for (s,) in self.store.connect().execute("SELECT id FROM segments").fetchall()
        }
        seg_root = self.path / "segments"
        for p in seg_root.iterdir() if seg_root.exists() else []:
            if p.name.startswith(".") or p.name not in registered:
                shutil.rmtree(p, ignore_errors=True)

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
        fields: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Add documents (all or nothing). Returns their new keys, shape ``(n,)``.

        Parameters
        ----------
        texts: document texts.
        ids: string ids (default: new keys as strings); an id already live raises (use :meth:`upsert`).
        metadata: one JSON-serialisable dict per document.
        vectors: precomputed dense vectors ``(n, dim)`` (skips encoding).
        fields: precomputed data of extra fields ``{name: data}``; other fields are encoded.
        progress: show a progress bar while encoding (default: when more than 256 texts).
        """
        return self._write(
            texts,
            ids=ids,
            metadata=metadata,
            vectors=vectors,
            fields=fields,
            progress=progress,
            replace=False,
        )

    def upsert(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
        fields: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Insert or replace documents by id (old versions are deleted in the same commit)."""
        if ids is None:
            raise ValueError("upsert needs ids=[...] naming the documents to insert or replace")
        return self._write(
            texts,
            ids=ids,
            metadata=metadata,
            vectors=vectors,
            fields=fields,
            progress=progress,
            replace=True,
        )

    def delete(self, ids: Sequence[str] | str) -> int:
        """Delete documents by id; returns how many were deleted (unknown ids are ignored)."""
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        with self._writer():
            con = self.store.connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                n = 0
                for start in range(0, len(ids), 900):
                    chunk = ids[start : start + 900]
                    cur = con.execute(
                        f"UPDATE docs SET deleted = 1 WHERE deleted = 0 AND id IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                    n += cur.rowcount
                if n:
                    con.execute("UPDATE state SET value = value + 1 WHERE name='generation'")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return n

    def _write(
        self, texts, *, ids, metadata, vectors, fields, progress, replace: bool
    ) -> np.ndarray:
        texts = check_texts(texts, what="texts")
        n = len(texts)
        if ids is None:
            ids_l = None
        else:
            ids_l = [str(i) for i in ids]
            if len(ids_l) != n:
                raise ValueError(f"got {len(ids_l)} ids for {n} texts; pass one id per text")
            if len(set(ids_l)) != n:
                dup = next(i for i in ids_l if ids_l.count(i) > 1)
                raise ValueError(f"id {dup!r} appears twice in one batch; ids must be unique")
            bad = [i for i in ids_l if not i]
            if bad:
                raise ValueError("document ids must be non-empty strings")
        metas = _check_metadata(metadata, n)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        hashes = [text_hash(t) for t in texts]
        if ids_l is not None and not replace:
            existing = self._live_ids(ids_l)
            if existing:
                raise ValueError(
                    f"id(s) already in the collection: {sorted(existing)[:5]}; use upsert() to replace them"
                )
        dense = self._dense_for(texts, hashes, vectors, progress)
        field_data: dict[str, tuple[str, Any]] = {"dense": ("dense", dense)}
        fields = dict(fields or {})
        for name, spec in self.fields.items():
            if name == "dense":
                continue
            if name in fields:
                field_data[name] = (spec["kind"], fields.pop(name))
            else:
                field_data[name] = (spec["kind"], self._field_encoder(name).encode_documents(texts))
        if fields:
            raise ValueError(
                f"unknown field(s) {sorted(fields)}; the collection's fields are {sorted(self.fields)} (add one with add_field)"
            )
        with self._writer():
            con = self.store.connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                if ids_l is not None and not replace:
                    existing = self._live_ids(ids_l)
                    if existing:
                        raise ValueError(
                            f"id(s) already in the collection: {sorted(existing)[:5]}; use upsert() to replace them"
                        )
                (seq,) = con.execute("SELECT COALESCE(MAX(key), 0) FROM docs").fetchone()
                seq2 = con.execute("SELECT seq FROM sqlite_sequence WHERE name='docs'").fetchone()
                start = max(int(seq), int(seq2[0]) if seq2 else 0) + 1
                keys = np.arange(start, start + n, dtype=np.int64)
                (sid,) = con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM segments").fetchone()
                write_segment(self.path, int(sid), keys, field_data)
                if replace:
                    for s0 in range(0, n, 900):
                        chunk = ids_l[s0 : s0 + 900]
                        con.execute(
                            f"UPDATE docs SET deleted = 1 WHERE deleted = 0 AND id IN ({','.join('?' * len(chunk))})",
                            chunk,
                        )
                ids_final = ids_l if ids_l is not None else [str(int(k)) for k in keys]
                con.executemany(
                    "INSERT INTO docs(key, id, text, metadata, hash, segment, row) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            int(keys[r]),
                            ids_final[r],
                            texts[r],
                            json.dumps(metas[r]),
                            hashes[r],
                            int(sid),
                            r,
                        )
                        for r in range(n)
                    ],
                )
                con.execute(
                    "INSERT INTO segments(id, rows, fields) VALUES (?, ?, ?)",
                    (int(sid), n, json.dumps(sorted(field_data))),
                )
                con.execute("UPDATE state SET value = value + 1 WHERE name='generation'")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return keys

    def _live_ids(self, ids: list[str]) -> set[str]:
        con = self.store.connect()
        found: set[str] = set()
        for s0 in range(0, len(ids), 900):
            chunk = ids[s0 : s0 + 900]
            rows = con.execute(
                f"SELECT id FROM docs WHERE deleted = 0 AND id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update(r[0] for r in rows)
        return found

    def _dense_for(
        self, texts: list[str], hashes: list[str], vectors: np.ndarray | None, progress: bool | None
    ) -> np.ndarray:
        n = len(texts)
        if vectors is not None:
            v = np.asarray(vectors)
            if v.ndim != 2 or v.shape != (n, self.dim):
                raise ValueError(
                    f"vectors must have shape ({n}, {self.dim}) (one row per text, the collection's dimension), got {v.shape}"
                )
            if not np.isfinite(v).all():
                raise ValueError(
                    "vectors contain NaN or inf; fix the embeddings before adding them"
                )
            return np.ascontiguousarray(v, dtype=np.float32)
        # reuse stored embeddings of identical texts (same model: one collection, one model)
        out = np.empty((n, self.dim), dtype=np.float32)
        todo: list[int] = []
        first: dict[str, int] = {}
        reuse = self._stored_vectors(sorted(set(hashes)))
        for i, h in enumerate(hashes):
            if h in reuse:
                out[i] = reuse[h]
            elif h in first:
                continue
            else:
                first[h] = i
                todo.append(i)
        if todo:
            show = progress if progress is not None else len(todo) > 256
            out[todo] = self.encoder.encode_documents([texts[i] for i in todo], progress=show)
        for i, h in enumerate(hashes):
            if h not in reuse and first.get(h, i) != i:
                out[i] = out[first[h]]
        self.last_encoded = len(todo)
        return out

    def _stored_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        con = self.store.connect()
        found: dict[str, tuple[int, int]] = {}
        for s0 in range(0, len(hashes), 900):
            chunk = hashes[s0 : s0 + 900]
            rows = con.execute(
                f"SELECT d.hash, d.segment, d.row FROM docs d JOIN segments s ON s.id = d.segment WHERE d.hash IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for h, s, r in rows:
                found.setdefault(h, (s, r))
        out = {}
        for h, (s, r) in found.items():
            seg = self._segments.get(s) or Segment(self.path / "segments" / segment_name(s), s)
            self._segments[s] = seg
            out[h] = np.asarray(seg.dense("dense")[r], dtype=np.float32)
        return out

    # ------------------------------------------------------------------ fields
    def add_field(self, name: str, *, kind: str, backfill: bool = True, **spec: Any) -> None:
        """Declare an extra per-document field (e.g. ``"splade"`` sparse, ``"tokens"`` ragged).

        ``spec`` may name an ``encoder`` registered in :mod:`heron.collection.fields`; with
        ``backfill`` the field is computed for existing documents now.
        """
        if name in self.fields:
            raise ValueError(f"field {name!r} already exists")
        full = _check_field_spec(name, {"kind": kind, **spec})
        with self._writer():
            self.manifest = read_manifest(self.path)
            self.manifest["fields"][name] = full
            write_json_atomic(self.path / MANIFEST, self.manifest)
        if backfill:
            self.backfill(name)

    def backfill(self, name: str, data_for: Any = None) -> int:
        """Compute field ``name`` for every segment that lacks it; returns rows computed.

        ``data_for(texts) -> data`` overrides the field's registered encoder.
        """
        spec = self.fields.get(name)
        if spec is None:
            raise ValueError(f"collection has no field {name!r}; fields: {sorted(self.fields)}")
        enc = data_for or self._field_encoder(name).encode_documents
        done = 0
        with self._writer():
            con = self.store.connect()
            for (sid,) in con.execute("SELECT id FROM segments ORDER BY id").fetchall():
                seg_dir = self.path / "segments" / segment_name(sid)
                seg = Segment(seg_dir, sid)
                if seg.has(name):
                    continue
                rows = con.execute(
                    "SELECT row, text FROM docs WHERE segment = ? ORDER BY row", (sid,)
                ).fetchall()
                texts = [t for _, t in rows]
                add_field_to_segment(seg_dir, name, spec["kind"], enc(texts))
                self._segments.pop(sid, None)
                done += len(texts)
            con.execute("UPDATE state SET value = value + 1 WHERE name='generation'")
        self._snapshot = None
        return done

    def _field_encoder(self, name: str) -> Any:
        if name not in self._field_encoders:
            from heron.collection.fields import field_encoder

            self._field_encoders[name] = field_encoder(self.fields[name])
        return self._field_encoders[name]

    # ------------------------------------------------------------------ maintenance
    def compact(self) -> dict[str, int]:
        """Rewrite live rows into one segment and purge deleted documents; returns counts."""
        with self._writer():
            snap = self.snapshot()
            con = self.store.connect()
            old = [sv.segment.id for sv in snap.segments]
            dead_rows = int(sum((~sv.live).sum() for sv in snap.segments))
            if len(old) <= 1 and dead_rows == 0:
                return {"segments_before": len(old), "segments_after": len(old), "purged": 0}
            field_data: dict[str, tuple[str, Any]] = {}
            for name, spec in self.fields.items():
                if all(sv.segment.has(name) for sv in snap.segments):
                    field_data[name] = (spec["kind"], snap.field(name))
            field_data["dense"] = ("dense", np.asarray(snap.dense()))
            (sid,) = con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM segments").fetchone()
            write_segment(self.path, int(sid), snap.keys, field_data)
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "UPDATE docs SET segment = ?, row = ? WHERE key = ?",
                    [(int(sid), r, int(k)) for r, k in enumerate(snap.keys)],
                )
                con.execute("DELETE FROM docs WHERE deleted = 1")
                con.execute(
                    f"DELETE FROM segments WHERE id IN ({','.join('?' * len(old))})", old
                ) if old else None
                con.execute(
                    "INSERT INTO segments(id, rows, fields) VALUES (?, ?, ?)",
                    (int(sid), len(snap.keys), json.dumps(sorted(field_data))),
                )
                con.execute("UPDATE state SET value = value + 1 WHERE name='generation'")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            for s in old:
                self._segments.pop(s, None)
                shutil.rmtree(self.path / "segments" / segment_name(s), ignore_errors=True)
        return {"segments_before": len(old), "segments_after": 1, "purged": dead_rows}

    def info(self) -> dict[str, Any]:
        """A summary: counts, fields, sizes on disk, config."""
        snap = self.snapshot()
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return {
            "path": str(self.path),
            "format_version": self.manifest["version"],
            "model": self.model,
            "dim": self.dim,
            "documents": len(snap),
            "segments": len(snap.segments),
            "deleted_rows": int(sum((~sv.live).sum() for sv in snap.segments)),
            "generation": snap.generation,
            "fields": self.fields,
            "config": self.config,
            "indexes": sorted(p.name for p in (self.path / "indexes").iterdir())
            if (self.path / "indexes").exists()
            else [],
            "bytes_on_disk": size,
        }

    # ------------------------------------------------------------------ search
    def retriever(self, name: str = "dense", **params: Any) -> Any:
        """A pipeline :class:`~heron.pipeline.Stage` over this collection (see the registry)."""
        from heron.retrieval.registry import get_retriever

        return get_retriever(self, name, **params)

    def search(
        self,
        queries: Sequence[str] | str | Any,
        k: int = 10,
        *,
        retriever: str = "dense",
        min_relevance: float | None = None,
        min_hits: int = 0,
        **params: Any,
    ) -> Results:
        """Search with a named retriever; returns :class:`Results` of shape ``(n_queries, k)``.

        With ``min_relevance`` (a probability in [0, 1]) only hits whose calibrated relevance
        reaches it are kept (rows are padded after the last kept hit, so the number of hits
        varies per query); the collection must have been calibrated first
        (:func:`heron.calibration.collection.calibrate`). ``min_hits`` keeps at least that many.
        """
        from heron.results import check_k

        k = check_k(k)
        stage = self.retriever(retriever, **params)
        if min_relevance is not None:
            from heron.calibration.collection import threshold_stage

            thr = threshold_stage(self, min_relevance=min_relevance, min_hits=min_hits)
            stage = stage % max(k, 100) >> thr
        return stage.search(queries, k)


def _check_field_spec(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"field name {name!r} must be an identifier like 'splade' or 'tokens'")
    kind = spec.get("kind")
    if kind not in FIELD_KINDS:
        raise ValueError(f"field {name!r}: kind must be one of {FIELD_KINDS}, got {kind!r}")
    out = dict(spec)
    json.dumps(out)
    return out


def _check_metadata(metadata: Any, n: int) -> list[dict]:
    if metadata is None:
        return [{} for _ in range(n)]
    metas = list(metadata)
    if len(metas) != n:
        raise ValueError(
            f"got {len(metas)} metadata entries for {n} texts; pass one dict (or None) per text"
        )
    out = []
    for i, m in enumerate(metas):
        if m is None:
            m = {}
        if not isinstance(m, Mapping):
            raise TypeError(f"metadata[{i}] must be a dict, got {type(m).__name__}")
        try:
            json.dumps(dict(m))
        except TypeError as exc:
            raise TypeError(
                f"metadata[{i}] is not JSON-serialisable ({exc}); use str/int/float/bool/list/dict values"
            ) from exc
        out.append(dict(m))
    return out


__all__ = ["Collection", "CollectionError", "Document"]
