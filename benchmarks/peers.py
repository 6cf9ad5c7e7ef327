"""heron beside the engines users would pick instead: Chroma, LanceDB, Qdrant, faiss, usearch.

The same anchored ``N x 384`` unit vectors as heron's other benchmarks (``ann_bench.Anchored``:
synthetic vectors around the real MiniLM embeddings of SciFact + NFCorpus; queries from another
seed) are loaded into every system through its public API (``benchmarks/_lib/peer_systems.py``
says exactly how, with the parameters: HNSW M=32 / efConstruction=200 everywhere, IVF
``nlist = 4 sqrt(N)`` rounded to a power of two, ef / nprobe swept). Per system and knob value:
build time (ingest + index), the first query's latency (opening what was built), p50/p95
latency one query at a time, batched throughput
(``--batch`` queries in one call, or a loop where the API has no batch call), recall@10 of the
exact top-10 (faiss flat scan), RAM (RSS after the queries minus RSS before the build, and the
peak) and bytes on disk.

Each system runs alone in its own subprocess (RSS is its own; a crash, a timeout or a missing
package skips the row with the reason), one after the other. Rows are appended to
``OUT/results.jsonl`` as each system finishes; a rerun skips the systems already there (delete
their lines, or pass ``--redo``, to measure them again). ``OUT/peers.md`` (table) and
``OUT/peers.png`` (recall against p50 latency, log scale) are rewritten from the JSONL.

``--text scifact``: SciFact end to end as text. All systems get heron's MiniLM embeddings
(encoding with each system's own default path is out of scope; encoding is timed once, apart)
and the passages as their document/payload; ingest and query go through each public API, and
nDCG@10 is reported beside recall.

    python benchmarks/peers.py --n 20000 --queries 200 --out out/peers-20k
    python benchmarks/peers.py --n 1000000 --queries 1000 --time-budget 3600 --out out/peers-1m
    python benchmarks/peers.py --text scifact --out out/peers-scifact
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

K = 10
QDRANT_CAP = 100_000


def rss_mb() -> tuple[float, float]:
    """``(current, peak)`` resident set size of this process in MB (``/proc/self/status``)."""
    vals = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            vals[line[:5]] = int(line.split()[1]) / 1024
    return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))


def disk_bytes(path: Path) -> int:
    """Bytes of the files under ``path``, a hard-linked file counted once (as ``du`` does)."""
    seen = {(st.st_dev, st.st_ino): st.st_size
            for st in (f.stat() for f in path.rglob("*") if f.is_file())}
    return sum(seen.values())


def exact_top(q: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` rows by inner product (heron's exact scan, blocked over ``x``)."""
    from heron.retrieval.topk import exact_search

    return exact_search(q, x, k)[1]


# --- data -------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> Path:
    """Write (once) the corpus, queries and exact top-10 under the data folder; return it."""
    from heron.eval.cache import cache_dir

    tag = f"text-{args.text}" if args.text else f"anchored-{args.n}-{args.queries}"
    d = Path(args.data_dir) if args.data_dir else cache_dir() / "peers" / tag
    if (d / "meta.json").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    meta: dict = {"data": tag}
    if args.text:
        from heron.encoders.dense import load_encoder
        from heron.eval import load_beir
        from heron.eval.cache import dataset_embeddings

        ds = load_beir(args.text)
        enc = load_encoder()
        t = time.perf_counter()  # heron's eval cache: encoding is timed only when not cached
        e = dataset_embeddings(ds, enc, split="test", progress=False)
        x, q = np.asarray(e["doc_emb"], np.float32), np.asarray(e["query_emb"], np.float32)
        meta.update(encode_s=round(time.perf_counter() - t, 1), encoder=enc.name,
                    docs=len(e["doc_ids"]), queries=len(e["query_ids"]))
        (d / "texts.json").write_text(json.dumps({
            "doc_ids": list(e["doc_ids"]), "texts": ds.documents(),
            "query_ids": list(e["query_ids"]), "qrels": e["qrels"]}))
    else:
        from ann_bench import make_data

        x, q, desc = make_data("anchored", args.n, args.queries)
        meta.update(desc)
    np.save(d / "x.npy", x)
    np.save(d / "q.npy", q)
    np.save(d / "truth.npy", exact_top(q, x, K))
    meta.update(n=int(x.shape[0]), dim=int(x.shape[1]), nq=int(q.shape[0]))
    (d / "meta.json").write_text(json.dumps(meta))
    return d


# --- one system (subprocess) ------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """Build ``args.worker`` and measure it; one JSON line per knob value to ``args.rows``."""
    import shutil

    from _lib.peer_systems import SYSTEMS

    name, data, work = args.worker, Path(args.data), Path(args.work)
    deadline = time.monotonic() + 0.9 * args.time_budget
    peer = SYSTEMS[name]()
    meta = json.loads((data / "meta.json").read_text())
    text = json.loads((data / "texts.json").read_text()) if (data / "texts.json").exists() else None
    x = np.load(data / "x.npy", mmap_mode="r")
    q = np.load(data / "q.npy")
    truth = np.load(data / "truth.npy")
    n = x.shape[0]
    if name.startswith("qdrant") and n > args.qdrant_cap:
        n = args.qdrant_cap  # local mode keeps every point as Python objects: 1M does not fit
        x = x[:n]
        truth = exact_top(q, np.asarray(x), K)
    # a throwaway instance on 2,000 rows first: imports, JIT compilation and lazy loads land
    # outside the measured build time and outside the RSS delta, for every system alike
    warm = SYSTEMS[name]()
    (work / "warm").mkdir()
    warm.build(x[:2000], work / "warm", text["texts"][:2000] if text else None)
    warm.search(q[0], K, warm.knobs[0])
    warm.batch(q[:2], K, warm.knobs[0])
    del warm
    shutil.rmtree(work / "warm")
    gc.collect()
    from _lib.pages import prewarm

    prewarm_s = prewarm(args.prewarm_gb)
    base, _ = rss_mb()
    t0 = time.perf_counter()
    peer.build(x, work, text["texts"][:n] if text else None)
    build_s = time.perf_counter() - t0
    del x
    gc.collect()
    disk = disk_bytes(work)
    # the first query after the build: what opening a built index costs (faiss' is in memory
    # already; heron opens the saved index here, the way a fresh process would)
    t = time.perf_counter()
    peer.search(q[0], K, peer.knobs[0])
    first_ms = (time.perf_counter() - t) * 1e3
    ns = min(args.single, len(q))
    nb = min(args.batch, len(q))
    for knob in peer.knobs:
        if time.monotonic() > deadline:
            print(f"{name}: time budget reached before {peer.knob}={knob}", file=sys.stderr)
            break
        for v in q[: min(10, ns)]:  # warm-up: caches, lazy loads, JIT
            peer.search(v, K, knob)
        lat, found = [], np.full((ns, K), -1, np.int64)
        for i in range(ns):
            t = time.perf_counter()
            r = peer.search(q[i], K, knob)
            lat.append((time.perf_counter() - t) * 1e3)
            found[i, : len(r)] = r[:K]
        t = time.perf_counter()
        peer.batch(q[:nb], K, knob)
        batch_s = time.perf_counter() - t
        rec = float(np.mean([len(set(a[a >= 0]) & set(b)) / K for a, b in zip(found, truth[:ns])]))
        cur, peak = rss_mb()
        row = {
            "system": name, "data": meta["data"], "n": int(n), "knob": peer.knob, "value": knob,
            "build_s": round(build_s, 2), "prewarm_s": round(prewarm_s, 2), "first_query_ms": round(first_ms, 1), "p50_ms": round(float(np.percentile(lat, 50)), 4),
            "p95_ms": round(float(np.percentile(lat, 95)), 4),
            "batch_qps": round(nb / batch_s, 1), "recall10": round(rec, 4),
            "ram_mb": round(cur - base, 1), "peak_rss_mb": round(peak, 1),
            "disk_mb": round(disk / 2**20, 1), "single_queries": ns, "batch_queries": nb,
            "load_1min": round(os.getloadavg()[0], 2), "note": peer.note,
        }
        if text:
            row["ndcg10"] = round(ndcg(found, text, ns), 4)
        with open(args.rows, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        if rec >= 0.995:  # the sweep has reached the exact answer; higher knobs only cost time
            break


def ndcg(found: np.ndarray, text: dict, ns: int) -> float:
    from heron.eval.metrics import evaluate

    ids = text["doc_ids"]
    run = {qid: {ids[r]: float(K - j) for j, r in enumerate(row) if r >= 0}
           for qid, row in zip(text["query_ids"][:ns], found)}
    qrels = {qid: text["qrels"][qid] for qid in run if qid in text["qrels"]}
    return evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]


# --- driver -----------------------------------------------------------------------------------


def run_system(name: str, data: Path, args: argparse.Namespace) -> list[dict]:
    import shutil

    from _lib.peer_systems import PACKAGES

    work = args.out / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = args.out / "rows" / f"{name}.jsonl"
    rows.parent.mkdir(exist_ok=True)
    rows.unlink(missing_ok=True)
    pkg = PACKAGES[name.split("-")[0]]
    mod = {"faiss-cpu": "faiss", "qdrant-client": "qdrant_client", "chromadb": "chromadb"}.get(pkg, pkg)
    probe = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True)
    if probe.returncode:
        return [{"system": name, "skipped": f"{mod} is not installed: pip install {pkg} "
                 "(or pip install 'heron[peers]')"}]
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(data), "--work", str(work),
           "--rows", str(rows), "--time-budget", str(args.time_budget),
           "--single", str(args.single), "--batch", str(args.batch),
           "--qdrant-cap", str(args.qdrant_cap), "--hnsw", args.hnsw, "--prewarm-gb", str(args.prewarm_gb)]
    status = "done"
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.time_budget)
        if p.returncode:
            tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            status = f"crashed (exit {p.returncode}): {tail[:300]}"
    except subprocess.TimeoutExpired:
        status = f"killed at the time budget ({args.time_budget} s)"
    out = [json.loads(line) for line in rows.read_text().splitlines()] if rows.exists() else []
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if not out:
        return [{"system": name, "skipped": status}]
    for r in out:
        r["status"] = status
    return out


def best(rows: list[dict]) -> dict:
    """The fastest single-query setting at recall@10 >= 0.95, else the most accurate one."""
    ok = [r for r in rows if r["recall10"] >= 0.95]
    return min(ok, key=lambda r: r["p50_ms"]) if ok else max(rows, key=lambda r: r["recall10"])


def at_recall(rows: list[dict], target: float = 0.95) -> str:
    """p50 at recall@10 = ``target`` read off a system's sweep, interpolated between its two
    settings around it (log latency linear in recall): the grid of knobs (ef doubling) otherwise
    decides which system is "fastest at >= 0.95". ``">= x"`` when the first setting is above the
    target already, ``"-"`` when no setting reaches it."""
    pts = sorted((r["recall10"], r["p50_ms"]) for r in rows if r.get("knob"))
    # the Pareto front: recall rising, each point faster than every more accurate one
    front: list[tuple[float, float]] = []
    for rec, ms in sorted(pts, key=lambda t: (-t[0], t[1])):
        if not front or ms < front[-1][1]:
            front.append((rec, ms))
    front.reverse()
    if not front or front[-1][0] < target:
        return "-"
    if front[0][0] >= target:
        return f"<= {front[0][1]:.3f}"
    for (r0, m0), (r1, m1) in zip(front, front[1:]):
        if r0 < target <= r1:
            w = (target - r0) / (r1 - r0)
            return f"{math.exp(math.log(m0) + w * (math.log(m1) - math.log(m0))):.3f}"
    return "-"


def report(results: list[dict], args: argparse.Namespace, meta: dict) -> str:
    by: dict[str, list[dict]] = {}
    skipped = {}
    for r in results:
        if "skipped" in r:
            skipped[r["system"]] = r["skipped"]
        else:
            by.setdefault(r["system"], []).append(r)
    text = "ndcg10" in next(iter(r for rows in by.values() for r in rows), {})
    head = ("| system | n | setting | build s | 1st query ms | p50 ms | p95 ms | batch q/s | recall@10 | p50 ms at 0.95 |"
            + (" nDCG@10 |" if text else "") + " RAM MB | peak RSS MB | disk MB |")
    lines = [f"Data: {meta.get('data')} ({meta.get('n')} x {meta.get('dim')}), "
             f"{meta.get('nq')} queries, k={K}; HNSW M,efConstruction = {args.hnsw}.", "",
             "Best setting per system (fastest p50 at recall@10 >= 0.95, else the most accurate); "
             "'p50 ms at 0.95' is read off each system's sweep, interpolated between settings:",
             "", head, "|" + "---|" * (head.count("|") - 1)]

    def fmt(r: dict, interp: bool = True) -> str:
        setting = f"{r['knob']}={r['value']}" if r["knob"] else "exact"
        first = f"{r['first_query_ms']:,.1f}" if "first_query_ms" in r else "-"
        return (f"| {r['system']} | {r['n']:,} | {setting} | {r['build_s']:.1f} | {first} | {r['p50_ms']:.3f} |"
                f" {r['p95_ms']:.3f} | {r['batch_qps']:,.0f} | {r['recall10']:.3f} |"
                + (f" {at_recall(by[r['system']])} |" if interp else "")
                + (f" {r.get('ndcg10', float('nan')):.4f} |" if text else "")
                + f" {r['ram_mb']:,.0f} | {r['peak_rss_mb']:,.0f} | {r['disk_mb']:,.1f} |")

    for name in sorted(by):
        lines.append(fmt(best(by[name])))
    every = head.replace(" p50 ms at 0.95 |", "")
    lines += ["", "Every setting:", "", every, "|" + "---|" * (every.count("|") - 1)]
    for name in sorted(by):
        lines += [fmt(r, interp=False) for r in by[name]]
    notes = {name: rows[0]["note"] for name, rows in by.items() if rows[0].get("note")}
    notes.update({name: f"status: {rows[0]['status']}" for name, rows in by.items()
                  if rows[0].get("status", "done") != "done"})
    if notes:
        lines += ["", "Notes:", ""] + [f"- {k}: {v}" for k, v in sorted(notes.items())]
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- {k}: {v}" for k, v in sorted(skipped.items())]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    by: dict[str, list[dict]] = {}
    for r in results:
        if "skipped" not in r:
            by.setdefault(r["system"], []).append(r)
    colours = plt.get_cmap("tab20").colors
    for j, (name, rows) in enumerate(sorted(by.items())):  # rows in sweep order (knob rising)
        mine = name.startswith("heron")
        ax.plot([r["p50_ms"] for r in rows], [r["recall10"] for r in rows],
                ("o-" if mine else "^--") if len(rows) > 1 else ("s" if mine else "D"),
                label=name, lw=2.5 if mine else 1.2, color=colours[j % len(colours)], ms=6)
    ax.set_xscale("log")
    ax.axhline(0.95, color="grey", ls=":", lw=1)
    ax.set_xlabel("p50 latency, one query at a time (ms, log scale)")
    ax.set_ylabel("recall@10 of the exact top-10")
    ax.set_title(f"{results[0].get('data', '')}: recall against single-query latency", fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    from _lib.peer_systems import SYSTEMS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="corpus size (anchored data)")
    ap.add_argument("--queries", type=int, default=1000, help="held-out queries generated")
    ap.add_argument("--single", type=int, default=1000, help="queries timed one at a time")
    ap.add_argument("--batch", type=int, default=1000, help="queries in the batched call")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    ap.add_argument("--time-budget", type=int, default=1800, help="seconds per system")
    ap.add_argument("--qdrant-cap", type=int, default=QDRANT_CAP,
                    help="rows loaded into Qdrant's local mode (exact top-10 recomputed on them)")
    ap.add_argument("--hnsw", default="32,200",
                    help="HNSW M,efConstruction for every HNSW system (matched; 16,40 makes 1M builds affordable on 2 cores)")
    ap.add_argument("--text", choices=["scifact", "nfcorpus"], help="BEIR text, end to end")
    ap.add_argument("--out", type=Path, default=Path("out/peers"))
    ap.add_argument("--data-dir", help="data folder (default $HERON_CACHE/peers/<data>)")
    ap.add_argument("--redo", action="store_true", help="measure systems already in results.jsonl again")
    ap.add_argument("--keep", action="store_true", help="keep each system's files under OUT/work")
    ap.add_argument("--prewarm-gb", type=float, default=4.0,
                    help="GB of memory a throwaway process touches and frees right before each "
                         "build, so that no build pays for pages the VM has not handed out yet (0: off)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        hnsw_m, hnsw_efc = (int(v) for v in args.hnsw.split(","))
    except ValueError:
        raise SystemExit(f"--hnsw must be M,efConstruction (two integers), got {args.hnsw!r}") from None
    import _lib.peer_systems as ps

    ps.M, ps.EF_CONSTRUCTION = hnsw_m, hnsw_efc
    if args.worker:
        return worker(args)
    for name, v in (("--n", args.n), ("--queries", args.queries), ("--time-budget", args.time_budget)):
        if v <= 0:
            raise SystemExit(f"{name} must be positive, got {v}")
    args.out.mkdir(parents=True, exist_ok=True)
    data = prepare(args)
    meta = json.loads((data / "meta.json").read_text())
    log = args.out / "results.jsonl"
    done = set()
    if log.exists() and not args.redo:
        done = {r["system"] for r in map(json.loads, log.read_text().splitlines())
                if r.get("data") == meta["data"]}
    results = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    for name in args.systems:
        if name in done:
            print(f"{name}: already in {log}, skipped (--redo to measure again)", flush=True)
            continue
        t = time.perf_counter()
        rows = [{"data": meta["data"], **r} for r in run_system(name, data, args)]
        results = [r for r in results if (r["system"], r.get("data")) != (name, meta["data"])] + rows
        log.write_text("".join(json.dumps(r) + "\n" for r in results))
        print(f"{name}: {len(rows)} rows in {time.perf_counter() - t:.0f} s "
              f"({rows[0].get('skipped') or rows[0].get('status')})", flush=True)
        here = [r for r in results if r.get("data") == meta["data"]]
        (args.out / "peers.md").write_text(report(here, args, meta))
        plot(here, args.out / "peers.png")
    print(report([r for r in results if r.get("data") == meta["data"]], args, meta))


if __name__ == "__main__":
    main()
