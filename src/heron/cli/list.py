"""``heron list FOLDER``: the collections in a folder (name, documents, model, size on disk)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", nargs="?", default=".", help="folder holding collections (default .)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def describe(path: Path) -> dict:
    """Name, documents, model, generation and bytes of the collection at ``path``."""
    from heron.cli.compact import folder_bytes
    from heron.collection import Collection

    with Collection.open(path) as coll:
        return {"name": path.name, "documents": len(coll), "model": coll.model,
                "generation": coll.generation, "bytes": folder_bytes(path)}


def run(args: argparse.Namespace) -> int:
    from heron.cli.compact import _fmt
    from heron.collection.manifest import MANIFEST

    root = Path(args.folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder; pass the folder holding collections")
    rows, broken = [], []
    for p in sorted(root.iterdir()):
        if p.is_dir() and (p / MANIFEST).is_file():
            try:
                rows.append(describe(p))
            except ValueError as exc:  # a damaged collection is listed, not fatal
                broken.append(p.name)
                log.warning("%s: %s", p.name, exc)
    if args.json:
        print(json.dumps({"folder": str(root), "collections": rows, "unreadable": broken}))
        return 0
    if not rows:
        if not args.quiet:
            print(f"no collections in {root}")
        return 0
    w = max(len(r["name"]) for r in rows)
    print(f"{'name':<{w}}  {'documents':>10}  {'size':>10}  model")
    for r in rows:
        print(f"{r['name']:<{w}}  {r['documents']:>10}  {_fmt(r['bytes']):>10}  {r['model']}")
    return 0
