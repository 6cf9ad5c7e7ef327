"""IVF int8 build: k-means iterations and training-sample size against recall (1M peers data).

The same faiss calls as ``IVFIndex._build`` (``IndexIVFScalarQuantizer``, ``QT_8bit``, inner
product, a flat coarse quantizer), with ``niter`` and the training sample (``per`` vectors per
cell) varied; recall@10 of the exact top-10 after rescoring ``4 * k`` candidates.

    python benchmarks/ivf_train.py --runs 10:64 5:64 10:32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="peers data folder (default: the 1M anchored set)")
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--runs", nargs="+", default=["10:64", "5:64", "10:32"],
                    help="NITER:PER (k-means iterations : training vectors per cell)")
    args = ap.parse_args()
    import faiss

    from heron.eval.cache import cache_dir
    from heron.retrieval.rescore import rescore_topk

    d = args.data or cache_dir() / "peers" / "anchored-1000000-1000"
    x, q, truth = np.load(d / "x.npy"), np.load(d / "q.npy"), np.load(d / "truth.npy")
    n, dim = x.shape
    print("| niter | training vectors | train s | add s | recall@10 nprobe 4 | nprobe 8 |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        niter, per = (int(v) for v in run.split(":"))
        rng = np.random.default_rng(0)
        sample = x[np.sort(rng.choice(n, min(n, per * args.nlist), replace=False))]
        idx = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, args.nlist,
                                            faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        idx.cp.min_points_per_centroid = 1
        idx.cp.niter = niter
        t = time.perf_counter()
        idx.train(sample)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        idx.add(x)
        add_s = time.perf_counter() - t
        rec = []
        for nprobe in (4, 8):
            sp = faiss.SearchParametersIVF()
            sp.nprobe = nprobe
            lab = idx.search(q, 40, params=sp)[1]
            top = rescore_topk(q, x, lab, 10)[1]
            rec.append(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, truth)]))
        print(f"| {niter} | {len(sample):,} | {train_s:.1f} | {add_s:.1f} | {rec[0]:.4f} | {rec[1]:.4f} |",
              flush=True)


if __name__ == "__main__":
    main()
