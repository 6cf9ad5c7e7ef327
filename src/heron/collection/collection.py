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

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heron._faults import point
from heron.collection.leases import Leases
from heron.collection.lifecycle import LifecycleMixin, bump
from heron.collection.manifest import (
    FIELD_KINDS,
    MANIFEST,
    CollectionError,
    new_manifest,
    read_manifest,
    write_json_atomic,
)
from heron.collection.searching import SearchMixin
from heron.collection.segments import Segment, add_field_to_segment, segment_name, write_segment
from heron.collection.snapshot import Snapshot
from heron.collection.store import Store
from heron.collection.writes import WriteMixin

#: more segments than this after a write trigger a tiered merge of the smallest ones ...
MAX_SEGMENTS = 16
#: ... down to this many
MERGE_TO = 8


@dataclass
class Document:
    """A stored document."""

    id: str
    text: str
    metadata: dict = field(default_factory=dict)
    key: int = -1




def _move_rows(con: Any, sid: int, views: list[Any]) -> None:
    """Point the live documents of ``views`` at their rows of the merged segment ``sid`` (in
    the views' order). A view whose rows are all live and whose keys are one run (a bulk load)
    is one range ``UPDATE`` (every key of the run is in it: keys are unique); any other view is
    updated row by row. At 1M documents the row-by-row form took ~2.8 s of a compaction."""
    r0 = 0
    for sv in views:
        keys = np.asarray(sv.keys)[sv.live]
        n = len(keys)
        if n and sv.all_live and int(keys[-1]) - int(keys[0]) == n - 1 and (
            n == 1 or bool((np.diff(keys) == 1).all())
        ):
            con.execute(
                "UPDATE docs SET segment = ?, row = key - ? WHERE key BETWEEN ? AND ?",
                (sid, int(keys[0]) - r0, int(keys[0]), int(keys[-1])),
            )
        elif n:
            con.executemany(
                "UPDATE docs SET segment = ?, row = ? WHERE key = ?",
                [(sid, r0 + r, k) for r, k in enumerate(keys.tolist())],
            )
        r0 += n


class Collection(WriteMixin, LifecycleMixin, SearchMixin):
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
        self._leases = Leases(path)
        self._lock_timeout: float | None = None

    # ------------------------------------------------------------------ life cycle
    @property
    def lock_timeout(self) -> float | None:
        """Seconds a write waits for another writer's lock before it raises
        :class:`~heron.collection.writelock.WriteLockTimeout` naming the holder (``None``: the
        ``HERON_LOCK_TIMEOUT`` environment variable, else 600)."""
        return self._lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, value: float | None) -> None:
        from heron.collection.writelock import check_timeout

        self._lock_timeout = None if value is None else check_timeout(value)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        model: str | None = None,
        encoder: Any = None,
        dim: int | None = None,
        fields: Mapping[str, Mapping[str, Any]] | None = None,
        chunking: str | Mapping[str, Any] | None = None,
        context: str | None = None,
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
        chunking: split documents into passages stored as a ``"passages"`` field (e.g.
            ``"sentences:128"``, ``"tokens:200:50"``, ``"markdown:128"``; see
            :mod:`heron.encoders.chunking`); search them with ``coll.retriever("passages")``.
        context: the passages' situated context (``"title"`` default, ``"none"``,
            ``"neighbours"``, ``"title+neighbours"``).
        exist_ok: open an existing collection at ``path`` instead of failing.
        """
        root = Path(path)
        if (root / MANIFEST).exists():
            if exist_ok:
                return cls.open(root, encoder=encoder)
            raise FileExistsError(
                f"a collection already exists at {str(root)!r}; open it with Collection.open(path) or pass exist_ok=True"
            )
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(
                f"{str(root)!r} is a file, not a folder; pick a new folder for the collection"
            )
        if root.exists() and any(root.iterdir()):
            raise FileExistsError(
                f"{str(root)!r} exists and is not empty; pick a new folder for the collection"
            )
        if encoder is not None:
            model_name, d = encoder.name, int(encoder.dim)
        elif model == "none":
            if isinstance(dim, bool) or not hasattr(dim, "__index__") or dim.__index__() <= 0:
                raise ValueError(
                    f"model='none' needs the vector dimension: pass dim=<positive int>, got {dim!r}"
                )
            model_name, d = "none", int(dim.__index__())
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
        from heron.collection.fields import as_spec

        fields = dict(fields or {})
        if chunking is not None:
            from heron.collection.fields import PassagesField

            if model_name == "none":
                raise ValueError("chunking needs a dense model to encode passages; drop model='none'")
            fields.setdefault("passages", PassagesField(chunking=chunking, context=context))
        for name, spec in fields.items():
            all_fields[name] = _check_field_spec(name, as_spec(spec))
            if all_fields[name].get("encoder") == "passages":  # the dense model encodes passages
                all_fields[name].setdefault("model", model_name)
                all_fields[name].update(field_record(encoder))
                continue
            _complete_spec(all_fields[name])
        root.mkdir(parents=True, exist_ok=True)
        (root / "segments").mkdir(exist_ok=True)
        (root / "indexes").mkdir(exist_ok=True)
        Store(root, create=True).close()
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
        self._snapshot = None
        self._leases.close()
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
    def get(self, ids: Sequence[str] | str) -> list[Document | None]:
        """Documents by id (``None`` for ids not in the collection)."""
        single = isinstance(ids, str)
        from heron.limits import as_ids

        ids = [ids] if single else as_ids(ids)
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

        return self.snapshot().resolver()

    # ------------------------------------------------------------------ fields
    def add_field(
        self, name: str, field: Any = None, *, kind: str | None = None, backfill: bool = True, **spec: Any
    ) -> None:
        """Declare an extra per-document field (e.g. ``"splade"`` sparse, ``"tokens"`` ragged).

        ``spec`` may name an ``encoder`` registered in :mod:`heron.collection.fields`; with
        ``backfill`` the field is computed for existing documents now.
        """
        if name in self.fields:
            raise ValueError(f"field {name!r} already exists")
        if field is not None:
            from heron.collection.fields import as_spec

            spec = {**as_spec(field), **spec}
            kind = kind or spec.pop("kind")
        full = _check_field_spec(name, {"kind": kind, **spec})
        if full.get("encoder") == "passages":  # passages of the dense model, at its precision
            full.setdefault("model", self.model)
            if full["model"] == self.model:
                dense = self.fields["dense"]
                full.update({k: dense[k] for k in ("precision", "pooling") if k in dense})
            enc = None
        else:
            enc = _complete_spec(full)
        if enc is not None:
            self._field_encoders[name] = enc
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
        with_meta = data_for is None and getattr(self._field_encoder(name), "uses_metadata", False)
        done = 0
        with self._writer():
            con = self.store.connect()
            for (sid,) in con.execute("SELECT id FROM segments ORDER BY id").fetchall():
                seg_dir = self.path / "segments" / segment_name(sid)
                seg = Segment(seg_dir, sid)
                if seg.has(name):
                    continue
                rows = con.execute(
                    "SELECT row, text, metadata FROM docs WHERE segment = ? ORDER BY row", (sid,)
                ).fetchall()
                texts = [t for _, t, _ in rows]
                if with_meta:  # e.g. passages: the title is their context
                    data = enc(texts, metadata=[json.loads(m) for _, _, m in rows])
                else:
                    data = enc(texts)
                add_field_to_segment(seg_dir, name, spec["kind"], data)
                self._segments.pop(sid, None)
                done += len(texts)
            con.execute("BEGIN IMMEDIATE")
            epoch = bump(con)
            con.execute("COMMIT")
            self.store.published(epoch)
        self._snapshot = None
        return done

    def field_encoder(self, name: str) -> Any:
        """The encoder of field ``name`` (from the field-encoder registry; loaded once)."""
        return self._field_encoder(name)

    def _field_encoder(self, name: str) -> Any:
        if name not in self._field_encoders:
            from heron.collection.fields import field_encoder

            spec = self.fields[name]
            if spec.get("encoder") == "passages":  # registered on import (no entry point needed)
                from heron.encoders.passages import PassageEncoder

                if spec.get("model") == self.model:  # the collection's own dense encoder
                    self._field_encoders[name] = PassageEncoder(self.encoder, spec["chunking"])
                    return self._field_encoders[name]
            self._field_encoders[name] = field_encoder(spec)
        return self._field_encoders[name]

    # ------------------------------------------------------------------ maintenance
    def compact(self) -> dict[str, int]:
        """Rewrite live rows into one segment and purge deleted documents; returns counts."""
        with self._writer():
            snap = self.snapshot()
            n_before = len(snap.segments)
            dead_rows = int(sum((~sv.live).sum() for sv in snap.segments))
            if n_before <= 1 and dead_rows == 0:
                return {"segments_before": n_before, "segments_after": n_before, "purged": 0}
            self._merge(snap, snap.segments, data=True)
            del snap
            # the merge's own collection ran while this snapshot still held the old segments:
            # give their space back now, not at the next write
            self._collect_garbage()
        return {"segments_before": n_before, "segments_after": 1, "purged": dead_rows}

    def _merge_small_segments(self) -> None:
        """Tiered merging after a write (writer lock held): past :data:`MAX_SEGMENTS` segments,
        the smallest are rewritten into one, so exact scans stay one pass over few arrays."""
        (n,) = self.store.connect().execute("SELECT COUNT(*) FROM segments").fetchone()
        if n <= MAX_SEGMENTS:
            return
        snap = self.snapshot()
        views = sorted(snap.segments, key=lambda sv: int(sv.live.sum()))
        self._merge(snap, views[: len(views) - MERGE_TO + 1], data=False)

    def _merge(self, snap: Snapshot, views: list[Any], *, data: bool) -> None:
        """Rewrite the live rows of ``views`` into one new segment; retire the old ones."""
        part = Snapshot(self, snap.generation, list(views))
        con = self.store.connect()
        old = [sv.segment.id for sv in views]
        field_data: dict[str, tuple[str, Any]] = {}
        for name, spec in self.fields.items():
            if all(sv.segment.has(name) for sv in views):
                kind = spec["kind"]
                field_data[name] = (kind, part.dense_rows(name) if kind == "dense" else part.field(name))
        field_data["dense"] = ("dense", part.dense_rows())
        (sid,) = con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM segments").fetchone()
        write_segment(self.path, int(sid), part.keys, field_data, part.all_ids())
        point("merge.segment")
        con.execute("BEGIN IMMEDIATE")
        try:
            _move_rows(con, int(sid), part.segments)
            con.execute(f"DELETE FROM segments WHERE id IN ({','.join('?' * len(old))})", old)
            con.execute(
                "INSERT INTO segments(id, rows, fields) VALUES (?, ?, ?)",
                (int(sid), len(part.keys), json.dumps(sorted(field_data))),
            )
            epoch = bump(con, data=data)
            # old segments (and the rows of documents deleted in them) are retired, not
            # removed: snapshots in this and other processes may still read them
            con.executemany(
                "INSERT OR REPLACE INTO retired(path, retired_at) VALUES (?, ?)",
                [(f"segments/{segment_name(s)}", epoch) for s in old],
            )
            point("merge.commit")
            con.execute("COMMIT")
            self.store.published(epoch)
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        del part, snap
        self._snapshot = None
        self._collect_garbage()

    def info(self) -> dict[str, Any]:
        """A summary: counts, fields, sizes on disk, config."""
        snap = self.snapshot()
        # an index's rescoring copy may be a hard link to a segment's vectors: count it once
        files = {(st.st_dev, st.st_ino): st.st_size
                 for st in (p.stat() for p in self.path.rglob("*") if p.is_file())}
        size = sum(files.values())
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
            "indexes": [r.describe() for _, r in sorted(snap.artifacts.items())],
            "bytes_on_disk": size,
        }

def _complete_spec(full: dict[str, Any]) -> Any:
    """Fill in the model name and vocabulary a field's encoder knows; returns the encoder."""
    if not full.get("encoder"):
        return None
    from heron.collection.fields import field_encoder

    enc = field_encoder(full)
    if full["kind"] == "sparse" and getattr(enc, "vocab_size", None):
        full.setdefault("vocab", int(enc.vocab_size))
    if getattr(enc, "name", None):
        full.setdefault("model", enc.name)
    return enc


def _check_field_spec(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"field name {name!r} must be an identifier like 'splade' or 'tokens'")
    kind = spec.get("kind")
    if kind not in FIELD_KINDS:
        raise ValueError(f"field {name!r}: kind must be one of {FIELD_KINDS}, got {kind!r}")
    out = dict(spec)
    json.dumps(out)
    return out


__all__ = ["Collection", "CollectionError", "Document"]
