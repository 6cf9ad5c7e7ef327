"""``heron eval DATASET --retriever dense|bm25|hybrid:dense+bm25 ...``: score retrievers on a BEIR folder.

BEIR's conventions: qrels naming documents missing from the corpus count as misses (one notice
counts them; ``--strict`` refuses them), and on datasets whose queries are also documents a hit
whose id equals the query id is ignored (``--ignore-identical-ids``, on by default there). The
JSON report never replaces an earlier one: it goes to the next free numbered name
(``out/eval-DATASET-2.json`` ...) unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset",
        help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a dataset name under $HERON_DATA",
    )
    p.add_argument(
        "--retriever",
        "-r",
        action="append",
        default=None,
        help="retriever spec (repeatable): dense, bm25, hybrid:dense+bm25, NAME?param=value (default: dense)",
    )
    p.add_argument("--split", default="test", help="qrels split (default: test)")
    p.add_argument(
        "--measures", default="nDCG@10,R@100,RR@10,AP", help="comma-separated ir-measures names"
    )
    p.add_argument(
        "--depth", type=int, default=1000, help="hits retrieved per query (default 1000)"
    )
    p.add_argument(
        "--model", default=None, help="dense model name or path (default all-MiniLM-L6-v2)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="JSON report path (default out/eval-DATASET.json; an existing report is kept and "
        "this one gets the next free name, DATASET-2.json ...)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing report at --out")
    p.add_argument(
        "--chunk",
        default=None,
        metavar="METHOD:SIZE[:OVERLAP]",
        help="evaluate situated passages: sentences:128, tokens:200:50 or markdown:128; "
        "the passages retriever (default with --chunk) takes ?agg=max|mean|sum&m=2&whole=1",
    )
    p.add_argument(
        "--pooling",
        default=None,
        choices=["mean", "cls", "last", "weighted-mean", "max"],
        help="pool token vectors this way instead of the model's own pooling",
    )
    p.add_argument(
        "--context",
        default=None,
        choices=["none", "title", "neighbours", "title+neighbours"],
        help="situated context of each passage (default title)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse qrels naming documents missing from the corpus (default: score them as "
        "misses, as BEIR does) or queries missing from queries.jsonl (default: drop them)",
    )
    p.add_argument(
        "--ignore-identical-ids",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ignore a hit whose id equals the query id, as BEIR and MTEB do (default: on when "
        "some query ids are also document ids)",
    )


def run(args: argparse.Namespace) -> int:
    from heron.eval.runner import evaluate_dataset, format_table, write_report

    measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    chunk, context = getattr(args, "chunk", None), getattr(args, "context", None)
    retrievers = args.retriever or (["passages"] if chunk or context else ["dense"])
    report = evaluate_dataset(
        args.dataset,
        retrievers,
        split=args.split,
        measures=measures,
        depth=args.depth,
        model=args.model,
        strict=args.strict,
        ignore_identical_ids=args.ignore_identical_ids,
        progress=not getattr(args, "quiet", False),
        chunking=chunk,
        context=context,
        pooling=getattr(args, "pooling", None),
    )
    print(
        f"{report['dataset']} ({args.split}: {report['queries']} queries, {report['documents']} documents, model {report['model']})"
    )
    if "chunking" in report:
        c = report["chunking"]
        print(
            f"passages: {c['method']}:{c['size']} context {c['context']}, {c['passages']} passages "
            f"(encoded in {c['seconds']:.0f} s)"
        )
    print(format_table(report, measures))
    out = Path(args.out or f"out/eval-{report['dataset']}.json")
    written = write_report(report, out, overwrite=args.overwrite)
    if written != out:
        log.info("%s exists and is kept (--overwrite replaces it)", out)
    print(f"report written to {written}")
    return 0
