"""HNSW build defaults: M x efConstruction at 100k-300k anchored vectors (issue 16, part 4).

For every ``(M, efConstruction)`` pair the graph is built through heron (``make_index("hnsw",
...)``, faiss' default threading), then recall@10 of the exact answer and single-query latency
(faiss called directly on that graph, one query at a time, median of ``--reps``) are measured at
every ``ef_search`` of the sweep, with the number of distance computations per query (faiss'
``hnsw_stats.ndis``: the search cost independent of the machine's load). Reported per pair: build seconds, vectors/s, bytes per vector
in RAM (:meth:`HNSWIndex.memory_bytes`), and the recall / latency curve. Builds whose estimated
time exceeds ``--max-build-s`` (extrapolated from the previous size's build, n log n) are
skipped and reported as such. Recall is deterministic; latency depends on the machine's load
(the 1-minute load average is recorded with each row).

    python benchmarks/hnsw_defaults.py --n 100000 --out out/hnsw_defaults
    python benchmarks/hnsw_defaults.py --n 100000,300000 --M 16,32 --efc 40,100,200 --out out/hnsw_defaults
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

from ann_bench import exact, make_data, recall  # noqa: E402
from heron.index import make_index  # noqa: E402
from heron.index._faiss import faiss_module  # noqa: E402

K = 10


def latency_ms(index, q: np.ndarray, ef: int, reps: int) -> float:
    """Median over ``reps`` of the mean single-query faiss time (ms) on ``index``'s graph."""
    raw = index._index
    raw.hnsw.efSearch = ef
    for i in range(min(20, len(q))):  # warm-up
        raw.search(q[i : i + 1], K)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        for i in range(len(q)):
            raw.search(q[i : i + 1], K)
        out.append((time.perf_counter() - t) / len(q) * 1e3)
    return float(np.median(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="100000", help="comma-separated collection sizes")
    ap.add_argument("--M", default="16,32")
    ap.add_argument("--efc", default="40,100,200", help="efConstruction values")
    ap.add_argument("--ef", default="16,32,64,128,256", help="ef_search sweep")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-build-s", type=float, default=480.0)
    ap.add_argument("--data", choices=["anchored", "gaussian"], default="anchored")
    ap.add_argument("--out", type=Path, default=Path("out/hnsw_defaults"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    efs = [int(v) for v in args.ef.split(",")]
    rows: list[dict] = []
    prev_build: dict[tuple[int, int], tuple[int, float]] = {}
    for n in [int(v) for v in args.n.split(",")]:
        x, q, desc = make_data(args.data, n, args.queries)
        gt = exact(q, x, K)
        keys = np.arange(n, dtype=np.int64)
        for m in [int(v) for v in args.M.split(",")]:
            for efc in [int(v) for v in args.efc.split(",")]:
                row: dict = {"n": n, "M": m, "ef_construction": efc, **desc}
                if (m, efc) in prev_build:
                    n0, s0 = prev_build[(m, efc)]
                    est = s0 * (n * np.log(n)) / (n0 * np.log(n0))
                    if est > args.max_build_s:
                        row["skipped"] = f"estimated build {est:.0f} s > {args.max_build_s:.0f} s"
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                        continue
                t = time.perf_counter()
                idx = make_index("hnsw", M=m, ef_construction=efc).build(x, keys)
                build_s = time.perf_counter() - t
                prev_build[(m, efc)] = (n, build_s)
                row.update(
                    build_s=round(build_s, 1),
                    build_per_s=round(n / build_s),
                    bytes_per_vector=round(idx.memory_bytes() / n),
                    load_1min=round(os.getloadavg()[0], 2),
                    sweep=[],
                )
                stats = faiss_module().cvar.hnsw_stats
                for ef in efs:
                    stats.reset()
                    _, found, _ = idx.search(q, K, params={"ef_search": ef})
                    ndis = stats.ndis / len(q)  # distance computations per query: load-free cost
                    row["sweep"].append(
                        {"ef": ef, "recall": round(recall(found, gt), 4), "ndis": round(ndis),
                         "ms": round(latency_ms(idx, q, ef, args.reps), 4)}
                    )
                rows.append(row)
                print(json.dumps(row), flush=True)
                (args.out / "report.json").write_text(json.dumps(rows, indent=1))
                del idx
    print("\n| n | M | efC | build s | vec/s | B/vector | " + " | ".join(f"ef {e}: R@10 / ndis / ms" for e in efs) + " |")
    print("|---" * (6 + len(efs)) + "|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['n']} | {r['M']} | {r['ef_construction']} | skipped ({r['skipped']}) |")
            continue
        cells = " | ".join(f"{s['recall']:.3f} / {s['ndis']} / {s['ms']:.3f}" for s in r["sweep"])
        print(f"| {r['n']} | {r['M']} | {r['ef_construction']} | {r['build_s']:.0f} | {r['build_per_s']} "
              f"| {r['bytes_per_vector']} | {cells} |")


if __name__ == "__main__":
    main()
