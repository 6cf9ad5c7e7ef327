"""``heron demo``: index the Python standard library's docstrings and answer a few questions."""

from __future__ import annotations

import argparse
import time

QUESTIONS = [
    "how do I parse command line arguments",
    "read a gzip file line by line",
    "run a shell command and capture its output",
    "parse a date string into a datetime",
    "make an HTTP request to a URL",
    "copy a directory tree recursively",
    "generate a random number in a range",
    "compute the SHA-256 hash of a file",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--collection",
        default=None,
        help="where to build the collection (default: $HERON_CACHE/demo-stdlib)",
    )
    p.add_argument("-k", type=int, default=3, help="hits shown per question (default 3)")
    p.add_argument("--limit", type=int, default=None, help="index only the first N docstrings")
    p.add_argument("--rebuild", action="store_true", help="rebuild the collection from scratch")
    p.add_argument(
        "--retriever",
        default="hybrid:dense+bm25",
        help="retriever spec (default hybrid:dense+bm25)",
    )
    p.add_argument("question", nargs="*", help="questions to ask (default: a built-in handful)")


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from heron.collection import Collection
    from heron.corpora.stdlib import stdlib_corpus
    from heron.eval.cache import cache_dir
    from heron.eval.runner import build_stage
    from heron.results import check_k

    k = check_k(args.k)
    path = Path(args.collection) if args.collection else cache_dir() / "demo-stdlib"
    if args.rebuild:
        shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    ids, texts, metas = stdlib_corpus(limit=args.limit)
    print(
        f"corpus: {len(ids)} docstrings from the Python standard library ({time.perf_counter() - t0:.1f}s to read)"
    )
    coll = Collection.create(path, exist_ok=True)
    t1 = time.perf_counter()
    have = {d.id for d in coll.iter_documents()}
    new = [i for i, x in enumerate(ids) if x not in have]
    if new:
        print(f"encoding {len(new)} documents with {coll.model} ...")
        coll.add(
            [texts[i] for i in new],
            ids=[ids[i] for i in new],
            metadata=[metas[i] for i in new],
            progress=True,
        )
        print(f"indexed in {time.perf_counter() - t1:.1f}s -> {path}")
    else:
        print(f"collection already built at {path} ({len(coll)} documents)")
    stage = build_stage(coll, args.retriever, depth=100)
    stage.search(["warm up"], 1)  # loads the model and builds BM25 once, outside the timings
    snap = coll.snapshot()
    for q in args.question or QUESTIONS:
        t = time.perf_counter()
        res = stage.search([q], k)
        ms = 1000 * (time.perf_counter() - t)
        print(f"\nQ: {q}   ({ms:.1f} ms, {args.retriever})")
        keys = res.keys[0][res.keys[0] >= 0]
        for rank, (doc_id, score, text) in enumerate(
            zip(snap.ids(keys), res.scores[0], snap.texts(keys)), 1
        ):
            body = text.split(": ", 1)[-1]
            print(f"  {rank}. {score:.4f}  {doc_id}\n       {body[:110]}")
    return 0
