"""The sharded-collection manifest (``shards.json``), the routing rule and global keys.

Routing: a document with string id ``d`` lives in shard
``int.from_bytes(blake2b(d.encode("utf-8"), digest_size=8).digest(), "big") % n_shards``:
stable across processes, machines and Python versions (unlike ``hash()``), uniform, and
computable by any client that knows the id and ``n_shards``.

Global keys: a shard's result key ``k`` (its collection's never-reused ``int64`` key) becomes the
global key ``k * n_shards + shard``; :func:`split_keys` inverts it. Global keys are unique across
shards and stay ``int64`` for any shard holding fewer than ``2**63 / n_shards`` keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "shards.json"
FORMAT = "heron-sharded"
VERSION = 1
ROUTING = "blake2b-8-mod"
MAX_SHARDS = 4096


def shard_name(i: int) -> str:
    """Folder name of shard ``i`` (``shard-000.heron``)."""
    return f"shard-{i:03d}.heron"


def shard_of(doc_id: str, n_shards: int) -> int:
    """The shard of one document id (see the module docstring)."""
    h = hashlib.blake2b(str(doc_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") % n_shards


def route(ids: Sequence[str], n_shards: int) -> np.ndarray:
    """Shard of each id, shape ``(len(ids),)`` ``int64``."""
    return np.fromiter((shard_of(i, n_shards) for i in ids), dtype=np.int64, count=len(ids))


def global_keys(local: np.ndarray, shard: int, n_shards: int) -> np.ndarray:
    """Global keys of a shard's local keys (padding ``-1`` stays ``-1``)."""
    local = np.asarray(local, dtype=np.int64)
    return np.where(local >= 0, local * n_shards + shard, -1)


def split_keys(keys: np.ndarray, n_shards: int) -> tuple[np.ndarray, np.ndarray]:
    """``(shard, local_key)`` of global keys (``-1``, ``-1`` for padding)."""
    keys = np.asarray(keys, dtype=np.int64)
    ok = keys >= 0
    return np.where(ok, keys % n_shards, -1), np.where(ok, keys // n_shards, -1)


def check_shards(shards: object) -> int:
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be an int between 1 and {MAX_SHARDS}, got {shards!r}")
    return shards


def new_manifest(n_shards: int, model: str, dim: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "n_shards": n_shards,
        "shards": [shard_name(i) for i in range(n_shards)],
        "routing": {"rule": ROUTING, "doc": "blake2b(id utf-8, digest_size=8) big-endian mod n_shards"},
        "keys": "global = local * n_shards + shard",
        "model": model,
        "dim": dim,
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    tmp = root / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / MANIFEST)


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"no sharded collection at {str(root)!r} (no {MANIFEST}); create one with ShardedCollection.create(path, shards=N)"
        )
    m = json.loads(path.read_text())
    if m.get("format") != FORMAT or m.get("version") != VERSION:
        raise ValueError(
            f"{str(path)!r} has format {m.get('format')!r} v{m.get('version')!r}; expected {FORMAT} v{VERSION}"
        )
    if m.get("routing", {}).get("rule") != ROUTING:
        raise ValueError(f"{str(path)!r}: unknown routing rule {m.get('routing')!r}; expected {ROUTING}")
    check_shards(m.get("n_shards"))
    shards = m.get("shards")
    if not isinstance(shards, list) or len(shards) != m["n_shards"]:
        raise ValueError(f"{str(path)!r} lists shards {shards!r}, not {m['n_shards']} shard folder names; it is corrupt")
    from heron.limits import file_in

    for name in shards:  # a tampered list must never send reads or writes to another folder
        file_in(root, name, what=f"{MANIFEST} shard")
    return m
