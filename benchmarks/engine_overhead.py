"""What users get: ``Collection.search`` one query at a time, beside the same kernel called directly.

For each method the kernel is the object the collection keeps resident (the exact scan over the
memory-mapped segment, the fitted codec's scan + rescoring, the faiss IVF / HNSW index), called
with the same query vector and parameters; the API path is ``coll.search(vector, k, using=...)``
on the same collection. Both are timed in the same process, in alternating blocks of single
queries after a warm-up (3 rounds, order rotated), and reported as p50 latency and the ratio
API / kernel. The bar (issue "One engine"): ratio <= 1.15 or API - kernel <= 0.3 ms.

    python benchmarks/engine_overhead.py --n 1000000 --out out/engine_overhead
    python benchmarks/engine_overhead.py --n 200000 --data gaussian --out out/engine_overhead_200k
    python benchmarks/engine_overhead.py --n 1000000 --methods seismic --out out/engine_overhead
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

import heron  # noqa: E402
from heron.retrieval.topk import exact_search  # noqa: E402

D, K = 384, 10


def collection(path: Path, x: np.ndarray) -> heron.Collection:
    if (path / "heron.json").exists():
        c = heron.Collection.open(path)
        if len(c) == len(x):
            if len(c.snapshot().segments) > 1:
                c.compact()  # one memory-mapped segment, as after a bulk load
            return c
        raise SystemExit(f"{path} holds {len(c)} documents, not {len(x)}: remove it")
    c = heron.Collection.create(path, model="none", dim=D)
    for s in range(0, len(x), 100_000):
        e = min(len(x), s + 100_000)
        c.add([f"d{i}" for i in range(s, e)], ids=[f"d{i}" for i in range(s, e)], vectors=x[s:e])
    c.compact()  # one memory-mapped segment, as after a bulk load
    return c


def timed_blocks(fns: dict, qs: list, rounds: int = 3) -> dict[str, list[float]]:
    """Per-query latencies (ms) of each function, in blocks rotated over ``rounds``."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for _ in range(2):  # warm-up: compile, page the memory-mapped arrays in
        for name in names:
            for v in qs[:10]:
                fns[name](v)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = fns[name]
            for v in qs:
                t = time.perf_counter()
                fn(v)
                out[name].append((time.perf_counter() - t) * 1e3)
    return out


class PrecomputedSparse:
    """The query side of a synthetic sparse corpus: its queries arrive as vectors, not text."""

    name = "synthetic-sparse"

    def __init__(self, vocab: int) -> None:
        self.vocab_size = vocab

    def encode_queries(self, texts: list[str]) -> None:
        raise ValueError("synthetic sparse queries are passed as vectors")


def seismic_method(args: argparse.Namespace) -> dict:
    """Seismic through ``coll.search(using="splade")`` beside ``SeismicIndex.search``."""
    from _lib.synthetic_sparse import cached_synthetic_sparse
    from heron.pipeline import Queries

    docs, queries = cached_synthetic_sparse(args.n, n_queries=args.queries, seed=0)
    vocab = docs.shape[1]
    path = args.out / f"coll-sparse-{args.n}"
    if (path / "heron.json").exists():
        coll = heron.Collection.open(path)
    else:
        coll = heron.Collection.create(path, model="none", dim=1,
                                       fields={"splade": {"kind": "sparse", "vocab": vocab}})
        for s in range(0, docs.shape[0], 100_000):
            e = min(docs.shape[0], s + 100_000)
            coll.add([f"d{i}" for i in range(s, e)], ids=[f"d{i}" for i in range(s, e)],
                     vectors=np.ones((e - s, 1), np.float32), fields={"splade": docs[s:e]})
    build = dict(n_postings=1000, centroid_fraction=0.1, summary_energy=0.4, doc_cut=15,
                 pruning="global")
    enc = PrecomputedSparse(vocab)
    if "seismic-splade" not in coll.snapshot().artifacts:
        t = time.perf_counter()
        coll.create_index(kind="seismic", on="splade", progress=True, **build)
        print(f"built seismic in {time.perf_counter() - t:.0f} s", flush=True)
    idx = coll.artifact("seismic-splade", build="never")[1]
    rows = [queries[i] for i in range(queries.shape[0])]
    knobs = {"query_cut": 10, "heap_factor": 0.9}

    def api(row):
        qs = Queries(["q"], vectors={f"sparse:{enc.name}": row})
        return coll.search(qs, K, using="splade", encoder=enc, **build, **knobs)

    return timed_blocks({"kernel": lambda row: idx.search(row, K, **knobs), "api": api}, rows)


def hnsw_vs_faiss(coll: heron.Collection, qs: np.ndarray, efs: list[int], reps: int) -> list[dict]:
    """``coll.search(v, K, using="hnsw", ef_search=ef)`` against faiss called directly.

    faiss direct is ``graph.search(v, K)`` on the very graph object the collection keeps resident
    (``efSearch`` set to ``ef`` beforehand, untimed; faiss' default OpenMP threading, as a user
    calls it). That object reads its vectors from heron's huge-page buffer, so a second
    reference, **faiss-own**, is the same graph as faiss itself holds it after ``read_index``
    (a deserialised copy: vectors in faiss' own memory). Blocked: in each of ``reps`` rounds,
    each method runs every query once, the methods in an order rotating per round (no warm-up
    call per query: it would put that query's part of the graph in cache for some methods and
    not others, and hide the cost of reading vectors at random); a method's time is the mean
    over queries of its per-query median over the rounds. ``ratio`` = faiss time / heron time
    and ``ratio_own`` = faiss-own time / heron time (>= 1.0: heron is not slower). Results are
    compared exactly: the same keys (faiss labels mapped to keys) and the same scores.
    """
    import faiss

    idx = coll.artifact("hnsw", build="never")[1]
    raw = idx._index
    own = faiss.deserialize_index(faiss.serialize_index(raw))
    pc = time.perf_counter_ns
    rows = []
    for ef in efs:
        raw.hnsw.efSearch = own.hnsw.efSearch = ef
        dist, lab = raw.search(qs, K)
        res = coll.search(qs, K, using="hnsw", ef_search=ef)
        same = bool(np.array_equal(res.keys, idx.keys[lab]) and np.array_equal(res.scores, dist)
                    and np.array_equal(own.search(qs, K)[1], lab))
        fns = {
            "faiss": lambda v: raw.search(v, K),
            "faiss-own": lambda v: own.search(v, K),
            "heron": lambda v, ef=ef: coll.search(v, K, using="hnsw", ef_search=ef),
        }
        names = list(fns)
        times = {name: np.zeros((reps, len(qs))) for name in fns}
        for r in range(reps):
            j = r % len(names)
            for name in names[j:] + names[:j]:
                fn, row = fns[name], times[name][r]
                raw.hnsw.efSearch = ef
                for i in range(len(qs)):
                    v = qs[i : i + 1]
                    t = pc()
                    fn(v)
                    row[i] = pc() - t
        f_us, o_us, h_us = (float(np.median(times[m], axis=0).mean()) / 1e3
                            for m in ("faiss", "faiss-own", "heron"))
        rows.append({"ef": ef, "faiss_us": round(f_us, 2), "faiss_own_us": round(o_us, 2),
                     "heron_us": round(h_us, 2), "ratio": round(f_us / h_us, 3),
                     "ratio_own": round(o_us / h_us, 3), "identical": same,
                     "strategy": res.info.get("strategy")})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--data", choices=["anchored", "gaussian"], default="anchored")
    ap.add_argument("--methods", nargs="+", default=["exact", "bin", "ivf-int8", "hnsw"])
    ap.add_argument("--out", type=Path, default=Path("out/engine_overhead"))
    ap.add_argument("--ef", default="16,32,64,128,256",
                    help="hnsw: the ef_search sweep of the faiss-direct comparison")
    ap.add_argument("--reps", type=int, default=5, help="hnsw sweep: timing rounds")
    ap.add_argument("--M", type=int, default=None, help="hnsw M (default: heron's default)")
    ap.add_argument("--ef-construction", type=int, default=None,
                    help="hnsw efConstruction (default: heron's default)")
    args = ap.parse_args()
    from ann_bench import make_data

    args.out.mkdir(parents=True, exist_ok=True)
    dense = [m for m in args.methods if m != "seismic"]
    desc: dict = {}
    if dense:
        x, qs, desc = make_data(args.data, args.n, args.queries)
        coll = collection(args.out / f"coll-{args.data}-{args.n}", x)
        del x
    load = [os.getloadavg()[0]]
    rows = []
    hnsw_report: dict = {}
    for m in args.methods:
        if m == "seismic":
            t = seismic_method(args)
        elif m == "exact":
            mat = coll.snapshot().dense()
            kernel = lambda v, mat=mat: exact_search(v, mat, K)  # noqa: E731
            api = lambda v: coll.search(v, K, using="dense")  # noqa: E731
        elif m == "bin":
            from heron.codecs.search import rescore_rows

            api = lambda v: coll.search(v, K, using="compressed", codec="bin", oversample=10)  # noqa: E731
            api(qs[:1])  # builds the codes once
            rec, art = coll.artifact("compressed-bin")
            kernel = lambda v, art=art: rescore_rows(  # noqa: E731
                v, art.codec.topk(v, art.codes, 10 * K)[1], coll.snapshot().dense(), K
            )
        else:
            kind, _, codec = m.partition("-")
            hnsw_build = {"M": args.M, "ef_construction": args.ef_construction}
            build = {"ivf": {"nlist": int(4 * np.sqrt(args.n))},
                     "hnsw": {p: v for p, v in hnsw_build.items() if v is not None}}[kind]
            search = {"ivf": {"nprobe": 32}, "hnsw": {"ef_search": 64}}[kind]
            if codec:
                build["codec"] = codec
            name = m
            if name not in coll.snapshot().artifacts:
                t = time.perf_counter()
                coll.create_index(name, kind=kind, progress=True, **build)
                print(f"built {name} in {time.perf_counter() - t:.0f} s", flush=True)
            idx = coll.artifact(name, build="never")[1]
            kernel = lambda v, idx=idx, search=search: idx.search(v, K, params=search)  # noqa: E731
            api = lambda v, name=name, search=search: coll.search(v, K, using=name, **search)  # noqa: E731
        if m == "hnsw":
            sweep = hnsw_vs_faiss(coll, qs, [int(v) for v in args.ef.split(",")], args.reps)
            idx = coll.artifact("hnsw", build="never")[1]
            hnsw_report = {"M": idx.M, "ef_construction": idx.ef_construction, "sweep": sweep,
                           "uptime": os.popen("uptime").read().strip()}
        if m != "seismic":
            t = timed_blocks({"kernel": kernel, "api": api}, [v[None, :] for v in qs])
        kp, ap50 = float(np.median(t["kernel"])), float(np.median(t["api"]))
        row = {"method": m, "kernel_p50_ms": round(kp, 4), "api_p50_ms": round(ap50, 4),
               "ratio": round(ap50 / kp, 3), "overhead_ms": round(ap50 - kp, 4),
               "met": bool(ap50 / kp <= 1.15 or ap50 - kp <= 0.3)}
        rows.append(row)
        load.append(os.getloadavg()[0])
        print(json.dumps(row), flush=True)
    tag = "-".join(args.methods) if args.methods != ap.get_default("methods") else args.data
    report = {"n": args.n, "dim": D, "k": K, "queries": args.queries, **desc,
              "load_1min": [round(v, 2) for v in load], "rows": rows, "hnsw_vs_faiss": hnsw_report}
    (args.out / f"report-{tag}-{args.n}.json").write_text(json.dumps(report, indent=1))
    print("\n| method | kernel p50 ms | Collection.search p50 ms | ratio | overhead ms | bar met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['kernel_p50_ms']:.3f} | {r['api_p50_ms']:.3f} | {r['ratio']:.2f}x"
              f" | {r['overhead_ms']:+.3f} | {'yes' if r['met'] else 'no'} |")
    print(f"load (1-min) during the run: {report['load_1min']}")
    if hnsw_report:
        print(f"\nHNSW M={hnsw_report['M']} efConstruction={hnsw_report['ef_construction']}, "
              f"n={args.n}: faiss direct vs Collection.search (ratio = faiss / heron; bar >= 1.0)")
        print("| ef | faiss direct us | faiss-own us | Collection.search us | ratio | ratio_own | same ids and scores |")
        print("|---|---|---|---|---|---|---|")
        for r in hnsw_report["sweep"]:
            print(f"| {r['ef']} | {r['faiss_us']:.1f} | {r['faiss_own_us']:.1f} | {r['heron_us']:.1f} "
                  f"| {r['ratio']:.3f} | {r['ratio_own']:.3f} | {'yes' if r['identical'] else 'NO'} |")
        print(hnsw_report["uptime"])


if __name__ == "__main__":
    main()
