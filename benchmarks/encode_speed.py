"""Encoding throughput and quality by backend and precision, side by side in one run.

Configurations (all through :class:`heron.encoders.dense.SentenceTransformerEncoder`, the bundled
all-MiniLM-L6-v2, the same batch size and ``--threads`` threads each; texts batched by token
length):

* ``torch/float32``     — the exact reference path;
* ``torch/bfloat16``    — weights and activations in bfloat16 (AVX512_BF16 / AMX);
* ``onnx/float32``      — ONNX Runtime, fused graph;
* ``onnx/int8``         — ONNX Runtime, unfused graph dynamically quantised to int8 (VNNI);
* ``openvino/float32``, ``openvino/bfloat16`` — OpenVINO, when ``openvino`` is installed.

Speed: the first ``--n`` passages of ``--dataset`` (title + text, corpus order) are cut into
``--slices`` slices and the configurations run round-robin on each slice (rotating which goes
first), so a shared machine's load falls on all of them alike; seconds are summed per
configuration and the 1-minute load average is sampled after every timed call. Quality on the
sample: min / mean cosine of each configuration's vectors to ``torch/float32``'s.

``--ndcg scifact,nfcorpus`` also encodes each whole corpus and its test queries with each of
``--ndcg-configs`` (timed: passages/s over all passages, with the load before and after) and
reports nDCG@10 of exact cosine search.

Usage::

    HERON_CACHE=.cache/heron python benchmarks/encode_speed.py --n 512 --threads 2 \\
        --ndcg scifact,nfcorpus --out out/encode_speed
    # whole corpus, two configurations interleaved in 16 slices
    python benchmarks/encode_speed.py --n 0 --slices 16 --configs torch/bfloat16 --out out/encode_all
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

CONFIGS = (
    ("torch", "float32"),
    ("torch", "bfloat16"),
    ("onnx", "float32"),
    ("onnx", "int8"),
    ("openvino", "float32"),
    ("openvino", "bfloat16"),
)


def _load() -> float:
    return float(os.getloadavg()[0])


def build(threads: int, batch_size: int, only: list[str] | None = None) -> tuple[dict, dict]:
    """Encoders of every available configuration (or of ``only``), and the seconds each took."""
    from heron._deps import has
    from heron.encoders.dense import SentenceTransformerEncoder

    encoders, setup = {}, {}
    for backend, precision in CONFIGS:
        if only is not None and f"{backend}/{precision}" not in only:
            continue
        if backend == "openvino" and not has("openvino"):
            continue
        if backend == "onnx" and not (has("onnxruntime") and has("onnx")):
            continue
        t = time.perf_counter()
        encoders[f"{backend}/{precision}"] = SentenceTransformerEncoder(
            backend=backend, precision=precision, threads=threads, batch_size=batch_size
        )
        setup[f"{backend}/{precision}"] = time.perf_counter() - t
    return encoders, setup


def speed(encoders: dict, sample: list[str], slices: int) -> dict:
    """Round-robin timing over slices of ``sample``; vectors, seconds and load per configuration."""
    from tqdm import tqdm

    names = list(encoders)
    for name in names:  # warm up every path outside the timed region
        encoders[name].encode_documents(sample[:8])
    seconds = dict.fromkeys(names, 0.0)
    loads: dict[str, list[float]] = {k: [] for k in names}
    vectors: dict[str, list[np.ndarray]] = {k: [] for k in names}
    parts = np.array_split(np.arange(len(sample)), slices)
    for j, idx in enumerate(tqdm(parts, desc=f"slices ({len(names)} configurations each)")):
        texts = [sample[i] for i in idx]
        r = j % len(names)
        for name in names[r:] + names[:r]:
            t = time.perf_counter()
            vectors[name].append(encoders[name].encode_documents(texts))
            seconds[name] += time.perf_counter() - t
            loads[name].append(_load())
    ref = np.concatenate(vectors["torch/float32"])
    out = {}
    for name in names:
        cos = (np.concatenate(vectors[name]) * ref).sum(axis=1)
        out[name] = {
            "passages_per_second": len(sample) / seconds[name],
            "seconds": seconds[name],
            "mean_load_1min": float(np.mean(loads[name])),
            "cosine_to_float32_min": float(cos.min()),
            "cosine_to_float32_mean": float(cos.mean()),
        }
    return out


def ndcg(dataset: str, encoders: dict, names: list[str]) -> dict:
    """Encode ``dataset``'s corpus and test queries with each configuration; nDCG@10 of exact search."""
    from heron.eval import load_beir
    from heron.eval.metrics import evaluate

    ds = load_beir(dataset)
    docs = ds.documents()
    qids, qtexts, qrels = ds.split("test")
    out = {}
    ref = None
    for name in names:
        enc = encoders[name]
        load_before = _load()
        t = time.perf_counter()
        d = enc.encode_documents(docs, progress=True)
        seconds = time.perf_counter() - t
        load_after = _load()
        q = enc.encode_queries(qtexts)
        scores = q @ d.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        run = {
            qid: {ds.doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(qids)
        }
        cos = None if ref is None else (d * ref).sum(axis=1)
        if name == "torch/float32":
            ref = d
        out[name] = {
            "nDCG@10": evaluate(qrels, run, ("nDCG@10",))["nDCG@10"],
            "corpus_passages": len(docs),
            "corpus_seconds": seconds,
            "corpus_passages_per_second": len(docs) / seconds,
            "load_1min_before_after": [load_before, load_after],
            "doc_cosine_to_float32_min": None if cos is None else float(cos.min()),
        }
        print(f"{dataset} {name}: {out[name]}", flush=True)
    return out


def splade(dataset: str, threads: int, slices: int) -> dict:
    """SPLADE (bundled splade-tiny) float32 vs bfloat16 on ``dataset``: the corpus encoded in
    ``slices`` interleaved slices, test queries, nDCG@10 of exact sparse dot-product search."""
    import scipy.sparse as sp

    from heron.encoders.splade import SpladeEncoder
    from heron.eval import load_beir
    from heron.eval.metrics import evaluate

    ds = load_beir(dataset)
    docs = ds.documents()
    qids, qtexts, qrels = ds.split("test")
    encs = {p: SpladeEncoder(precision=p) for p in ("float32", "bfloat16")}
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds = dict.fromkeys(encs, 0.0)
    loads: dict[str, list[float]] = {p: [] for p in encs}
    parts: dict[str, list] = {p: [] for p in encs}
    try:
        for j, idx in enumerate(np.array_split(np.arange(len(docs)), slices)):
            for p in list(encs) if j % 2 == 0 else list(encs)[::-1]:
                t = time.perf_counter()
                parts[p].append(encs[p].encode_documents([docs[i] for i in idx]))
                seconds[p] += time.perf_counter() - t
                loads[p].append(_load())
        out = {}
        for p, enc in encs.items():
            d = sp.vstack(parts[p]).tocsr()
            scores = (enc.encode_queries(qtexts) @ d.T).toarray()
            top = np.argsort(-scores, axis=1)[:, :10]
            run = {
                qid: {ds.doc_ids[j]: float(scores[i, j]) for j in top[i]}
                for i, qid in enumerate(qids)
            }
            out[p] = {
                "nDCG@10": evaluate(qrels, run, ("nDCG@10",))["nDCG@10"],
                "passages_per_second": len(docs) / seconds[p],
                "nnz_per_doc": d.nnz / d.shape[0],
                "mean_load_1min": float(np.mean(loads[p])),
            }
    finally:
        torch.set_num_threads(previous)
    return out


def collection_add(sample: list[str], exact: object, threads: int) -> dict:
    """Seconds of ``Collection.add(sample)`` into a new collection with the default encoder (what
    ``heron index`` runs) and with ``exact`` (torch/float32), interleaved twice each."""
    import tempfile

    from heron.collection import Collection
    from heron.encoders import load_encoder

    default = load_encoder(threads=threads)
    seconds = {"default": 0.0, "torch/float32": 0.0}
    loads: dict[str, list[float]] = {k: [] for k in seconds}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(2):
            for name in list(seconds) if r == 0 else list(seconds)[::-1]:
                enc = default if name == "default" else exact
                with Collection.create(
                    Path(tmp) / f"{name.replace('/', '-')}{r}", encoder=enc
                ) as c:
                    t = time.perf_counter()
                    c.add(sample)
                    seconds[name] += time.perf_counter() - t
                loads[name].append(_load())
    pps = {k: 2 * len(sample) / v for k, v in seconds.items()}
    return {
        "default_encoder": f"{default.backend}/{default.precision}",
        "passages_per_second": pps,
        "speedup": pps["default"] / pps["torch/float32"],
        "mean_load_1min": {k: float(np.mean(v)) for k, v in loads.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument(
        "--n", type=int, default=512, help="first N passages of the corpus (0: all of them)"
    )
    parser.add_argument(
        "--configs",
        default="all",
        help="comma-separated configurations to build (default: all available; "
        "torch/float32, the reference, is always built)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--ndcg", default="", help="comma-separated datasets for nDCG@10")
    parser.add_argument(
        "--ndcg-configs",
        default="all",
        help="comma-separated configurations for --ndcg (default: all available); "
        "torch/float32 always runs first, as the reference",
    )
    parser.add_argument(
        "--collection",
        action="store_true",
        help="also time Collection.add of the sample: the default encoder vs torch/float32",
    )
    parser.add_argument(
        "--splade", default="", help="dataset for SPLADE float32 vs bfloat16 (nDCG@10, speed)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/encode_speed"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from heron.encoders.precision import cpu_flags, resolve_precision
    from heron.eval import load_beir

    args.out.mkdir(parents=True, exist_ok=True)
    sample = load_beir(args.dataset).documents()[: args.n or None]
    only = None if args.configs == "all" else ["torch/float32", *args.configs.split(",")]
    known = [f"{b}/{p}" for b, p in CONFIGS]
    if only is not None and (bad := [c for c in only if c not in known]):
        raise SystemExit(f"unknown --configs {bad}; known: {known}")
    encoders, setup = build(args.threads, args.batch_size, only)
    from heron.encoders.dense import _auto_backend

    backend = _auto_backend("auto", "cpu")  # what load_encoder() runs
    auto = f"{backend}/{resolve_precision('auto', backend=backend)}"
    load_start = _load()
    results = speed(encoders, sample, args.slices)
    base = results["torch/float32"]["passages_per_second"]
    for r in results.values():
        r["speedup_vs_torch_float32"] = r["passages_per_second"] / base
    report = {
        "dataset": args.dataset,
        "sample": f"first {len(sample)} passages" if args.n else f"all {len(sample)} passages",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "cpu_bf16_flags": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16", "avx512_vnni"}),
        "default_path": auto,
        "setup_seconds": setup,
        "load_1min_start_end": [load_start, _load()],
        "speed": results,
        "ndcg": {},
    }
    if args.splade:
        report["splade"] = {args.splade: splade(args.splade, args.threads, args.slices)}
    if args.collection:
        report["collection_add"] = collection_add(sample, encoders["torch/float32"], args.threads)
    if args.ndcg:
        wanted = list(encoders) if args.ndcg_configs == "all" else args.ndcg_configs.split(",")
        bad = [w for w in wanted if w not in encoders]
        if bad:
            raise SystemExit(f"unknown --ndcg-configs {bad}; available: {list(encoders)}")
        names = ["torch/float32"] + [w for w in wanted if w != "torch/float32"]
        for ds in args.ndcg.split(","):
            report["ndcg"][ds] = ndcg(ds, encoders, names)
            (args.out / "encode_speed.json").write_text(json.dumps(report, indent=2))
    (args.out / "encode_speed.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (args.out / "encode_speed.md").write_text(md)
    print(md)
    return 0


def markdown(report: dict) -> str:
    """The report as markdown tables."""
    lines = [
        f"# Encoding: {report['sample']} of {report['dataset']}, batch {report['batch_size']}, "
        f"{report['threads']} threads (default path: {report['default_path']})",
        "",
        "| configuration | passages/s | × torch/float32 | cosine to float32 min / mean | load (1 min) |",
        "|---|---|---|---|---|",
    ]
    for name, r in report["speed"].items():
        lines.append(
            f"| {name} | {r['passages_per_second']:.1f} | {r['speedup_vs_torch_float32']:.2f} | "
            f"{r['cosine_to_float32_min']:.5f} / {r['cosine_to_float32_mean']:.5f} | "
            f"{r['mean_load_1min']:.2f} |"
        )
    if "collection_add" in report:
        c = report["collection_add"]
        lines += [
            "",
            f"Collection.add of the sample: default encoder ({c['default_encoder']}) "
            f"{c['passages_per_second']['default']:.1f} passages/s vs torch/float32 "
            f"{c['passages_per_second']['torch/float32']:.1f} = **{c['speedup']:.2f}×** "
            f"(load {c['mean_load_1min']['default']:.2f} / {c['mean_load_1min']['torch/float32']:.2f})",
        ]
    for ds, rows in report.get("splade", {}).items():
        lines += [
            "",
            f"## SPLADE (splade-tiny) on {ds}: whole corpus, interleaved slices",
            "",
            "| precision | nDCG@10 | passages/s | nnz/doc | load (1 min) |",
            "|---|---|---|---|---|",
            *[
                f"| {p} | {r['nDCG@10']:.4f} | {r['passages_per_second']:.1f} | "
                f"{r['nnz_per_doc']:.1f} | {r['mean_load_1min']:.2f} |"
                for p, r in rows.items()
            ],
        ]
    for ds, rows in report["ndcg"].items():
        base = rows["torch/float32"]
        lines += [
            "",
            f"## {ds}: whole corpus ({base['corpus_passages']} passages), test queries",
            "",
            "| configuration | nDCG@10 | Δ vs float32 | corpus passages/s | × float32 | load before → after |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            lines.append(
                f"| {name} | {r['nDCG@10']:.4f} | {r['nDCG@10'] - base['nDCG@10']:+.4f} | "
                f"{r['corpus_passages_per_second']:.1f} | "
                f"{r['corpus_passages_per_second'] / base['corpus_passages_per_second']:.2f} | "
                f"{r['load_1min_before_after'][0]:.2f} → {r['load_1min_before_after'][1]:.2f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
