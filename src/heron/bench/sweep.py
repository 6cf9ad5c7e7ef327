"""Sweep codecs x rescoring settings on a BEIR dataset's cached embeddings.

For each configuration (codec spec, oversample) it measures nDCG@10, Recall@100, recall@10 of the
float32-exact top-10, bytes per vector, in-memory index bytes, queries/second (batched),
single-query latency and fit time. Rescoring reads a float16 (or float32) copy of the vectors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from heron.codecs import parse_spec
from heron.codecs.distill_pq import DistilledPQCodec
from heron.codecs.search import TwoStageSearcher, rescore_rows
from heron.retrieval.topk import topk_rows

DEFAULT_CODECS = (
    "fp32",
    "fp16",
    "bf16",
    "fp8",
    "fp8e5m2",
    "int8",
    "int4",
    "bin",
    "bin-ham",
    "rbin2",
    "rbin2-sym",
    "rbin3",
    "pca192+fp16",
    "pca192+fp8",
    "pca192+int8",
    "pca96+fp8",
    "mrl192+fp16",
    "srp192+fp16",
    "pq48",
    "opq48",
    "dpq48",
    "dopq48",
    "pq24",
    "opq24",
    "dpq24",
    "dopq24",
)
DEFAULT_OVERSAMPLES = (0, 2, 4, 5, 10)


def _exact(q: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    rows = np.empty((len(q), min(k, len(x))), dtype=np.int64)
    for s in range(0, len(q), 256):
        rows[s : s + 256] = topk_rows(q[s : s + 256] @ x.T, k)[1][:, : rows.shape[1]]
    return rows


def _recall(rows: np.ndarray, gt: np.ndarray) -> float:
    k = gt.shape[1]
    return float(
        np.mean([len(set(r[:k].tolist()) & set(g.tolist())) / k for r, g in zip(rows, gt)])
    )


def run_sweep(
    doc_emb: np.ndarray,
    query_emb: np.ndarray,
    *,
    codecs: Sequence[str] = DEFAULT_CODECS,
    oversamples: Sequence[float] = DEFAULT_OVERSAMPLES,
    rescore_dtype: str = "float16",
    evaluate=None,
    n_latency: int = 20,
    progress: bool = True,
    train_queries: np.ndarray | None = None,
) -> list[dict]:
    """Measure every ``codec x oversample`` configuration.

    Parameters
    ----------
    doc_emb: ``(n, d)`` corpus vectors (float32).
    query_emb: ``(nq, d)`` query vectors.
    codecs: codec specs (see :mod:`heron.codecs.spec`).
    oversamples: rescoring factors; ``0`` = first stage only (no rescoring).
    rescore_dtype: the finer copy used for rescoring, ``"float16"`` or ``"float32"``.
    evaluate: optional ``fn(rows (nq, k)) -> {"nDCG@10": .., "R@100": ..}`` over row numbers.
    n_latency: queries timed one at a time for the single-query latency.
    train_queries: optional ``(nt, d)`` unlabelled training queries (e.g. the dataset's ``train``
        split; never the evaluated queries) for the codecs trained against a query distribution
        (``dpq`` / ``dopq``); others ignore them.

    Returns
    -------
    One dict per configuration (JSON-serialisable).
    """
    from tqdm.auto import tqdm

    x = np.ascontiguousarray(doc_emb, dtype=np.float32)
    q = np.ascontiguousarray(query_emb, dtype=np.float32)
    n = len(x)
    gt10 = _exact(q, x, 10)
    rescore = x.astype(rescore_dtype)
    base_eval = evaluate(_exact(q, x, 100)) if evaluate else {}
    rows: list[dict] = []
    for spec in tqdm(list(codecs), desc="codecs", disable=not progress):
        codec = parse_spec(spec)
        t0 = time.perf_counter()
        if train_queries is not None and isinstance(codec, DistilledPQCodec):
            codec.fit(x, queries=train_queries)
        else:
            codec.fit(x)
        fit_s = time.perf_counter() - t0
        codes = codec.encode(x)
        searcher = TwoStageSearcher(codec, codes, rescore=rescore)
        depth = int(min(n, max(100, max(oversamples) * 100)))
        first = searcher.first_stage(q, depth)[1]
        for os_ in oversamples:
            if os_ == 0:
                r10, r100 = first[:, :10], first[:, :100]
            else:
                r10 = rescore_rows(q, first[:, : min(depth, int(np.ceil(os_ * 10)))], rescore, 10)[
                    1
                ]
                r100 = rescore_rows(
                    q, first[:, : min(depth, int(np.ceil(os_ * 100)))], rescore, 100
                )[1]
            t0 = time.perf_counter()
            searcher.search(q, 10, oversample=os_)
            batched_s = time.perf_counter() - t0
            lat = []
            for i in range(min(n_latency, len(q))):
                t0 = time.perf_counter()
                searcher.search(q[i : i + 1], 10, oversample=os_)
                lat.append(time.perf_counter() - t0)
            row = {
                "codec": spec,
                "oversample": os_,
                "rescore": rescore_dtype if os_ else "none",
                "recall10_exact": _recall(r10, gt10),
                "bytes_per_vector": float(codec.bytes_per_vector),
                "compression": 4.0 * x.shape[1] / float(codec.bytes_per_vector),
                "memory_bytes": int(n * codec.bytes_per_vector + codec.state_bytes()),
                "state_bytes": int(codec.state_bytes()),
                "qps": len(q) / batched_s,
                "latency_ms": 1000 * float(np.median(lat)) if lat else float("nan"),
                "fit_s": fit_s,
                "n_docs": n,
                "n_queries": len(q),
            }
            if evaluate:
                m10 = evaluate(np.concatenate([r10, np.full((len(r10), 90), -1)], axis=1))
                m100 = evaluate(r100)
                row["ndcg10"] = m10["nDCG@10"]
                row["recall100"] = m100["R@100"]
                row["ndcg10_retention"] = (
                    m10["nDCG@10"] / base_eval["nDCG@10"]
                    if base_eval.get("nDCG@10")
                    else float("nan")
                )
            rows.append(row)
    return rows


def beir_evaluator(doc_ids: Sequence[str], query_ids: Sequence[str], qrels: dict):
    """``fn(rows) -> {"nDCG@10", "R@100"}`` for row numbers into ``doc_ids`` (ir-measures)."""
    from heron.eval.metrics import evaluate

    ids = np.asarray(doc_ids, dtype=object)

    def fn(rows: np.ndarray) -> dict[str, float]:
        run = {}
        for qid, r in zip(query_ids, rows):
            r = r[r >= 0]
            run[str(qid)] = {str(d): float(len(r) - j) for j, d in enumerate(ids[r])}
        return evaluate(qrels, run, ("nDCG@10", "R@100"))

    return fn


def write_report(
    rows: list[dict], out: str, *, title: str, meta: dict | None = None
) -> dict[str, str]:
    """Write ``report.json``, ``report.csv``, ``report.md`` and ``pareto.png`` into ``out``."""
    import csv
    import json
    from pathlib import Path

    from heron.bench.pareto import pareto_front

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    front = set(pareto_front(rows))
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    (folder / "report.json").write_text(
        json.dumps({"title": title, "meta": meta or {}, "rows": rows}, indent=1)
    )
    cols = (["label", "index"] if any("index" in r for r in rows) else []) + [
        "codec",
        "oversample",
        "rescore",
        "recall10_exact",
        "ndcg10",
        "ndcg10_retention",
        "recall100",
        "bytes_per_vector",
        "compression",
        "memory_bytes",
        "qps",
        "latency_ms",
        "fit_s",
        "pareto",
    ]
    with open(folder / "report.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(
                f"{v:.4f}"
                if isinstance(v, float)
                and c in ("recall10_exact", "ndcg10", "ndcg10_retention", "recall100")
                else f"{v:.1f}"
                if isinstance(v, float)
                else str(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    paths = {
        "json": str(folder / "report.json"),
        "csv": str(folder / "report.csv"),
        "md": str(folder / "report.md"),
    }
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - optional
        return paths
    fig, ax = plt.subplots(figsize=(9, 6))
    bpv = np.array([r["bytes_per_vector"] for r in rows])
    qual = np.array([r["recall10_exact"] for r in rows])
    ax.scatter(bpv, qual, s=14, c="0.6", label="configurations")
    fr = sorted(front, key=lambda i: rows[i]["memory_bytes"])
    ax.plot(bpv[fr], qual[fr], "o-", color="C3", label="Pareto frontier")
    for i in fr:
        r = rows[i]
        ax.annotate(
            r.get("label") or f"{r['codec']} x{r['oversample']}",
            (bpv[i], qual[i]),
            fontsize=7,
            xytext=(3, -8),
            textcoords="offset points",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector in memory (log)")
    ax.set_ylabel("recall@10 of the float32-exact top-10")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "pareto.png", dpi=120)
    plt.close(fig)
    paths["png"] = str(folder / "pareto.png")
    return paths
