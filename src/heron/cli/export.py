"""``heron export COLLECTION OUT.jsonl|OUT.parquet [--vectors]``: write the documents to a file.

One consistent generation is written (a snapshot); ``--vectors`` adds the stored dense vectors
so ``heron import`` does not re-encode. Formats: :mod:`heron.collection.transfer`.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("out", help="file to write: .jsonl or .parquet (Parquet needs heron[parquet])")
    p.add_argument("--vectors", action="store_true", help="include the dense vectors")
    p.add_argument("--json", action="store_true", help="print the export's header as JSON")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from heron.collection import Collection
    from heron.collection.transfer import export_collection

    coll = Collection.open(args.collection)
    n = len(coll)
    with tqdm(total=n, desc="exporting", unit="doc",
              disable=bool(args.quiet or args.json or n <= 10000)) as bar:
        try:
            header = export_collection(coll, args.out, vectors=args.vectors, on_rows=bar.update)
        except ImportError as exc:  # the Parquet extra
            raise ValueError(str(exc)) from exc
    if args.json:
        print(json.dumps({"out": args.out, **header}))
    elif not args.quiet:
        what = "documents with vectors" if args.vectors else "documents"
        print(f"exported {header['count']} {what} of {args.collection} "
              f"(generation {header['generation']}) to {args.out}")
    return 0
