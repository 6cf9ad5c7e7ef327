"""The collection manifest: ``heron.json``, a small versioned JSON file.

It names the format and version (checked on open), the dense model and dimension, the
per-document fields and their kinds, and free-form configuration sections that later
components (codec, index, ...) persist with :meth:`Collection.set_config`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = "heron-collection"
VERSION = 1
MANIFEST = "heron.json"
FIELD_KINDS = ("dense", "sparse", "ragged")


class CollectionError(ValueError):
    """A collection folder is missing, corrupt, or of an unsupported version."""


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` atomically (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and validate ``root/heron.json``."""
    path = root / MANIFEST
    if not root.is_dir():
        raise CollectionError(
            f"no collection at {str(root)!r}: folder does not exist; create one with Collection.create(path) or `heron index`"
        )
    if not path.is_file():
        if (root / "shards.json").is_file():  # heron.scale's manifest (named here: no import upward)
            raise CollectionError(
                f"{str(root)!r} is a sharded collection: open it with heron.ShardedCollection.open(path), "
                f"or serve it with `heron serve {root}`; each shard-*.heron folder in it opens on its own"
            )
        raise CollectionError(
            f"{str(root)!r} is not a heron collection: {MANIFEST} is missing; create one with Collection.create(path)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CollectionError(
            f"collection manifest {str(path)!r} is corrupt ({exc}); restore it from a backup or rebuild the collection"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CollectionError(
            f"{str(path)!r} is not a heron collection manifest (format={data.get('format') if isinstance(data, dict) else None!r}, expected {FORMAT!r})"
        )
    version = data.get("version")
    if version != VERSION:
        raise CollectionError(
            f"collection {str(root)!r} has format version {version!r}; this heron reads version {VERSION}. "
            "Open it with the heron release that wrote it, or rebuild the collection"
        )
    for key in ("model", "dim", "fields"):
        if key not in data:
            raise CollectionError(
                f"collection manifest {str(path)!r} lacks {key!r}; it is corrupt, rebuild the collection"
            )
    dim = data["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise CollectionError(
            f"collection manifest {str(path)!r} has dim={dim!r}; it must be a positive int (the vector dimension). "
            "Restore heron.json from a backup or rebuild the collection"
        )
    if not isinstance(data["model"], str) or not isinstance(data["fields"], dict):
        raise CollectionError(
            f"collection manifest {str(path)!r} has a bad 'model' or 'fields' entry; it is corrupt, rebuild the collection"
        )
    bad = next((n for n in data["fields"] if not n.isidentifier()), None)
    if bad is not None:  # field names become file names inside each segment
        raise CollectionError(
            f"collection manifest {str(path)!r} has the field name {bad!r}, not an identifier; it is corrupt, "
            "restore heron.json from a backup or rebuild the collection"
        )
    return data


def new_manifest(*, model: str, dim: int, fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import time

    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "dim": int(dim),
        "fields": fields,
        "config": {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
