"""The compressed first stages through ``Collection.search`` against their memory-bandwidth floor,
timed in pairs so that the machine's drift cancels.

On this VM a streaming read of the same 48 MB moves between 0.4 and 1.8 ms from one minute to
the next (other guests share the memory bus), so a floor timed in one block and a scan in another
can be a factor of two apart for no reason of their own. Here every query is a pair: the floor
read, then the search (or the search, then the floor, alternating), and the ratio is taken per
pair. Each row runs in blocks of its own (the blocked protocol of ``codecs_speed.py``: a method
never runs right after another one's spinning thread pools), in rounds whose row order
alternates. The table gives the median of the ratios with their quartiles.

Data: ``benchmarks/codecs_speed.py``'s 1,000,000 x 384 synthetic vectors and queries (seed 0),
stored in a :class:`heron.Collection` (``model="none"``, loaded with ``bulk``) and searched as a
user searches by vector, ``coll.search(vector, k, using="compressed", codec=..., oversample=0)``
(the first stage alone). Floors are the numba
streaming read of ``codecs_speed.py`` over bytes of the same size as the scanned codes: binary
codes (48 MB), int8 codes (384 MB), the float32 matrix (1.5 GB, for ``retriever="dense"``).
The ``kernel`` row is ``heron.codecs._scan.hamming_topk`` on those codes, the Hamming scan
without the collection around it.

    python benchmarks/scan_floor.py --out out/scan_floor
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codecs_speed import make_data, make_reader  # noqa: E402


def one_pair(method, floor, qi: int, floor_first: bool) -> tuple[float, float]:
    """``(method seconds, floor seconds)`` of one query timed right beside one floor read."""
    t0 = time.perf_counter()
    if floor_first:
        floor()
    else:
        method(qi)
    t1 = time.perf_counter()
    if floor_first:
        method(qi)
    else:
        floor()
    t2 = time.perf_counter()
    return (t2 - t1, t1 - t0) if floor_first else (t1 - t0, t2 - t1)


def summary(pairs: list[tuple[float, float]]) -> dict[str, float]:
    tm, tf = np.asarray(pairs).T
    r = tm / tf
    return {
        "ms": 1000 * float(np.median(tm)),
        "floor_ms": 1000 * float(np.median(tf)),
        "ratio_p25": float(np.percentile(r, 25)),
        "ratio": float(np.median(r)),
        "ratio_p75": float(np.percentile(r, 75)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--reps", type=int, default=200, help="pairs per row (dense: a tenth)")
    ap.add_argument("--rounds", type=int, default=4, help="blocks per row, row order alternating")
    ap.add_argument("--out", type=Path, default=Path("out/scan_floor"))
    args = ap.parse_args()

    from heron import Collection
    from heron.codecs import _scan, parse_spec

    args.out.mkdir(parents=True, exist_ok=True)
    x, q = make_data(args.n, args.d, 1000, 0)
    path = args.out / "collection"
    if path.exists():
        shutil.rmtree(path)
    coll = Collection.create(path, model="none", dim=args.d)
    with coll.bulk() as b:
        for s in range(0, len(x), 100_000):
            b.add([""] * len(x[s : s + 100_000]), vectors=x[s : s + 100_000])

    def search(using: str, **kw):
        return lambda i: coll.search(q[i : i + 1], using=using, **kw)

    ham = parse_spec("bin-ham").fit(x[:: max(1, args.n // 100_000)])
    codes = np.concatenate([ham.encode(x[s : s + 100_000]) for s in range(0, len(x), 100_000)])
    words = codes.view(np.uint64)
    cols = _scan.column_words(words)
    qwords = ham.query_codes(q).view(np.uint64)
    int8_bytes = np.empty((args.n, args.d), dtype=np.uint8)
    int8_bytes[:] = 1
    read = make_reader()
    floors = {
        name: (lambda r: lambda: r(None))(read(a))
        for name, a in (("bin", codes), ("int8", int8_bytes), ("f32", x))
    }

    def kernel(k):
        return lambda i: _scan.hamming_topk(qwords[i : i + 1], words, k, columns=cols)

    def compressed(codec, k):
        return search("compressed", k=k, codec=codec, oversample=0)

    rows = [("Hamming (`bin-ham`), kernel", "bin", k, kernel(k)) for k in (10, 300)]
    for name, codec in (("Hamming (`bin-ham`)", "bin-ham"), ("asymmetric (`bin`)", "bin")):
        rows += [(name, "bin", k, compressed(codec, k)) for k in (10, 300)]
    rows += [
        ("int8", "int8", 10, compressed("int8", 10)),
        ("exact float32 (`dense`)", "f32", 10, search("dense", k=10)),
    ]
    for _, _, _, f in rows:
        f(0)  # builds the artifact (codec fit + codes), compiles the kernels
        f(1)
    # blocks: each row's pairs run in blocks of their own after a few untimed queries (a method
    # never inherits another's spinning threads: faiss' and numba's OpenMP pools, OpenBLAS), in
    # ``--rounds`` rounds whose row order alternates, so drift spreads over every row
    start_load = os.getloadavg()[0]
    got: list[list[tuple[float, float]]] = [[] for _ in rows]
    per = max(2, args.reps // args.rounds)
    for rnd in range(args.rounds):
        order = range(len(rows)) if rnd % 2 == 0 else reversed(range(len(rows)))
        for j in order:
            _, floor, _, f = rows[j]
            n_pairs = per if floor != "f32" else max(2, per // 10)
            for i in range(5):
                f(i)
                floors[floor]()
            for i in range(n_pairs):
                qi = (rnd * per + i) % len(q)
                got[j].append(one_pair(f, floors[floor], qi, i % 2 == 0))
    results = []
    for (name, floor, k, _), pairs in zip(rows, got):
        r = summary(pairs)
        r.update(method=name, k=k, floor=floor, pairs=len(pairs))
        results.append(r)
        print(json.dumps(r), flush=True)
    load = os.getloadavg()
    lines = [
        f"# first stages against their floor, {args.n:,} x {args.d}, timed in pairs",
        "",
        "| method | k | ms (median) | floor ms (median, paired) | × floor, median of pairs | quartiles |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['k']} | {r['ms']:.2f} | {r['floor_ms']:.2f} ({r['floor']}) | "
            f"**{r['ratio']:.2f}** | {r['ratio_p25']:.2f}-{r['ratio_p75']:.2f} |"
        )
    lines += [
        "",
        f"load average at the start {start_load:.2f}, at the end {' '.join(f'{v:.2f}' for v in load)}",
    ]
    (args.out / "scan_floor.md").write_text("\n".join(lines) + "\n")
    (args.out / "scan_floor.json").write_text(json.dumps(results, indent=1))
    shutil.rmtree(path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
