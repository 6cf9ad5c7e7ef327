"""Bulk load through the public API: ``Collection.add`` in batches, then ``compact`` (or
``--bulk``: the same batches through ``Collection.bulk``, one segment, no compact).

Loads the anchored ``N × 384`` vectors of ``benchmarks/peers.py`` (supplied vectors, ids as
texts) into a fresh collection, 100k documents per ``add``, then compacts them into one segment,
as the peers benchmark does before building an index. Prints the time of each phase and the
process' peak RSS; ``--itq`` also times the ITQ rotation fit of the binary codec on a 100k
sample (the longest step of a ``bin`` build); ``--ids`` times the first hit-id lookups of a
collection opened afresh. Run it at two commits to compare them.

    python benchmarks/ingest_speed.py --n 1000000 --itq --ids
    python benchmarks/ingest_speed.py --n 1000000 --bulk

Before the load a throwaway process touches and frees ``--prewarm-gb`` GB (``_lib/pages.py``):
on a VM that hands out memory lazily, the load would otherwise pay for its fresh pages.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--data", type=Path, help="peers data folder (default: the 1M anchored set)")
    ap.add_argument("--itq", action="store_true", help="also time the ITQ fit on 100k vectors")
    ap.add_argument("--bulk", action="store_true",
                    help="load the batches with Collection.bulk (one segment; nothing to compact)")
    ap.add_argument("--ids", action="store_true",
                    help="also time the ids of 10 random keys, 12 calls, in a freshly opened collection")
    ap.add_argument("--shards", type=int, default=0,
                    help="load a ShardedCollection of this many in-process shards instead")
    ap.add_argument("--prewarm-gb", type=float, default=4.0,
                    help="GB touched and freed by a throwaway process before the load (0: off; _lib/pages.py)")
    args = ap.parse_args()
    import heron
    from _lib.pages import prewarm
    from heron.eval.cache import cache_dir

    d = args.data or cache_dir() / "peers" / "anchored-1000000-1000"
    if not (d / "x.npy").is_file():
        raise SystemExit(f"no vectors at {d / 'x.npy'}; run benchmarks/peers.py --n 1000000 first")
    x = np.load(d / "x.npy", mmap_mode="r")[: args.n]
    n = len(x)
    work = Path(tempfile.mkdtemp(prefix="heron-ingest-"))
    try:
        if args.shards:  # in-process shards, called from one thread each
            c = heron.ShardedCollection.create(work / "c", shards=args.shards, model="none",
                                               dim=x.shape[1], threads=args.shards)
        else:
            c = heron.Collection.create(work / "c", model="none", dim=x.shape[1])
        prewarm_s = prewarm(args.prewarm_gb)
        t = time.perf_counter()
        if args.bulk:
            with c.bulk() as b:
                for s in range(0, n, args.batch):
                    ids = [str(i) for i in range(s, min(n, s + args.batch))]
                    b.add(ids, ids=ids, vectors=np.ascontiguousarray(x[s : s + args.batch]))
        else:
            for s in range(0, n, args.batch):
                ids = [str(i) for i in range(s, min(n, s + args.batch))]
                c.add(ids, ids=ids, vectors=np.ascontiguousarray(x[s : s + args.batch]))
        t_add = time.perf_counter() - t
        t = time.perf_counter()
        c.compact()  # a no-op after a bulk load (one segment already)
        t_compact = time.perf_counter() - t
        info = c.info()
        segments = (info["segments"] if not args.shards
                    else "/".join(str(sh["segments"]) for sh in info["shards"]))
        c.close()
        if args.ids and not args.shards:  # a reader that opens the collection now: its first hit ids
            fresh = heron.Collection.open(work / "c")
            rng = np.random.default_rng(0)
            calls = []
            for _ in range(12):
                snap = fresh.snapshot()
                keys = snap.keys[rng.integers(0, len(snap.keys), 10)]
                t = time.perf_counter()
                snap.ids(keys)
                calls.append(time.perf_counter() - t)
            fresh.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| documents | load | add s | compact s | total s | segments | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    how = "bulk" if args.bulk else f"add x {-(-n // args.batch)}"
    if args.shards:
        how += f", {args.shards} shards"
    print(f"| {n:,} | {how} | {t_add:.1f} | {t_compact:.1f} | {t_add + t_compact:.1f} | {segments} "
          f"| {peak:,.0f} |")
    print(f"\n(pages touched and freed first: {args.prewarm_gb:g} GB in {prewarm_s:.1f} s)")
    if args.ids and not args.shards:
        print("\nids of 10 random keys after opening the collection, calls 1-12 (ms): "
              + ", ".join(f"{1e3 * v:.2f}" for v in calls))
    if args.itq:
        from heron.codecs.binary import fit_rotation

        xs = np.array(x[:100_000], dtype=np.float32)
        xs -= xs.mean(axis=0)
        t = time.perf_counter()
        fit_rotation(xs, rotation="itq", iters=30)
        print(f"\nITQ fit, 100,000 × {x.shape[1]}, 30 iterations: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
