"""Per-query latency of late-interaction search: exact MaxSim vs MUVERA / pooled + rerank.

``heron bench-multivector`` measures quality (deterministic). This script measures what one
query costs when it arrives alone (serving latency), every method in the same process on the
same queries, **interleaved query by query** so that load changes on a shared machine hit all
methods alike:

* exact MaxSim over the whole corpus (fused numba kernel: float16 tokens read in place and
  converted in registers, parallel over documents);
* MUVERA: query FDE, exact float32 inner-product scan of the document FDEs
  (:func:`heron.retrieval.topk.exact_search`), exact MaxSim rerank of the top ``--candidates``
  with the *same* fused kernel;
* pooled (<= 8 vectors/doc; window or k-means): MaxSim over the pooled float32 vectors (same
  kernel), exact rerank of the top ``--candidates``.

Speed-up = total exact time / total method time over the same queries (also given: the ratio of
per-query medians). The machine load (``os.getloadavg``) is recorded before and after.

Usage::

    python benchmarks/multivector_latency.py scifact --queries 32 --threads 1 --out out/multivector
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
    p.add_argument("--queries", type=int, default=32, help="first N test queries timed")
    p.add_argument("--candidates", type=int, default=100, help="first-stage hits reranked")
    p.add_argument(
        "--muvera",
        nargs="*",
        default=["5,16,20", "4,8,80,c,w,e"],
        help="MUVERA settings K_SIM,D_PROJ,R_REPS[,D_FINAL][,FLAG...] (flags: see "
        "heron.multivector.muvera.parse_spec; c = tokens centred before SimHash)",
    )
    p.add_argument("--pooling", nargs="*", default=["window", "kmeans"])
    p.add_argument("--threads", type=int, default=1, help="numba + BLAS threads (0 = all)")
    p.add_argument("--repeats", type=int, default=1, help="passes over the queries")
    p.add_argument("--out", default="out/multivector")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm.auto import tqdm

    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import cached_array, cached_token_ids, cached_token_vectors
    from heron.multivector.maxsim import (
        as_token_list,
        exact_maxsim_search,
        maxsim_batch,
        maxsim_rerank_rows,
    )
    from heron.multivector.muvera import FDEEncoder, encoder_from_spec, parse_spec
    from heron.multivector.pooling import pool_tokens
    from heron.multivector.tokens import (
        token_ids,
        vocab_size,
    )
    from heron.retrieval.topk import exact_search, topk_rows

    if args.threads > 0:
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    for spec in args.muvera:  # bad specs fail before any work
        parse_spec(spec)
    ds = load_beir(args.dataset)
    enc = load_encoder()
    data = cached_token_vectors(ds, enc)
    docs = data["docs"]
    qt = as_token_list(data["query_tokens"])[: args.queries]
    K = args.candidates

    methods: dict[str, object] = {}

    def exact_one(q: np.ndarray) -> np.ndarray:
        return exact_maxsim_search([q], docs, 10)[1][0]

    methods["exact"] = exact_one
    info: dict[str, dict] = {"exact": {"bytes_per_doc": float(docs.values.nbytes / len(docs))}}

    piece_ids: dict = {}
    for spec in args.muvera:
        cfg = parse_spec(spec)
        if cfg["weights"] is not None and "docs" not in piece_ids:
            piece_ids["docs"] = cached_token_ids(ds, enc, docs)
            piece_ids["queries"] = [token_ids([t], enc) for t in data["queries"][: args.queries]]
        fde, doc_w, table = encoder_from_spec(
            spec,
            docs,
            doc_token_ids=piece_ids.get("docs"),
            vocab_size=vocab_size(enc) if cfg["weights"] else None,
        )
        centre = cfg["centre"]
        wtag = {None: "", "common-pieces": "-ws", "idf": "-ww"}[cfg["weights"]]
        name = f"muvera {fde.dimension}d ({spec})"
        doc_f = cached_array(
            f"muvera-fde-{args.dataset}-{json.dumps(fde.params(), sort_keys=True)}" + wtag,
            ds.doc_ids,
            lambda fde=fde, doc_w=doc_w: fde.encode_documents(docs, weights=doc_w, progress=True),
        )
        q_w = (
            {id(q): table[t] for q, t in zip(qt, piece_ids["queries"])}
            if cfg["weight_queries"]
            else {}
        )

        def muvera_one(
            q: np.ndarray, fde: FDEEncoder = fde, doc_f: np.ndarray = doc_f, q_w: dict = q_w
        ) -> np.ndarray:
            w = q_w.get(id(q)) if q_w else None
            _, r = exact_search(fde.encode_queries([q], weights=w), doc_f, K)
            s = maxsim_rerank_rows(q, docs, r[0])
            return r[0][np.argsort(-s, kind="stable")[:10]]

        methods[name] = muvera_one
        params = {k: v for k, v in fde.params().items() if k != "centre"}
        info[name] = {
            "bytes_per_doc": fde.dimension * 4,
            "params": {**params, "centred": centre, "weights": cfg["weights"]},
        }

    for pm in args.pooling:
        t0 = time.perf_counter()
        pooled = pool_tokens(docs, method=pm, n_vectors=8)
        name = f"pooled {pm} (<= 8 vectors/doc)"

        def pooled_one(q: np.ndarray, pooled: object = pooled) -> np.ndarray:
            _, r = topk_rows(maxsim_batch([q], pooled.values, pooled.offsets), K)  # type: ignore[attr-defined]
            s = maxsim_rerank_rows(q, docs, r[0])
            return r[0][np.argsort(-s, kind="stable")[:10]]

        methods[name] = pooled_one
        info[name] = {
            "bytes_per_doc": float(pooled.values.nbytes / len(docs)),
            "build_s": round(time.perf_counter() - t0, 1),
        }

    # warm up (numba compilation, page cache) on one query, then time interleaved
    for fn in methods.values():
        fn(qt[0])  # type: ignore[operator]
    load_before = os.getloadavg()
    times = {name: [] for name in methods}
    agree = {name: [] for name in methods}
    for _ in range(args.repeats):
        for q in tqdm(qt, desc="latency", unit="query"):
            ref = None
            for name, fn in methods.items():
                t0 = time.perf_counter()
                top = fn(q)  # type: ignore[operator]
                times[name].append(time.perf_counter() - t0)
                if name == "exact":
                    ref = top
                else:
                    agree[name].append(len(np.intersect1d(top, ref)) / max(len(ref), 1))
    load_after = os.getloadavg()
    tot = {k: float(np.sum(v)) for k, v in times.items()}
    med = {k: float(np.median(v)) for k, v in times.items()}
    rows = []
    for name in methods:
        rows.append(
            {
                "method": name,
                "ms_per_query_mean": round(tot[name] / len(times[name]) * 1e3, 2),
                "ms_per_query_median": round(med[name] * 1e3, 2),
                "speedup_vs_exact": round(tot["exact"] / tot[name], 2),
                "speedup_vs_exact_median": round(med["exact"] / med[name], 2),
                "exact_top10_overlap": round(float(np.mean(agree[name])), 4)
                if name != "exact"
                else 1.0,
                **info[name],
            }
        )
    cmd = "python benchmarks/multivector_latency.py " + " ".join(
        [args.dataset, f"--queries {args.queries}", f"--candidates {K}"]
        + ["--muvera " + " ".join(args.muvera)]
        + ["--pooling " + " ".join(args.pooling)]
        + [f"--threads {args.threads}", f"--repeats {args.repeats}", f"--out {args.out}"]
    )
    out = {
        "dataset": args.dataset,
        "queries": len(qt),
        "mean_query_tokens": float(np.mean([len(q) for q in qt])),
        "candidates": K,
        "threads": args.threads,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "rows": rows,
        "command": cmd,
    }
    od = Path(args.out)
    od.mkdir(parents=True, exist_ok=True)
    (od / f"multivector-latency-{args.dataset}.json").write_text(json.dumps(out, indent=1))
    md = [
        f"# Per-query latency, {args.dataset} ({len(qt)} queries x {args.repeats}, "
        f"{out['mean_query_tokens']:.1f} tokens/query, {args.threads} thread(s), "
        f"load {load_before[0]:.1f} -> {load_after[0]:.1f})",
        "",
        "| method | ms/query (mean) | ms/query (median) | speed-up (total) | speed-up (median) | exact top-10 overlap | bytes/doc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['method']} | {r['ms_per_query_mean']} | {r['ms_per_query_median']} | "
            f"{r['speedup_vs_exact']} | {r['speedup_vs_exact_median']} | "
            f"{r['exact_top10_overlap']} | {r['bytes_per_doc']:.0f} |"
        )
    md += ["", f"`{cmd}`", ""]
    (od / f"multivector-latency-{args.dataset}.md").write_text("\n".join(md))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
        ax.barh([r["method"] for r in rows], [r["ms_per_query_mean"] for r in rows])
        ax.set_xscale("log")
        ax.set_xlabel("ms per query (log)")
        ax.set_title(f"{args.dataset}: late interaction, one query at a time")
        fig.tight_layout()
        fig.savefig(od / f"multivector-latency-{args.dataset}.png", dpi=100)
        plt.close(fig)
    except ImportError:
        pass
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
