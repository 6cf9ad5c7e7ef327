"""Exact dense search speed: heron's ``exact_search`` against faiss ``IndexFlatIP``, same process.

Synthetic, seeded data: ``n`` unit-norm Gaussian vectors of dimension ``d`` (default 1,000,000 x
384 float32, 1.5 GB) held once, in the faiss index's own storage (heron searches a numpy view of
it, so there is no second copy). Reports

* batched throughput (``--nq`` queries in one call, queries/s) of heron and faiss, and the ratio;
* single-query latency (one query per call) of heron and faiss, and the memory-bandwidth floor
  measured in the same run (time of a parallel read-only pass over the matrix);
* whether heron's top-k equals faiss's (row for row), and for any difference the score gap
  (a difference at a near-tie of float rounding is reported as such);
* whether a single query leaves a spinning thread behind: a fixed single-threaded numpy task
  (``--probe-ms`` long) timed right after each heron single query, against the same task after
  a 50 ms pause (ratio ~1.0: nothing spins; ~2: a worker kept a core busy), and numba's
  threading layer (``omp``'s workers spin for a while after a parallel region unless
  ``OMP_WAIT_POLICY=passive``; ``workqueue``'s sleep);
* with ``--collection``, the same single and batched searches through ``Collection.search``
  (``retriever="dense"``, a collection of the same vectors, ``model="none"``).

The bars of issue 16: single query <= 1.25x the floor (a parallel pass on all of numba's
threads), batched >= 1.0x faiss.

Usage::

    python benchmarks/exact_search.py --out out/exact_search
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm


def _make_index(n: int, d: int, seed: int):
    import faiss

    index = faiss.IndexFlatIP(d)
    rng = np.random.default_rng(seed)
    step = 100_000
    for start in tqdm(range(0, n, step), desc="generating matrix", unit="block"):
        x = rng.standard_normal((min(step, n - start), d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        index.add(x)
    matrix = faiss.rev_swig_ptr(index.get_xb(), n * d).reshape(n, d)
    return index, matrix


def _bandwidth_kernel():
    import numba as nb

    @nb.njit(parallel=True, fastmath=True, cache=False)
    def read_all(matrix: np.ndarray) -> float:
        n, d = matrix.shape
        total = 0.0
        for r in nb.prange(n):
            acc = np.float32(0.0)
            for t in range(d):
                acc += matrix[r, t]
            total += acc
        return total

    return read_all


def _timeit(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _compare(ours_i, ours_s, ref_i, ref_s) -> dict:
    same = np.all(ours_i == ref_i, axis=1)
    gaps = []
    for a in np.flatnonzero(~same):
        # the score gap around the first differing position: a float-rounding near-tie is ~1e-6
        j = int(np.argmax(ours_i[a] != ref_i[a]))
        gaps.append(float(abs(ours_s[a, j] - ref_s[a, j])))
    return {
        "queries": int(len(same)),
        "identical": int(same.sum()),
        "identical_fraction": float(same.mean()),
        "max_score_gap_at_differences": max(gaps) if gaps else 0.0,
        "max_abs_score_diff": float(np.max(np.abs(ours_s - ref_s))),
    }


def _collection_times(
    matrix: np.ndarray, queries: np.ndarray, k: int, args: argparse.Namespace
) -> tuple[list[float], float]:
    """Single-query latencies and one batched time of ``Collection.search`` (exact, dense)."""
    import shutil

    from heron import Collection
    from heron.pipeline import Queries

    path = args.out / "collection"
    if path.exists():
        shutil.rmtree(path)
    coll = Collection.create(path, model="none", dim=matrix.shape[1])
    coll.add([""] * len(matrix), vectors=matrix, progress=False)

    def search(qq: np.ndarray) -> None:
        coll.search(Queries([""] * len(qq), vectors={"none": qq}), k, retriever="dense")

    search(queries[:1])
    single = []
    for a in tqdm(range(args.single), desc="Collection.search single"):
        q1 = queries[a : a + 1]
        t = time.perf_counter()
        search(q1)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    search(queries)
    batched = time.perf_counter() - t
    shutil.rmtree(path)
    return single, batched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--nq", type=int, default=1000, help="queries in the batched run")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of the batched run (each side)"
    )
    parser.add_argument("--single", type=int, default=30, help="single queries timed (each side)")
    parser.add_argument(
        "--numpy", action="store_true", help="also time heron's pure-numpy fallback"
    )
    parser.add_argument(
        "--collection",
        action="store_true",
        help="also time Collection.search (retriever='dense') over the same vectors",
    )
    parser.add_argument(
        "--probe-ms", type=float, default=5.0, help="length of the after-call probe task"
    )
    parser.add_argument("--out", type=Path, default=Path("out/exact_search"))
    args = parser.parse_args(argv)

    import faiss
    import numba

    from heron.retrieval.topk import exact_search

    args.out.mkdir(parents=True, exist_ok=True)
    index, matrix = _make_index(args.n, args.d, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    queries = rng.standard_normal((args.nq, args.d), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = args.k

    # compile the numba kernels outside the timed region
    exact_search(queries[:8], matrix[:5000], k)
    exact_search(queries[:1], matrix[:5000], k)
    read_all = _bandwidth_kernel()
    read_all(matrix[:1000])

    # ---- batched: alternate heron and faiss so that load from other processes hits both
    t_heron, t_faiss = [], []
    for _ in tqdm(range(args.reps), desc="batched runs"):
        t = time.perf_counter()
        f_s, f_i = index.search(queries, k)
        t_faiss.append(time.perf_counter() - t)
        t = time.perf_counter()
        h_s, h_i = exact_search(queries, matrix, k)
        t_heron.append(time.perf_counter() - t)
    batched_cmp = _compare(h_i, h_s, f_i, f_s)
    numpy_t = None
    if args.numpy:
        t = time.perf_counter()
        n_s, n_i = exact_search(queries, matrix, k, method="numpy")
        numpy_t = time.perf_counter() - t
        numpy_cmp = _compare(n_i, n_s, f_i, f_s)

    # ---- single query: one query per call, alternating, plus the bandwidth floor
    lat_heron, lat_faiss, lat_floor = [], [], []
    s_i_heron, s_i_faiss, s_s_heron, s_s_faiss = [], [], [], []
    for a in tqdm(range(args.single), desc="single queries"):
        q = queries[a : a + 1]
        lat_floor += _timeit(lambda: read_all(matrix), 1)
        t = time.perf_counter()
        fs, fi = index.search(q, k)
        lat_faiss.append(time.perf_counter() - t)
        t = time.perf_counter()
        hs, hi = exact_search(q, matrix, k)
        lat_heron.append(time.perf_counter() - t)
        s_i_heron.append(hi[0])
        s_i_faiss.append(fi[0])
        s_s_heron.append(hs[0])
        s_s_faiss.append(fs[0])
    # ---- does a call leave a spinning thread behind? a single-threaded probe after each call
    probe_x = np.random.default_rng(3).standard_normal(1 << 16)
    reps_probe = max(
        1, int(args.probe_ms / 1e3 / max(_timeit(lambda: np.sort(probe_x), 5)[-1], 1e-6))
    )

    def probe() -> None:
        for _ in range(reps_probe):
            np.sort(probe_x)

    after_call, after_pause = [], []
    for a in range(min(args.single, 20)):
        exact_search(queries[a : a + 1], matrix, k)
        after_call += _timeit(probe, 1)
        time.sleep(0.05)
        after_pause += _timeit(probe, 1)
    single_cmp = _compare(
        np.array(s_i_heron), np.array(s_s_heron), np.array(s_i_faiss), np.array(s_s_faiss)
    )

    coll_single: list[float] = []
    coll_batched = None
    if args.collection:
        coll_single, coll_batched = _collection_times(matrix, queries, k, args)

    gb = matrix.nbytes / 1e9
    qps_h = args.nq / min(t_heron)
    qps_f = args.nq / min(t_faiss)
    med = statistics.median
    report = {
        "n": args.n,
        "d": args.d,
        "k": k,
        "nq_batched": args.nq,
        "seed": args.seed,
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "threads": {"numba": numba.get_num_threads(), "faiss": faiss.omp_get_max_threads()},
        "numba_threading_layer": numba.threading_layer(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "after_call_probe_ratio": med(after_call) / med(after_pause),
        "batched": {
            "heron_seconds": t_heron,
            "faiss_seconds": t_faiss,
            "heron_qps_best": qps_h,
            "faiss_qps_best": qps_f,
            "ratio_best": qps_h / qps_f,
            "ratio_median": med(t_faiss) / med(t_heron),
            "top_k_vs_faiss": batched_cmp,
        },
        "single": {
            "heron_ms_median": 1e3 * med(lat_heron),
            "faiss_ms_median": 1e3 * med(lat_faiss),
            "floor_ms_median": 1e3 * med(lat_floor),
            "heron_ms_best": 1e3 * min(lat_heron),
            "floor_ms_best": 1e3 * min(lat_floor),
            "matrix_gb": gb,
            "floor_gb_per_s": gb / min(lat_floor),
            "ratio_to_floor_median": med(lat_heron) / med(lat_floor),
            "ratio_to_nominal_61ms": med(lat_heron) / 0.061,
            "ratio_to_faiss_median": med(lat_heron) / med(lat_faiss),
            "top_k_vs_faiss": single_cmp,
        },
    }
    if args.collection:
        report["collection"] = {
            "single_ms_median": 1e3 * med(coll_single),
            "ratio_to_floor_median": med(coll_single) / med(lat_floor),
            "batched_qps": args.nq / coll_batched,
            "batched_ratio_to_faiss_best": (args.nq / coll_batched) / qps_f,
        }
    if numpy_t is not None:
        report["batched"]["numpy_fallback_seconds"] = numpy_t
        report["batched"]["numpy_fallback_qps"] = args.nq / numpy_t
        report["batched"]["numpy_fallback_top_k_vs_faiss"] = numpy_cmp

    (args.out / "exact_search.json").write_text(json.dumps(report, indent=2))
    b, s = report["batched"], report["single"]
    rows = [
        (
            f"batched q/s (best of {args.reps})",
            f"{qps_h:.1f}",
            f"{qps_f:.1f}",
            f"{b['ratio_best']:.2f}x faiss (median {b['ratio_median']:.2f}x); bar >= 1.0x",
        ),
        (
            f"single query ms (median of {args.single})",
            f"{s['heron_ms_median']:.1f}",
            f"{s['faiss_ms_median']:.1f}",
            f"{s['ratio_to_floor_median']:.2f}x floor ({s['floor_ms_median']:.1f} ms, {s['floor_gb_per_s']:.1f} GB/s); {s['ratio_to_nominal_61ms']:.2f}x of 61 ms; bar <= 1.25x",
        ),
        (
            f"identical top-{k}, batched",
            f"{batched_cmp['identical']}/{batched_cmp['queries']}",
            "",
            f"max |score diff| {batched_cmp['max_abs_score_diff']:.1e}",
        ),
        (
            f"identical top-{k}, single",
            f"{single_cmp['identical']}/{single_cmp['queries']}",
            "",
            f"max |score diff| {single_cmp['max_abs_score_diff']:.1e}",
        ),
        (
            "single-thread probe right after a call / after a pause",
            f"{report['after_call_probe_ratio']:.2f}",
            "",
            f"numba layer {report['numba_threading_layer']}, OMP_WAIT_POLICY "
            f"{report['omp_wait_policy']}; ~1.0: no thread left spinning",
        ),
    ]
    if args.collection:
        c = report["collection"]
        rows += [
            (
                f"Collection.search single ms (median of {args.single})",
                f"{c['single_ms_median']:.1f}",
                "",
                f"{c['ratio_to_floor_median']:.2f}x floor; bar <= 1.25x",
            ),
            (
                f"Collection.search batched q/s ({args.nq} queries)",
                f"{c['batched_qps']:.1f}",
                f"{qps_f:.1f}",
                f"{c['batched_ratio_to_faiss_best']:.2f}x faiss; bar >= 1.0x",
            ),
        ]
    if numpy_t is not None:
        rows.append(
            (
                "numpy fallback q/s",
                f"{args.nq / numpy_t:.1f}",
                "",
                f"identical {numpy_cmp['identical']}/{numpy_cmp['queries']}",
            )
        )
    md = [
        f"# Exact dense search: {args.n:,} x {args.d} float32, k={k}, {report['threads']['numba']} threads",
        "",
        "| measure | heron | faiss IndexFlatIP | ratio / note |",
        "|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        f"1-minute load average at the end: {report['load_average_1min_at_end']:.1f} on "
        f"{report['cpu_count']} cores (other processes share the machine; compare ratios).",
        "",
    ]
    (args.out / "exact_search.md").write_text("\n".join(md))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ax[0].bar(["heron", "faiss"], [qps_h, qps_f], color=["C0", "C1"])
        ax[0].set_title(f"batched ({args.nq} queries): queries/s")
        ax[1].bar(
            ["heron", "faiss", "bandwidth floor"],
            [s["heron_ms_median"], s["faiss_ms_median"], s["floor_ms_median"]],
            color=["C0", "C1", "C7"],
        )
        ax[1].set_title("single query: ms (median)")
        fig.tight_layout()
        fig.savefig(args.out / "exact_search.png", dpi=120)
    except ImportError:
        pass
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
