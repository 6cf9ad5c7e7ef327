"""Asymmetric binary scans: the float byte tables over every code against the two certified fast
scans (``heron.codecs.fastscan``: heron's own AVX-512 kernel and faiss'), same codec, same codes,
one process.

On the peers data (``benchmarks/peers.py``: anchored 1M x 384 and its queries), for ``bin``
(1-bit sign codes, 48 bytes) and ``rbin2`` (two residual planes, 96 bytes), each codec fitted on
a sample: median single-query latency of ``codec.topk`` per ``k`` with ``fast_scan`` off,
``"faiss"`` and ``"heron"`` (alternating blocks, two rounds), 1,000 queries batched, whether each
fast scan returns the table scan's rows, and how many queries it certified on its first fetch.

    python benchmarks/binary_fastscan.py --out out/binary_fastscan
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

MODES = {False: "tables", "faiss": "faiss", "heron": "heron"}


def median_ms(f, q: np.ndarray, reps: int) -> float:
    f(q[:1])
    f(q[1:2])
    ts = []
    for i in range(reps):
        t = time.perf_counter()
        f(q[i % len(q) : i % len(q) + 1])
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))


def searcher(codec, codes: np.ndarray, k: int):
    return lambda qq: codec.topk(qq, codes, k)


def certified_first_round(codec, codes: np.ndarray, q: np.ndarray, k: int) -> int:
    """Queries whose top-k the first fetch certifies (as the fast scans' ``topk`` decides)."""
    from heron.codecs import _scan
    from heron.codecs.binary import byte_tables

    fs = codec._resident_of[1]
    w = codec.sign_weights(q)
    rows, bound = fs.candidates(w, k + k // 4 + 32)
    s, _ = _scan.lut_rows_topk(byte_tables(w, codes.shape[1]), codes, rows, k)
    return int((s[:, k - 1] > bound + fs.eps(w)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="peers data folder (default: the 1M anchored set)")
    ap.add_argument("--specs", nargs="+", default=["bin", "rbin2"])
    ap.add_argument("--k", type=int, nargs="+", default=[10, 300])
    ap.add_argument("--reps", type=int, default=30, help="single queries per block")
    ap.add_argument("--sample", type=int, default=50, help="fit on every n-th vector")
    ap.add_argument("--out", type=Path, default=Path("out/binary_fastscan"))
    args = ap.parse_args()

    from heron.codecs import fastscan, parse_spec

    modes = [False, "faiss"] + (["heron"] if fastscan.engine() == "heron" else [])
    from heron.eval.cache import cache_dir

    data = args.data or cache_dir() / "peers" / "anchored-1000000-1000"
    if not (data / "meta.json").exists():
        raise SystemExit(f"no peers data at {data}: run benchmarks/peers.py --n 1000000 first")
    x = np.load(data / "x.npy", mmap_mode="r")
    q = np.ascontiguousarray(np.load(data / "q.npy"), dtype=np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.specs:
        codec = parse_spec(spec).fit(np.ascontiguousarray(x[:: args.sample]))
        codes = np.concatenate(
            [
                codec.encode(np.ascontiguousarray(x[s : s + 100_000]))
                for s in range(0, len(x), 100_000)
            ]
        )
        for k in args.k:
            lat: dict = {m: [] for m in modes}
            for _ in range(2):  # alternating blocks: tables, faiss, heron, tables, ...
                for m in modes:
                    codec.fast_scan = m
                    lat[m].append(median_ms(searcher(codec, codes, k), q, args.reps))
            got, qps = {}, {}
            for m in modes:
                codec.fast_scan = m
                codec.topk(q[:1], codes, k)
                t = time.perf_counter()
                got[m] = codec.topk(q, codes, k)
                qps[m] = len(q) / (time.perf_counter() - t)
            row = {"spec": spec, "bytes": int(codes.shape[1]), "k": k}
            for m in modes:
                name = MODES[m]
                row[f"single_ms_{name}"] = min(lat[m])
                row[f"qps_{name}"] = qps[m]
                if m is not False:
                    codec.fast_scan = m
                    codec.topk(q[:1], codes, k)  # this scan's resident copy
                    same = int((got[m][1] == got[False][1]).all(axis=1).sum())
                    row[f"same_rows_{name}"] = f"{same}/{len(q)}"
                    row[f"certified_{name}"] = (
                        f"{certified_first_round(codec, codes, q, k)}/{len(q)}"
                    )
            rows.append(row)
            print(row, flush=True)
    load = os.getloadavg()
    fast = [MODES[m] for m in modes if m is not False]
    lines = [
        f"# asymmetric binary scans, {len(x):,} x {x.shape[1]} anchored, {len(q)} queries",
        "",
        "single-query ms (median of a block, best of two blocks) and batched queries per second;",
        "same rows: queries whose rows equal the table scan's; certified: on the first fetch",
        "",
        "| codec | bytes | k | ms tables | "
        + " | ".join(f"ms {f}" for f in fast)
        + " | q/s tables | "
        + " | ".join(f"q/s {f}" for f in fast)
        + " | "
        + " | ".join(f"same rows {f} | certified {f}" for f in fast)
        + " |",
        "|---" * (4 + 2 * len(fast) + 1 + 2 * len(fast)) + "|",
    ]
    for r in rows:
        cells = [r["spec"], r["bytes"], r["k"], f"{r['single_ms_tables']:.2f}"]
        cells += [f"{r[f'single_ms_{f}']:.2f}" for f in fast]
        cells += [f"{r['qps_tables']:.0f}"] + [f"{r[f'qps_{f}']:.0f}" for f in fast]
        for f in fast:
            cells += [r[f"same_rows_{f}"], r[f"certified_{f}"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"load average at the end: {' '.join(f'{v:.2f}' for v in load)}"]
    (args.out / "binary_fastscan.md").write_text("\n".join(lines) + "\n")
    (args.out / "binary_fastscan.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
