"""The write side of a collection: add / upsert / delete under one writer lock, all or nothing.

A write takes the writer ``flock``, writes a new segment folder (temp + rename), then commits
the documents, the segment's registration and the new generation in one SQLite transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from heron._faults import point
from heron.collection.diskfull import disk_full
from heron.collection.lifecycle import bump
from heron.collection.segments import Segment, SegmentWriter, segment_name, write_segment
from heron.collection.store import REUSABLE, SUPPLIED
from heron.encoders.base import check_texts
from heron.limits import as_finite_vectors, as_ids, check_batch, check_ids, check_metadata

#: stored vectors of given text hashes (the term after ``AND`` lets SQLite read the partial
#: hash index, :data:`~heron.collection.store.REUSABLE`)
REUSE_SQL = (
    "SELECT d.hash, d.segment, d.row FROM docs d JOIN segments s ON s.id = d.segment "
    f"WHERE d.hash IN ({{marks}}) AND d.{REUSABLE}"
)

#: a bulk batch of at least this many documents has its SQLite rows inserted on a thread
THREAD_ROWS = 2048
#: a bulk load starts writing its segment's files to disk after a batch once this many bytes
#: were written since the last such start (small batches would each pay a disk flush)
SYNC_BYTES = 64 << 20
#: SQLite page cache of a bulk load's connection, KiB: the id index of a million documents
#: (inserted out of order) stays in memory
BULK_CACHE_KIB = 131072


def text_hash(text: str, origin: str = "") -> str:
    """Key of a stored vector: the text's SHA-1 salted with the vector's ``origin``.

    ``origin`` is the name of the encoder that produced the vector, so identical text reuses a
    stored vector only when the same encoder made it; user-supplied vectors get a key that no
    encoder's ever equals (:data:`SUPPLIED`) and are never reused.
    """
    return hashlib.sha1(f"{origin}\0{text}".encode()).hexdigest()


def text_hashes(texts: Sequence[str], origin: str = "", prefix: str = "") -> list[str]:
    """``[prefix + text_hash(t, origin) for t in texts]``, without a Python call per text."""
    sha1, head = hashlib.sha1, f"{origin}\0"
    return [prefix + sha1((head + t).encode()).hexdigest() for t in texts]


class WriteMixin:
    """``add`` / ``upsert`` / ``delete`` and the writer lock of :class:`~heron.collection.Collection`."""

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        from heron.collection.writelock import default_timeout, write_lock

        if getattr(self, "_bulk_thread", None) == threading.get_ident():
            raise RuntimeError(
                "this thread is inside `with coll.bulk() as b:`, which holds the write lock: add "
                "the documents with b.add(...), and write otherwise after the block"
            )
        timeout = getattr(self, "lock_timeout", None)
        with write_lock(self.path, default_timeout() if timeout is None else timeout):
            try:
                self._cleanup_orphans()
                self._collect_garbage()
                yield
            except (OSError, sqlite3.OperationalError) as exc:
                full = disk_full(exc, self.path, self._committed_generation())
                if full is not None:
                    raise full from exc
                raise
            finally:
                self._snapshot = None  # stale after a commit: release its lease

    def _committed_generation(self) -> int | None:
        try:
            (g,) = self.store.connect().execute(
                "SELECT value FROM state WHERE name='generation'"
            ).fetchone()
            return int(g)
        except sqlite3.Error:
            return None

    def _cleanup_orphans(self) -> None:
        con = self.store.connect()
        registered = {segment_name(s) for (s,) in con.execute("SELECT id FROM segments").fetchall()}
        registered |= {  # retired, kept until no reader holds them
            p.split("/")[1]
            for (p,) in con.execute("SELECT path FROM retired WHERE path LIKE 'segments/%'")
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
        ids = [ids] if isinstance(ids, str) else as_ids(ids)
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
                epoch = bump(con) if n else None
                point("delete.commit")
                con.execute("COMMIT")
                self.store.published(epoch)
            except BaseException:
                if con.in_transaction:  # SQLite already rolled back after e.g. SQLITE_FULL
                    con.execute("ROLLBACK")
                raise
        return n

    def bulk(self, *, progress: bool | None = None) -> contextlib.AbstractContextManager[BulkWriter]:
        """Load many batches as **one segment and one commit**::

            with coll.bulk() as b:
                for texts, ids, vectors in batches:
                    b.add(texts, ids=ids, vectors=vectors)

        ``b.add`` takes what :meth:`add` takes and returns the batch's keys. Each batch's rows
        are written to the new segment's files as they arrive, so a bulk load writes its vectors
        once: ``add`` per batch followed by :meth:`compact` writes them twice. The documents
        become visible together when the block ends; an exception in the block (or a crash)
        leaves the collection at its last commit. The writer lock is held for the whole block:
        other writers wait for it (readers do not).
        """
        return _bulk(self, progress)

    def _prepare(
        self, texts, *, ids, metadata, vectors, fields, progress, replace: bool, check_live: bool = True
    ) -> tuple[list[str], list[str] | None, list[Any], list[str], dict[str, tuple[str, Any]]] | None:
        """Validate one batch and compute its vectors and fields (``None`` for no documents).

        ``check_live=False`` skips the look-up of ids already in the collection (a bulk load into
        a collection that held no documents when its lock was taken).
        """
        texts = check_texts(texts, what="texts")
        n = len(texts)
        check_batch(n)
        if ids is None:
            ids_l = None
        else:
            ids_l = as_ids(ids)
            if len(ids_l) != n:
                raise ValueError(f"got {len(ids_l)} ids for {n} texts; pass one id per text")
            if len(set(ids_l)) != n:
                dup = next(i for i in ids_l if ids_l.count(i) > 1)
                raise ValueError(f"id {dup!r} appears twice in one batch; ids must be unique")
            check_ids(ids_l)
        metas = check_metadata(metadata, n)
        if n == 0:
            return None
        if vectors is not None:
            hashes = text_hashes(texts, prefix=SUPPLIED)
        else:
            hashes = text_hashes(texts, self._vector_origin())
        if ids_l is not None and not replace and check_live:
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
                enc = self._field_encoder(name)
                if getattr(enc, "uses_metadata", False):  # e.g. passages take the title as context
                    data = enc.encode_documents(texts, metadata=metas)
                else:
                    data = enc.encode_documents(texts)
                field_data[name] = (spec["kind"], data)
        if fields:
            raise ValueError(
                f"unknown field(s) {sorted(fields)}; the collection's fields are {sorted(self.fields)} (add one with add_field)"
            )
        return texts, ids_l, metas, hashes, field_data

    def _write(
        self, texts, *, ids, metadata, vectors, fields, progress, replace: bool
    ) -> np.ndarray:
        prepared = self._prepare(texts, ids=ids, metadata=metadata, vectors=vectors,
                                 fields=fields, progress=progress, replace=replace)
        if prepared is None:
            return np.zeros(0, dtype=np.int64)
        texts, ids_l, metas, hashes, field_data = prepared
        n = len(texts)
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
                start, sid = _next_key_and_segment(con)
                keys = np.arange(start, start + n, dtype=np.int64)
                ids_final = ids_l if ids_l is not None else [str(int(k)) for k in keys]
                write_segment(self.path, int(sid), keys, field_data, ids_final)
                if replace:
                    for s0 in range(0, n, 900):
                        chunk = ids_l[s0 : s0 + 900]
                        con.execute(
                            f"UPDATE docs SET deleted = 1 WHERE deleted = 0 AND id IN ({','.join('?' * len(chunk))})",
                            chunk,
                        )
                _insert_docs(con, keys, ids_final, texts, _metadata_json(metas), hashes, int(sid), 0)
                con.execute(
                    "INSERT INTO segments(id, rows, fields) VALUES (?, ?, ?)",
                    (int(sid), n, json.dumps(sorted(field_data))),
                )
                epoch = bump(con)
                point("write.commit")
                con.execute("COMMIT")
                self.store.published(epoch)
                point("write.committed")
            except BaseException:
                if con.in_transaction:  # SQLite already rolled back after e.g. SQLITE_FULL
                    con.execute("ROLLBACK")
                raise
            self._merge_small_segments()
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
            return as_finite_vectors(vectors, dim=self.dim, rows=n, what="vectors")
        # reuse stored embeddings of identical texts made by the same encoder (hashes are salted)
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

    def _vector_origin(self) -> str:
        """Name of the encoder that encodes texts added without vectors."""
        if self._encoder is not None:
            return str(self._encoder.name)
        if self.model == "none":
            raise ValueError(
                "this collection stores precomputed vectors (model='none'): pass vectors=<(n, dim) array> "
                "with the texts to add()/upsert()"
            )
        return self.model

    def _stored_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        con = self.store.connect()
        found: dict[str, tuple[int, int]] = {}
        for s0 in range(0, len(hashes), 900):
            chunk = hashes[s0 : s0 + 900]
            rows = con.execute(
                REUSE_SQL.format(marks=",".join("?" * len(chunk))), chunk
            ).fetchall()
            for h, s, r in rows:
                found.setdefault(h, (s, r))
        out = {}
        for h, (s, r) in found.items():
            seg = self._segments.get(s) or Segment(self.path / "segments" / segment_name(s), s)
            self._segments[s] = seg
            out[h] = np.asarray(seg.dense("dense")[r], dtype=np.float32)
        return out


def _next_key_and_segment(con: Any) -> tuple[int, int]:
    """The first free document key and segment id (inside the write transaction)."""
    (seq,) = con.execute("SELECT COALESCE(MAX(key), 0) FROM docs").fetchone()
    seq2 = con.execute("SELECT seq FROM sqlite_sequence WHERE name='docs'").fetchone()
    start = max(int(seq), int(seq2[0]) if seq2 else 0) + 1
    (sid,) = con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM segments").fetchone()
    return start, int(sid)


_INSERT_DOCS = "INSERT INTO docs(key, id, text, metadata, hash, segment, row) VALUES "
#: rows per INSERT statement: 7 * 128 = 896 parameters, under SQLite's oldest limit of 999.
#: One statement per row paid the statement's fixed cost (AUTOINCREMENT's bookkeeping among it)
#: per row: 1M rows took 3.1 s of inserts one row at a time, 1.7 s 128 at a time.
ROWS_PER_INSERT = 128


def _metadata_json(metas: list[Any]) -> list[str]:
    """The ``metadata`` column of a batch. Made on the caller's thread, before ``add`` returns:
    a caller may change its dicts afterwards."""
    return [json.dumps(m) if m else "{}" for m in metas]


def _insert_docs(con: Any, keys: np.ndarray, ids: list[str], texts: list[str], metas: list[str],
                 hashes: list[str], sid: int, row0: int) -> None:
    """The ``docs`` rows of one batch, at rows ``row0 ...`` of segment ``sid`` (``metas``: JSON
    strings, :func:`_metadata_json`)."""
    n, per = len(keys), ROWS_PER_INSERT
    flat = list(itertools.chain.from_iterable(zip(
        np.asarray(keys, dtype=np.int64).tolist(), ids, texts, metas, hashes,
        itertools.repeat(sid, n), range(row0, row0 + n), strict=True)))
    full, w = n // per, 7 * per
    if full:
        sql = _INSERT_DOCS + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * per)
        con.executemany(sql, (flat[i : i + w] for i in range(0, full * w, w)))
    if n > full * per:
        con.execute(_INSERT_DOCS + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * (n - full * per)), flat[full * w :])


class BulkWriter:
    """The ``b`` of ``with coll.bulk() as b``: :meth:`add` batches into one new segment."""

    def __init__(self, coll: Any, con: Any, progress: bool | None) -> None:
        self.coll, self.con, self.progress = coll, con, progress
        self.next_key, self.sid = _next_key_and_segment(con)
        # no live documents when the lock was taken: the ids to check are this block's own
        self.empty = con.execute("SELECT 1 FROM docs WHERE deleted = 0 LIMIT 1").fetchone() is None
        self.rows = 0
        self.fields: list[str] | None = None
        self.ids: set[str] = set()
        self.failed: BaseException | None = None
        self.writer = SegmentWriter(coll.path, self.sid)
        # the SQLite rows of the last batch go in on a thread of their own (SQLite's B-tree work
        # runs without the GIL) while the caller makes and prepares the next batch
        self._inserting: threading.Thread | None = None
        self._insert_error: BaseException | None = None

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
        """Add a batch (as :meth:`Collection.add`); returns its keys. Visible when the block ends.

        A batch refused for its input (``ValueError``, ``TypeError``) writes nothing, and the
        load can go on. A failure while writing (a full disk) ends the load: nothing is committed.
        """
        if self.failed is not None:
            raise ValueError(
                f"this bulk load failed while writing ({self.failed}); nothing was committed: "
                "leave the with-block and start a new one"
            )
        prepared = self.coll._prepare(
            texts, ids=ids, metadata=metadata, vectors=vectors, fields=fields,
            progress=self.progress if progress is None else progress, replace=False,
            check_live=not self.empty,
        )
        if prepared is None:
            return np.zeros(0, dtype=np.int64)
        texts, ids_l, metas, hashes, field_data = prepared  # ids live before the block: refused
        if ids_l is not None:  # and ids of this block's earlier batches (not committed yet)
            again = self.ids.intersection(ids_l)
            if again:
                raise ValueError(
                    f"id(s) already added in this bulk load: {sorted(again)[:5]}; each id once"
                )
            self.ids.update(ids_l)
        n = len(texts)
        keys = np.arange(self.next_key, self.next_key + n, dtype=np.int64)
        ids_final = ids_l if ids_l is not None else [str(int(k)) for k in keys]
        args = (keys, ids_final, texts, _metadata_json(metas), hashes, self.rows)
        try:
            self.writer.append(keys, field_data, ids_final)
            self.writer.start_sync(min_bytes=SYNC_BYTES)
            self.wait()
            if n < THREAD_ROWS:  # a thread would cost more than the rows
                _insert_docs(self.con, *args[:5], self.sid, self.rows)
        except BaseException as exc:  # the segment's files may hold part of the batch now
            self.failed = exc
            raise
        if n >= THREAD_ROWS:
            self._inserting = threading.Thread(target=self._insert, args=args,
                                               name="heron-bulk-rows", daemon=True)
            self._inserting.start()
        self.fields = sorted(field_data)
        self.next_key += n
        self.rows += n
        return keys

    def _insert(self, keys, ids, texts, metas, hashes, row0) -> None:
        try:
            _insert_docs(self.con, keys, ids, texts, metas, hashes, self.sid, row0)
        except BaseException as exc:  # raised on the caller's thread by wait()
            self._insert_error = exc

    def wait(self, *, check: bool = True) -> None:
        """Wait for the last batch's rows; raise what inserting them raised (unless ``check``
        is false: the load is being abandoned)."""
        if self._inserting is not None:
            self._inserting.join()
            self._inserting = None
        exc, self._insert_error = self._insert_error, None
        if exc is not None and check:
            raise exc


@contextlib.contextmanager
def _bulk(coll: Any, progress: bool | None) -> Iterator[BulkWriter]:
    with coll._writer():
        # a connection of its own: reads on this thread inside the block (len, search, get) see
        # the last commit, not the block's rows (one SQLite connection sees its own transaction)
        con = coll.store.open_connection()
        con.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
        writer, committed = None, False
        coll._bulk_thread = threading.get_ident()  # a write on this thread would wait for itself
        try:
            con.execute("BEGIN IMMEDIATE")
            writer = BulkWriter(coll, con, progress)
            yield writer
            if writer.failed is None and writer.rows:
                writer.writer.finish()  # its fsync runs while the last batch's rows go in
            if writer.failed is None:
                try:
                    writer.wait()
                except BaseException as exc:
                    writer.failed = exc
            if writer.failed is not None:  # caught in the block: still nothing is committed
                raise ValueError(
                    f"the bulk load failed while writing ({writer.failed}); nothing was committed"
                ) from writer.failed
            if writer.rows == 0:  # nothing added: nothing to publish
                writer.writer.abort()
                con.execute("ROLLBACK")
                return
            con.execute(
                "INSERT INTO segments(id, rows, fields) VALUES (?, ?, ?)",
                (writer.sid, writer.rows, json.dumps(writer.fields)),
            )
            epoch = bump(con)
            point("bulk.commit")
            con.execute("COMMIT")
            committed = True
            coll.store.published(epoch)
        except BaseException:
            if writer is not None:
                writer.wait(check=False)  # its thread uses the connection
                if not committed:
                    writer.writer.abort()
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            coll._bulk_thread = None
            con.close()
        coll._merge_small_segments()
