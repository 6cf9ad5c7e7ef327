"""Load test of ``heron serve`` on loopback, and the server's overhead over an in-process search.

1. Overhead: one text query at a time on SciFact (encoding included on both sides), p50 of
   ``coll.search(q, k=10)`` in this process vs the same search over HTTP (a keep-alive httpx
   client; hits without metadata/snippets, as the in-process call returns none) and through
   ``heron.Client`` (hits with metadata and text). Calls alternate, after a warm-up.
2. Load: ``--seconds`` at each concurrency of ``--levels`` (async httpx clients, one request in
   flight each), read-only and 90/10 read/write (writes upsert new documents, encoded by the
   server); p50/p95/p99 latency, throughput and errors. Afterwards every acknowledged write is
   looked up: lost writes must be 0.

The server runs as a subprocess (``python -m heron serve``) on 127.0.0.1 and a free port, so the
load generator does not share its interpreter. Bounded: ``--seconds`` per level and at most
``--max-requests`` per level.

    python benchmarks/serve_load.py --seconds 10 --out out/serve_load
    python benchmarks/serve_load.py --seconds 60 --levels 32 --mixes rw --out out/serve_load_60s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import heron
from heron.eval import load_beir
from heron.eval.cache import cached_array, encoder_tag


def build(folder: Path, n_docs: int | None) -> tuple[heron.Collection, list[str]]:
    """A SciFact collection (cached document vectors when present) and the test queries."""
    ds = load_beir("scifact")
    enc = heron.load_encoder()
    docs, ids = ds.documents(), ds.doc_ids
    if n_docs is not None:
        docs, ids = docs[:n_docs], ids[:n_docs]
    vec = cached_array(f"scifact-{encoder_tag(enc)}-docs", ids,
                       lambda: enc.encode_documents(docs, progress=True), meta={"model": enc.name})
    coll = heron.Collection.create(folder / "scifact.heron", encoder=enc)
    metas = [{"source": "scifact", "n": i % 10} for i in range(len(ids))]
    for s in range(0, len(ids), 2000):
        coll.add(docs[s:s + 2000], ids=ids[s:s + 2000], metadata=metas[s:s + 2000], vectors=vec[s:s + 2000])
    coll.compact()
    _, queries, _ = ds.split("test")
    return coll, list(queries)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "heron", "--quiet", "serve", str(folder), "--port", str(port),
         "--max-body-mb", "8"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the server did not become ready within 300 s")


def pct(x: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(x), q)) if x else float("nan")


def overhead(coll: heron.Collection, url: str, queries: list[str], n: int) -> dict:
    import httpx

    remote = heron.Client(url).collection("scifact")
    http = httpx.Client(base_url=url, timeout=60)
    body = {"k": 10, "with_metadata": False, "snippet": False}

    def via_http(q):
        r = http.post("/v1/collections/scifact/search", json={**body, "queries": [q]})
        r.raise_for_status()

    fns = {"in_process": lambda q: coll.search(q, k=10), "http": via_http,
           "client": lambda q: remote.search(q, k=10)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for q in queries[:20]:  # warm-up
        for f in fns.values():
            f(q)
    for i in range(n):
        q = queries[i % len(queries)]
        for name in list(fns)[i % 3:] + list(fns)[: i % 3]:  # rotate the order
            t = time.perf_counter()
            fns[name](q)
            times[name].append((time.perf_counter() - t) * 1000)
    out = {k: {"p50_ms": pct(v, 50), "p95_ms": pct(v, 95)} for k, v in times.items()}
    base = np.asarray(times["in_process"])
    # the median of per-query differences (the same query, back to back) is robust to the
    # load drifting during the run; the difference of the medians is reported beside it
    out["overhead_p50_ms"] = {k: out[k]["p50_ms"] - out["in_process"]["p50_ms"] for k in ("http", "client")}
    out["overhead_paired_median_ms"] = {
        k: float(np.median(np.asarray(times[k]) - base)) for k in ("http", "client")
    }
    remote.client.close()
    http.close()
    return out


async def load_level(url: str, queries: list[str], clients: int, seconds: float, write_share: float,
                     max_requests: int, acked: list[str], tag: str) -> dict:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    done = [0]
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def worker(w: int) -> None:
            rng = random.Random(w)
            i = 0
            while time.monotonic() < stop and done[0] < max_requests:
                done[0] += 1
                i += 1
                write = rng.random() < write_share
                t = time.perf_counter()
                try:
                    if write:
                        doc_id = f"{tag}-w{w}-{i}"
                        r = await http.post("/v1/collections/scifact/upsert", json={
                            "ids": [doc_id], "texts": [rng.choice(queries) + f" (write {doc_id})"],
                            "metadata": [{"source": "load", "worker": w}]})
                    else:
                        r = await http.post("/v1/collections/scifact/search", json={
                            "queries": [rng.choice(queries)], "k": 10, "snippet": True})
                    if r.status_code != 200:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    elif write:
                        acked.append(doc_id)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(lat), "rps": len(lat) / wall, "p50_ms": pct(lat, 50),
            "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99), "errors": sum(errors.values()),
            "error_kinds": errors}


def lost_writes(url: str, acked: list[str]) -> int:
    import httpx

    lost = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        for s in range(0, len(acked), 500):
            r = http.post("/v1/collections/scifact/get", json={"ids": acked[s:s + 500]})
            r.raise_for_status()
            lost += sum(d is None for d in r.json()["documents"])
    return lost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="index the first N SciFact documents (default all)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per load level")
    ap.add_argument("--levels", default="1,8,32", help="concurrent clients per level")
    ap.add_argument("--mixes", default="read,rw", help="read (search only) and/or rw (90/10)")
    ap.add_argument("--max-requests", type=int, default=50_000, help="most requests per level")
    ap.add_argument("--overhead-queries", type=int, default=200, help="single queries for the overhead")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="heron-serve-load-"))
    proc = None
    try:
        coll, queries = build(tmp, args.docs)
        proc, url = start_server(tmp)
        result: dict = {"documents": len(coll), "queries": len(queries), "loadavg_before": os.getloadavg(),
                        "cpus": os.cpu_count()}
        result["overhead"] = overhead(coll, url, queries, args.overhead_queries)
        print(json.dumps(result["overhead"], indent=1))
        acked: list[str] = []
        levels = []
        for mix in args.mixes.split(","):
            share = {"read": 0.0, "rw": 0.1}[mix]
            for c in map(int, args.levels.split(",")):
                row = asyncio.run(load_level(url, queries, c, args.seconds, share, args.max_requests,
                                             acked, f"{mix}{c}"))
                row.update(mix=mix, loadavg=os.getloadavg()[0])
                levels.append(row)
                print(json.dumps(row))
        result["load"] = levels
        result["acknowledged_writes"] = len(acked)
        result["lost_writes"] = lost_writes(url, acked)
        result["loadavg_after"] = os.getloadavg()
        print(f"acknowledged writes {len(acked)}, lost {result['lost_writes']}")
        print(table(result))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(json.dumps(result, indent=1))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def table(r: dict) -> str:
    o = r["overhead"]
    lines = [
        f"SciFact, {r['documents']} documents, {r['cpus']} CPUs, load average before {r['loadavg_before'][0]:.2f}",
        "",
        "| single text query, k=10 | p50 ms | p95 ms |",
        "|---|---|---|",
        *[f"| {k} | {o[k]['p50_ms']:.2f} | {o[k]['p95_ms']:.2f} |" for k in ("in_process", "http", "client")],
        f"| overhead: difference of p50s (http / client) | {o['overhead_p50_ms']['http']:.2f} / {o['overhead_p50_ms']['client']:.2f} | |",
        f"| overhead: median of paired differences (http / client) | {o['overhead_paired_median_ms']['http']:.2f} / {o['overhead_paired_median_ms']['client']:.2f} | |",
        "",
        "| mix | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {x['mix']} | {x['clients']} | {x['requests']} | {x['rps']:.1f} | {x['p50_ms']:.1f} | "
          f"{x['p95_ms']:.1f} | {x['p99_ms']:.1f} | {x['errors']} | {x['loadavg']:.2f} |" for x in r["load"]],
        "",
        f"acknowledged writes: {r['acknowledged_writes']}, lost: {r['lost_writes']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
