"""``heron bench --multivector DATASET``: late-interaction benchmark on a BEIR dataset.

Compares, in one process on the dataset's cached per-token MiniLM vectors:

* the model's own single vector (exact dense search) — how the un-late-interaction-trained
  token vectors rank against it;
* exact MaxSim over the whole corpus (the oracle all others are judged by);
* MUVERA FDEs at several dimensions (FDE top-``candidates`` then exact MaxSim rerank), and
  fastembed's MUVERA post-processing at the same parameters (same dimension);
* pooled multi-stage search (window / k-means / global-mean pooling, then exact rerank);
* token-code compression (1-byte k-means codes, +residual bits, salience pruning).

Reported per method: nDCG@10, recall of the exact-MaxSim top-10 within the method's candidates
(and within its final top-10), bytes per document, queries/second and speed-up over exact MaxSim
(every method timed one query at a time on the same ``--timing-queries`` queries in the same
process, but not interleaved: ``benchmarks/multivector_latency.py`` interleaves them and is the
reference for the speed bar). Writes ``multivector-DATASET.json``, ``.md`` and ``.png`` to ``--out``.

The parts live in ``heron.cli._bench_mv_*``: scoring helpers (``_scoring``), the MUVERA rows
(``_muvera``), token codes and pruning (``_codes``) and the report (``_report``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from heron.cli._bench_mv_codes import compressed_rows, fit_code_set, one_pass_variants
from heron.cli._bench_mv_muvera import muvera_rows
from heron.cli._bench_mv_report import write_report
from heron.cli._bench_mv_scoring import _recall, _rerank_all, _run_dict, multi_pass

__all__ = [
    "DEFAULT_MUVERA",
    "_recall",
    "_rerank_all",
    "_run_dict",
    "add_arguments",
    "add_options",
    "bench",
    "multi_pass",
    "run",
    "write_report",
]

DEFAULT_MUVERA = ["4,8,20", "5,8,20", "5,16,20", "6,16,20", "5,16,20,2560", "4,8,80,c,w,e"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        nargs="?",
        default="scifact",
        help="BEIR dataset name or folder (default scifact)",
    )
    add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``heron bench --multivector`` and ``heron bench-multivector``."""
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="out", help="report folder (default out/)")
    parser.add_argument(
        "--candidates",
        type=int,
        default=100,
        help="first-stage candidates reranked by exact MaxSim",
    )
    parser.add_argument(
        "--muvera",
        nargs="*",
        default=DEFAULT_MUVERA,
        metavar="K_SIM,D_PROJ,R_REPS[,D_FINAL][,FLAG...]",
        help="MUVERA configurations; flags: c = centre tokens (corpus mean) before SimHash, "
        "e = leave empty partitions empty, s / w = common word pieces dropped from / IDF-weighted "
        "document averages (sq / wq: query sums too); see heron.multivector.muvera.parse_spec",
    )
    parser.add_argument(
        "--fastembed",
        nargs="*",
        default=["5,16,20"],
        metavar="K_SIM,D_PROJ,R_REPS",
        help="configurations also run through fastembed's Muvera (slow: pure Python)",
    )
    parser.add_argument("--pool-vectors", type=int, default=8, help="pooled vectors per document")
    parser.add_argument(
        "--prune", type=float, default=0.5, help="fraction of tokens pruned by salience"
    )
    parser.add_argument(
        "--prune-codes",
        nargs="*",
        default=["token-idf", "idf", "redundancy"],
        choices=["token-idf", "common-pieces", "idf", "redundancy"],
        help="saliences whose pruned tokens are also scored as codes (each adds passes)",
    )
    parser.add_argument(
        "--residual-bits",
        type=int,
        nargs="*",
        default=[1],
        help="scalar residual bits of the coded variants (codes only is always run)",
    )
    parser.add_argument(
        "--residual-pq",
        type=int,
        nargs="*",
        default=[48],
        help="product-quantised residuals: one-byte sub-quantisers per token (48 -> 49 B/token at d=384)",
    )
    parser.add_argument(
        "--timing-queries",
        type=int,
        default=48,
        help="queries each method is timed on (quality uses all queries)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="only the first 60 queries (smoke test)"
    )


def run(args: argparse.Namespace) -> int:
    report = bench(args)
    out = Path(args.out)
    print(f"wrote {out / ('multivector-' + report['dataset'])}.{{json,md,png}}")
    return 0


def bench(args: argparse.Namespace) -> dict:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm.auto import tqdm

    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import cached_token_vectors, dataset_embeddings
    from heron.eval.metrics import evaluate
    from heron.multivector.maxsim import (
        as_token_list,
        exact_maxsim_search,
        maxsim_batch,
        maxsim_rerank_rows,
    )
    from heron.multivector.muvera import parse_spec
    from heron.multivector.pooling import pool_tokens
    from heron.multivector.tokens import token_stats
    from heron.retrieval.topk import exact_search, merge_topk, topk_rows

    for cfg in args.muvera:  # bad specs fail before any heavy work
        parse_spec(cfg)
    ds = load_beir(args.dataset)
    enc = load_encoder()
    data = cached_token_vectors(ds, enc, split=args.split)
    dense = dataset_embeddings(ds, enc, split=args.split)
    docs = data["docs"]
    ids, qids, qrels = data["doc_ids"], list(data["query_ids"]), data["qrels"]
    qt = as_token_list(data["query_tokens"])
    qemb = np.asarray(dense["query_emb"], np.float32)
    if args.quick:
        qids, qt, qemb = qids[:60], qt[:60], qemb[:60]
        qrels = {q: qrels[q] for q in qids}
    nq = len(qids)
    tq = min(args.timing_queries, nq)
    qt_t = qt[:tq]
    K = args.candidates
    stats = token_stats(docs)
    f16_bytes = stats["mean_tokens"] * docs.dim * 2
    rows: list[dict] = []

    def ev(rws: np.ndarray, scs: np.ndarray) -> float:
        return evaluate(qrels, _run_dict(ids, qids, rws, scs), ["nDCG@10"])["nDCG@10"]

    def add(
        method: str, family: str, ndcg: float, seconds: float | None, bytes_doc: float, **extra: Any
    ) -> dict:
        row = {
            "method": method,
            "family": family,
            "nDCG@10": round(ndcg, 4),
            "bytes_per_doc": round(bytes_doc, 1),
            "qps": None if not seconds else round(tq / seconds, 2),
            **extra,
        }
        rows.append(row)
        tqdm.write(json.dumps(row))
        return row

    # -- codes, pruning masks (needed by the one-pass scorer) -------------------------------------
    cs = fit_code_set(args, ds, enc, docs)
    variants = one_pass_variants(args, cs)
    full = multi_pass(qt, docs, variants)
    ex = full["exact"]
    if docs.deleted.any():
        for m in full.values():
            m[:, docs.deleted] = -np.inf

    # -- single vector --------------------------------------------------------------------------
    t = time.perf_counter()
    s, r = exact_search(qemb, np.asarray(dense["doc_emb"], np.float32), 100)
    add("MiniLM single vector (exact dense)", "single-vector", ev(r, s), None, docs.dim * 4)

    # -- exact MaxSim oracle: quality from the one-pass matrix, speed timed on tq queries ---------
    ex_s, ex_r = topk_rows(ex, 100)
    # timed one query at a time (serving latency), like the rerank paths below; with numba both
    # use the same fused kernel (float16 tokens read in place), so neither side is handicapped
    t = time.perf_counter()
    chk = [exact_maxsim_search([q], docs, 100) for q in qt_t]
    t_exact = time.perf_counter() - t
    chk_s = np.concatenate([c[0] for c in chk])
    chk_r = np.concatenate([c[1] for c in chk])
    assert np.array_equal(chk_r[:, :10], ex_r[:tq, :10]) or np.allclose(
        chk_s[:, :10], ex_s[:tq, :10], atol=1e-3
    )
    exact_top10 = ex_r[:, :10]
    add(
        "exact MaxSim (float16 tokens, whole corpus)",
        "exact",
        ev(ex_r, ex_s),
        t_exact,
        f16_bytes,
        speedup=1.0,
        recall_top10_in_candidates=1.0,
        recall_top10_at10=1.0,
    )

    def rerank_from_matrix(cand_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sc = np.where(cand_r >= 0, np.take_along_axis(ex, np.maximum(cand_r, 0), axis=1), -np.inf)
        return merge_topk(sc, cand_r, cand_r.shape[1])

    def staged(method: str, family: str, first: Any, bytes_doc: float, **extra: Any) -> None:
        """Report the first stage alone and first stage + exact rerank of the top-K.

        ``first(queries) -> (scores, rows)``: run on all queries for quality, timed on ``tq``.
        """
        cand_s, cand_r = first(qt)
        rec_c = _recall(exact_top10, cand_r[:, :K])
        t0 = time.perf_counter()
        r_t = np.concatenate([first([q])[1] for q in qt_t])  # one query at a time, like exact
        t_first = time.perf_counter() - t0
        add(
            method + " (first stage only)",
            family,
            ev(cand_r, cand_s),
            t_first,
            bytes_doc,
            recall_top10_in_candidates=round(rec_c, 4),
            recall_top10_at10=round(_recall(exact_top10, cand_r[:, :10]), 4),
            speedup=round(t_exact / t_first, 2),
            **extra,
        )
        t0 = time.perf_counter()
        for i, q in enumerate(qt_t):  # the real rerank path, timed
            maxsim_rerank_rows(q, docs, r_t[i, :K])
        t_total = t_first + time.perf_counter() - t0
        rs, rr = rerank_from_matrix(cand_r[:, :K])
        add(
            method + f" + exact rerank of top-{K}",
            family,
            ev(rr, rs),
            t_total,
            bytes_doc,
            recall_top10_in_candidates=round(rec_c, 4),
            recall_top10_at10=round(_recall(exact_top10, rr[:, :10]), 4),
            speedup=round(t_exact / t_total, 2),
            **extra,
        )

    # -- MUVERA ---------------------------------------------------------------------------------
    muvera_rows(args, ds, enc, data, docs, qt, staged)

    # -- pooled multi-stage ---------------------------------------------------------------------
    for method, nv in (("window", args.pool_vectors), ("kmeans", args.pool_vectors), ("mean", 1)):
        t0 = time.perf_counter()
        pooled = pool_tokens(docs, method=method, n_vectors=nv)
        b = time.perf_counter() - t0
        mean_vec = float(pooled.lengths().mean())
        staged(
            f"pooled {method} (<= {nv} vectors/doc, mean {mean_vec:.1f})",
            "pooled",
            lambda q, p=pooled: topk_rows(maxsim_batch(q, p.values, p.offsets), 100),
            mean_vec * docs.dim * 2,
            vectors_per_doc=round(mean_vec, 2),
            build_seconds=round(b, 1),
        )
        del pooled

    # -- token codes and pruning (quality from the one pass; speed timed on tq queries) ----------
    def compressed(
        label: str, family: str, name: str, bytes_doc: float, timer: Any = None, **extra: Any
    ) -> None:
        s_, r_ = topk_rows(full[name], 100)
        sec = None
        if timer is not None:
            t0 = time.perf_counter()
            timer()
            sec = time.perf_counter() - t0
        add(
            label,
            family,
            ev(r_, s_),
            sec,
            bytes_doc,
            recall_top10_at10=round(_recall(exact_top10, r_[:, :10]), 4),
            recall_top10_in_candidates=round(_recall(exact_top10, r_), 4),
            speedup=None if sec is None else round(t_exact / sec, 2),
            storage_ratio_vs_float16=round(f16_bytes / bytes_doc, 1),
            **extra,
        )

    compressed_rows(args, cs, docs, qt_t, compressed)

    report = {
        "dataset": ds.name,
        "split": args.split,
        "queries": nq,
        "timing_queries": tq,
        "documents": len(docs),
        "token_stats": stats,
        "float16_bytes_per_doc": round(f16_bytes, 1),
        "candidates": K,
        "exact_maxsim_seconds_timing_queries": round(t_exact, 3),
        "rows": rows,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    write_report(report, Path(args.out))
    return report
