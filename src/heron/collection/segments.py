"""Immutable on-disk segments of per-document arrays.

A segment is a folder ``segments/NNNNNNNN/`` holding ``keys.npy`` (int64, one key per row),
``segment.json`` (row count and each field's kind and files), ``ids.offsets.npy`` /
``ids.bytes.npy`` (the documents' string ids in key order, UTF-8; segments written before them
have none and resolve ids through SQLite), and per field:

* ``dense``:  ``NAME.npy`` of shape ``(n, d)``
* ``sparse``: ``NAME.indptr.npy`` (n+1,), ``NAME.indices.npy`` (nnz,) int32, ``NAME.data.npy`` (nnz,) float32
* ``ragged``: ``NAME.offsets.npy`` (n+1,) int64, ``NAME.values.npy`` (n_items, d)

Files are written to a temporary folder and renamed into place; once a segment is registered in
the collection's SQLite store it is never modified, except that a field may be *added* to it
(again via temp file + rename), so memory-mapped readers always see complete files.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from heron._faults import point
from heron._memory import NpyAppender, write_npy_blocks
from heron.collection.integrity import (
    SMALL_FILE,
    CorruptionError,
    confined,
    read_sealed,
    record,
    seal,
    verify_file,
    verify_files,
)
from heron.limits import load_npy


def segment_name(seg_id: int) -> str:
    return f"{seg_id:08d}"


class Rows:
    """The live rows of several 2-d arrays, one after another, never gathered in memory.

    A merge writes a dense field from the segments it replaces through this: each part is read
    (memory-mapped) and written :data:`CHUNK_ROWS` rows at a time, so compacting 1M × 384 float32
    vectors holds a few MB, not two 1.5 GB copies (the gathered rows and their concatenation).

    ``parts``: ``(array (n_i, d), live)`` pairs; ``live`` is a boolean ``(n_i,)`` mask or ``None``
    for all rows.
    """

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray | None]], dim: int) -> None:
        dtypes = {np.dtype(a.dtype) for a, _ in parts}
        if len(dtypes) > 1:
            raise ValueError(f"rows to concatenate have mixed dtypes {sorted(map(str, dtypes))}")
        self.parts = parts
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        n = sum(len(a) if m is None else int(np.count_nonzero(m)) for a, m in parts)
        self.shape = (n, dim)
        self.ndim = 2

    def chunks(self) -> Iterator[np.ndarray]:
        """C-contiguous blocks of at most :data:`CHUNK_ROWS` rows, in order."""
        for a, live in self.parts:
            for s in range(0, len(a), CHUNK_ROWS):
                block = a[s : s + CHUNK_ROWS]
                if live is not None:
                    block = block[live[s : s + CHUNK_ROWS]]
                yield np.ascontiguousarray(block)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.concatenate(list(self.chunks())) if self.parts else np.zeros(self.shape, self.dtype)
        return out if dtype is None else out.astype(dtype)


#: rows a :class:`Rows` block holds (64k rows of 384 float32: 100 MB would be too many; 8k: 12 MB)
CHUNK_ROWS = 8192


def _save(path: Path, arr: np.ndarray | Rows) -> None:
    with open(path, "wb") as f:
        if isinstance(arr, Rows):  # the same bytes np.save writes, block by block
            write_npy_blocks(f, arr.shape, arr.dtype, arr.chunks())
        else:
            np.save(f, np.ascontiguousarray(arr))
        f.flush()
        os.fsync(f.fileno())


def field_arrays(kind: str, name: str, data: Any, n: int) -> dict[str, Any]:
    """Turn a field's data for ``n`` rows into the files that store it."""
    if kind == "dense":
        arr = data if isinstance(data, Rows) else np.asarray(data)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(
                f"field {name!r}: expected a 2-d array with {n} rows, got shape {arr.shape}"
            )
        return {f"{name}.npy": arr}
    if kind == "sparse":
        sp = _as_csr(data, n, name)
        return {
            f"{name}.indptr.npy": np.asarray(sp.indptr, dtype=np.int64),
            f"{name}.indices.npy": np.asarray(sp.indices, dtype=np.int32),
            f"{name}.data.npy": np.asarray(sp.data, dtype=np.float32),
        }
    if kind == "ragged":
        if (
            isinstance(data, tuple)
            and len(data) == 2
            and np.asarray(data[0]).ndim == 1
            and np.asarray(data[1]).ndim == 2
        ):
            offsets, values = np.asarray(data[0], dtype=np.int64), np.asarray(data[1])
            if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(values):
                raise ValueError(
                    f"field {name!r}: ragged (offsets, values) must have {n + 1} offsets from 0 to len(values)"
                )
            return {f"{name}.offsets.npy": offsets, f"{name}.values.npy": values}
        items = list(data)
        if len(items) != n:
            raise ValueError(f"field {name!r}: expected {n} ragged rows, got {len(items)}")
        widths = {np.asarray(x).shape[1] for x in items if np.asarray(x).ndim == 2}
        if len(widths) > 1:
            raise ValueError(f"field {name!r}: ragged rows have mixed widths {sorted(widths)}")
        d = widths.pop() if widths else 0
        lens = np.array(
            [np.asarray(x).reshape(-1, d).shape[0] if d else 0 for x in items], dtype=np.int64
        )
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        dtype = np.asarray(items[0]).dtype if items else np.float32
        values = (
            np.concatenate([np.asarray(x, dtype=dtype).reshape(-1, d) for x in items])
            if lens.sum()
            else np.zeros((0, d), dtype=dtype)
        )
        return {f"{name}.offsets.npy": offsets, f"{name}.values.npy": values}
    raise ValueError(f"unknown field kind {kind!r}; choose one of dense, sparse, ragged")


def _as_csr(data: Any, n: int, name: str) -> Any:
    from heron._deps import require

    sparse = require("scipy.sparse", purpose="sparse fields")
    if sparse.issparse(data):
        sp = sparse.csr_matrix(data)
    else:
        raise TypeError(
            f"field {name!r} is sparse: pass a scipy.sparse matrix, got {type(data).__name__}"
        )
    if sp.shape[0] != n:
        raise ValueError(f"field {name!r}: expected {n} sparse rows, got {sp.shape[0]}")
    sp.sort_indices()
    return sp


def write_segment(
    root: Path,
    seg_id: int,
    keys: np.ndarray,
    fields: dict[str, tuple[str, Any]],
    ids: list[str] | None = None,
) -> Path:
    """Write a complete segment atomically; returns its folder.

    ``ids``: the documents' string ids, aligned with ``keys``. Stored beside them (``ids.*.npy``,
    sorted by key) so that a reader resolves hit ids from the segment on its first search,
    without SQLite (:meth:`Segment.id_table`); segments written without them read SQLite.
    """
    w = SegmentWriter(root, seg_id)
    try:
        w.append(keys, fields, ids)
        return w.finish()
    except BaseException:
        w.abort()
        raise


#: files whose values are offsets into the file after them (``n + 1`` per batch, from 0): a
#: batch appended after others continues their running total
OFFSET_FILES = (".indptr.npy", ".offsets.npy")


class SegmentWriter:
    """A segment written in batches of rows (:meth:`append`), published by :meth:`finish`.

    Every file is written as its batches arrive (:class:`~heron._memory.NpyAppender`), so a bulk
    load writes its vectors once, not once per batch and again when the batches are merged.
    The folder is a hidden temporary until :meth:`finish` renames it into place (checksums and
    ``segment.json`` last); :meth:`abort` removes it. Batches must keep the same fields and give
    keys above every earlier batch's (``ids.*.npy`` is in key order). After an error in
    :meth:`append`, part of that batch may be written: only :meth:`abort` is left.
    """

    def __init__(self, root: Path, seg_id: int) -> None:
        self.seg_dir = root / "segments" / segment_name(seg_id)
        self.tmp = root / "segments" / f".{segment_name(seg_id)}.tmp"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        if self.seg_dir.exists():  # an orphan from a crashed write (never registered)
            shutil.rmtree(self.seg_dir)
        self.tmp.mkdir(parents=True)
        self.rows = 0
        self._files: dict[str, tuple[Any, NpyAppender]] = {}
        self._last: dict[str, int] = {}  # running total of each offsets file
        self._fields: dict[str, dict[str, Any]] | None = None
        self._with_ids: bool | None = None
        self._max_key: int | None = None
        self.finished = False
        self._sync: threading.Thread | None = None
        self._sync_error: OSError | None = None
        self._synced = 0  # bytes written when the last background sync started

    def append(
        self, keys: np.ndarray, fields: dict[str, tuple[str, Any]], ids: list[str] | None = None
    ) -> None:
        """Write the next rows: their ``keys`` ``(n,)``, the data of every field, their ids."""
        keys = np.asarray(keys, dtype=np.int64)
        n = len(keys)
        if self._with_ids is not None and (ids is not None) != self._with_ids:
            raise ValueError("every batch of a segment gives ids, or none does")
        if self._fields is not None and set(fields) != set(self._fields):
            raise ValueError(
                f"a batch has fields {sorted(fields)}; the segment's are {sorted(self._fields)}"
            )
        if n and self._max_key is not None and int(keys.min()) <= self._max_key:
            raise ValueError("a batch's keys must all follow the earlier batches' keys")
        files: dict[str, Any] = {"keys.npy": keys}
        if ids is not None:
            if len(ids) != n:
                raise ValueError(f"got {len(ids)} ids for {n} keys")
            files.update(id_arrays(keys, ids))
        metas: dict[str, dict[str, Any]] = {}
        field_files: list[str] = []
        for name, (kind, data) in fields.items():
            ff = field_arrays(kind, name, data, n)
            metas[name] = {"kind": kind, **_field_meta(kind, ff)}
            files.update(ff)
            field_files += list(ff)
        for fname, arr in files.items():
            self._append(fname, arr)
            if fname in field_files:
                point("segment.file")
        self._fields = {name: _merge_meta(self._fields.get(name) if self._fields else None, m)
                        for name, m in metas.items()}
        self._with_ids = ids is not None
        if n:
            self._max_key = max(int(keys.max()), self._max_key if self._max_key is not None else -1)
        self.rows += n

    def _append(self, fname: str, arr: Any) -> None:
        if fname.endswith(OFFSET_FILES) and fname in self._last:  # continue the running total
            arr = np.asarray(arr, dtype=np.int64)[1:] + self._last[fname]
        if fname.endswith(OFFSET_FILES):
            a = np.asarray(arr)
            if len(a):
                self._last[fname] = int(a[-1])
        row_shape, dtype = tuple(arr.shape[1:]), np.dtype(arr.dtype)
        entry = self._files.get(fname)
        if entry is not None and entry[1].rows == 0 and entry[1].row_shape != row_shape:
            entry[0].close()  # nothing written yet (e.g. empty ragged rows first): start again
            entry = None
        if entry is None:
            f = open(self.tmp / fname, "wb")  # noqa: SIM115 - closed by finish / abort
            entry = self._files[fname] = (f, NpyAppender(f, dtype, row_shape))
        ap = entry[1]
        if arr.shape[0] == 0:
            return
        try:
            if isinstance(arr, Rows):
                for block in arr.chunks():
                    ap.append(block)
            else:
                ap.append(arr)
        except ValueError as exc:
            raise ValueError(f"{fname}: {exc} (a batch must match the segment's earlier ones)") from None

    def start_sync(self, min_bytes: int = 0) -> None:
        """Start writing the rows so far to disk on a thread, so that :meth:`finish`'s fsync has
        only the last ones left; nothing if fewer than ``min_bytes`` were written since the last
        start. An error there is raised by :meth:`finish` (a second fsync on the same file would
        not report it again)."""
        written = sum(f.tell() for f, _ in self._files.values())
        if written - self._synced < min_bytes:
            return
        self._join_sync()
        self._synced = written
        for f, _ in self._files.values():
            f.flush()
        fds = [f.fileno() for f, _ in self._files.values()]
        self._sync = threading.Thread(target=self._datasync, args=(fds,), name="heron-segment-sync",
                                      daemon=True)
        self._sync.start()

    def _datasync(self, fds: list[int]) -> None:
        try:
            for fd in fds:
                os.fdatasync(fd)
        except OSError as exc:
            self._sync_error = exc

    def _join_sync(self) -> None:
        if self._sync is not None:
            self._sync.join()
            self._sync = None

    def finish(self) -> Path:
        """Complete every file (headers, fsync), write ``segment.json``, rename into place."""
        self._join_sync()
        if self._sync_error is not None:
            raise self._sync_error
        names = list(self._files)
        for f, ap in self._files.values():
            ap.finish()
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._files = {}
        meta: dict[str, Any] = {"rows": self.rows, "fields": self._fields or {}}
        meta["files"] = record(self.tmp, names)
        _write_json(self.tmp / "segment.json", seal(meta))
        point("segment.rename")
        os.replace(self.tmp, self.seg_dir)
        self.finished = True
        return self.seg_dir

    def abort(self) -> None:
        """Close and remove what was written, finished or not (the space comes back at once).
        Only for a segment that no commit registered."""
        self._join_sync()
        for f, _ in self._files.values():
            f.close()
        self._files = {}
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.finished:
            shutil.rmtree(self.seg_dir, ignore_errors=True)


def _merge_meta(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A field's ``segment.json`` entry over all batches: counts add up, shapes must agree."""
    if old is None:
        return new
    if "nnz" in new:
        return {**old, "nnz": old["nnz"] + new["nnz"]}
    if "items" in new:
        base = new if old["items"] == 0 else old  # empty ragged rows carry no width
        if new["items"] and (new["dim"], new["dtype"]) != (base["dim"], base["dtype"]):
            raise ValueError(f"ragged rows of {new['dtype']} x {new['dim']} after {base['dtype']} x {base['dim']}")
        return {**base, "items": old["items"] + new["items"]}
    if new != old:
        raise ValueError(f"a batch's {new} differs from the segment's {old}")
    return old


def add_field_to_segment(seg_dir: Path, name: str, kind: str, data: Any) -> None:
    """Add one field's files to an existing segment (atomic per file, manifest last)."""
    meta = read_sealed(seg_dir / "segment.json")
    files = field_arrays(kind, name, data, int(meta["rows"]))
    for fname, arr in files.items():
        tmp = seg_dir / f".{fname}.tmp"
        _save(tmp, arr)
        os.replace(tmp, seg_dir / fname)
    meta["fields"][name] = {"kind": kind, **_field_meta(kind, files)}
    if "files" in meta:
        meta["files"].update(record(seg_dir, list(files)))
    tmpj = seg_dir / ".segment.json.tmp"
    _write_json(tmpj, seal(meta))
    os.replace(tmpj, seg_dir / "segment.json")


def _write_json(path: Path, meta: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, indent=1))
        f.flush()
        os.fsync(f.fileno())


def _field_meta(kind: str, files: dict[str, Any]) -> dict[str, Any]:
    first = next(iter(files.values()))
    if kind == "dense":
        return {"dim": int(first.shape[1]), "dtype": str(first.dtype)}
    if kind == "ragged":
        vals = [v for k, v in files.items() if k.endswith(".values.npy")][0]
        return {"dim": int(vals.shape[1]), "dtype": str(vals.dtype), "items": int(vals.shape[0])}
    return {"nnz": int(len([v for k, v in files.items() if k.endswith(".data.npy")][0]))}


#: keys looked up one at a time in Python rather than as arrays (a page of hits)
SMALL_LOOKUP = 64

#: lookups of a segment's ids (one per :meth:`Snapshot.ids` call) before the segment keeps its
#: ids resident (:class:`IdTable`); the earlier ones read SQLite
ID_TABLE_AFTER = 8


#: the files of a segment's ids: UTF-8 bytes of every id, in key order, and their offsets
ID_FILES = ("ids.offsets.npy", "ids.bytes.npy")


def id_arrays(keys: np.ndarray, ids: list[str]) -> dict[str, np.ndarray]:
    """``{ID_FILES[0]: offsets (n+1,) int64, ID_FILES[1]: bytes (total,) uint8}``: ``ids`` packed
    in the order of ``keys`` sorted (what :class:`IdTable` searches)."""
    order = np.argsort(keys, kind="stable")
    if len(order) and not bool((order == np.arange(len(order))).all()):
        ids = [ids[i] for i in order.tolist()]
    text = "".join(ids)
    blob = text.encode("utf-8", "surrogatepass")
    if len(blob) == len(text):  # ASCII: one byte per character
        lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    else:
        lens = np.fromiter((len(i.encode("utf-8", "surrogatepass")) for i in ids),
                           dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return {ID_FILES[0]: offsets, ID_FILES[1]: np.frombuffer(blob, dtype=np.uint8)}


class IdTable:
    """The string ids of a segment's documents, resident: keys sorted, ids packed as UTF-8.

    A key's id never changes (keys are never reused; an upsert writes a new key), so a table built
    once stays right for every later snapshot that still holds the segment. Memory: 16 bytes per
    row plus the ids' bytes (about 22 MB for a million 6-character ids).
    """

    def __init__(self, keys: np.ndarray, offsets: np.ndarray, blob: bytes) -> None:
        self.keys, self.offsets, self.blob = keys, offsets, blob
        n = len(keys)
        #: first key when the keys are one run (``keys[i] == base + i``: a bulk load, a compacted
        #: segment); a key's row is then ``key - base``, with no binary search over ``keys``
        #: (each search is ~20 cache misses at 1M rows: 15-20 µs for ten hits)
        self.base = int(keys[0]) if n and int(keys[-1]) - int(keys[0]) == n - 1 else None
        self._off = memoryview(np.ascontiguousarray(offsets, dtype=np.int64))

    @classmethod
    def build(cls, con: Any, segment_keys: np.ndarray) -> IdTable:
        """Read the ids of ``segment_keys`` from the ``docs`` table (one range scan)."""
        seg = np.asarray(segment_keys, dtype=np.int64)
        if len(seg) == 0:
            return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), b"")
        rows = con.execute(
            "SELECT key, id FROM docs WHERE key BETWEEN ? AND ? ORDER BY key",
            (int(seg.min()), int(seg.max())),
        ).fetchall()
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        keep = np.isin(keys, seg)
        enc = [r[1].encode("utf-8", "surrogatepass") for r, kept in zip(rows, keep) if kept]
        offsets = np.zeros(len(enc) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)), out=offsets[1:])
        return cls(keys[keep], offsets, b"".join(enc))

    def lookup(self, keys: np.ndarray | list[int], out: list[str | None]) -> None:
        """Fill ``out[i]`` with the id of ``keys[i]`` (an array, or a list of ints) where this
        table has it."""
        n = len(self.keys)
        if n == 0:
            return
        if self.base is not None and len(keys) <= SMALL_LOOKUP:
            # a hit list: plain Python ints throughout (each numpy call on ten keys costs ~1 µs,
            # a memoryview item ~50 ns)
            base, off, blob = self.base, self._off, self.blob
            for i, k in enumerate(keys if type(keys) is list else keys.tolist()):
                p = k - base
                if 0 <= p < n:
                    out[i] = blob[off[p] : off[p + 1]].decode("utf-8", "surrogatepass")
            return
        keys = np.asarray(keys, dtype=np.int64)
        if self.base is not None:
            pos = keys - self.base
            hit = (pos >= 0) & (pos < n)
        else:
            pos = np.searchsorted(self.keys, keys)
            np.minimum(pos, n - 1, out=pos)
            hit = self.keys[pos] == keys
        if hit.all():
            found: Any = range(len(keys))
        else:
            found = np.flatnonzero(hit).tolist()
            pos = pos[found]
        # plain ints for the slicing (numpy scalar indexing costs ~0.1 µs a value)
        off, blob = self.offsets, self.blob
        for i, a, b in zip(found, off[pos].tolist(), off[pos + 1].tolist()):
            out[i] = blob[a:b].decode("utf-8", "surrogatepass")


class Segment:
    """Read-only, memory-mapped view of one segment."""

    def __init__(self, seg_dir: Path, seg_id: int, *, deep: bool = False) -> None:
        self.dir = seg_dir
        self.id = seg_id
        try:
            self.meta = read_sealed(seg_dir / "segment.json")
            #: checksums recorded at commit (absent in segments written before them)
            self.files: dict[str, dict[str, Any]] = self.meta.get("files", {})
            verify_files(seg_dir, self.files, deep=deep)  # sizes; contents of small files
            if "keys.npy" in self.files:
                verify_file(seg_dir / "keys.npy", self.files["keys.npy"])
            self.keys = load_npy(seg_dir / "keys.npy", mmap_mode="r")
        except CorruptionError:
            raise
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"segment {str(seg_dir)!r} is missing or corrupt ({exc}); the collection needs repair (heron compact)"
            ) from exc
        self.rows = int(self.meta["rows"])
        self._cache: dict[str, Any] = {}

    def has(self, name: str) -> bool:
        return name in self.meta["fields"]

    def id_table(self, connect: Any) -> IdTable | None:
        """This segment's resident :class:`IdTable`, built on the :data:`ID_TABLE_AFTER`-th
        lookup (``None`` before: the caller reads SQLite). ``connect()`` gives the store's
        connection."""
        table = self._cache.get("id_table")
        if table is None:
            if all(f in self.files for f in ID_FILES):  # written with its ids: read them now
                return self.ids_table(connect)
            seen = self._cache["id_lookups"] = self._cache.get("id_lookups", 0) + 1
            if seen < ID_TABLE_AFTER:
                return None
            table = self._cache["id_table"] = IdTable.build(connect(), self.keys)
        return table

    def ids_table(self, connect: Any) -> IdTable:
        """This segment's :class:`IdTable` now: from its id files, else from SQLite."""
        table = self._cache.get("id_table")
        if table is None:
            if all(f in self.files for f in ID_FILES):
                offsets, blob = (self._load(f) for f in ID_FILES)
                keys = np.asarray(self.keys, dtype=np.int64)
                if len(keys) > 1 and not bool((keys[1:] > keys[:-1]).all()):
                    keys = np.sort(keys)  # a merge of small segments: rows not in key order
                table = IdTable(keys, np.asarray(offsets, dtype=np.int64), blob.tobytes())
            else:
                table = IdTable.build(connect(), self.keys)
            self._cache["id_table"] = table
        return table

    def _load(self, fname: str) -> np.ndarray:
        if fname not in self._cache:
            entry = self.files.get(fname)
            if entry is not None and entry["size"] > SMALL_FILE:  # large: verified on first use
                verify_file(self.dir / fname, entry)
            path = confined(self.dir, fname, what="a field of this segment")  # names from heron.json
            self._cache[fname] = load_npy(path, mmap_mode="r")
        return self._cache[fname]

    def dense(self, name: str = "dense") -> np.ndarray:
        """``(rows, d)`` memory-mapped array of a dense field."""
        return self._load(f"{name}.npy")

    def sparse(self, name: str, vocab: int = 0) -> Any:
        from heron._deps import require

        sparse = require("scipy.sparse", purpose="sparse fields")
        indptr, indices, data = (
            self._load(f"{name}.{p}.npy") for p in ("indptr", "indices", "data")
        )
        vocab = vocab or (int(indices.max()) + 1 if len(indices) else 0)
        return sparse.csr_matrix((data, indices, indptr), shape=(self.rows, vocab))

    def ragged(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self._load(f"{name}.offsets.npy"), self._load(f"{name}.values.npy")
