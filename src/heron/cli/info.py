"""``heron info COLLECTION``: counts, fields, configuration, size and integrity of a collection."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Exit status 1 when the (quick) integrity check finds damage."""
    from heron.collection import Collection, CorruptionError
    from heron.collection.repair import check

    rep = check(args.collection)  # sizes of all files, contents of small ones, quick_check
    integrity = "ok" if rep.ok else [f"{p.kind} {p.file}: {p.message}" for p in rep.problems]
    try:
        info = Collection.open(args.collection).info()
    except CorruptionError as exc:  # a damaged segment or index: list the damage
        if rep.ok:
            raise
        info = {"path": args.collection, "error": str(exc)}
    info["integrity"] = integrity
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if rep.ok else 1
    for k, v in info.items():
        if isinstance(v, dict):
            v = json.dumps(v)
        elif k == "integrity" and not rep.ok:
            v = "DAMAGED (heron check --deep / heron repair):\n" + "\n".join(
                f"{'':>17}{line}" for line in v
            )
        print(f"{k:>15}: {v}")
    return 0 if rep.ok else 1
