"""``heron eval DATASET --retriever dense|bm25|hybrid:dense+bm25 ...``: score retrievers on a BEIR folder."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--out", default=None, help="JSON report path (default out/eval-DATASET.json)")


def run(args: argparse.Namespace) -> int:
    from heron.eval.runner import evaluate_dataset, format_table, write_report

    measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    retrievers = args.retriever or ["dense"]
    report = evaluate_dataset(
        args.dataset,
        retrievers,
        split=args.split,
        measures=measures,
        depth=args.depth,
        model=args.model,
    )
    print(
        f"{report['dataset']} ({args.split}: {report['queries']} queries, {report['documents']} documents, model {report['model']})"
    )
    print(format_table(report, measures))
    out = Path(args.out or f"out/eval-{report['dataset']}.json")
    write_report(report, out)
    print(f"report written to {out}")
    return 0
