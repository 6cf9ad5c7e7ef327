"""``heron tune``: sweep an index's search parameter on sampled queries; recall@10 vs queries/s.

Queries are a sample of the collection's own vectors (perturbed), the reference is the exact
scan; the curve is printed and written as JSON with ``--out``, followed by the index's drift
report (growth past the vectors it was trained on, recall probe, retrain advice; see
:mod:`heron.index.drift`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("collection", help="collection folder")
    parser.add_argument("--index", default="hnsw", choices=["ivf", "hnsw"], help="index type")
    parser.add_argument(
        "--codec", default="fp32", help="codec stored in the index (fp32, int8, bin, pq<m> ...)"
    )
    parser.add_argument(
        "--values", default=None, help="comma-separated ef_search (hnsw) / nprobe (ivf) values"
    )
    parser.add_argument("--queries", type=int, default=100, help="sampled queries")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", default=None, help="write the curve as JSON here")


def run(args: argparse.Namespace) -> int:
    import heron
    from heron.capabilities.ann import AnnRetriever
    from heron.retrieval.topk import topk_rows

    coll = heron.Collection.open(args.collection)
    snap = coll.snapshot()
    if len(snap) == 0:
        raise ValueError("the collection is empty; add documents first")
    rng = np.random.default_rng(0)
    x = np.asarray(snap.dense())
    rows = rng.choice(len(x), min(args.queries, len(x)), replace=False)
    q = x[rows] + 0.05 * rng.standard_normal((len(rows), x.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = snap.keys[topk_rows(q @ x.T, min(args.k, len(x)))[1]]  # k <= n: no padding
    knob = "ef_search" if args.index == "hnsw" else "nprobe"
    values = (
        [int(v) for v in args.values.split(",")]
        if args.values
        else ([16, 32, 64, 128, 256] if knob == "ef_search" else [1, 4, 8, 16, 32, 64])
    )
    idx = AnnRetriever(coll, kind=args.index, codec=args.codec).index()
    curve = []
    print(f"{knob:>10} {'recall@' + str(args.k):>10} {'qps':>10}")
    for v in values:
        t = time.perf_counter()
        for i in range(len(q)):
            _, keys, _ = idx.search(q[i : i + 1], args.k, params={knob: v})
            if i == 0:
                found = np.zeros((len(q), args.k), np.int64)
            found[i] = keys[0]
        dt = time.perf_counter() - t
        rec = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, truth)]))
        curve.append({knob: v, "recall": rec, "qps": len(q) / dt})
        print(f"{v:>10} {rec:>10.3f} {len(q) / dt:>10.0f}")
    from heron.index.drift import drift_report

    # growth past the training data + a recall probe at the index's default knob -> advice
    drift = drift_report(idx, queries=q[: min(50, len(q))], k=args.k)
    print(
        f"drift: {drift['count']} vectors, trained on {drift['trained_on']} "
        f"({drift['growth']:.2f}x), recall@{args.k} {drift['recall']:.3f} -> {drift['advice']}"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {"index": args.index, "codec": args.codec, "curve": curve, "drift": drift},
                fh,
                indent=1,
            )
    return 0
