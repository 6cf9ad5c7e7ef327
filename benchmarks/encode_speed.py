"""Encoding throughput on SciFact passages: PyTorch (sentence-transformers) vs ONNX Runtime.

Same process, same fixed sample (``--n`` passages drawn with ``--seed`` from the corpus, title +
text), same model (the bundled all-MiniLM-L6-v2), same batch size and threads. Four
configurations, each with and without length-sorted batching:

* ``torch/sorted``   — ``SentenceTransformer.encode`` on the whole sample (it sorts texts by
  character length before batching, always);
* ``torch/unsorted`` — the same, one call per batch in corpus order (no sorting across batches);
* ``onnx/sorted``    — :class:`heron.encoders.onnx.OnnxRuntimeEncoder`, batches by token length;
* ``onnx/unsorted``  — the same in corpus order.

To be fair on a shared machine the sample is cut into ``--slices`` slices and the four
configurations run round-robin on each slice (rotating which goes first); times are summed per
configuration (sorting then acts within a slice). Also checks that ONNX vectors equal PyTorch's
(max abs difference after L2 normalisation).

Usage::

    python benchmarks/encode_speed.py --n 1000 --out out/encode_speed
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--n", type=int, default=1000, help="passages in the fixed sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("out/encode_speed"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from heron.encoders.dense import SentenceTransformerEncoder
    from heron.eval import load_beir

    args.out.mkdir(parents=True, exist_ok=True)
    docs = load_beir(args.dataset).documents()
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(docs), size=min(args.n, len(docs)), replace=False))
    sample = [docs[i] for i in pick]

    enc_torch = SentenceTransformerEncoder(backend="torch", batch_size=args.batch_size)
    t = time.perf_counter()
    enc_onnx = SentenceTransformerEncoder(backend="onnx", batch_size=args.batch_size)
    onnx_setup = time.perf_counter() - t
    st, ort_enc = enc_torch._model, enc_onnx._onnx
    tok = st.tokenizer
    n_tokens = np.array(
        [len(x) for x in tok(sample, truncation=True, max_length=st.max_seq_length)["input_ids"]]
    )
    bs = args.batch_size

    def torch_sorted(texts):
        return st.encode(texts, batch_size=bs, normalize_embeddings=False, convert_to_numpy=True)

    def torch_unsorted(texts):
        return np.concatenate([torch_sorted(texts[i : i + bs]) for i in range(0, len(texts), bs)])

    def onnx_sorted(texts):
        return ort_enc.encode(
            texts, batch_size=bs, max_length=st.max_seq_length, sort_by_length=True
        )

    def onnx_unsorted(texts):
        return ort_enc.encode(
            texts, batch_size=bs, max_length=st.max_seq_length, sort_by_length=False
        )

    configs = {
        "torch/sorted": torch_sorted,
        "torch/unsorted": torch_unsorted,
        "onnx/sorted": onnx_sorted,
        "onnx/unsorted": onnx_unsorted,
    }
    names = list(configs)
    onnx_sorted(sample[:8])  # warm up both paths outside the timed region
    torch_sorted(sample[:8])
    seconds = dict.fromkeys(names, 0.0)
    vectors: dict[str, list[np.ndarray]] = {k: [] for k in names}
    load_before = os.getloadavg()
    slices = np.array_split(np.arange(len(sample)), args.slices)
    for j, idx in enumerate(tqdm(slices, desc="slices (4 configurations each)")):
        texts = [sample[i] for i in idx]
        for name in names[j % 4 :] + names[: j % 4]:
            t = time.perf_counter()
            vectors[name].append(np.asarray(configs[name](texts), dtype=np.float32))
            seconds[name] += time.perf_counter() - t
    load_after = os.getloadavg()

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    ref = unit(np.concatenate(vectors["torch/sorted"]))
    diffs = {k: float(np.max(np.abs(unit(np.concatenate(v)) - ref))) for k, v in vectors.items()}
    pps = {k: len(sample) / s for k, s in seconds.items()}
    report = {
        "dataset": args.dataset,
        "sample_size": len(sample),
        "sample_seed": args.seed,
        "tokens_per_passage": {
            "mean": float(n_tokens.mean()),
            "truncated_fraction": float((n_tokens >= st.max_seq_length).mean()),
        },
        "batch_size": bs,
        "threads": {
            "torch": torch.get_num_threads(),
            "onnxruntime": ort_enc._session.get_session_options().intra_op_num_threads,
        },
        "onnx_setup_seconds": onnx_setup,
        "onnx_fused_operators": json.loads(
            (ort_enc.onnx_path.parent / "manifest.json").read_text()
        ).get("fused_operators"),
        "load_average_before_after": [load_before[0], load_after[0]],
        "seconds": seconds,
        "passages_per_second": pps,
        "max_abs_diff_vs_torch_after_normalisation": diffs,
        "onnx_over_torch_sorted": pps["onnx/sorted"] / pps["torch/sorted"],
        "onnx_over_torch_unsorted": pps["onnx/unsorted"] / pps["torch/unsorted"],
        "sorting_gain_torch": pps["torch/sorted"] / pps["torch/unsorted"],
        "sorting_gain_onnx": pps["onnx/sorted"] / pps["onnx/unsorted"],
    }
    (args.out / "encode_speed.json").write_text(json.dumps(report, indent=2))
    md = [
        f"# Encoding throughput: {len(sample)} {args.dataset} passages (seed {args.seed}), batch {bs}, "
        f"torch {report['threads']['torch']} / ORT {report['threads']['onnxruntime']} threads",
        "",
        "| configuration | passages/s | seconds | max abs diff vs torch (normalised) |",
        "|---|---|---|---|",
        *[f"| {k} | {pps[k]:.1f} | {seconds[k]:.1f} | {diffs[k]:.1e} |" for k in names],
        "",
        f"ONNX / torch: {report['onnx_over_torch_sorted']:.2f}x (sorted), {report['onnx_over_torch_unsorted']:.2f}x (unsorted); "
        f"sorting gain: torch {report['sorting_gain_torch']:.2f}x, ONNX {report['sorting_gain_onnx']:.2f}x. "
        f"Load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores.",
        "",
    ]
    (args.out / "encode_speed.md").write_text("\n".join(md))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(names, [pps[k] for k in names], color=["C1", "C1", "C0", "C0"])
        ax.set_ylabel("passages / s")
        ax.set_title(f"{args.dataset}: {len(sample)} passages, all-MiniLM-L6-v2")
        fig.tight_layout()
        fig.savefig(args.out / "encode_speed.png", dpi=120)
    except ImportError:
        pass
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
