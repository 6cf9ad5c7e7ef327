"""heron's Seismic against pyseismic-lsr through the public API: ``Collection.search``.

One collection holds the synthetic learned-sparse corpus (``benchmarks/_lib/synthetic_sparse.py``)
and two Seismic indexes over the same field, built with the same parameters as
``benchmarks/seismic_bench.py``: ``seis-heron`` (``backend="heron"``) and ``seis-pyseismic``
(``backend="pyseismic"``). Each is searched one query at a time with
``coll.search(query, 10, using=NAME, query_cut=qc, heap_factor=hf)``, in blocks rotated over
three rounds after a warm-up (wall time, median per query), beside the index object's own
``search`` (the kernel rows), and all queries in one ``coll.search`` call (best of three,
per query). Recall@10 is against exact scoring.

    python benchmarks/seismic_api.py --n 1000000 --out out/seismic_api
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
from engine_overhead import PrecomputedSparse, timed_blocks  # noqa: E402
from heron.pipeline import Queries  # noqa: E402
from heron.sparse.exact import ExactSparseIndex  # noqa: E402

K = 10
COMMON = dict(n_postings=1000, centroid_fraction=0.1, summary_energy=0.4, doc_cut=15)
SETTINGS = [(5, 1.0), (10, 1.0), (15, 0.7)]


def collection(path: Path, docs) -> heron.Collection:
    if (path / "heron.json").exists():
        return heron.Collection.open(path)
    coll = heron.Collection.create(
        path, model="none", dim=1, fields={"splade": {"kind": "sparse", "vocab": docs.shape[1]}}
    )
    for s in range(0, docs.shape[0], 100_000):
        e = min(docs.shape[0], s + 100_000)
        ids = [f"d{i}" for i in range(s, e)]
        coll.add(ids, ids=ids, vectors=np.ones((e - s, 1), np.float32), fields={"splade": docs[s:e]})
    return coll


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("out/seismic_api"))
    args = ap.parse_args()
    from _lib.synthetic_sparse import cached_synthetic_sparse

    args.out.mkdir(parents=True, exist_ok=True)
    docs, queries = cached_synthetic_sparse(args.n, n_queries=args.queries, seed=0)
    coll = collection(args.out / f"coll-{args.n}", docs)
    builds = {
        "seis-heron": dict(COMMON, backend="heron", pruning="global"),
        "seis-pyseismic": dict(COMMON, backend="pyseismic"),
    }
    build_s = {}
    for name, params in builds.items():
        if name not in coll.snapshot().artifacts:
            t = time.perf_counter()
            coll.create_index(name, kind="seismic", on="splade", **params)
            build_s[name] = round(time.perf_counter() - t, 1)
            print(f"built {name} in {build_s[name]} s", flush=True)
    truth = ExactSparseIndex(docs).search(queries, K).keys
    enc = PrecomputedSparse(docs.shape[1])
    rows = [queries[i] for i in range(queries.shape[0])]
    snap = coll.snapshot()
    key_of = {k: i for i, k in enumerate(snap.keys.tolist())}  # collection key -> corpus row
    idx = {name: coll.artifact(name, build="never")[1] for name in builds}
    report = {"n": args.n, "queries": len(rows), "load_start": os.getloadavg()[0], "rows": []}
    for qc, hf in SETTINGS:
        knobs = {"query_cut": qc, "heap_factor": hf}

        def api(name, knobs=knobs):
            return lambda row: coll.search(
                Queries(["q"], vectors={f"sparse:{enc.name}": row}), K, using=name,
                encoder=enc, **knobs,
            )  # fmt: skip

        def kernel(name, knobs=knobs):
            return lambda row: idx[name].search(row, K, **knobs)

        fns = {}
        for name in builds:
            fns[f"{name} api"] = api(name)
            fns[f"{name} kernel"] = kernel(name)
        times = timed_blocks(fns, rows)
        batch = Queries([f"q{i}" for i in range(len(rows))], vectors={f"sparse:{enc.name}": queries})
        batched = {}
        for r in range(3):  # the whole query set in one call, best of three per index
            for name in list(builds)[r % 2 :] + list(builds)[: r % 2]:
                t = time.perf_counter()
                coll.search(batch, K, using=name, encoder=enc, **knobs)
                ms = (time.perf_counter() - t) * 1e3 / len(rows)
                batched[name] = min(batched.get(name, ms), ms)
        for name in builds:
            got = np.array([[key_of.get(int(k), -1) for k in fns[f"{name} api"](r).keys[0]] for r in rows])
            rec = float(np.mean([len(set(g[g >= 0]) & set(t[t >= 0])) / K for g, t in zip(got, truth)]))
            report["rows"].append({
                "index": name, "query_cut": qc, "heap_factor": hf, "recall": round(rec, 4),
                "api_ms": round(float(np.median(times[f"{name} api"])), 4),
                "kernel_ms": round(float(np.median(times[f"{name} kernel"])), 4),
                "api_batched_ms": round(batched[name], 4),
            })  # fmt: skip
            print(report["rows"][-1], flush=True)
    report["load_end"] = os.getloadavg()[0]
    report["build_s"] = build_s
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"# Seismic through Collection.search, {args.n:,} synthetic documents, {len(rows)} queries",
        "",
        f"load {report['load_start']:.2f} -> {report['load_end']:.2f}; median ms per query",
        "",
        "| query_cut | heap_factor | heron recall | heron api ms | pyseismic recall | pyseismic api ms "
        "| heron / pyseismic (api) | heron kernel ms | pyseismic kernel ms "
        "| batched api ms per query: heron / pyseismic |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["index"], r["query_cut"], r["heap_factor"]): r for r in report["rows"]}
    for qc, hf in SETTINGS:
        h, p = by[("seis-heron", qc, hf)], by[("seis-pyseismic", qc, hf)]
        lines.append(
            f"| {qc} | {hf} | {h['recall']:.4f} | {h['api_ms']:.3f} | {p['recall']:.4f} | "
            f"{p['api_ms']:.3f} | **{h['api_ms'] / p['api_ms']:.2f}** | {h['kernel_ms']:.3f} | "
            f"{p['kernel_ms']:.3f} | {h['api_batched_ms']:.3f} / {p['api_batched_ms']:.3f} |"
        )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
