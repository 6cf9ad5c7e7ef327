"""IVF int8 one query at a time: faiss' own search beside heron's scan of the same lists.

On the peers data (``benchmarks/peers.py``: anchored 1M x 384, its queries and exact top-10), one
collection with an ``ivf`` index of int8 codes (``nlist`` 4,096) is built once under ``--work``.
In one process, per ``nprobe``, in alternating blocks of single queries (different queries per
block, so the probed lists are not warm from the previous method):

* ``faiss first stage``: ``search_c`` of the index faiss holds (its flat quantizer on one
  thread, its scalar-quantizer scanner), ``oversample * k`` candidates;
* ``heron first stage``: the same candidates from heron's two-core coarse scan and its numba
  scan of faiss' lists in place (``IVFIndex._sq8_lists().search``);
* ``Collection.search + ids``: the public API, rescoring included, ten string ids;

then a batch of every query: the coarse step by faiss' quantizer and by ``exact_search``, the
whole ``Collection.search``, and the ids of its hit lists in one call and row by row.

    python benchmarks/ivf_scan.py --out out/ivf_scan
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

K, OVERSAMPLE = 10, 4


def collection(work: Path, data: Path, nlist: int):
    import heron

    if (work / "heron.json").exists():
        return heron.Collection.open(work)
    x = np.load(data / "x.npy", mmap_mode="r")
    c = heron.Collection.create(work, model="none", dim=x.shape[1])
    for s in range(0, len(x), 100_000):
        e = min(len(x), s + 100_000)
        ids = [str(i) for i in range(s, e)]
        c.add(ids, ids=ids, vectors=np.ascontiguousarray(x[s:e]))
    c.compact()
    c.create_index("ivf-int8", kind="ivf", nlist=nlist, codec="int8")
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="peers data folder (default: the 1M anchored set)")
    ap.add_argument("--work", type=Path, default=Path("out/ivf_scan/work"))
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--nprobe", default="4,8,16")
    ap.add_argument("--queries", type=int, default=200, help="queries per block")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("out/ivf_scan"))
    args = ap.parse_args()
    import faiss

    from heron.eval.cache import cache_dir

    data = args.data or cache_dir() / "peers" / "anchored-1000000-1000"
    if not (data / "meta.json").exists():
        raise SystemExit(f"no peers data at {data}: run benchmarks/peers.py --n 1000000 first")
    q_all, truth = np.load(data / "q.npy"), np.load(data / "truth.npy")
    c = collection(args.work, data, args.nlist)
    idx = c.artifact("ivf-int8", build="never")[1]
    lists = idx._sq8_lists()
    if lists is None:
        raise SystemExit("this index is not scanned by heron (numba missing?)")
    depth = K * OVERSAMPLE
    ptr = faiss.swig_ptr
    s_buf = np.empty((1, depth), np.float32)
    l_buf = np.empty((1, depth), np.int64)
    rows = []
    for nprobe in (int(v) for v in args.nprobe.split(",")):
        sp = faiss.SearchParametersIVF()
        sp.nprobe = nprobe

        def faiss_first(q, sp=sp):
            faiss.omp_set_num_threads(1)  # as heron's faiss path runs one query
            idx._index.search_c(1, ptr(q), depth, ptr(s_buf), ptr(l_buf), sp)
            faiss.omp_set_num_threads(os.cpu_count() or 1)

        fns = {
            "faiss first stage": faiss_first,
            "heron first stage": lambda q, n=nprobe: lists.search(q, n, depth),
            "Collection.search + ids": lambda q, n=nprobe: c.search(q, K, using="ivf-int8", nprobe=n).doc_ids(),
        }
        for f in fns.values():  # compile, fault in
            for i in range(5):
                f(q_all[i : i + 1])
        names = list(fns)
        times: dict[str, list[float]] = {n: [] for n in names}
        nq = len(q_all)
        for r in range(args.rounds):
            for j, name in enumerate(names):
                lo = ((r * len(names) + j) * args.queries) % max(1, nq - args.queries)
                for i in range(lo, lo + args.queries):
                    t = time.perf_counter()
                    fns[name](q_all[i : i + 1])
                    times[name].append((time.perf_counter() - t) * 1e6)
        res = c.search(q_all, K, using="ivf-int8", nprobe=nprobe)
        got = np.array([[int(i) for i in row] for row in res.doc_ids()])
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(got, truth)]))
        row = {"nprobe": nprobe, "recall10": round(recall, 4)}
        row.update({n: round(float(np.median(v)), 1) for n, v in times.items()})
        rows.append(row)
        print(row, flush=True)
    # a batch of every query: the coarse step both ways, and the ids row by row / in one call
    from heron.retrieval.topk import exact_search

    def best_ms(fn, reps: int = 5) -> float:
        out = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1e3)
        return round(min(out), 2)

    res = c.search(q_all, K, using="ivf-int8", nprobe=4)
    batch = {
        "queries": len(q_all),
        "coarse, faiss quantizer ms": best_ms(lambda: idx._index.quantizer.search(q_all, 4)),
        "coarse, exact_search ms": best_ms(lambda: exact_search(q_all, lists.centroids, 4)),
        "Collection.search ms": best_ms(lambda: c.search(q_all, K, using="ivf-int8", nprobe=4)),
        "ids in one call ms": best_ms(res.doc_ids),
        "ids row by row ms": best_ms(lambda: [type(res)(res.keys[i : i + 1], res.scores[i : i + 1], res.resolver).doc_ids() for i in range(len(q_all))]),
    }
    print(batch, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    lines = [
        f"# IVF int8 single query, {len(idx.keys):,} vectors, nlist {args.nlist}, {depth} candidates",
        "",
        "p50 µs per query, one process, alternating blocks of different queries; "
        f"load at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "",
        "| nprobe | recall@10 | " + " | ".join(names) + " | faiss / heron first stage |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    for r in rows:
        ratio = r["faiss first stage"] / r["heron first stage"]
        lines.append(f"| {r['nprobe']} | {r['recall10']:.3f} | "
                     + " | ".join(f"{r[n]:.1f}" for n in names) + f" | {ratio:.2f}x |")
    lines += ["", f"Batch of {batch['queries']} queries at nprobe 4 (best of 5, ms): "
              + "; ".join(f"{k} {v}" for k, v in batch.items() if k != "queries")]
    (args.out / "ivf_scan.md").write_text("\n".join(lines) + "\n")
    (args.out / "ivf_scan.json").write_text(json.dumps({"rows": rows, "batch": batch, "load": load}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
