"""Speed of the compressed first stages on 1,000,000 x 384 synthetic seeded vectors.

Reports single-query latency and 1,000-query batched throughput for: numpy float32 scan, faiss
IndexFlatIP (float32 exact), faiss IndexBinaryFlat and heron's Hamming scan (same codes, same k),
heron's int8 scan, and heron binary + rescoring from a memory-mapped float16 file (end to end,
with its recall@10 against the float32-exact top-10). All timings are ratios against references
run in the same process. Single-query latency is measured twice in one run: each method in
its own blocks of consecutive queries (``--protocol blocked``, the default and the headline) and
interleaved query by query (reported beside it).

    python benchmarks/codecs_speed.py --out out/codecs_speed

Data: anisotropic Gaussian clusters (spectrum ``j^-0.5``), normalised; queries are documents
perturbed by ``--query-noise`` (default 0.25). Peak memory ~3.3 GB (the float32 corpus is shared with
faiss' own copy after ``add``). ``floor_read_*`` rows time a plain streaming read (xor of the
64-bit words, numba, all threads) of the float32 matrix / int8 codes / binary codes: the memory
bandwidth floor of each scan on this machine, measured in the same loop. The table's
``x floor`` column divides each method's single-query latency by the floor of the bytes it scans
(float32 matrix, int8 codes or binary codes; the binary + rescore row also reads the candidates'
float16 rows, so its ratio is only indicative).

``heron_binary_asym`` is the asymmetric sign-code scan as heron runs it on resident codes
(candidates from faiss' 4-bit fast scan, certified exact: :mod:`heron.codecs.fastscan`);
``heron_binary_asym_table`` is the same codec with ``fast_scan=False`` (float byte tables over
every code), the same results.

``collection_*`` rows go through the public API: the same vectors are added to a
:class:`heron.Collection` (``model="none"``) and searched with ``Collection.search`` (exact
``retriever="dense"``, and ``retriever="compressed"`` with ``codec="bin-ham"`` / ``"bin"`` /
``"int8"`` and ``oversample=0``: the first stage alone, at the depth ``K`` of the binary rows).
``--no-collection`` skips them (they add ~1.5 GB of disk under ``--out`` and the time of ``add``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np


def make_data(
    n: int, d: int, nq: int, seed: int, query_noise: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    spec = (np.arange(1, d + 1) ** -0.5).astype(np.float32)
    centres = rng.standard_normal((max(n // 500, 16), d)).astype(np.float32) * spec
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(n, s + 100_000) - s
        a = rng.integers(0, len(centres), m)
        v = centres[a] + 0.6 * rng.standard_normal((m, d)).astype(np.float32) * spec
        x[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    pick = rng.integers(0, n, nq)
    q = x[pick] + query_noise * rng.standard_normal((nq, d)).astype(np.float32) * spec
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, np.ascontiguousarray(q, dtype=np.float32)


def make_reader():
    """A numba streaming read of a matrix's 64-bit words (the bandwidth floor of a scan)."""
    from numba import njit, prange

    @njit(parallel=True, fastmath=True)
    def xor_words(a):  # pragma: no cover - compiled
        n = a.shape[0]
        acc = np.zeros(n, dtype=np.uint64)
        for i in prange(n):
            s = np.uint64(0)
            for j in range(a.shape[1]):
                s ^= a[i, j]
            acc[i] = s
        return acc

    def read(m: np.ndarray):
        words = np.ascontiguousarray(m).reshape(-1).view(np.uint64)
        w = words[: len(words) - len(words) % 64].reshape(-1, 64)  # 512-byte pieces
        return lambda qq: xor_words(w)

    return read


def single(fns: dict, q: np.ndarray, reps: int) -> dict[str, float]:
    """Median ms/query of each fn, interleaved query by query.

    The order of the methods rotates from one query to the next, so no method always runs
    right after the same neighbour (whose cache footprint and thread wake-ups it would inherit).
    """
    for f in fns.values():
        f(q[:1])
    names = list(fns)
    times = {name: [] for name in fns}
    for i in range(reps):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            f = fns[name]
            t = time.perf_counter()
            f(q[i : i + 1])
            times[name].append(time.perf_counter() - t)
    return {name: 1000 * float(np.median(v)) for name, v in times.items()}


def blocked(
    fns: dict, q: np.ndarray, reps: int, rounds: int = 5, warmup: int = 3
) -> dict[str, float]:
    """Median ms/query of each fn, each method timed in its own block of consecutive queries.

    ``rounds`` blocks per method (the block order rotates from round to round), each of
    ``reps // rounds`` queries after ``warmup`` untimed ones. This is the protocol of
    ann-benchmarks and faiss' own benchmarks: a method never inherits the previous method's
    thread pools. Interleaving query by query (``single``) does, and on a 2-core machine
    OpenBLAS' worker threads still spinning after numpy's gemv take cores from the next
    method's numba threads (measured: heron's Hamming scan 4.0 ms alone, 9.5 ms right after a
    numpy scan; 5.2 ms with ``OPENBLAS_NUM_THREADS=1``).
    """
    names = list(fns)
    per = max(1, reps // rounds)
    times = {name: [] for name in fns}
    i = 0
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            f = fns[name]
            for _ in range(warmup):
                f(q[i % len(q) : i % len(q) + 1])
            for _ in range(per):
                qi = i % len(q)
                t = time.perf_counter()
                f(q[qi : qi + 1])
                times[name].append(time.perf_counter() - t)
                i += 1
    return {name: 1000 * float(np.median(v)) for name, v in times.items()}


def batched(f, q: np.ndarray) -> float:
    t = time.perf_counter()
    f(q)
    return len(q) / (time.perf_counter() - t)


def collection_fns(x: np.ndarray, path: Path, K: int) -> dict:
    """Single/batched search functions through ``Collection.search`` over the vectors ``x``.

    The collection stores ``x`` as precomputed vectors (``model="none"``); each compressed
    retriever's artifact (fitted codec + codes) is built by a first search before timing.
    """
    import shutil

    from heron import Collection
    from heron.pipeline import Queries

    if path.exists():
        shutil.rmtree(path)
    coll = Collection.create(path, model="none", dim=x.shape[1])
    coll.add([""] * len(x), vectors=x, progress=False)

    def run(**kw):
        def f(qq):
            return coll.search(Queries([""] * len(qq), vectors={"none": qq}), **kw)

        return f

    fns = {
        "collection_exact_f32": run(k=10, retriever="dense"),
        "collection_binary": run(k=K, retriever="compressed", codec="bin-ham", oversample=0),
        "collection_binary_asym": run(k=K, retriever="compressed", codec="bin", oversample=0),
        "collection_int8": run(k=10, retriever="compressed", codec="int8", oversample=0),
    }
    probe = np.ascontiguousarray(x[:1])
    for f in fns.values():
        f(probe)  # builds the compressed artifacts, compiles the kernels
    return fns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=30, help="single queries timed per method")
    ap.add_argument(
        "--protocol",
        choices=("blocked", "interleaved"),
        default="blocked",
        help="single-query timing: each method in its own blocks (default; the other is "
        "also measured and reported beside it) or interleaved query by query",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--query-noise",
        type=float,
        default=0.25,
        help="query = document + noise (relative to the spectrum)",
    )
    ap.add_argument("--out", default="out/codecs_speed")
    ap.add_argument(
        "--no-collection",
        action="store_true",
        help="skip the rows timed through Collection.search (public API)",
    )
    args = ap.parse_args()
    import faiss
    from tqdm.auto import tqdm

    from heron.codecs import parse_spec
    from heron.codecs.search import TwoStageSearcher
    from heron.retrieval.topk import topk_rows

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=7, desc="codecs_speed")
    x, q = make_data(args.n, args.d, args.nq, args.seed, args.query_noise)
    steps.update()
    flat = faiss.IndexFlatIP(args.d)
    flat.add(x)
    # share faiss' copy instead of keeping two float32 corpora in memory
    x = faiss.rev_swig_ptr(flat.get_xb(), args.n * args.d).reshape(args.n, args.d)
    _, gt = flat.search(q, 10)
    steps.update()

    def np_scan(qq):
        return topk_rows(qq @ x.T, 10)

    binc = parse_spec("bin-ham").fit(x[:: max(1, args.n // 100_000)])
    codes = np.concatenate([binc.encode(x[s : s + 100_000]) for s in range(0, args.n, 100_000)])
    bflat = faiss.IndexBinaryFlat(args.d)
    bflat.add(codes)
    bina = parse_spec("bin").fit(x[:: max(1, args.n // 100_000)])  # asymmetric scoring
    codes_a = np.concatenate([bina.encode(x[s : s + 100_000]) for s in range(0, args.n, 100_000)])
    bina_table = copy.copy(bina)  # the same codec, every code scanned with the float tables
    bina_table.fast_scan = False
    int8 = parse_spec("int8").fit(x[:: max(1, args.n // 100_000)])
    c8 = np.concatenate([int8.encode(x[s : s + 100_000]) for s in range(0, args.n, 100_000)])
    f16_path = out / "rescore_f16.npy"
    np.save(f16_path, x.astype(np.float16))
    f16 = np.load(f16_path, mmap_mode="r")
    searcher = TwoStageSearcher(binc, codes, rescore=f16)
    steps.update()

    # recall of binary + rescore: the smallest oversample with recall@10 >= 0.99
    def recall(rows):
        return float(np.mean([len(set(r) & set(g)) / 10 for r, g in zip(rows, gt)]))

    os_recall = {}
    for os_ in (10, 20, 30, 50, 100):
        os_recall[os_] = recall(searcher.search(q, 10, oversample=os_)[1])
        if os_recall[os_] >= 0.99:
            break
    chosen = next((o for o, r in os_recall.items() if r >= 0.99), max(os_recall))
    K = 10 * chosen
    steps.update()

    read = make_reader()
    floors = {
        "floor_read_f32": read(x),
        "floor_read_int8": read(c8),
        "floor_read_bin": read(codes),
    }
    fns = {
        "numpy_f32": np_scan,
        "faiss_flat_f32": lambda qq: flat.search(qq, 10),
        "faiss_binary_flat": lambda qq: bflat.search(binc.query_codes(qq), K),
        "heron_binary": lambda qq: binc.topk(qq, codes, K),
        "heron_binary_asym": lambda qq: bina.topk(qq, codes_a, K),
        "heron_binary_asym_table": lambda qq: bina_table.topk(qq, codes_a, K),
        "heron_int8": lambda qq: int8.topk(qq, c8, 10),
        "heron_binary_rescore": lambda qq: searcher.search(qq, 10, oversample=chosen),
    }
    if not args.no_collection:
        fns.update(collection_fns(x, out / "collection", K))
    floor_of = {
        "numpy_f32": "floor_read_f32",
        "faiss_flat_f32": "floor_read_f32",
        "faiss_binary_flat": "floor_read_bin",
        "heron_binary": "floor_read_bin",
        "heron_binary_asym": "floor_read_bin",
        "heron_binary_asym_table": "floor_read_bin",
        "heron_int8": "floor_read_int8",
        "heron_binary_rescore": "floor_read_bin",
        "collection_exact_f32": "floor_read_f32",
        "collection_binary": "floor_read_bin",
        "collection_binary_asym": "floor_read_bin",
        "collection_int8": "floor_read_int8",
    }
    timed = {**fns, **floors}
    by_protocol = {
        "blocked": blocked(timed, q, args.reps),
        "interleaved": single(timed, q, args.reps),
    }
    lat_all = by_protocol[args.protocol]
    lat = {name: lat_all[name] for name in fns}
    floor_ms = {name: lat_all[name] for name in floors}
    other = "interleaved" if args.protocol == "blocked" else "blocked"
    lat_other = {name: by_protocol[other][name] for name in fns}
    steps.update()
    # batched: 3 rounds, methods in rotating order, median q/s per method
    bfns = dict(fns)
    bfns["numpy_f32"] = lambda qq: [np_scan(qq[i : i + 100]) for i in range(0, len(qq), 100)]
    bnames = list(bfns)
    runs: dict[str, list[float]] = {name: [] for name in bnames}
    for r in range(3):
        for name in bnames[r:] + bnames[:r]:
            runs[name].append(batched(bfns[name], q))
    qps = {name: float(np.median(v)) for name, v in runs.items()}
    steps.update()
    d_ref = faiss.IndexBinaryFlat(args.d)
    d_ref.add(codes)
    D, _ = d_ref.search(binc.query_codes(q[:50]), K)
    hs, _ = binc.topk(q[:50], codes, K)
    same = bool(np.array_equal(np.sort(D, 1), np.sort(((args.d - hs) / 2).astype(int), 1)))
    fast_rows = bina.topk(q[:50], codes_a, K)[1]
    asym_same = bool(np.array_equal(fast_rows, bina_table.topk(q[:50], codes_a, K)[1]))
    steps.update()
    steps.close()
    ref_s, ref_b = lat["faiss_flat_f32"], qps["faiss_flat_f32"]
    res = {
        "n": args.n,
        "d": args.d,
        "nq": args.nq,
        "seed": args.seed,
        "first_stage_k": K,
        "oversample": chosen,
        "recall_by_oversample": os_recall,
        "hamming_distances_match_faiss": same,
        "asym_fast_scan_rows_match_table_scan": asym_same,
        "protocol": args.protocol,
        "latency_ms": lat,
        f"latency_ms_{other}": lat_other,
        f"single_speedup_vs_numpy_{other}": {
            k: lat_other["numpy_f32"] / v for k, v in lat_other.items()
        },
        "floor_read_ms": floor_ms,
        "x_floor": {k: lat[k] / floor_ms[floor_of[k]] for k in lat},
        "load_average": list(os.getloadavg()),
        "qps": qps,
        "single_speedup_vs_faiss_flat": {k: ref_s / v for k, v in lat.items()},
        "single_speedup_vs_numpy": {k: lat["numpy_f32"] / v for k, v in lat.items()},
        "batched_speedup_vs_faiss_flat": {k: v / ref_b for k, v in qps.items()},
        "binary_vs_faiss_binary": {
            "single": lat["faiss_binary_flat"] / lat["heron_binary"],
            "batched": qps["heron_binary"] / qps["faiss_binary_flat"],
        },
        "float32_exact_single_ms": min(lat["numpy_f32"], lat["faiss_flat_f32"]),
        "float32_exact_qps": max(qps["numpy_f32"], qps["faiss_flat_f32"]),
    }
    best_s, best_b = res["float32_exact_single_ms"], res["float32_exact_qps"]
    res["vs_best_float32_exact"] = {
        k: {"single": best_s / lat[k], "batched": qps[k] / best_b} for k in lat
    }
    (out / "codecs_speed.json").write_text(json.dumps(res, indent=1))
    lines = [
        f"# codecs speed, {args.n} x {args.d} synthetic (seed {args.seed}), {args.nq} queries",
        "",
        f"binary first stage depth K={K} (oversample x{chosen}; recall@10 after rescoring {os_recall[chosen]:.4f})",
        "",
        f"single-query protocol: {args.protocol} (the {other} column is the same methods timed "
        f"the other way in the same run)",
        "",
        f"| method | single ms/query | x floor | batched q/s | single x vs best f32 | batched x vs best f32 | single ms, {other} | single x vs numpy, {other} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in lat:
        v = res["vs_best_float32_exact"][k]
        lines.append(
            f"| {k} | {lat[k]:.2f} | {res['x_floor'][k]:.2f} | {qps[k]:.0f} | {v['single']:.1f} | {v['batched']:.2f} "
            f"| {lat_other[k]:.2f} | {lat_other['numpy_f32'] / lat_other[k]:.1f} |"
        )
    lines += [
        "",
        "bandwidth floors (streaming read of the same bytes, ms): "
        + ", ".join(f"{k[11:]} {v:.2f}" for k, v in floor_ms.items())
        + f"; best-case ratios f32/int8 {floor_ms['floor_read_f32'] / floor_ms['floor_read_int8']:.1f}x, "
        + f"f32/bin {floor_ms['floor_read_f32'] / floor_ms['floor_read_bin']:.1f}x",
        f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "",
        f"heron binary vs faiss IndexBinaryFlat: single {res['binary_vs_faiss_binary']['single']:.2f}x, batched {res['binary_vs_faiss_binary']['batched']:.2f}x (same codes, same K; distances identical: {same})",
        f"heron asymmetric binary, fast scan vs float-table scan: "
        f"single {lat['heron_binary_asym_table'] / lat['heron_binary_asym']:.2f}x, "
        f"batched {qps['heron_binary_asym'] / qps['heron_binary_asym_table']:.2f}x "
        f"(top-{K} rows of 50 queries identical: {asym_same})",
    ]
    (out / "codecs_speed.md").write_text("\n".join(lines) + "\n")
    f16_path.unlink()
    if (out / "collection").exists():
        import shutil

        shutil.rmtree(out / "collection")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axs = plt.subplots(1, 2, figsize=(11, 4))
        names = list(lat)
        axs[0].barh(names, [lat[k] for k in names])
        axs[0].set_xscale("log")
        axs[0].set_xlabel("single-query latency, ms (log)")
        axs[1].barh(names, [qps[k] for k in names])
        axs[1].set_xscale("log")
        axs[1].set_xlabel("batched queries/s (log)")
        fig.tight_layout()
        fig.savefig(out / "codecs_speed.png", dpi=110)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
