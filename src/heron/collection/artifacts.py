"""One lifecycle for every derived artifact (ANN indexes, codes, BM25, Seismic, ...).

On disk, artifact ``NAME`` lives in ``indexes/NAME/<version>/`` (one folder per published
version, ``version = g<generation>-<token>``, with a ``manifest.json`` naming its kind, field,
parameters and the generation it was built from). The catalog — which version of which
artifact is current — is the ``artifacts`` table of the collection's SQLite store, read by a
snapshot in the same transaction as the documents, so a reader sees one consistent state.

* **build** from a snapshot into a temporary folder (no lock held while building; a per-artifact
  build lock stops two builders of one artifact from working twice);
* **publish** atomically: rename the folder into place, then one short transaction switches
  the catalog to it, bumps the collection's epoch and retires the previous version;
* **resident**: an opened version stays in memory (:func:`resident`, memory-mapped where it is
  an array) while it is current; a query never re-reads an index file;
* **collect**: retired versions and segments are deleted once no lease (no open snapshot in any
  process, see :mod:`heron.collection.leases`) can still read them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heron._faults import point
from heron.collection import integrity

log = logging.getLogger("heron.artifacts")

FORMAT = "heron-artifact"
VERSION = 1


@dataclass(frozen=True)
class ArtifactRecord:
    """One catalog row: artifact ``name`` of ``kind`` over ``field``, built with ``params``.

    ``version`` is the folder of the published version (``None`` while declared but unbuilt);
    ``generation`` the collection generation it was built from.
    """

    name: str
    kind: str
    field: str
    params: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    generation: int | None = None

    def folder(self, root: Path) -> Path:
        if self.version is None:
            raise ValueError(f"index {self.name!r} is declared but not built yet")
        from heron.collection.integrity import CorruptionError, confined

        for part in (self.name, self.version):  # one plain folder name each
            if not isinstance(part, str) or "/" in part or part in ("", ".", ".."):
                raise CorruptionError(
                    root, f"index {self.name!r} names {part!r}, a path outside the collection folder"
                )
        return confined(root, f"indexes/{self.name}/{self.version}", what=f"index {self.name!r}")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "on": self.field,
            "params": dict(self.params),
            "built": self.version is not None,
            "generation": self.generation,
        }


def read_catalog(con: Any) -> dict[str, ArtifactRecord]:
    rows = con.execute(
        "SELECT name, kind, field, params, version, generation FROM artifacts"
    ).fetchall()
    return {
        n: ArtifactRecord(n, k, f, json.loads(p), v, None if g is None else int(g))
        for n, k, f, p, v, g in rows
    }


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad index name {name!r}; use a plain name like 'hnsw' or 'ivf-int8'")
    return name


# ----------------------------------------------------------------------------- building
@contextlib.contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """One builder per artifact across threads and processes."""
    d = root / "indexes" / name
    d.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCKS_GUARD:
        tl = _THREAD_LOCKS.setdefault((str(root), name), threading.Lock())
    with tl, open(d / ".build.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            for p in d.glob(".tmp-*"):  # a crashed build's leftovers (we hold the build lock)
                shutil.rmtree(p, ignore_errors=True)
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


_THREAD_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def build(
    coll: Any, snap: Any, name: str, kind: str, field: str, params: dict[str, Any],
    *, progress: bool | None = None, update_from: ArtifactRecord | None = None,
) -> ArtifactRecord:
    """Build artifact ``name`` from ``snap`` and publish it; returns the new catalog record.

    With ``update_from`` (the current record) a kind that can update incrementally folds the
    delta into a copy of that version instead of rebuilding. The caller holds :func:`build_lock`.
    """
    from heron.capabilities.base import artifact_kind

    cap = artifact_kind(kind)
    root = coll.path
    version = f"g{snap.generation:010d}-{os.urandom(4).hex()}"
    tmp = root / "indexes" / name / f".tmp-{version}"
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    show = progress if progress is not None else len(snap) > 20000
    log.info("building index %r (%s on %s, %d documents)", name, kind, field, len(snap))
    try:
        stats = None
        if update_from is not None and hasattr(cap, "update"):
            integrity.verify_artifact(update_from.folder(root))
            stats = cap.update(update_from.folder(root), snap, field, params, tmp)
        else:
            cap.build(snap, field, params, tmp, progress=show)
        point("artifact.built")
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "kind": kind,
            "field": field,
            "params": params,
            "generation": int(snap.generation),
            "documents": len(snap),
            "model": coll.model,
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        if stats is not None:
            manifest["update"] = stats
        manifest["files"] = integrity.record(tmp, integrity.artifact_files(tmp))
        with open(tmp / "artifact.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(integrity.seal(manifest), indent=1, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        point("artifact.rename")
        os.replace(tmp, tmp.parent / version)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        from heron.collection.diskfull import disk_full

        full = disk_full(exc, root, int(snap.generation))
        if full is not None:
            raise full from exc
        raise
    rec = ArtifactRecord(name, kind, field, dict(params), version, int(snap.generation))
    coll._publish_artifact(rec)
    return rec


# ----------------------------------------------------------------------------- resident
_RESIDENT: dict[str, Any] = {}
_CURRENT: dict[tuple[str, str], str] = {}
_RES_LOCK = threading.RLock()


def resident(coll: Any, rec: ArtifactRecord) -> Any:
    """The opened object of ``rec``'s version, kept in memory while it is the current one."""
    obj = _RESIDENT.get(f"{coll.path}/indexes/{rec.name}/{rec.version}")  # the hot path
    if obj is not None:
        return obj
    folder = rec.folder(coll.path)
    key = f"{coll.path}/indexes/{rec.name}/{rec.version}"
    from heron.capabilities.base import artifact_kind

    with _RES_LOCK:
        obj = _RESIDENT.get(key)
        if obj is None:
            integrity.verify_artifact(folder)  # first use in this process: every file's checksum
            obj = artifact_kind(rec.kind).open(folder, rec, coll)
            slot = (str(coll.path), rec.name)
            old = _CURRENT.get(slot)
            if old is not None and old != key:
                _RESIDENT.pop(old, None)  # a snapshot still using it keeps its own reference
            _RESIDENT[key], _CURRENT[slot] = obj, key
    return obj


def forget(root: Path) -> None:
    """Drop every resident artifact of the collection at ``root`` (e.g. after it is removed)."""
    with _RES_LOCK:
        for slot, key in list(_CURRENT.items()):
            if slot[0] == str(root):
                _RESIDENT.pop(key, None)
                _CURRENT.pop(slot, None)


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        meta = integrity.read_sealed(folder / "artifact.json")
    except integrity.CorruptionError:
        raise
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"artifact {str(folder)!r} is missing or corrupt ({exc}); rebuild it with coll.create_index"
        ) from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(
            f"artifact {str(folder)!r} has format {meta.get('format')!r} v{meta.get('version')!r}; "
            f"this heron reads {FORMAT} v{VERSION}: rebuild it"
        )
    return meta


__all__ = [
    "ArtifactRecord",
    "build",
    "build_lock",
    "check_name",
    "forget",
    "read_catalog",
    "read_manifest",
    "resident",
]
