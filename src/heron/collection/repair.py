"""``check`` a collection for damage and ``repair`` it from its source of truth.

The source of truth is the documents (ids, texts, metadata in ``docs.sqlite``) and their vectors
(the segments). Everything else — ANN indexes, codes, BM25, Seismic — is *derived* and can be
rebuilt. :func:`check` lists every file that does not match the checksum recorded at commit
(see :mod:`heron.collection.integrity`); :func:`repair` rewrites damaged segments from what
survives (undamaged field files, or the stored texts re-encoded when the collection's encoder
is available), removes the documents whose vectors are lost, rebuilds every derived artifact,
and says what it could not recover.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heron.collection import artifacts as art
from heron.collection import integrity
from heron.collection.integrity import CorruptionError
from heron.collection.manifest import MANIFEST, CollectionError, read_manifest
from heron.collection.segments import segment_name, write_segment
from heron.collection.store import DB, Store

log = logging.getLogger("heron.repair")


@dataclass
class Problem:
    """One damaged thing: ``file`` (path), ``kind`` (manifest, database, segment, artifact,
    document), a one-line ``message``, and the ``segment`` id or ``artifact`` name it belongs to."""

    file: str
    kind: str
    message: str
    segment: int | None = None
    artifact: str | None = None
    ids: list[str] = field(default_factory=list)


@dataclass
class Report:
    """What :func:`check` found (``problems``) and :func:`repair` did (``rebuilt``, ``lost``)."""

    path: str
    deep: bool
    problems: list[Problem] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    reencoded: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unrecoverable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"{p.kind} {p.file}: {p.message}" for p in self.problems]
        return out or ["ok"]


def _verify(folder: Path, name: str, entry: dict[str, Any], deep: bool) -> str:
    try:
        integrity.verify_file(integrity.confined(folder, name, what="the checksum list"), entry,
                              full=deep or entry["size"] <= integrity.SMALL_FILE, fresh=deep)
    except CorruptionError as exc:
        return exc.problem
    return ""


def check(path: str | os.PathLike, *, deep: bool = False) -> Report:
    """Every damaged file of the collection at ``path``.

    Without ``deep``: sizes of all files, contents of small ones, SQLite ``quick_check``.
    With ``deep``: every file's contents, SQLite ``integrity_check``, every segment's keys
    against the database, and each document's text against the hash recorded with it.
    """
    root = Path(path)
    rep = Report(str(root), deep)
    try:
        manifest = read_manifest(root)
    except (CollectionError, CorruptionError) as exc:
        rep.problems.append(Problem(str(root / MANIFEST), "manifest", str(exc)))
        return rep
    try:
        store = Store(root)
        con = store.connect()
        res = con.execute("PRAGMA integrity_check" if deep else "PRAGMA quick_check").fetchall()
    except (ValueError, OSError) as exc:  # Store wraps sqlite3.DatabaseError
        rep.problems.append(Problem(str(root / DB), "database", str(exc)))
        return rep
    except sqlite3.DatabaseError as exc:  # from the check itself
        rep.problems.append(Problem(str(root / DB), "database", f"{type(exc).__name__}: {exc}"))
        return rep
    try:
        if [r[0] for r in res] != ["ok"]:
            msg = "; ".join(str(r[0]) for r in res[:3])
            rep.problems.append(Problem(str(root / DB), "database", f"SQLite reports: {msg}"))
            return rep
        for (sid,) in con.execute("SELECT id FROM segments ORDER BY id").fetchall():
            _check_segment(root, con, int(sid), manifest, deep, rep)
        for rec in art.read_catalog(con).values():
            if rec.version is not None:
                _check_artifact(root, rec, deep, rep)
        if deep:
            _check_documents(root, con, manifest, rep)
    finally:
        store.close()
    return rep


def _segment_ids(con: Any, sid: int) -> list[str]:
    rows = con.execute(
        "SELECT id FROM docs WHERE segment = ? AND deleted = 0 ORDER BY row", (sid,)
    ).fetchall()
    return [r[0] for r in rows]


def _check_segment(root: Path, con: Any, sid: int, manifest: dict, deep: bool, rep: Report) -> None:
    d = root / "segments" / segment_name(sid)
    try:
        meta = integrity.read_sealed(d / "segment.json")
    except CorruptionError as exc:
        rep.problems.append(Problem(exc.path, "segment", exc.problem, segment=sid,
                                    ids=_segment_ids(con, sid)))
        return
    for name, entry in meta.get("files", {}).items():
        why = _verify(d, name, entry, deep)
        if why:
            rep.problems.append(Problem(str(d / name), "segment", why, segment=sid,
                                        ids=_segment_ids(con, sid)))
    if deep and not any(p.segment == sid for p in rep.problems):
        try:  # segments written before checksums: at least the arrays must load
            keys = np.load(d / "keys.npy", mmap_mode="r", allow_pickle=False)
            for name in meta.get("fields", {}) if "files" not in meta else ():
                for f in d.glob(f"{name}.*npy"):
                    np.load(f, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            rep.problems.append(Problem(str(d), "segment", f"an array does not load ({exc})",
                                        segment=sid, ids=_segment_ids(con, sid)))
            return
        rows = con.execute("SELECT key, row FROM docs WHERE segment = ?", (sid,)).fetchall()
        bad = [k for k, r in rows if r >= len(keys) or int(keys[r]) != k]
        if bad or len(keys) != int(meta["rows"]):
            rep.problems.append(Problem(str(d / "keys.npy"), "segment",
                                        f"{len(bad)} documents point at rows with other keys",
                                        segment=sid, ids=_segment_ids(con, sid)))
        dim = meta["fields"].get("dense", {}).get("dim")
        if dim is not None and dim != manifest["dim"]:
            rep.problems.append(Problem(str(root / MANIFEST), "manifest",
                                        f"dim {manifest['dim']} but segment {sid} stores {dim}"))


def _check_artifact(root: Path, rec: art.ArtifactRecord, deep: bool, rep: Report) -> None:
    folder = root / "indexes" / rec.name / str(rec.version)
    try:
        meta = integrity.read_sealed(folder / "artifact.json")
    except CorruptionError as exc:
        rep.problems.append(Problem(exc.path, "artifact", exc.problem, artifact=rec.name))
        return
    for name, entry in meta.get("files", {}).items():
        why = _verify(folder, name, entry, deep)
        if why:
            rep.problems.append(Problem(str(folder / name), "artifact", why, artifact=rec.name))


def _text_ok(text: str, h: str, model: str) -> bool:
    from heron.collection.writes import SUPPLIED, text_hash

    if h.startswith(SUPPLIED):
        return h == SUPPLIED + text_hash(text)
    return h in (text_hash(text, model), hashlib.sha1(text.encode()).hexdigest())


def _check_documents(root: Path, con: Any, manifest: dict, rep: Report) -> None:
    bad_text, bad_meta = [], []
    for doc_id, text, meta, h in con.execute(
        "SELECT id, text, metadata, hash FROM docs WHERE deleted = 0"
    ):
        if not _text_ok(text, h, manifest["model"]):
            bad_text.append(doc_id)
        try:
            if not isinstance(json.loads(meta), dict):
                bad_meta.append(doc_id)
        except ValueError:
            bad_meta.append(doc_id)
    if bad_text:
        rep.problems.append(Problem(str(root / DB), "document",
                                    f"text of {len(bad_text)} documents differs from its recorded hash: {bad_text[:10]}",
                                    ids=bad_text))
    if bad_meta:
        rep.problems.append(Problem(str(root / DB), "document",
                                    f"metadata of {len(bad_meta)} documents is not a JSON object: {bad_meta[:10]}",
                                    ids=bad_meta))


# ----------------------------------------------------------------------------- repair
def repair(path: str | os.PathLike, *, encoder: Any = None) -> Report:
    """Rebuild what :func:`check` finds damaged, and every derived artifact; see the module doc.

    ``encoder`` (the collection's, as for :meth:`Collection.open`) re-encodes the stored texts of
    documents whose vectors are damaged; without it the collection's own model is loaded, and
    with ``model='none'`` (or no model available) those documents are removed and listed in
    ``Report.lost``. Damaged segment folders are copied to ``damaged/`` for salvage by hand.
    """
    from heron.collection.collection import Collection

    root = Path(path)
    found = check(root, deep=True)
    rep = Report(str(root), True, problems=[])
    if any(p.kind in ("manifest", "database") for p in found.problems):
        if any(p.kind == "database" for p in found.problems) and _reindex(root):
            found = check(root, deep=True)
            rep.rebuilt.append(f"{DB} indexes (REINDEX)")
        for p in found.problems:
            if p.kind in ("manifest", "database"):
                rep.unrecoverable.append(f"{p.file}: {p.message} (restore it from a backup)")
        if rep.unrecoverable:
            return rep
    coll = Collection.open(root, encoder=encoder)
    try:
        damaged = sorted({p.segment for p in found.problems if p.segment is not None})
        for sid in damaged:
            _repair_segment(coll, sid, {p.file for p in found.problems if p.segment == sid}, rep)
        for p in found.problems:
            if p.kind == "document":
                rep.unrecoverable.append(f"{p.message} (re-add those documents)")
        snap = coll.snapshot()
        for name, rec in sorted(snap.artifacts.items()):
            if rec.version is None:
                continue
            try:
                with art.build_lock(coll.path, name):
                    art.build(coll, coll.snapshot(), name, rec.kind, rec.field, rec.params)
            except ValueError as exc:  # e.g. every document was lost
                rep.unrecoverable.append(f"index {name!r} not rebuilt: {exc}")
                if not any(p.artifact == name for p in found.problems):
                    continue  # its current version is undamaged: keep it
                coll.drop_index(name)
                rep.unrecoverable.append(f"index {name!r} was damaged and is dropped; create it again")
                continue
            rep.rebuilt.append(f"index {name!r} ({rec.kind} on {rec.field})")
    finally:
        coll.close()
    after = check(root, deep=True)
    rep.problems = [p for p in after.problems if p.kind != "document"]
    return rep


def _reindex(root: Path) -> bool:
    try:
        con = sqlite3.connect(root / DB)
        con.execute("REINDEX")
        ok = con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        con.close()
        return ok
    except sqlite3.DatabaseError:
        return False


def _field_files(meta: dict, name: str) -> list[str]:
    return [f for f in meta.get("files", {}) if f == f"{name}.npy" or f.startswith(f"{name}.")]


def _read_field(d: Path, meta: dict | None, name: str, kind: str, rows: np.ndarray, bad: set[str]) -> Any:
    """The field's data for segment rows ``rows`` from its undamaged files; ``None`` if damaged."""
    if meta is None or name not in meta["fields"]:
        return None
    files = _field_files(meta, name)
    if not files or any(str(d / f) in bad for f in files):
        return None
    load = {f: np.load(d / f, mmap_mode="r") for f in files}
    if kind == "dense":
        return np.asarray(load[f"{name}.npy"])[rows]
    if kind == "sparse":
        from heron._deps import require

        sparse = require("scipy.sparse", purpose="sparse fields")
        indptr, indices, data = (load[f"{name}.{p}.npy"] for p in ("indptr", "indices", "data"))
        vocab = int(indices.max()) + 1 if len(indices) else 0
        return sparse.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, vocab))[rows]
    offsets, values = load[f"{name}.offsets.npy"], load[f"{name}.values.npy"]
    return [np.asarray(values[offsets[r]: offsets[r + 1]]) for r in rows]


def _repair_segment(coll: Any, sid: int, bad: set[str], rep: Report) -> None:
    """Rewrite segment ``sid``'s live documents into a new segment from what survives."""
    from heron.collection.lifecycle import bump

    d = coll.path / "segments" / segment_name(sid)
    try:
        meta: dict | None = integrity.read_sealed(d / "segment.json")
    except CorruptionError:
        meta = None  # no checksums to trust any file by
    with coll._writer():
        keep_copy = coll.path / "damaged" / f"segment-{segment_name(sid)}"
        if not keep_copy.exists():  # for salvage by hand; the segment itself is retired
            shutil.copytree(d, keep_copy)
        con = coll.store.connect()
        docs = con.execute(
            "SELECT key, id, text, row FROM docs WHERE segment = ? AND deleted = 0 ORDER BY row", (sid,)
        ).fetchall()
        rows = np.array([r for *_, r in docs], dtype=np.int64)
        texts = [t for _, _, t, _ in docs]
        ids = [i for _, i, _, _ in docs]
        keep = np.ones(len(docs), dtype=bool)
        field_data: dict[str, tuple[str, Any]] = {}
        for name, spec in coll.fields.items():
            data = _read_field(d, meta, name, spec["kind"], rows, bad)
            if data is None and docs:
                data = _reencode(coll, name, texts)
                if data is not None:
                    rep.reencoded.append(f"field {name!r} of {len(docs)} documents of segment {sid}")
            if data is None and name == "dense":
                rep.lost.extend(ids)
                keep[:] = False
                break
            if data is not None:
                field_data[name] = (spec["kind"], data)
            else:
                rep.unrecoverable.append(
                    f"field {name!r} of {len(docs)} documents of segment {sid} is damaged and its "
                    f"encoder is unavailable; restore it with coll.backfill({name!r}, ...)"
                )
        con.execute("BEGIN IMMEDIATE")
        try:
            (new,) = con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM segments").fetchone()
            if keep.any():
                keys = np.array([k for k, *_ in docs], dtype=np.int64)
                write_segment(coll.path, int(new), keys, field_data)
                con.executemany("UPDATE docs SET segment = ?, row = ? WHERE key = ?",
                                [(int(new), r, int(k)) for r, k in enumerate(keys)])
                con.execute("INSERT INTO segments(id, rows, fields) VALUES (?, ?, ?)",
                            (int(new), len(keys), json.dumps(sorted(field_data))))
            con.execute("UPDATE docs SET deleted = 1 WHERE segment = ? AND deleted = 0", (sid,))
            con.execute("DELETE FROM segments WHERE id = ?", (sid,))
            epoch = bump(con)
            con.execute("INSERT OR REPLACE INTO retired(path, retired_at) VALUES (?, ?)",
                        (f"segments/{segment_name(sid)}", epoch))
            con.execute("COMMIT")
            coll.store.published(epoch)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        coll._segments.pop(sid, None)
    if keep.any():
        rep.rebuilt.append(f"segment {sid} ({len(docs)} documents) as segment {int(new)}")
    else:
        rep.rebuilt.append(f"segment {sid}: removed; a copy of its files is in {str(keep_copy)!r}")


def _reencode(coll: Any, name: str, texts: list[str]) -> Any:
    try:
        if name == "dense":
            return coll.encoder.encode_documents(texts)
        return coll.field_encoder(name).encode_documents(texts)
    except Exception as exc:  # no encoder (model='none', not installed, offline): report, not fail
        log.info("cannot re-encode field %r: %s", name, exc)
        return None


__all__ = ["Problem", "Report", "check", "repair"]
