"""``heron search COLLECTION how do I parse arguments -k 10 [--filter JSON] [--json]``.

The words after the collection form **one** query (quotes are optional); several queries come
from repeated ``--query`` or a ``--queries`` file (one per line). Each hit shows a labelled score
(``cosine``, ``bm25``, ``rrf``, ``probability`` ...) and a snippet around the query terms;
``--json`` adds the document's metadata (``--full-text`` the whole text).

``--filter`` takes the metadata filter language of :mod:`heron.index.filters`
(``{"year": {"$gte": 2020}}``, ``$in``, ``$contains``, ``$like``, ``$exists`` ...). The ANN
retrievers (``flat``, ``ivf``, ``hnsw``, ``ann``) filter inside the search; any other retriever
is searched ever deeper (x4 each round) until ``k`` matching hits are found or the collection is
exhausted, so exact retrievers (``dense``, ``bm25``) return the exact filtered top ``k``. A field
that no document has is an error naming the known fields.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument(
        "words", nargs="*", metavar="QUERY", help="the query (several words form one query)"
    )
    p.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="TEXT",
        help="a query (repeatable, for several queries)",
    )
    p.add_argument(
        "--queries",
        default=None,
        metavar="FILE",
        help="a file of queries, one per line ('-' = stdin)",
    )
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument(
        "--retriever",
        "-r",
        default="dense",
        help="retriever spec: dense, bm25, hybrid:dense+bm25, NAME?param=value",
    )
    p.add_argument(
        "--filter",
        default=None,
        metavar="JSON",
        help='metadata filter, e.g. \'{"year": {"$gte": 2020}}\' or \'{"tags": {"$contains": "ml"}}\'',
    )
    p.add_argument(
        "--json", action="store_true", help="print JSON (hits with metadata and snippet)"
    )
    p.add_argument(
        "--full-text", action="store_true", help="with --json: include each hit's whole text"
    )
    p.add_argument(
        "--snippet-chars", type=int, default=200, help="snippet length in characters (default 200)"
    )


def read_queries(args: argparse.Namespace) -> list[str]:
    """The positional words as one query, then each ``--query``, then the ``--queries`` file."""
    out = [" ".join(args.words)] if args.words else []
    out += list(args.query)
    if args.queries:
        from pathlib import Path

        text = sys.stdin.read() if args.queries == "-" else Path(args.queries).read_text()
        out += [line.strip() for line in text.splitlines() if line.strip()]
    if not out:
        raise ValueError(
            'give a query: heron search COLLECTION some words, --query "..." (repeatable) or --queries FILE'
        )
    return out


def parse_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        flt = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f'--filter is not valid JSON ({exc.msg}): {text!r}; write e.g. \'{{"year": {{"$gte": 2020}}}}\''
        ) from exc
    from heron.index.filters import compile_filter

    compile_filter(flt)  # a bad operator or value fails here, naming it
    return flt


def filtered_search(coll: Any, spec: str, queries: Any, k: int, flt: dict) -> Any:
    """Top ``k`` hits matching ``flt`` (``Collection.search(filter=)``: inside the search for ANN
    retrievers, exactly over the matching documents otherwise)."""
    from heron.index.filters import check_fields

    check_fields(coll, flt)
    return coll.search(queries, k, using=spec, filter=flt)


#: more queries than this are encoded up front with a progress bar
QUERY_PROGRESS_OVER = 1000


def encode_many(coll: Any, args: argparse.Namespace, texts: list[str]) -> dict[str, Any] | None:
    """Dense query vectors of a large ``--queries`` batch, encoded with a progress bar (``None``:
    few queries, ``--quiet``/``--json``, or a retriever that needs no dense vectors)."""
    from heron.cli._hits import score_label

    if len(texts) <= QUERY_PROGRESS_OVER or args.quiet or args.json or coll.model == "none":
        return None
    spec = args.retriever
    fused = spec.startswith(("hybrid:", "fusion:"))
    parts = spec.split(":", 1)[1].split("+") if fused else [spec]
    if not any(score_label(p) == "cosine" for p in parts):
        return None
    enc = coll.encoder
    return {enc.name: enc.encode_queries(texts, progress=True)}


def run(args: argparse.Namespace) -> int:
    import heron.capabilities.passages_bm25  # noqa: F401  (registers "passages_bm25" ...)
    import heron.capabilities.passages_splade  # noqa: F401  (... and "passages_splade")
    from heron.capabilities.passages import matched_passages
    from heron.cli._hits import highlight, hit_record, score_label
    from heron.collection import Collection
    from heron.eval.runner import build_stage
    from heron.pipeline import Queries
    from heron.results import check_k

    k = check_k(args.k)
    if args.snippet_chars < 20:
        raise ValueError(f"--snippet-chars must be at least 20, got {args.snippet_chars}")
    texts = read_queries(args)
    flt = parse_filter(args.filter)
    coll = Collection.open(args.collection)
    queries = Queries(texts, vectors=encode_many(coll, args, texts))
    t0 = time.perf_counter()
    if flt is None:
        res = build_stage(coll, args.retriever, depth=max(k, 100)).search(queries, k)
    else:
        res = filtered_search(coll, args.retriever, queries, k, flt)
    ms = 1000 * (time.perf_counter() - t0)
    label = score_label(args.retriever, res.info, model=coll.model)
    snap = coll.snapshot()
    passages = matched_passages(coll, res)
    out = []
    for qi, q in enumerate(texts):
        keys = res.keys[qi][res.keys[qi] >= 0]
        ids, docs, metas = snap.ids(keys), snap.texts(keys), snap.metadata(keys)
        hits = [
            hit_record(
                r + 1,
                i,
                float(s),
                t,
                m,
                q,
                width=args.snippet_chars,
                full_text=args.full_text,
                passage=passages[qi][r] if passages else None,
            )
            for r, (i, s, t, m) in enumerate(zip(ids, res.scores[qi], docs, metas))
        ]
        out.append({"query": q, "hits": hits})
    if args.json:
        doc = {
            "retriever": args.retriever,
            "score_label": label,
            "filter": flt,
            "results": out,
            "milliseconds": ms,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    bold = sys.stdout.isatty()
    for item in out:
        print(f"\n{item['query']}")
        if not item["hits"]:
            print("  (no hits)")
        for h in item["hits"]:
            snip = highlight(h["snippet"], h["highlights"]) if bold else h["snippet"]
            where = f"  (passage {h['passage']['index']})" if "passage" in h else ""
            print(f"  {h['rank']:>2}. {label} {h['score']:.3f}  {h['id']}{where}")
            print(f"      {snip}")
    print(f"\n({ms:.1f} ms, scores: {label})")
    return 0
