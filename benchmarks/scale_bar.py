"""The scale-out bar (issue 15): 4 shards on a local Ray cluster vs one collection.

    python benchmarks/scale_bar.py equality [--datasets scifact nfcorpus] [--shards 4]
    python benchmarks/scale_bar.py ingest [--limit N] [--encoders 1 2]
    python benchmarks/scale_bar.py kill [--seconds 30]

* ``equality``: every test query, top-10 of the sharded collection vs the single node for dense,
  BM25, hybrid:dense+bm25 and HNSW (ef_search 1000); counts of identical rankings, rankings
  differing only by the order of exactly tied hits, and different ones; max score difference;
  per-query latency (one query at a time) of each. Vectors are the cached MiniLM embeddings
  (``heron.eval.cache``; ``model="none"`` collections), so nothing is encoded.
* ``ingest``: SciFact into a 2-shard collection with Ray Data and 1, then 2, encoder actors
  (all-MiniLM-L6-v2): passages/s in the steady state and per actor, the ratio; load average.
* ``kill``: a query loop of ``--seconds``; one shard actor is killed after 5 s; every answer is
  complete or flagged partial; the time until the actor answers again.

Writes ``results-<part>.json`` into ``--out`` (default ``out/scale``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

SPECS = [("dense", {}), ("bm25", {}), ("hybrid:dense+bm25", {}), ("hnsw", {"ef_search": 1000})]


def _ray(cpus: int) -> object:
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=300 * 1024**2,
                 log_to_driver=False, logging_level=logging.WARNING)
    return ray


def equality(args: argparse.Namespace) -> dict:
    from heron.collection import Collection
    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import dataset_embeddings
    from heron.pipeline import Queries
    from heron.scale import ShardedCollection
    from heron.scale.compare import compare_rankings

    _ray(2)
    enc = load_encoder()
    out = {}
    for name in args.datasets:
        ds = load_beir(name)
        e = dataset_embeddings(ds, enc, progress=True)
        texts, ids, vec = ds.documents(), ds.doc_ids, e["doc_emb"]
        root = Path(tempfile.mkdtemp(prefix=f"scale-{name}-"))
        t = time.perf_counter()
        single = Collection.create(root / "single", model="none", dim=vec.shape[1])
        single.add(texts, ids=ids, vectors=vec)
        t_single = time.perf_counter() - t
        t = time.perf_counter()
        sharded = ShardedCollection.create(root / "sharded", shards=args.shards, model="none", dim=vec.shape[1], ray=True)
        sharded.add(texts, ids=ids, vectors=vec)
        t_sharded = time.perf_counter() - t
        for c in (single, sharded):
            c.create_index("hnsw", kind="hnsw", M=16, ef_construction=200)
        q = Queries(e["queries"], vectors={"none": e["query_emb"]})
        rows = {}
        for spec, kw in SPECS:
            a = single.search(q, 10, using=spec, **kw)
            t = time.perf_counter()
            b = sharded.search(q, 10, using=spec, **kw)
            t_batch = time.perf_counter() - t
            c = compare_rankings(a.doc_ids(), a.scores, b.doc_ids(), b.scores, atol=1e-5)
            row = {"queries": c.queries, "identical": c.identical, "tie_order_only": c.tie_order_only,
                   "different": c.different, "max_score_diff": c.max_score_diff, "partial": b.info["partial"],
                   "sharded_batch_s": t_batch}
            lat = {}
            for label, coll in (("single", single), ("sharded", sharded)):
                sub = [Queries([e["queries"][i]], vectors={"none": e["query_emb"][i : i + 1]}) for i in range(min(50, len(ids)))]
                coll.search(sub[0], 10, using=spec, **kw)
                t = time.perf_counter()
                for s in sub:
                    coll.search(s, 10, using=spec, **kw)
                lat[label] = (time.perf_counter() - t) / len(sub) * 1000
            row["latency_ms_single"], row["latency_ms_sharded"] = lat["single"], lat["sharded"]
            rows[spec] = row
            print(name, spec, row, flush=True)
        out[name] = {"docs": len(ids), "shards": args.shards, "add_s_single": t_single, "add_s_sharded": t_sharded, "specs": rows}
        sharded.close()
        single.close()
    return out


def ingest_part(args: argparse.Namespace) -> dict:
    from heron.eval import data_root
    from heron.scale import ShardedCollection
    from heron.scale.ingest import ingest

    _ray(2)
    out = {"load_before": os.getloadavg(), "runs": []}
    for n_enc in args.encoders:
        root = Path(tempfile.mkdtemp(prefix="scale-ingest-"))
        coll = ShardedCollection.create(root / "c", shards=2, ray=True)
        load0 = os.getloadavg()
        stats = ingest(data_root() / "scifact", coll, encoders=n_enc, batch_size=32, limit=args.limit, progress=True)
        stats["load_avg_1m_before"], stats["load_avg_1m_after"] = load0[0], os.getloadavg()[0]
        stats["in_collection"] = len(coll)
        coll.close()
        out["runs"].append(stats)
        print(stats, flush=True)
    rate = {r["encoders"]: r["encode_passages_per_s"] for r in out["runs"]}
    if 1 in rate and 2 in rate:
        out["ratio_2_to_1"] = rate[2] / rate[1]
    return out


def kill_part(args: argparse.Namespace) -> dict:
    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import dataset_embeddings
    from heron.scale import ShardedCollection

    ray = _ray(2)
    ds = load_beir("scifact")
    e = dataset_embeddings(ds, load_encoder(), progress=False)
    root = Path(tempfile.mkdtemp(prefix="scale-kill-"))
    res = {}
    for wait_s in (10.0, 1.0):
        coll = ShardedCollection.create(root / f"w{wait_s}", shards=4, model="none", dim=e["doc_emb"].shape[1], ray=True, wait_s=wait_s)
        coll.add(ds.documents(), ids=ds.doc_ids, vectors=e["doc_emb"])
        victim = coll.backend.actors[1]
        killed: list[float] = []
        back: list[float] = []

        def kill(victim: object = victim, killed: list = killed, back: list = back) -> None:
            time.sleep(5.0)
            old = ray.get(victim.pid.remote())
            killed.append(time.monotonic())
            ray.kill(victim, no_restart=False)
            while ray.get(victim.pid.remote(), timeout=120) == old:  # answered by the new process
                time.sleep(0.01)
            back.append(time.monotonic())

        th = threading.Thread(target=kill)
        th.start()
        stats = {"answers": 0, "complete": 0, "partial": 0, "silently_short": 0, "max_latency_s": 0.0}
        end = time.monotonic() + args.seconds
        i = 0
        while time.monotonic() < end:
            qv = e["query_emb"][i % len(e["query_emb"])][None, :]
            i += 1
            t = time.monotonic()
            r = coll.search(qv, 10)
            stats["max_latency_s"] = max(stats["max_latency_s"], time.monotonic() - t)
            stats["answers"] += 1
            if r.info["partial"]:
                stats["partial"] += 1
            elif (r.counts() == 10).all():
                stats["complete"] += 1
            else:
                stats["silently_short"] += 1
        th.join()
        stats["actor_back_s"] = back[0] - killed[0]
        stats["wait_s"] = wait_s
        res[f"wait_{wait_s:g}s"] = stats
        print(stats, flush=True)
        coll.close()
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["equality", "ingest", "kill"])
    p.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--encoders", type=int, nargs="+", default=[1, 2])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--out", default="out/scale")
    args = p.parse_args()
    fn = {"equality": equality, "ingest": ingest_part, "kill": kill_part}[args.part]
    res = {"part": args.part, "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "result": fn(args)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"results-{args.part}.json"
    path.write_text(json.dumps(res, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
