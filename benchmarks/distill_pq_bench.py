"""Ranking-aware (distilled) PQ against plain PQ / OPQ at equal bytes, on BEIR test queries.

For each dataset and each ``M`` (bytes per vector), fits plain PQ / OPQ and distilled variants
(:class:`heron.codecs.distill_pq.DistilledPQCodec`) on the corpus embeddings, and reports
recall@10 of the float32-exact top-10 of the TEST queries at oversample x0/2/4/5/10 (rescoring
from float16). Distillation uses either pseudo-queries drawn from the corpus or the dataset's
unlabelled ``train`` split query embeddings (no relevance judgements are read); test queries are
only used for the report.

    python benchmarks/distill_pq_bench.py --out out/distill_pq

Writes ``distill_pq.json`` and ``distill_pq.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

OVERSAMPLES = (0, 2, 4, 5, 10)


def variants(M: int) -> dict:
    from heron.codecs.distill_pq import DistilledPQCodec
    from heron.codecs.pq import PQCodec

    return {
        f"pq{M}": (lambda: PQCodec(M=M), None),
        f"opq{M}": (lambda: PQCodec(M=M, opq=True), None),
        f"dpq{M} pseudo e3 (session 1)": (
            lambda: DistilledPQCodec(M=M, epochs=3, holdout=0.0),
            None,
        ),
        f"dpq{M} pseudo e10 es": (lambda: DistilledPQCodec(M=M, epochs=10), None),
        f"dpq{M} train-q e10 es": (lambda: DistilledPQCodec(M=M, epochs=10), "train"),
        f"dpq{M} train+pseudo e10 es": (lambda: DistilledPQCodec(M=M, epochs=10), "mix"),
        f"dopq{M} train+pseudo e10 es": (
            lambda: DistilledPQCodec(M=M, opq=True, epochs=10),
            "mix",
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="scifact,nfcorpus")
    ap.add_argument("--M", default="48,24")
    ap.add_argument("--only", default=None, help="comma-separated variant name prefixes")
    ap.add_argument("--out", default="out/distill_pq")
    args = ap.parse_args()
    from tqdm.auto import tqdm

    from heron.bench.data import dataset_vectors
    from heron.bench.sweep import _exact, _recall
    from heron.codecs.search import rescore_rows

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res: list[dict] = []
    for ds in args.datasets.split(","):
        x = dataset_vectors(ds, split="test")["doc_emb"].astype(np.float32)
        q = dataset_vectors(ds, split="test")["query_emb"].astype(np.float32)
        tq = dataset_vectors(ds, split="train")["query_emb"].astype(np.float32)
        rng = np.random.default_rng(0)
        pseudo = x[rng.choice(len(x), 2048, replace=False)]
        gt = _exact(q, x, 10)
        f16 = x.astype(np.float16)
        for M in (int(m) for m in args.M.split(",")):
            vs = variants(M)
            if args.only:
                vs = {k: v for k, v in vs.items() if k.startswith(tuple(args.only.split(",")))}
            for name, (make, qsrc) in tqdm(vs.items(), desc=f"{ds} M={M}"):
                codec = make()
                t0 = time.perf_counter()
                if qsrc is None:
                    codec.fit(x)
                else:
                    codec.fit(x, queries=tq if qsrc == "train" else np.concatenate([tq, pseudo]))
                fit_s = time.perf_counter() - t0
                codes = codec.encode(x)
                first = codec.topk(q, codes, 100)[1]
                rec = {}
                for o in OVERSAMPLES:
                    rows = (
                        first[:, :10] if o == 0 else rescore_rows(q, first[:, : 10 * o], f16, 10)[1]
                    )
                    rec[str(o)] = _recall(rows, gt)
                row = {
                    "dataset": ds,
                    "M": M,
                    "variant": name,
                    "bytes_per_vector": float(codec.bytes_per_vector),
                    "recall10": rec,
                    "fit_s": fit_s,
                    "best_epoch": getattr(codec, "best_epoch", None),
                    "val_history": getattr(codec, "val_history", None),
                }
                res.append(row)
                tqdm.write(f"{ds} {name}: " + " ".join(f"{v:.4f}" for v in rec.values()))
    (out / "distill_pq.json").write_text(json.dumps(res, indent=1))
    lines = [
        "# distilled PQ vs PQ/OPQ, recall@10 of the float32-exact top-10 (test queries)",
        "",
        f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "",
        "| dataset | M (bytes) | variant | x0 | x2 | x4 | x5 | x10 | best epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res:
        lines.append(
            f"| {r['dataset']} | {r['M']} | {r['variant']} | "
            + " | ".join(f"{v:.4f}" for v in r["recall10"].values())
            + f" | {r['best_epoch'] if r['best_epoch'] is not None else ''} |"
        )
    (out / "distill_pq.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
