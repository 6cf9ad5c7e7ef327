"""``heron bench DATASET``: sweep codecs x rescoring on a BEIR dataset and report the trade-offs."""

from __future__ import annotations

import argparse
import json

from heron.bench.sweep import DEFAULT_CODECS, DEFAULT_OVERSAMPLES


def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0,2,4,10, got {text!r}"
        ) from exc
    return [int(v) if v == int(v) else v for v in vals]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="BEIR dataset name under $HERON_DATA or a folder")
    parser.add_argument(
        "--codecs",
        default=",".join(DEFAULT_CODECS),
        help="comma-separated codec specs (default: %(default)s)",
    )
    parser.add_argument(
        "--oversample",
        type=_floats,
        default=list(DEFAULT_OVERSAMPLES),
        help="rescoring factors, 0 = no rescoring (default: 0,2,4,5,10)",
    )
    parser.add_argument(
        "--rescore",
        choices=("float16", "float32"),
        default="float16",
        help="finer copy used for rescoring",
    )
    parser.add_argument("--split", default="test", help="qrels split of the queries")
    parser.add_argument(
        "--train-split",
        default="train",
        help="split whose queries (no qrels) train dpq/dopq; 'none' = pseudo-queries from the corpus",
    )
    parser.add_argument("--model", default=None, help="encoder (default all-MiniLM-L6-v2)")
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        help="sweep on this many sampled documents (large corpora)",
    )
    parser.add_argument(
        "--indexes",
        nargs="?",
        const="default",
        default=None,
        metavar="SPECS",
        help="sweep ANN indexes instead of bare codecs: comma-separated KIND:CODEC specs "
        "(flat/ivf/hnsw x fp32/int8/bin/pq48 ...; no value = the default grid); report in "
        "out/bench-DATASET-indexes",
    )
    parser.add_argument("--out", default=None, help="report folder (default out/bench-DATASET)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from heron.bench.data import dataset_vectors
    from heron.bench.pareto import pareto_front
    from heron.bench.sweep import run_sweep, write_report
    from heron.codecs import parse_spec

    if args.indexes is not None:
        return _run_indexes(args)
    specs = [s.strip() for s in args.codecs.split(",") if s.strip()]
    for s in specs:
        parse_spec(s)  # fail fast on a bad spec, listing the valid ones
    data = dataset_vectors(args.dataset, split=args.split, model=args.model, sample=args.sample)
    train_q = None
    if args.train_split != "none" and args.train_split != args.split:
        try:
            train_q = dataset_vectors(args.dataset, split=args.train_split, model=args.model)[
                "query_emb"
            ]
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"no {args.train_split!r} queries ({exc}); dpq/dopq train on pseudo-queries")
    rows = run_sweep(
        data["doc_emb"],
        data["query_emb"],
        codecs=specs,
        oversamples=args.oversample,
        rescore_dtype=args.rescore,
        evaluate=data["evaluate"],
        train_queries=train_q,
    )
    name = Path(args.dataset).name
    out = args.out or f"out/bench-{name}"
    meta = {
        **_meta(args, data, name),
        "rescore": args.rescore,
        "train_queries": (
            f"{args.train_split} ({len(train_q)})" if train_q is not None else "pseudo"
        ),
    }
    paths = write_report(rows, out, title=f"heron bench {name} ({data['model']})", meta=meta)
    front = pareto_front(rows)
    print(
        f"{len(rows)} configurations measured; Pareto frontier (memory vs recall@10 of exact top-10):"
    )
    for i in sorted(front, key=lambda i: rows[i]["memory_bytes"]):
        r = rows[i]
        print(
            f"  {r['codec']:>14} x{r['oversample']:<3} {r['bytes_per_vector']:7.0f} B/vec  recall@10 {r['recall10_exact']:.4f}"
            + (f"  nDCG@10 {r['ndcg10']:.4f}" if "ndcg10" in r else "")
        )
    print(json.dumps(paths))
    return 0


def _run_indexes(args: argparse.Namespace) -> int:
    """``heron bench DATASET --indexes``: index type x codec x search parameters."""
    from pathlib import Path

    from heron.bench.data import dataset_vectors
    from heron.bench.index_sweep import DEFAULT_INDEXES, parse_index_spec, run_index_sweep
    from heron.bench.pareto import pareto_front
    from heron.bench.sweep import write_report

    specs = (
        list(DEFAULT_INDEXES)
        if args.indexes == "default"
        else [s.strip() for s in args.indexes.split(",") if s.strip()]
    )
    for s in specs:
        parse_index_spec(s)  # fail fast, naming the valid index types
    data = dataset_vectors(args.dataset, split=args.split, model=args.model, sample=args.sample)
    rows = run_index_sweep(
        data["doc_emb"], data["query_emb"], indexes=specs, evaluate=data["evaluate"]
    )
    name = Path(args.dataset).name
    out = args.out or f"out/bench-{name}-indexes"
    meta = {**_meta(args, data, name), "kind": "indexes"}
    paths = write_report(
        rows, out, title=f"heron bench {name} --indexes ({data['model']})", meta=meta
    )
    keys = [("memory_bytes", "min"), ("recall10_exact", "max"), ("latency_ms", "min")]
    front = pareto_front(rows, keys)
    print(
        f"{len(rows)} index configurations measured; Pareto frontier (memory, recall@10 of exact top-10, latency):"
    )
    for i in sorted(front, key=lambda i: rows[i]["memory_bytes"]):
        r = rows[i]
        print(
            f"  {r['label']:<34} {r['bytes_per_vector']:7.0f} B/vec  recall@10 {r['recall10_exact']:.4f}  {r['latency_ms']:.3f} ms/query"
        )
    print(json.dumps(paths))
    return 0


def _meta(args: argparse.Namespace, data: dict, name: str) -> dict:
    """What every bench report records about its data."""
    return {
        "dataset": name,
        "model": data["model"],
        "split": args.split,
        "n_docs": data["n_docs"],
        "n_sample": data["n_sample"],
    }
