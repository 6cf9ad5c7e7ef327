"""``heron compact COLLECTION``: purge deleted documents, merge segments, then SQLite ``VACUUM``.

:meth:`heron.collection.Collection.compact` rewrites the live rows into one segment and drops
deleted rows from ``docs.sqlite``; ``VACUUM`` then returns the freed database pages to the file
system (SQLite never shrinks a file on its own) and ``wal_checkpoint(TRUNCATE)`` empties the
write-ahead log. Prints the folder's size before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("--json", action="store_true", help="print the counts and sizes as JSON")


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def vacuum(coll: object) -> None:
    """``VACUUM`` the collection's database and truncate its write-ahead log."""
    con = coll.store.connect()  # type: ignore[attr-defined]
    con.execute("VACUUM")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _fmt(b: int) -> str:
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.2f} {unit}"
    return f"{b} B"


def run(args: argparse.Namespace) -> int:
    from heron.collection import Collection

    coll = Collection.open(args.collection)
    before = folder_bytes(coll.path)
    counts = coll.compact()
    # the merge's own snapshot held the old segments while it ran: collect them now
    counts["collected"] = coll.collect_garbage()
    log.debug("compacted: %s", counts)
    vacuum(coll)
    coll.close()
    after = folder_bytes(coll.path)
    out = {**counts, "bytes_before": before, "bytes_after": after}
    if args.json:
        print(json.dumps(out))
        return 0
    if args.quiet:
        return 0
    print(
        f"compacted {args.collection}: {_fmt(before)} -> {_fmt(after)} "
        f"({counts['purged']} deleted rows purged, {counts['segments_before']} -> "
        f"{counts['segments_after']} segment(s))"
    )
    return 0
