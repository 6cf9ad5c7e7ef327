"""Seismic (heron's numba implementation) vs exact sparse scoring vs pyseismic-lsr (Rust).

Corpora: SPLADE (splade-tiny) vectors of SciFact and NFCorpus (test queries), and a seeded
Zipfian synthetic learned-sparse corpus (default 1,000,000 documents, ~120 terms each, ~30 per
query; generated once and cached under ``$HERON_CACHE/synthetic-sparse``). For each corpus:
exact top-10 (scipy, single thread) as ground truth; recall@10 of every approximate operating
point against it; speed as CPU seconds of this process (``time.process_time``, single thread),
the methods interleaved batch by batch so machine load hits all of them alike. Only ratios
(× exact, heron / pyseismic) are meaningful; the 1-minute load average is recorded beside them.

Built indexes are cached under ``$HERON_CACHE/seismic-bench/`` (heron: ``.npy`` + manifest;
pyseismic: its own ``.index.seismic`` file), each built in a child process whose build seconds
and peak RSS are stored in ``build.json`` beside it, so a rerun measures without rebuilding.

    python benchmarks/seismic_bench.py --out out/seismic                       # all corpora
    python benchmarks/seismic_bench.py --corpora synthetic --n-docs 1000000    # the 1M bar

Writes ``results.json``, ``results.md`` and ``recall_qps.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from heron.eval.cache import cache_dir  # noqa: E402
from heron.sparse.exact import ExactSparseIndex  # noqa: E402
from heron.sparse.seismic import FORMAT_VERSION, SeismicIndex  # noqa: E402

QUERY_CUTS = (3, 5, 8, 10, 15)
HEAP_FACTORS = (0.7, 0.8, 0.9, 1.0)


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    out = []
    for a, e in zip(approx, exact):
        e = e[e >= 0]
        if len(e) == 0:
            continue
        out.append(len(set(a[a >= 0].tolist()) & set(e.tolist())) / len(e))
    return float(np.mean(out))


def load_corpus(name: str, n_docs: int, n_queries: int):
    """``(docs, queries)`` CSR matrices of corpus ``name`` (``"synthetic"`` or a BEIR name)."""
    if name == "synthetic":
        from _lib.synthetic_sparse import cached_synthetic_sparse

        return cached_synthetic_sparse(n_docs, n_queries=n_queries, seed=0)
    from heron.encoders.splade import SpladeEncoder
    from heron.eval import load_beir
    from heron.eval.cache import dataset_sparse

    r = dataset_sparse(load_beir(name), SpladeEncoder(), split="test")
    return r["doc_vecs"], r["query_vecs"]


def _build_child(
    system: str,
    corpus: str,
    n_docs: int,
    n_queries: int,
    params: dict,
    path: str,
    build_threads: int = 1,
):
    """Build one index in a child process, save it to ``path``, write ``build.json`` there."""
    docs, _ = load_corpus(corpus, n_docs, n_queries)
    t, c = time.perf_counter(), time.process_time()
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    if system == "heron":
        idx = SeismicIndex.build(docs, **params)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        idx.save(tmp)
        extra = {"n_blocks": idx.n_blocks, "n_postings_kept": idx.n_postings_kept}
        extra["bytes"] = idx.nbytes()
    else:
        from heron.sparse.pyseismic import PySeismicIndex

        idx = PySeismicIndex.build(docs, **params, num_threads=build_threads)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        idx._index.save(str(tmp / "index"))
        extra = {}
    info = {
        "system": system,
        "params": params,
        "build_wall_s": round(wall, 1),
        "build_cpu_s": round(cpu, 1),
        "build_threads": build_threads if system == "pyseismic" else 1,
        "peak_rss_gb": round(rss_gb(), 2),
        "load_at_end": load1(),
        **extra,
    }
    (tmp / "build.json").write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)


def _pyseismic_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyseismic-lsr")
    except PackageNotFoundError:
        return "absent"


def cached_build(
    system: str, corpus: str, n_docs: int, n_queries: int, params: dict, build_threads: int = 1
):
    """Path of the cached index (built in a child process if absent) and its ``build.json``."""
    n = n_docs if corpus == "synthetic" else 0  # a BEIR corpus has one size
    # heron's index is keyed by its format version, pyseismic-lsr's by the package version
    v = FORMAT_VERSION if system == "heron" else f"pyseismic-lsr {_pyseismic_version()}"
    key = json.dumps({"corpus": corpus, "n": n, "p": params, "v": v}, sort_keys=True)
    tag = hashlib.sha1(key.encode()).hexdigest()[:10]
    path = cache_dir() / "seismic-bench" / f"{system}-{corpus}-{n}-{tag}"
    if not (path / "build.json").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{corpus}] building {system} index -> {path}", flush=True)
        proc = mp.get_context("spawn").Process(
            target=_build_child,
            args=(system, corpus, n_docs, n_queries, params, str(path), build_threads),
        )
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"building the {system} index failed (exit code {proc.exitcode})")
    info = json.loads((path / "build.json").read_text())
    print(
        f"[{corpus}] {system} index: build {info['build_wall_s']} s wall / {info['build_cpu_s']} s CPU, "
        f"peak RSS {info['peak_rss_gb']} GB",
        flush=True,
    )
    return path, info


def run_corpus(corpus: str, args) -> dict:
    k = 10
    docs, queries = load_corpus(corpus, args.n_docs, args.n_queries)
    n = docs.shape[0]
    name = f"synthetic-{n}" if corpus == "synthetic" else corpus
    big = n > 100_000
    lam = args.n_postings or (1000 if corpus == "synthetic" else 2000)
    rep = {
        "corpus": name,
        "n_docs": n,
        "n_queries": queries.shape[0],
        "doc_nnz": docs.nnz / n,
        "query_nnz": queries.nnz / queries.shape[0],
        "points": [],
        "load_start": load1(),
    }
    common = dict(n_postings=lam, centroid_fraction=0.1, summary_energy=0.4, doc_cut=15)
    hparams = dict(common, pruning=args.pruning, values=args.values)
    rep["params"] = {"heron": hparams, "pyseismic": common}
    if "heron" in args.systems:
        hpath, rep["heron_build"] = cached_build(
            "heron", corpus, args.n_docs, args.n_queries, hparams
        )
    if "pyseismic" in args.systems:
        ppath, rep["pyseismic_build"] = cached_build(
            "pyseismic", corpus, args.n_docs, args.n_queries, common, args.build_threads
        )
    if args.build_only:
        return rep
    heron = SeismicIndex.load(hpath)
    import numba

    numba.set_num_threads(1)  # heron splits a batch over numba's threads; one thread each here
    systems = {"heron": heron}
    if "pyseismic" in args.systems:
        from heron.sparse.pyseismic import PySeismicIndex

        seismic = __import__("seismic")
        ps = PySeismicIndex(
            seismic.SeismicIndex.load(str(ppath / "index.index.seismic")),
            n_docs=n,
            vocab_size=docs.shape[1],
            keys=np.arange(n, dtype=np.int64),
        )
        systems["pyseismic"] = ps
    exact = ExactSparseIndex(docs)
    del docs
    gc.collect()
    configs = [(qc, hf) for qc in QUERY_CUTS for hf in HEAP_FACTORS]
    # warm-up and ground truth: numba compile, and one pass of every query at the widest
    # setting so the memory-mapped heron index is paged in before anything is timed
    gt = exact.search(queries, k).keys
    heron.search(queries, k, query_cut=max(QUERY_CUTS), heap_factor=min(HEAP_FACTORS))
    prepared = {}
    if "pyseismic" in systems:
        prepared = systems["pyseismic"].query_arrays(queries)
        systems["pyseismic"].search(
            queries,
            k,
            query_cut=max(QUERY_CUTS),
            heap_factor=min(HEAP_FACTORS),
            num_threads=1,
            prepared=prepared,
        )
    nq = queries.shape[0]
    batch = args.batch
    cpu = {("exact", 0, 0.0): 0.0}
    keys = {}
    for s in systems:
        for qc, hf in configs:
            cpu[(s, qc, hf)] = 0.0
            keys[(s, qc, hf)] = np.full((nq, k), -1, dtype=np.int64)
    reps = 1 if big else 2
    for _ in range(reps):
        for b0 in range(0, nq, batch):
            qb = queries[b0 : b0 + batch]
            c = time.process_time()
            exact.search(qb, k)
            cpu[("exact", 0, 0.0)] += time.process_time() - c
            for qc, hf in configs:
                c = time.process_time()
                r = heron.search(qb, k, query_cut=qc, heap_factor=hf)
                cpu[("heron", qc, hf)] += time.process_time() - c
                keys[("heron", qc, hf)][b0 : b0 + batch] = r.keys
                if "pyseismic" in systems:
                    pb = (prepared[0][b0 : b0 + batch], prepared[1][b0 : b0 + batch])
                    c = time.process_time()
                    r = systems["pyseismic"].search(
                        qb, k, query_cut=qc, heap_factor=hf, num_threads=1, prepared=pb
                    )
                    cpu[("pyseismic", qc, hf)] += time.process_time() - c
                    keys[("pyseismic", qc, hf)][b0 : b0 + batch] = r.keys
    t_exact = cpu[("exact", 0, 0.0)] / reps
    rep["exact_qps"] = nq / t_exact
    for (s, qc, hf), t in cpu.items():
        if s == "exact":
            continue
        t /= reps
        pt = {
            "system": s,
            "query_cut": qc,
            "heap_factor": hf,
            "recall": recall(keys[(s, qc, hf)], gt),
            "qps": nq / t,
            "speedup_vs_exact": t_exact / t,
        }
        rep["points"].append(pt)
        print(
            f"[{name}] {s} qc={qc} hf={hf} recall {pt['recall']:.4f} {pt['speedup_vs_exact']:.1f}x exact",
            flush=True,
        )
    rep["load_end"] = load1()
    # the bar: fastest point with recall >= target, per system, and latency ratio at equal recall
    for sysname in ("heron", "pyseismic"):
        ok = [p for p in rep["points"] if p["system"] == sysname and p["recall"] >= args.target]
        rep[f"{sysname}_at_target"] = max(ok, key=lambda p: p["qps"]) if ok else None
    h, p = rep.get("heron_at_target"), rep.get("pyseismic_at_target")
    rep["latency_ratio_heron_over_pyseismic"] = (p["qps"] / h["qps"]) if h and p else None
    rep["peak_rss_gb_measure"] = rss_gb()
    return rep


def write(reports, out: Path, target: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(reports, indent=1))
    lines = [
        f"# Seismic vs exact vs pyseismic-lsr (single thread, CPU time, recall@10 vs exact, target {target})",
        "",
        "| corpus | system | query_cut | heap_factor | recall@10 | q/s (CPU) | × exact |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(f"| {r['corpus']} | exact | - | - | 1.0000 | {r['exact_qps']:.1f} | 1.0 |")
        for p in r["points"]:
            lines.append(
                f"| {r['corpus']} | {p['system']} | {p['query_cut']} | {p['heap_factor']} | {p['recall']:.4f} | {p['qps']:.1f} | {p['speedup_vs_exact']:.1f} |"
            )
    lines += [
        "",
        "| corpus | heron best at target (× exact) | pyseismic best at target (× exact) | heron latency / pyseismic latency | heron build s (wall / CPU), peak GB | pyseismic build s (wall / CPU), peak GB | load (start → end) |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(x):
        if not x:
            return "not reached"
        return f"recall {x['recall']:.3f}, {x['speedup_vs_exact']:.1f}× (qc={x['query_cut']}, hf={x['heap_factor']})"

    def fb(b):
        return f"{b['build_wall_s']} / {b['build_cpu_s']}, {b['peak_rss_gb']}" if b else "-"

    for r in reports:
        h, p = r.get("heron_at_target"), r.get("pyseismic_at_target")
        ratio = r.get("latency_ratio_heron_over_pyseismic")
        lines.append(
            f"| {r['corpus']} | {fmt(h)} | {fmt(p)} | {f'{ratio:.2f}' if ratio else '-'} | "
            f"{fb(r.get('heron_build'))} | {fb(r.get('pyseismic_build'))} | {r['load_start']} → {r['load_end']} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(reports), figsize=(5 * len(reports), 4), squeeze=False)
        for ax, r in zip(axes[0], reports):
            for sysname, m in (("heron", "o"), ("pyseismic", "s")):
                pts = [p for p in r["points"] if p["system"] == sysname]
                if pts:
                    ax.scatter(
                        [p["recall"] for p in pts],
                        [p["speedup_vs_exact"] for p in pts],
                        marker=m,
                        label=sysname,
                        alpha=0.7,
                    )
            ax.axhline(10, color="grey", lw=0.8, ls=":")
            ax.axvline(target, color="grey", lw=0.8, ls=":")
            ax.set_yscale("log")
            ax.set_xlabel("recall@10 vs exact")
            ax.set_ylabel("exact CPU time ÷ CPU time (single thread)")
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
        help="lambda; default 2000 (SPLADE corpora) / 1000 (synthetic)",
    )
    ap.add_argument(
        "--pruning",
        choices=["global", "fixed"],
        default="global",
        help="heron's static pruning (pyseismic-lsr always prunes with a global threshold)",
    )
    ap.add_argument(
        "--values",
        choices=["float16", "float32"],
        default="float16",
        help="precision of heron's forward index (pyseismic-lsr keeps float16)",
    )
    ap.add_argument("--batch", type=int, default=20, help="queries per interleaved batch")
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument(
        "--systems", nargs="+", choices=["heron", "pyseismic"], default=["heron", "pyseismic"]
    )
    ap.add_argument(
        "--build-threads",
        type=int,
        default=1,
        help="threads for the pyseismic build (search is always single-threaded)",
    )
    ap.add_argument(
        "--build-only", action="store_true", help="build (or find) the cached indexes and stop"
    )
    args = ap.parse_args()
    if "heron" not in args.systems and not args.build_only:
        ap.error("measuring needs heron in --systems")
    reports = []
    for corpus in args.corpora:
        rep = run_corpus(corpus, args)
        gc.collect()
        if args.build_only:
            continue
        reports.append(rep)
        write(reports, Path(args.out), args.target)


if __name__ == "__main__":
    main()
