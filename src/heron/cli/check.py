"""``heron check [--deep] COLLECTION``: list every damaged file of a collection."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument(
        "--deep",
        action="store_true",
        help="hash every file (not only small ones), run SQLite's integrity_check and check each "
        "document's text against its recorded hash",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when the collection is undamaged, 1 when ``check`` found damage."""
    from heron.collection.repair import check

    rep = check(args.collection, deep=args.deep)
    if args.json:
        print(json.dumps({"ok": rep.ok, "problems": [asdict(p) for p in rep.problems]}, indent=2))
    else:
        for line in rep.lines():
            print(line)
        if not rep.ok:
            print(f"damaged: {len(rep.problems)} problem(s); `heron repair {args.collection}` rebuilds what it can")
    return 0 if rep.ok else 1
