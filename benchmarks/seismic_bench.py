"""Seismic (heron's numba implementation) vs exact sparse scoring vs pyseismic-lsr (Rust).

Corpora: SPLADE (splade-tiny) vectors of SciFact and NFCorpus (test queries), and a seeded
Zipfian synthetic learned-sparse corpus (default 1,000,000 documents, ~120 terms each, ~30 per
query). For each: exact top-10 (scipy, single thread) as ground truth; recall@10 of every
approximate operating point against it; queries/second, all single-threaded, measured in the same
process so only ratios are reported as meaningful.

    python benchmarks/seismic_bench.py --out out/seismic                       # all corpora
    python benchmarks/seismic_bench.py --corpora synthetic --n-docs 1000000    # the 1M bar

Writes ``results.json``, ``results.md`` and ``recall_qps.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from heron.sparse.exact import ExactSparseIndex  # noqa: E402
from heron.sparse.pyseismic import PySeismicIndex  # noqa: E402
from heron.sparse.seismic import SeismicIndex  # noqa: E402

CONFIGS = [(3, 0.7), (5, 0.8), (8, 0.9), (10, 0.9), (12, 1.0), (15, 1.0), (20, 1.0), (30, 1.0)]


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    out = []
    for a, e in zip(approx, exact):
        e = e[e >= 0]
        if len(e) == 0:
            continue
        out.append(len(set(a[a >= 0].tolist()) & set(e.tolist())) / len(e))
    return float(np.mean(out))


def timed(fn, reps: int = 1):
    best, res = np.inf, None
    for _ in range(reps):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return res, best


def corpora(names, n_docs, n_queries):
    for name in names:
        if name == "synthetic":
            from heron.sparse.synthetic import synthetic_sparse

            t = time.perf_counter()
            d, q = synthetic_sparse(n_docs, n_queries=n_queries, seed=0)
            print(
                f"[synthetic] generated {d.shape} nnz/doc {d.nnz / d.shape[0]:.1f} in {time.perf_counter() - t:.0f}s",
                flush=True,
            )
            yield f"synthetic-{n_docs}", d, q
        else:
            from heron.encoders.splade import SpladeEncoder, dataset_sparse
            from heron.eval import load_beir

            r = dataset_sparse(load_beir(name), SpladeEncoder(), split="test")
            yield name, r["doc_vecs"], r["query_vecs"]


def run_corpus(name, docs, queries, args) -> dict:
    k = 10
    n = docs.shape[0]
    big = n > 100_000
    lam = args.n_postings or (1000 if big else 2000)
    rep = {
        "corpus": name,
        "n_docs": n,
        "n_queries": queries.shape[0],
        "doc_nnz": docs.nnz / n,
        "query_nnz": queries.nnz / queries.shape[0],
        "points": [],
    }
    exact = ExactSparseIndex(docs)
    gt, t_exact = timed(lambda: exact.search(queries, k), reps=1 if big else 3)  # noqa: F821
    rep["exact_qps"] = queries.shape[0] / t_exact
    print(f"[{name}] exact {rep['exact_qps']:.1f} q/s", flush=True)
    del exact
    gc.collect()
    params = dict(n_postings=lam, centroid_fraction=0.1, summary_energy=0.4, doc_cut=15)
    rep["params"] = params
    idx, t_build = timed(lambda: SeismicIndex.build(docs, **params))
    rep["heron_build_s"] = t_build
    rep["heron_bytes"] = idx.nbytes()
    print(
        f"[{name}] heron build {t_build:.0f}s blocks {idx.n_blocks} postings {idx.n_postings_kept} rss {rss_gb():.2f} GB",
        flush=True,
    )
    idx.search(queries[:2], k)  # compile / warm
    for qc, hf in CONFIGS:
        r, t = timed(
            lambda qc=qc, hf=hf: idx.search(queries, k, query_cut=qc, heap_factor=hf),  # noqa: F821
            reps=1 if big else 3,
        )
        pt = {
            "system": "heron",
            "query_cut": qc,
            "heap_factor": hf,
            "recall": recall(r.keys, gt.keys),
            "qps": queries.shape[0] / t,
            "speedup_vs_exact": t_exact / t,
        }
        rep["points"].append(pt)
        print(
            f"[{name}] heron qc={qc} hf={hf} recall {pt['recall']:.4f} {pt['speedup_vs_exact']:.1f}x exact",
            flush=True,
        )
    del idx
    gc.collect()
    if not args.skip_pyseismic:
        ps, t_build = timed(
            lambda: PySeismicIndex.build(docs, **params, num_threads=args.build_threads)
        )
        rep["pyseismic_build_s"] = t_build
        print(f"[{name}] pyseismic build {t_build:.0f}s rss {rss_gb():.2f} GB", flush=True)
        prepared = ps.query_arrays(queries)
        for qc, hf in CONFIGS:
            r, t = timed(
                lambda qc=qc, hf=hf: ps.search(
                    queries, k, query_cut=qc, heap_factor=hf, num_threads=1, prepared=prepared
                ),
                reps=1 if big else 3,
            )
            pt = {
                "system": "pyseismic",
                "query_cut": qc,
                "heap_factor": hf,
                "recall": recall(r.keys, gt.keys),
                "qps": queries.shape[0] / t,
                "speedup_vs_exact": t_exact / t,
            }
            rep["points"].append(pt)
            print(
                f"[{name}] pyseismic qc={qc} hf={hf} recall {pt['recall']:.4f} {pt['speedup_vs_exact']:.1f}x exact",
                flush=True,
            )
        del ps
        gc.collect()
    # the bar: fastest point with recall >= target, per system, and latency ratio at the same recall
    for sysname in ("heron", "pyseismic"):
        ok = [p for p in rep["points"] if p["system"] == sysname and p["recall"] >= args.target]
        rep[f"{sysname}_at_target"] = max(ok, key=lambda p: p["qps"]) if ok else None
    h, p = rep.get("heron_at_target"), rep.get("pyseismic_at_target")
    rep["latency_ratio_heron_over_pyseismic"] = (p["qps"] / h["qps"]) if h and p else None
    rep["peak_rss_gb"] = rss_gb()
    return rep


def write(reports, out: Path, target: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(reports, indent=1))
    lines = [
        f"# Seismic vs exact vs pyseismic-lsr (single thread, recall@10 vs exact, target {target})",
        "",
    ]
    lines.append("| corpus | system | query_cut | heap_factor | recall@10 | q/s | × exact |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in reports:
        lines.append(f"| {r['corpus']} | exact | - | - | 1.0000 | {r['exact_qps']:.1f} | 1.0 |")
        for p in r["points"]:
            lines.append(
                f"| {r['corpus']} | {p['system']} | {p['query_cut']} | {p['heap_factor']} | {p['recall']:.4f} | {p['qps']:.1f} | {p['speedup_vs_exact']:.1f} |"
            )
    lines += [
        "",
        "| corpus | heron best at target (× exact) | pyseismic best at target (× exact) | heron latency / pyseismic latency | heron build s | peak RSS GB |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        h, p = r.get("heron_at_target"), r.get("pyseismic_at_target")
        fmt = lambda x: (  # noqa: E731
            f"recall {x['recall']:.3f}, {x['speedup_vs_exact']:.1f}×" if x else "not reached"
        )  # noqa: E731
        ratio = r.get("latency_ratio_heron_over_pyseismic")
        lines.append(
            f"| {r['corpus']} | {fmt(h)} | {fmt(p)} | {ratio:.2f} |"
            if ratio
            else f"| {r['corpus']} | {fmt(h)} | {fmt(p)} | - |"
        )
        lines[-1] += f" {r['heron_build_s']:.0f} | {r['peak_rss_gb']:.2f} |"
    (out / "results.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(reports), figsize=(5 * len(reports), 4), squeeze=False)
        for ax, r in zip(axes[0], reports):
            for sysname, m in (("heron", "o-"), ("pyseismic", "s--")):
                pts = sorted(
                    (p for p in r["points"] if p["system"] == sysname), key=lambda p: p["recall"]
                )
                if pts:
                    ax.plot(
                        [p["recall"] for p in pts],
                        [p["speedup_vs_exact"] for p in pts],
                        m,
                        label=sysname,
                    )
            ax.axhline(10, color="grey", lw=0.8, ls=":")
            ax.axvline(target, color="grey", lw=0.8, ls=":")
            ax.set_yscale("log")
            ax.set_xlabel("recall@10 vs exact")
            ax.set_ylabel("q/s ÷ exact q/s (single thread)")
            ax.set_title(r["corpus"])
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "recall_qps.png", dpi=110)
    except ImportError:
        pass
    print((out / "results.md").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="out/seismic")
    ap.add_argument("--corpora", nargs="+", default=["scifact", "nfcorpus", "synthetic"])
    ap.add_argument("--n-docs", type=int, default=1_000_000)
    ap.add_argument("--n-queries", type=int, default=200)
    ap.add_argument(
        "--n-postings",
        type=int,
        default=None,
        help="lambda; default 2000 (small corpora) / 1000 (synthetic)",
    )
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument(
        "--build-threads",
        type=int,
        default=0,
        help="threads for the pyseismic build (search is always 1)",
    )
    ap.add_argument("--skip-pyseismic", action="store_true")
    args = ap.parse_args()
    reports = []
    for name, d, q in corpora(args.corpora, args.n_docs, args.n_queries):
        reports.append(run_corpus(name, d, q, args))
        del d, q
        gc.collect()
        write(reports, Path(args.out), args.target)


if __name__ == "__main__":
    main()
