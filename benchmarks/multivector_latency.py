"""Per-query latency of late-interaction search: exact MaxSim vs MUVERA / pooled + rerank.

``heron bench-multivector`` times exact MaxSim *batched* over many queries (each token of the
corpus is read once per batch — the strongest throughput baseline). This script measures what
one query costs when it arrives alone (serving latency), all methods in the same process on the
same queries:

* exact MaxSim over the whole corpus, one query at a time;
* MUVERA FDE search (exact inner-product scan of the FDEs) + exact MaxSim rerank of the top-100;
* pooled (k-means, <= 8 vectors/doc) MaxSim + exact rerank of the top-100.

Usage::

    python benchmarks/multivector_latency.py scifact --queries 16 --out out/multivector
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", default="scifact")
    p.add_argument("--queries", type=int, default=16)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--muvera", default="5,16,20", help="K_SIM,D_PROJ,R_REPS")
    p.add_argument("--out", default="out")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.multivector.maxsim import (
        _topk,
        as_token_list,
        exact_maxsim_search,
        maxsim_batch,
        maxsim_rerank_rows,
    )
    from heron.multivector.muvera import FDEEncoder
    from heron.multivector.pooling import pool_tokens
    from heron.multivector.tokens import cached_token_vectors
    from heron.retrieval.topk import exact_search

    data = cached_token_vectors(load_beir(args.dataset), load_encoder())
    docs = data["docs"]
    qt = as_token_list(data["query_tokens"])[: args.queries]
    k_sim, d_proj, r_reps = (int(v) for v in args.muvera.split(","))
    fde = FDEEncoder(dim=docs.dim, k_sim=k_sim, d_proj=d_proj, r_reps=r_reps)
    doc_f = fde.encode_documents(docs, progress=True)
    pooled = pool_tokens(docs, method="kmeans", n_vectors=8)
    K = args.candidates

    def exact_one(q: np.ndarray) -> None:
        exact_maxsim_search([q], docs, 10)

    def muvera_one(q: np.ndarray) -> None:
        _, r = exact_search(fde.encode_queries([q]), doc_f, K)
        maxsim_rerank_rows(q, docs, r[0])

    def pooled_one(q: np.ndarray) -> None:
        _, r = _topk(maxsim_batch([q], pooled.values, pooled.offsets), K)
        maxsim_rerank_rows(q, docs, r[0])

    times = {"exact": 0.0, "muvera": 0.0, "pooled": 0.0}
    for q in qt:  # interleaved, so load changes hit every method alike
        for name, fn in (("exact", exact_one), ("muvera", muvera_one), ("pooled", pooled_one)):
            t0 = time.perf_counter()
            fn(q)
            times[name] += time.perf_counter() - t0
    t0 = time.perf_counter()
    exact_maxsim_search(qt, docs, 10)
    batched = time.perf_counter() - t0
    n = len(qt)
    out = {
        "dataset": args.dataset,
        "queries": n,
        "ms_per_query": {k: round(v / n * 1e3, 1) for k, v in times.items()},
        "exact_batched_ms_per_query": round(batched / n * 1e3, 1),
        "speedup_vs_exact_one_query": {
            k: round(times["exact"] / v, 2) for k, v in times.items() if k != "exact"
        },
        "speedup_vs_exact_batched": {
            k: round(batched / v, 2) for k, v in times.items() if k != "exact"
        },
        "muvera": args.muvera,
        "candidates": K,
        "command": f"python benchmarks/multivector_latency.py {args.dataset} --queries {args.queries} --out {args.out}",
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"multivector-latency-{args.dataset}.json").write_text(
        json.dumps(out, indent=1)
    )
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
