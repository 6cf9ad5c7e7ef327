"""``heron delete COLLECTION ID [ID ...]``: delete documents by id (``--ids-file`` for many)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("ids", nargs="*", metavar="ID", help="document ids to delete")
    p.add_argument(
        "--ids-file", default=None, help="a text file with one document id per line (or '-')"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2, nothing deleted) when an id is not in the collection",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")


def read_ids(args: argparse.Namespace) -> list[str]:
    """The ids named on the command line and in ``--ids-file`` (blank lines skipped), in order."""
    ids = list(args.ids)
    if args.ids_file:
        import sys
        from pathlib import Path

        text = sys.stdin.read() if args.ids_file == "-" else Path(args.ids_file).read_text()
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise ValueError("name the documents to delete: heron delete COLLECTION ID [ID ...]")
    return list(dict.fromkeys(ids))


def run(args: argparse.Namespace) -> int:
    from heron.collection import Collection

    ids = read_ids(args)
    coll = Collection.open(args.collection)
    present = [d is not None for d in coll.get(ids)]
    missing = [i for i, ok in zip(ids, present) if not ok]
    if missing and args.strict:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{len(missing)} of {len(ids)} ids are not in the collection ({shown}); nothing was deleted"
        )
    n = coll.delete([i for i, ok in zip(ids, present) if ok])
    if missing:
        log.warning(
            "%d id(s) not in the collection, skipped: %s",
            len(missing),
            ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
        )
    if args.json:
        import json

        print(json.dumps({"collection": args.collection, "deleted": n, "missing": missing,
                          "documents": len(coll), "generation": coll.generation}))
    elif not args.quiet:
        print(
            f"deleted {n} document(s) from {args.collection} ({len(coll)} left); "
            "`heron compact` reclaims their space"
        )
    return 0
