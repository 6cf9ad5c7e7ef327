"""``heron recommend DATASET --memory 64MB``: the measured best configuration for a budget."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from heron.bench.recommend import QUALITY_METRICS, parse_bytes

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="BEIR dataset name under $HERON_DATA or a folder")
    parser.add_argument(
        "--memory",
        type=parse_bytes,
        default=None,
        help="budget for the in-memory index, e.g. 64MB, 512MiB",
    )
    parser.add_argument(
        "--min-quality", type=float, default=None, help="floor on the quality metric, e.g. 0.99"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=None, help="ceiling on single-query latency"
    )
    parser.add_argument(
        "--metric",
        choices=QUALITY_METRICS,
        default="recall10_exact",
        help="quality metric (default: %(default)s)",
    )
    parser.add_argument(
        "--report",
        default=None,
        help="a report.json from `heron bench` (default: out/bench-DATASET/report.json, measured now if absent)",
    )
    parser.add_argument(
        "--codecs", default=None, help="codec specs to measure when no report exists"
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=100_000,
        help="measure on this many sampled documents when the corpus is larger (default %(default)s)",
    )
    parser.add_argument(
        "--write",
        metavar="COLLECTION",
        default=None,
        help="write the pick as this collection's codec configuration (refused when the "
        "measurements come from another dataset or model than the collection's, unless --force)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --write: apply the pick even if it was measured on another dataset or model",
    )
    parser.add_argument(
        "--indexes",
        action="store_true",
        help="choose an ANN index (type, codec, build and search parameters) from `heron bench "
        "DATASET --indexes` measurements instead of a bare codec scan",
    )
    parser.add_argument(
        "--out", default=None, help="where a fresh sweep's report goes (default out/bench-DATASET)"
    )


def run(args: argparse.Namespace) -> int:
    from heron.bench.recommend import recommend

    name = Path(args.dataset).name
    suffix = "-indexes" if args.indexes else ""
    report = (
        Path(args.report)
        if args.report
        else Path(args.out or f"out/bench-{name}{suffix}") / "report.json"
    )
    if report.is_file():
        doc = json.loads(report.read_text())
        rows, meta = doc["rows"], doc.get("meta", {})
        print(f"using measurements from {report}")
    else:
        if args.report:
            raise FileNotFoundError(
                f"no report at {str(report)!r}; run `heron bench {args.dataset}` first or omit --report"
            )
        from heron.bench.data import dataset_vectors
        from heron.bench.sweep import DEFAULT_CODECS, run_sweep, write_report

        data = dataset_vectors(args.dataset, sample=args.sample)
        if args.indexes:
            from heron.bench.index_sweep import DEFAULT_INDEXES, run_index_sweep

            print(
                f"no report at {report}; measuring {len(DEFAULT_INDEXES)} index types on {data['n_sample']} of {data['n_docs']} documents"
            )
            rows = run_index_sweep(data["doc_emb"], data["query_emb"], evaluate=data["evaluate"])
        else:
            specs = [
                s.strip()
                for s in (args.codecs.split(",") if args.codecs else DEFAULT_CODECS)
                if s.strip()
            ]
            print(
                f"no report at {report}; measuring {len(specs)} codecs on {data['n_sample']} of {data['n_docs']} documents"
            )
            rows = run_sweep(
                data["doc_emb"], data["query_emb"], codecs=specs, evaluate=data["evaluate"]
            )
        meta = {
            "dataset": name,
            "model": data["model"],
            "n_docs": data["n_docs"],
            "n_sample": data["n_sample"],
        }
        write_report(rows, report.parent, title=f"heron bench {name}", meta=meta)
    rec = recommend(
        rows,
        memory=args.memory,
        min_quality=args.min_quality,
        latency_ms=args.latency_ms,
        metric=args.metric,
        n_docs=meta.get("n_docs"),
    )
    for line in rec.extrapolated:
        print(f"extrapolated: {line}")
    for line in rec.explanation:
        print(line)
    if rec.row is None:
        return 1
    print(json.dumps({"recommendation": rec.config}))
    if args.write:
        _check_provenance(args.write, meta, str(report), force=args.force)
    if args.write and "index" in rec.row:
        from heron.capabilities.ann import write_index_config
        from heron.collection import Collection

        cfg = write_index_config(
            Collection.open(args.write),
            rec.config,
            measured={
                k: rec.row[k]
                for k in ("recall10_exact", "memory_bytes", "latency_ms")
                if k in rec.row
            },
            source=str(report),
        )
        print(f"wrote index configuration to collection {args.write}: {json.dumps(cfg)}")
    elif args.write:
        from heron.capabilities.compressed import write_codec_config
        from heron.collection import Collection

        cfg = write_codec_config(
            Collection.open(args.write),
            rec.config,
            measured={
                k: rec.row[k]
                for k in ("recall10_exact", "bytes_per_vector", "memory_bytes", "latency_ms")
                if k in rec.row
            },
            source=str(report),
        )
        print(f"wrote codec configuration to collection {args.write}: {json.dumps(cfg)}")
    return 0


def _check_provenance(collection: str, meta: dict, report: str, *, force: bool) -> None:
    """Refuse (``ValueError``) to write a pick measured on other data, unless ``force``."""
    from heron.bench.recommend import provenance_mismatch
    from heron.collection import Collection

    why = provenance_mismatch(Collection.open(collection), meta, report)
    if why is None:
        return
    if not force:
        raise ValueError(f"{why}; nothing written (--force writes it anyway)")
    log.warning("%s; writing it anyway (--force)", why)
