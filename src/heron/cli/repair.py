"""``heron repair COLLECTION``: rebuild damaged segments and every derived index; report losses."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when everything was recovered, 1 when documents or files were lost."""
    from heron.collection.repair import repair

    rep = repair(args.collection)
    lost = bool(rep.lost or rep.unrecoverable or rep.problems)
    if args.json:
        print(json.dumps({**asdict(rep), "complete": not lost}, indent=2))
        return 1 if lost else 0
    for line in rep.rebuilt:
        print(f"rebuilt: {line}")
    for line in rep.reencoded:
        print(f"re-encoded from stored text: {line}")
    if rep.lost:
        print(f"lost: {len(rep.lost)} documents whose vectors were damaged and cannot be re-encoded "
              f"(model='none' or encoder unavailable); re-add them: {rep.lost[:20]}")
    for line in rep.unrecoverable:
        print(f"not recovered: {line}")
    for p in rep.problems:
        print(f"still damaged: {p.kind} {p.file}: {p.message}")
    if not lost:
        print("repaired: the collection is complete")
    return 1 if lost else 0
