"""``heron info COLLECTION``: counts, fields, configuration and size of a collection."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from heron.collection import Collection

    info = Collection.open(args.collection).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for k, v in info.items():
        if isinstance(v, dict):
            v = json.dumps(v)
        print(f"{k:>15}: {v}")
    return 0
