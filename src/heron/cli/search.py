"""``heron search COLLECTION "query" -k 10 [--retriever dense] [--json]``."""

from __future__ import annotations

import argparse
import json
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("query", nargs="+", help="query text(s)")
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument(
        "--retriever",
        "-r",
        default="dense",
        help="retriever spec: dense, bm25, hybrid:dense+bm25, NAME?param=value",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from heron.collection import Collection
    from heron.eval.runner import build_stage
    from heron.results import check_k

    k = check_k(args.k)
    coll = Collection.open(args.collection)
    stage = build_stage(coll, args.retriever, depth=max(k, 100))
    t0 = time.perf_counter()
    res = stage.search(args.query, k)
    ms = 1000 * (time.perf_counter() - t0)
    snap = coll.snapshot()
    out = []
    for qi, q in enumerate(args.query):
        keys = res.keys[qi][res.keys[qi] >= 0]
        ids, texts = snap.ids(keys), snap.texts(keys)
        out.append(
            {
                "query": q,
                "hits": [
                    {"rank": r + 1, "id": i, "score": float(s), "text": t}
                    for r, (i, s, t) in enumerate(zip(ids, res.scores[qi], texts))
                ],
            }
        )
    if args.json:
        print(json.dumps({"results": out, "milliseconds": ms}, indent=2))
        return 0
    for item in out:
        print(f"\n{item['query']}")
        for h in item["hits"]:
            text = " ".join(h["text"].split())[:90]
            print(f"  {h['rank']:>2}. {h['score']:.3f}  {h['id']:<30} {text}")
    print(f"\n({ms:.1f} ms)")
    return 0
