"""``heron snapshot COLLECTION DEST``: a consistent copy of a collection, safe while it is in use.

Writers and readers carry on meanwhile; the copy holds one committed generation (the database
through SQLite's backup API, then the segments and index versions it names), opens as a
collection of its own, and equals the source at that generation.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("dest", help="new folder for the copy")
    p.add_argument("--json", action="store_true", help="print what was copied as JSON")


def run(args: argparse.Namespace) -> int:
    from heron.cli.compact import _fmt
    from heron.collection import Collection
    from heron.collection.transfer import snapshot_to

    coll = Collection.open(args.collection)
    res = snapshot_to(coll, args.dest)
    coll.close()
    if args.json:
        print(json.dumps({"dest": args.dest, **res}))
    elif not args.quiet:
        print(f"copied {args.collection} at generation {res['generation']} to {args.dest}: "
              f"{res['documents']} documents, {len(res['indexes'])} index(es), {_fmt(res['bytes'])}")
    return 0
