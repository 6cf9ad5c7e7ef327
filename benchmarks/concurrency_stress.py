"""Readers in other processes while a writer adds, deletes, compacts and rebuilds indexes.

Each reader process opens the collection and searches one random query at a time (exact dense,
HNSW, compressed codes; with and without a metadata filter) for ``--seconds``; the writer
process adds and deletes documents, compacts every 5th round and rebuilds the HNSW index every
7th. A search fails if it raises, returns an empty id, fewer than ``k`` hits, or a key that is
not live in the snapshot the search read. Bar (issue "One engine"): 0 failed searches.

    python benchmarks/concurrency_stress.py --readers 4 --seconds 60 --out out/stress
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import numpy as np

D, K = 64, 10


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reader(path: str, seconds: float, out: mp.Queue) -> None:
    import heron

    c = heron.Collection.open(path)
    rng = np.random.default_rng(os.getpid())
    n = fails = 0
    errors: list[str] = []
    end = time.time() + seconds
    while time.time() < end and n < 1_000_000:
        v = rng.standard_normal((1, D)).astype(np.float32)
        using = ["dense", "hnsw", "compressed"][n % 3]
        flt = {"shard": int(rng.integers(4))} if n % 2 else None
        try:
            res = c.search(v, K, using=using, filter=flt)
            snap = res.resolver.__self__
            keys = res.keys[0][res.keys[0] >= 0]
            ids = res.doc_ids()[0]
            if "" in ids or len(keys) < K or not np.isin(keys, snap.keys).all():
                fails += 1
                errors.append(f"{using} {flt}: {ids}")
        except Exception as exc:  # noqa: BLE001 - counted and reported
            fails += 1
            errors.append(f"{using} {flt}: {exc!r}")
        n += 1
    out.put({"pid": os.getpid(), "searches": n, "failed": fails, "errors": errors[:5]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=Path("out/stress"))
    args = ap.parse_args()
    import heron

    path = args.out / "coll"
    shutil.rmtree(path, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    c = heron.Collection.create(path, model="none", dim=D)
    n0 = args.docs
    c.add([f"d{i}" for i in range(n0)], ids=[f"d{i}" for i in range(n0)], vectors=unit(n0, 0),
          metadata=[{"shard": i % 4} for i in range(n0)])
    c.create_index("hnsw", kind="hnsw", M=16)
    c.create_index(kind="compressed", spec="bin")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=reader, args=(str(path), args.seconds, q)) for _ in range(args.readers)]
    for p in procs:
        p.start()
    time.sleep(3)  # readers import heron and open the collection
    rng = np.random.default_rng(1)
    writes = {"adds": 0, "deletes": 0, "compactions": 0, "rebuilds": 0}
    end, i = time.time() + args.seconds - 3, 0
    while time.time() < end:
        m = 50
        c.add([f"w{i}-{j}" for j in range(m)], ids=[f"w{i}-{j}" for j in range(m)],
              vectors=unit(m, 1000 + i), metadata=[{"shard": j % 4} for j in range(m)])
        writes["adds"] += m
        writes["deletes"] += c.delete([f"d{x}" for x in rng.integers(0, n0, 20)])
        if i % 5 == 4:
            c.compact()
            writes["compactions"] += 1
        if i % 7 == 6:
            c.create_index("hnsw", kind="hnsw", M=16)
            writes["rebuilds"] += 1
        i += 1
    results = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    report = {"readers": args.readers, "seconds": args.seconds, "docs": n0, "writes": writes,
              "searches": sum(r["searches"] for r in results),
              "failed": sum(r["failed"] for r in results), "per_reader": results}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "per_reader"}))
    for r in results:
        for e in r["errors"]:
            print("  ", e)
    raise SystemExit(1 if report["failed"] else 0)


if __name__ == "__main__":
    main()
