"""Move a collection's documents in and out: JSONL / Parquet export and import, consistent copies.

Export reads one :class:`~heron.collection.snapshot.Snapshot` (so a concurrent writer never
mixes two generations into one file) and writes, in key order, one row per live document:
``id``, ``text``, ``metadata`` and, with ``vectors=True``, the stored dense ``vector``.

* **JSONL**: a first line ``{"heron_export": {...}}`` (format, model, dim, dtype, generation,
  count), then ``{"id", "text", "metadata", "vector"?}`` per document. Vectors are JSON lists
  of the shortest decimal that round-trips each value (Python's ``repr``), so they come back
  bit-identical.
* **Parquet** (``pyarrow``, ``pip install "heron[parquet]"``): columns ``id`` and ``text``
  (string), ``metadata`` (a JSON string: documents' metadata differ in shape), ``vector``
  (``fixed_size_list<float32>[dim]``); the header is the schema's ``heron_export`` metadata.

Import reads either back in batches; given vectors it stores them as they are (no encoding).

:func:`snapshot_to` copies a collection while it is in use: it holds a reader lease (so no
segment or index version the copy needs can be collected), copies the database through
SQLite's online backup API (one consistent state, never a torn file), then the segments and
index versions that state names.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: the export format's name and version (checked on import)
FORMAT = "heron-export"
FORMAT_VERSION = 1
#: documents read per batch
BATCH = 2048


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ValueError(
        f"cannot tell the format of {str(path)!r}: name the file .jsonl or .parquet"
    )


def _pyarrow() -> Any:
    from heron._deps import require

    return require("pyarrow", extra="parquet", purpose="Parquet export and import")


def export_collection(
    coll: Any,
    out: str | Path,
    *,
    vectors: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the live documents of ``coll`` to ``out`` (``.jsonl`` or ``.parquet``).

    Parameters
    ----------
    coll: an open collection.
    out: the file to write (replaced atomically: written beside it, then renamed).
    vectors: include the dense vectors ``(n, dim)`` so an import does not re-encode.
    on_rows: called with the number of rows after each batch (a progress bar).

    Returns
    -------
    The header: format, model, dim, generation, count, vectors, fields (the manifest's).
    """
    out = Path(out)
    kind = _kind(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"folder {str(out.parent)!r} does not exist; create it or pick another path")
    snap = coll.snapshot()
    dense = snap.dense() if vectors else None
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": coll.model,
        "dim": coll.dim,
        "dtype": str(dense.dtype) if dense is not None else None,
        "generation": snap.generation,
        "count": len(snap),
        "vectors": bool(vectors),
        # the manifest's field specs (pooling, chunking): an import re-creates them
        "fields": json.loads(json.dumps(dict(coll.fields))),
    }
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if kind == "jsonl":
            _write_jsonl(tmp, header, _batches(snap, dense), on_rows)
        else:
            _write_parquet(tmp, header, _batches(snap, dense), on_rows)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return header


def _batches(snap: Any, dense: np.ndarray | None) -> Iterator[tuple[list, list, list, Any]]:
    keys = snap.keys
    for s in range(0, len(keys), BATCH):
        part = keys[s : s + BATCH]
        vec = np.asarray(dense[s : s + BATCH]) if dense is not None else None
        yield snap.ids(part), snap.texts(part), snap.metadata(part), vec


def _write_jsonl(path: Path, header: dict, batches: Iterator, on_rows: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"heron_export": header}) + "\n")
        for ids, texts, metas, vec in batches:
            for r, (i, t, m) in enumerate(zip(ids, texts, metas)):
                row: dict[str, Any] = {"id": i, "text": t, "metadata": m}
                if vec is not None:
                    row["vector"] = vec[r].tolist()
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            if on_rows is not None:
                on_rows(len(ids))


def _write_parquet(path: Path, header: dict, batches: Iterator, on_rows: Any) -> None:
    pa = _pyarrow()
    import pyarrow.parquet as pq

    cols = [("id", pa.string()), ("text", pa.string()), ("metadata", pa.string())]
    if header["vectors"]:
        cols.append(("vector", pa.list_(pa.from_numpy_dtype(np.dtype(header["dtype"])), header["dim"])))
    schema = pa.schema(cols, metadata={"heron_export": json.dumps(header)})
    with pq.ParquetWriter(path, schema) as w:
        for ids, texts, metas, vec in batches:
            arrays = [pa.array(ids, pa.string()), pa.array(texts, pa.string()),
                      pa.array([json.dumps(m, ensure_ascii=False) for m in metas], pa.string())]
            if vec is not None:
                flat = pa.array(np.ascontiguousarray(vec).reshape(-1))
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, header["dim"]))
            w.write_table(pa.Table.from_arrays(arrays, schema=schema))
            if on_rows is not None:
                on_rows(len(ids))


# ----------------------------------------------------------------------------- import
def read_header(path: str | Path) -> dict[str, Any]:
    """The header of an export (``{}`` for a plain JSONL/Parquet file of ``id``/``text`` rows)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no export file at {str(path)!r}")
    if _kind(path) == "jsonl":
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        try:
            row = json.loads(first) if first.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:1: not valid JSON ({exc.msg})") from exc
        header = row.get("heron_export", {}) if isinstance(row, dict) else {}
    else:
        _pyarrow()
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        header = json.loads(meta.get(b"heron_export", b"{}"))
    if header and (header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION):
        raise ValueError(
            f"{str(path)!r} is format {header.get('format')!r} v{header.get('version')}; "
            f"this heron reads {FORMAT!r} v{FORMAT_VERSION}"
        )
    return header


def iter_export(path: str | Path) -> Iterator[tuple[list[str], list[str], list[dict], np.ndarray | None]]:
    """Batches ``(ids, texts, metadata, vectors (b, dim) or None)`` of an export file."""
    path = Path(path)
    if _kind(path) == "parquet":
        _pyarrow()
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        for missing in ({"id", "text"} - names):
            raise ValueError(f"{str(path)!r} has no {missing!r} column; columns: {sorted(names)}")
        for rb in pf.iter_batches(batch_size=BATCH):
            ids = [str(x) for x in rb.column("id").to_pylist()]
            texts = [str(x) for x in rb.column("text").to_pylist()]
            metas = (
                [m if isinstance(m, dict) else (json.loads(m) if m else {})
                 for m in rb.column("metadata").to_pylist()]
                if "metadata" in names
                else [{} for _ in ids]
            )
            vec = None
            if "vector" in names:
                col = rb.column("vector")
                vec = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
            yield ids, texts, metas, vec
        return
    batch: list[dict] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            if n == 1 and isinstance(row, dict) and "heron_export" in row:
                continue
            if isinstance(row, dict) and "id" not in row and "_id" in row:
                row["id"] = row["_id"]
            if not isinstance(row, dict) or "text" not in row or "id" not in row:
                raise ValueError(f"{path}:{n}: each row needs 'id' and 'text' fields")
            batch.append(row)
            if len(batch) >= BATCH:
                yield _rows(batch, path)
                batch = []
    if batch:
        yield _rows(batch, path)


def _rows(rows: list[dict], path: Path) -> tuple[list, list, list, np.ndarray | None]:
    with_vec = ["vector" in r for r in rows]
    if any(with_vec) and not all(with_vec):
        raise ValueError(f"{path}: some rows have a 'vector' and some do not; give all or none")
    vec = np.asarray([r["vector"] for r in rows], dtype=np.float32) if all(with_vec) else None
    return (
        [str(r["id"]) for r in rows],
        [str(r["text"]) for r in rows],
        [r.get("metadata") or {} for r in rows],
        vec,
    )


def import_collection(
    coll: Any, path: str | Path, *, on_rows: Callable[[int], None] | None = None
) -> int:
    """Upsert every row of an export into ``coll`` (its vectors as they are); returns the count."""
    header = read_header(path)
    if header.get("vectors") and header.get("model") not in (None, coll.model) and coll.model != "none":
        raise ValueError(
            f"the export's vectors come from model {header['model']!r} but the collection uses "
            f"{coll.model!r}; import into a new collection (heron import creates it with the export's model)"
        )
    n = 0
    for ids, texts, metas, vec in iter_export(path):
        coll.upsert(texts, ids=ids, metadata=metas, vectors=vec, progress=False)
        n += len(ids)
        if on_rows is not None:
            on_rows(len(ids))
    return n


# ----------------------------------------------------------------------------- copies
def snapshot_to(coll: Any, dest: str | Path) -> dict[str, Any]:
    """Copy ``coll`` into the new folder ``dest`` as one committed state, while it is in use.

    Returns ``{"generation", "documents", "segments", "indexes", "bytes"}`` of the copy.
    """
    from heron.collection.manifest import MANIFEST
    from heron.collection.segments import segment_name
    from heron.collection.store import DB

    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{str(dest)!r} exists and is not empty; pick a new folder for the copy")
    snap = coll.snapshot()  # its lease keeps every file of later states until we are done
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        target = sqlite3.connect(tmp / DB)
        try:
            coll.store.connect().backup(target)
            # retired segments and index versions are not copied: drop their rows (the deleted
            # documents of retired segments included), then pack the copy's file
            target.execute("DELETE FROM docs WHERE segment NOT IN (SELECT id FROM segments)")
            target.execute("DELETE FROM retired")
            target.commit()
            target.execute("VACUUM")
            (gen,) = target.execute("SELECT value FROM state WHERE name='generation'").fetchone()
            segs = [s for (s,) in target.execute("SELECT id FROM segments ORDER BY id")]
            arts = target.execute(
                "SELECT name, version FROM artifacts WHERE version IS NOT NULL"
            ).fetchall()
            (docs,) = target.execute("SELECT COUNT(*) FROM docs WHERE deleted = 0").fetchone()
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
        shutil.copy2(coll.path / MANIFEST, tmp / MANIFEST)
        (tmp / "segments").mkdir()
        for s in segs:
            shutil.copytree(coll.path / "segments" / segment_name(s), tmp / "segments" / segment_name(s))
        _copy_indexes(coll.path / "indexes", tmp / "indexes", dict(arts),
                      {segment_name(s) for s in segs})
        tmp.rename(dest) if not dest.exists() else _move_into(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        del snap
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    return {"generation": int(gen), "documents": int(docs), "segments": len(segs),
            "indexes": [a for a, _ in arts], "bytes": size}


def _copy_indexes(src: Path, dst: Path, versions: dict[str, str], segments: set[str]) -> None:
    """Copy ``indexes/``: of a catalogued artifact only its current version; of other derived
    folders (calibration, drift maps, per-segment multi-vector arrays) everything, except
    per-segment files of segments the copy does not hold. Hidden files (locks, builds in
    progress) are never copied."""
    dst.mkdir()
    for d in sorted(src.iterdir()) if src.is_dir() else []:
        if d.name.startswith(".") or not d.is_dir():
            continue
        (dst / d.name).mkdir()
        for f in d.iterdir():
            if f.name.startswith("."):
                continue
            stem = f.name.split(".")[0]
            if stem.isdigit() and len(stem) == 8 and stem not in segments:
                continue  # a per-segment array of a segment that is not in the copy
            if f.is_dir():
                if d.name in versions and f.name != versions[d.name]:
                    continue  # an older version, retired or about to be
                shutil.copytree(f, dst / d.name / f.name,
                                ignore=shutil.ignore_patterns(".*"))
            else:
                shutil.copy2(f, dst / d.name / f.name)


def _move_into(tmp: Path, dest: Path) -> None:
    """Move the copy into an existing empty folder ``dest``."""
    for p in tmp.iterdir():
        p.rename(dest / p.name)
    tmp.rmdir()


__all__ = [
    "FORMAT",
    "export_collection",
    "import_collection",
    "iter_export",
    "read_header",
    "snapshot_to",
]
