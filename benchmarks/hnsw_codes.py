"""faiss HNSW over float32, int8 and fp16 codes, with and without exact rescoring (raw faiss).

The kernel-level check behind heron's int8 graphs (docs/ann.md, "Compressed graphs and the
rescoring fast path"): the same 1M anchored vectors as ``benchmarks/peers.py`` (its cache must
exist: run peers.py once), one graph per codec (M and efConstruction as given), one query at a
time, recall@10 of the exact top-10. Rescoring reads ``over * 10`` candidates and re-scores them
from the float vectors in memory.

    python benchmarks/hnsw_codes.py --codecs flat sq8 fp16 --M 16 --efc 40
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cache = Path(os.environ.get("HERON_CACHE", Path.home() / ".cache" / "heron"))
    ap.add_argument("--data", type=Path, default=cache / "peers" / "anchored-1000000-1000")
    ap.add_argument("--codecs", nargs="+", default=["flat", "sq8", "fp16"],
                    choices=["flat", "sq8", "fp16"])
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=40)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--ef", default="16,32,48,64,96,128")
    args = ap.parse_args()
    import faiss

    if not (args.data / "x.npy").exists():
        raise SystemExit(f"no vectors at {args.data}; run benchmarks/peers.py --n 1000000 first")
    x = np.ascontiguousarray(np.load(args.data / "x.npy", mmap_mode="r"))
    q = np.load(args.data / "q.npy")[: args.queries]
    truth = np.load(args.data / "truth.npy")[: args.queries]
    d = x.shape[1]
    print(f"load {os.getloadavg()[0]:.2f}; n={len(x):,} M={args.M} efC={args.efc}")
    print("| codec | build s | ef | rescored | p50 ms | recall@10 |\n|---|---|---|---|---|---|")
    for name in args.codecs:
        t = time.perf_counter()
        if name == "flat":
            idx = faiss.IndexHNSWFlat(d, args.M, faiss.METRIC_INNER_PRODUCT)
        else:
            qt = {"sq8": faiss.ScalarQuantizer.QT_8bit, "fp16": faiss.ScalarQuantizer.QT_fp16}[name]
            idx = faiss.IndexHNSWSQ(d, qt, args.M, faiss.METRIC_INNER_PRODUCT)
            idx.train(x[:100_000])
        idx.hnsw.efConstruction = args.efc
        idx.add(x)
        build = time.perf_counter() - t
        for ef in map(int, args.ef.split(",")):
            for over in [1] if name == "flat" else [1, 2, 4]:
                depth = 10 * over
                sp = faiss.SearchParametersHNSW()
                sp.efSearch = max(ef, depth)
                for v in q[:20]:
                    idx.search(v[None], depth, params=sp)
                ts, hits = [], []
                for v in q:
                    t0 = time.perf_counter()
                    _, lab = idx.search(v[None], depth, params=sp)
                    lab = lab[0]
                    if over > 1:
                        lab = lab[np.argsort(-(x[lab] @ v), kind="stable")[:10]]
                    ts.append(time.perf_counter() - t0)
                    hits.append(lab[:10])
                rec = np.mean([len(set(h.tolist()) & set(t.tolist())) / 10 for h, t in zip(hits, truth)])
                print(f"| {name} | {build:.1f} | {ef} | {depth if over > 1 else '-'} | "
                      f"{np.median(ts) * 1e3:.3f} | {rec:.3f} |", flush=True)
        del idx


if __name__ == "__main__":
    main()
