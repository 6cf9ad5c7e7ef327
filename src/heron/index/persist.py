"""Persistence of heron's indexes: the ``index.json`` manifest, saving, checking and loading.

A saved index is a folder with ``index.json`` (format, version, kind, parameters, codec spec,
count, dimension, model, collection generation, where the float rows live), ``keys.npy``,
``dead.npy``, ``vectors.npy`` (the rescoring copy; absent when the library's structure stores the
exact float rows itself, as a float32 HNSW graph does) and the library's own file. A float32
graph built over one whole collection segment keeps its rows only in ``vectors.npy`` (a hard link
to the segment's ``dense.npy``) and writes its own file without them (``"storage":
"vectors.npy"`` in the manifest, format version 2). :func:`write_index` writes it (the manifest last),
:func:`read_manifest` checks the version, :func:`check_compatible` refuses an index whose count,
dimension, codec or model does not match what the caller expects, and :func:`load_index` opens it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from heron.index.base import AnnIndex

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "IndexMismatchError",
    "check_compatible",
    "load_index",
    "read_manifest",
    "write_index",
]

FORMAT = "heron.index"
#: version of the on-disk index folder; bumped when the layout changes. Version 2 adds a
#: structure saved without its float rows (``"storage": "vectors.npy"``); an index without one is
#: still written as version 1, which older releases read.
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
MANIFEST = "index.json"


class IndexMismatchError(ValueError):
    """A saved index does not match the vectors it is asked to serve (never silently used)."""


def write_index(
    idx: AnnIndex,
    folder: str | os.PathLike,
    *,
    generation: int | None = None,
    model: str | None = None,
) -> Path:
    """Write ``idx`` to ``folder`` (arrays, the library's file, ``index.json`` last)."""
    if idx.dim is None:
        raise ValueError("the index is not built; nothing to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # a heron-managed file that holds exactly the structure's float rows: the structure is saved
    # without them and vectors.npy links that file
    rows_file = idx._rows_file()
    in_structure = rows_file is None and idx._structure_rows() is not None
    dest = folder / "vectors.npy"
    if not in_structure:  # a separate rescoring copy (the structure keeps codes, or nothing)
        parts = idx.rescoring_parts()
        tmp = folder / f"vectors.npy.tmp{os.getpid()}"
        tmp.unlink(missing_ok=True)
        src = rows_file or (_whole_npy_file(parts[0]) if len(parts) == 1 else None)
        if src is not None and _same_file(src, dest):
            src = dest  # saved again where it already is (the file is never written in place)
        else:
            try:
                if src is None:
                    raise OSError("no file to link")
                os.link(src, tmp)  # the same bytes, already on disk: share them (never written again)
            except OSError:
                vec_all = parts[0] if len(parts) == 1 else np.concatenate(parts)
                with open(tmp, "wb") as f:
                    np.save(f, np.asarray(vec_all, dtype=np.float32))
            # replaced, never written in place: the old file may be a link to a segment's vectors
            os.replace(tmp, dest)
    np.save(folder / "keys.npy", idx.keys)
    np.save(folder / "dead.npy", idx.dead)
    idx._save_structure(folder)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION if rows_file is not None else 1,
        "kind": idx.kind,
        "params": idx.params(),
        "codec": idx.codec,
        "dim": idx.dim,
        "count": idx.ntotal,
        "live": len(idx),
        "model": model,
        "generation": generation,
        "meta": idx.meta,
        # where the exact float rows live: the library's own file, or vectors.npy
        "vectors": "structure" if in_structure else "vectors.npy",
    }
    if rows_file is not None:  # the library's file holds no rows: they are vectors.npy
        manifest["storage"] = "vectors.npy"
    tmp = folder / f"{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)
    if in_structure:
        dest.unlink(missing_ok=True)  # a copy from an earlier save in another layout
    return folder


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _whole_npy_file(arr: np.ndarray) -> Path | None:
    """The ``.npy`` file ``arr`` maps in full (float32, C order), or ``None``.

    A rescoring copy built from a compacted collection is its one segment's memory-mapped
    ``dense.npy``; segment files are immutable (replaced, never rewritten), so the index can
    hard-link that file instead of writing the same bytes again (1.5 GB at 1M × 384). Only a
    file inside a collection's segment folder qualifies: a user's own ``.npy`` may be rewritten
    in place later, which would change the index's vectors under it.
    """
    mm = arr
    while mm is not None and not isinstance(mm, np.memmap):
        mm = getattr(mm, "base", None)
    if mm is None or getattr(mm, "filename", None) is None or mm.mode != "r":
        return None
    if not (arr.dtype == np.float32 and arr.flags.c_contiguous and mm.flags.c_contiguous
            and arr.shape == mm.shape and arr.ctypes.data == mm.ctypes.data):
        return None
    path = Path(mm.filename)
    if path.parent.parent.name != "segments" or not (path.parent / "segment.json").is_file():
        return None
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(f)
            header_end = f.tell()
    except (OSError, ValueError):
        return None
    if fortran or dtype != np.float32 or tuple(shape) != arr.shape or header_end != mm.offset:
        return None
    if path.stat().st_size != header_end + arr.nbytes:
        return None
    return path


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``index.json`` of a saved index."""
    mf = Path(folder) / MANIFEST
    if not mf.is_file():
        raise FileNotFoundError(
            f"no saved index at {str(folder)!r} (missing {MANIFEST}); build one first"
        )
    manifest = json.loads(mf.read_text())
    if manifest.get("format") != FORMAT:
        raise IndexMismatchError(
            f"{mf} is not a heron index manifest (format={manifest.get('format')!r})"
        )
    if manifest.get("version") not in READ_VERSIONS:
        raise IndexMismatchError(
            f"index at {str(folder)!r} has format version {manifest.get('version')!r}; this heron reads "
            f"versions {list(READ_VERSIONS)}; rebuild it"
        )
    return manifest


def check_compatible(
    manifest: dict[str, Any],
    *,
    dim: int | None = None,
    codec: str | None = None,
    model: str | None = None,
    kind: str | None = None,
    max_generation: int | None = None,
) -> None:
    """Raise :class:`IndexMismatchError` naming the first field that differs from what is expected."""
    checks = [("kind", kind), ("dim", dim), ("codec", codec), ("model", model)]
    for name, want in checks:
        have = manifest.get(name)
        if want is None or (name == "model" and have is None):
            continue
        if have != want:
            raise IndexMismatchError(
                f"saved index has {name}={have!r} but {want!r} is expected; rebuild the index"
            )
    gen = manifest.get("generation")
    if max_generation is not None and gen is not None and gen > max_generation:
        raise IndexMismatchError(
            f"saved index is at collection generation {gen}, newer than the collection ({max_generation}); "
            "it belongs to another collection state; rebuild the index"
        )


def load_index(folder: str | os.PathLike, *, mmap: bool = True, **expect: Any) -> AnnIndex:
    """Open an index saved with :meth:`AnnIndex.save`; ``expect`` is passed to :func:`check_compatible`.

    The stored arrays are checked against the manifest's ``count`` and ``dim`` (a truncated or
    swapped file raises :class:`IndexMismatchError`).
    """
    from heron.index import INDEX_TYPES

    folder = Path(folder)
    manifest = read_manifest(folder)
    check_compatible(manifest, **expect)
    cls = INDEX_TYPES.get(manifest["kind"])
    if cls is None:
        raise IndexMismatchError(
            f"saved index kind {manifest['kind']!r} is unknown; choose one of {sorted(INDEX_TYPES)}"
        )
    idx = cls(**manifest["params"])
    idx.dim = int(manifest["dim"])
    idx.keys = np.load(folder / "keys.npy")
    idx.dead = np.load(folder / "dead.npy").astype(bool)
    in_structure = manifest.get("vectors") == "structure"
    vec = None if in_structure else np.load(folder / "vectors.npy", mmap_mode="r" if mmap else None)
    n = int(manifest["count"])
    shape = None if vec is None else vec.shape
    if len(idx.keys) != n or len(idx.dead) != n or (vec is not None and shape != (n, idx.dim)):
        raise IndexMismatchError(
            f"index at {str(folder)!r} is inconsistent: manifest says {n} x {idx.dim}, files hold "
            f"{len(idx.keys)} keys and vectors {shape}; rebuild the index"
        )
    if vec is not None:
        if mmap and idx.oversample > 0:  # every query re-scores a few random rows of it
            from heron._memory import populate_pages

            populate_pages(vec)
        idx._vec_parts = [vec.view(np.ndarray) if isinstance(vec, np.memmap) else vec]
    idx.meta = dict(manifest.get("meta") or {})
    idx._load_structure(folder)
    if in_structure or manifest.get("storage") == "vectors.npy":
        rows = idx._structure_rows()
        if rows is None or rows.shape != (n, idx.dim):
            raise IndexMismatchError(
                f"index at {str(folder)!r}: the manifest says its structure holds the {n} x "
                f"{idx.dim} float rows, it holds {None if rows is None else rows.shape}; rebuild the index"
            )
    return idx
