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


# ---------------------------------------------------------------------------------------------
def _run_dict(ids: list[str], qids: list[str], rows: np.ndarray, scores: np.ndarray) -> dict:
    run: dict[str, dict[str, float]] = {}
    for q, r, s in zip(qids, rows, scores):
        run[q] = {ids[int(i)]: float(v) for i, v in zip(r, s) if i >= 0 and np.isfinite(v)}
    return run


def _recall(exact_top: np.ndarray, rows: np.ndarray) -> float:
    hits = [
        len(set(e[e >= 0].tolist()) & set(r[r >= 0].tolist())) / max(1, int((e >= 0).sum()))
        for e, r in zip(exact_top, rows)
    ]
    return float(np.mean(hits))


def _rerank_all(
    qt: list[np.ndarray], docs: Any, cand_rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    from heron.multivector.maxsim import maxsim_rerank_rows
    from heron.retrieval.topk import merge_topk

    out_s = np.full((len(qt), k), -np.inf, np.float32)
    out_r = np.full((len(qt), k), -1, np.int64)
    for i, q in enumerate(qt):
        s = maxsim_rerank_rows(q, docs, cand_rows[i])
        ts, tr = merge_topk(s[None], cand_rows[i][None], k)
        out_s[i], out_r[i] = ts[0], tr[0]
    return out_s, out_r


def multi_pass(
    qt: list[np.ndarray], docs: Any, variants: dict[str, dict], *, block_tokens: int = 8192
) -> dict[str, np.ndarray]:
    """Full-corpus MaxSim score matrices ``(n_queries, n_docs)`` of several variants in ONE pass.

    Each variant is ``{"keep": bool mask over tokens or None, "source": "float"|"codes"|"decoded",
    "codes": (n_tok,) uint8, "codec": TokenCodec, "residuals": (n_tok, nb) uint8}``. Pruned
    variants share the matrix product of their source and only mask its columns, so exact,
    pruned, codes and residual-coded MaxSim cost about two matrix products in all.
    """
    from tqdm.auto import tqdm

    from heron.multivector.maxsim import _segment_max

    qlens = np.array([len(q) for q in qt], np.int64)
    qoff = np.zeros(len(qt) + 1, np.int64)
    np.cumsum(qlens, out=qoff[1:])
    qnz = qlens > 0
    qall = np.concatenate([q for q in qt if len(q)])
    n = len(docs)
    offsets = docs.offsets
    out = {name: np.full((len(qt), n), -np.inf, np.float32) for name in variants}
    bounds = [0]
    while bounds[-1] < n:
        st = bounds[-1]
        stop = int(np.searchsorted(offsets, offsets[st] + block_tokens, side="right")) - 1
        bounds.append(min(max(stop, st + 1), n))
    tables = {
        name: qall @ v["codec"].centroids.T
        for name, v in variants.items()
        if v["source"] == "codes"
    }
    for b in tqdm(range(len(bounds) - 1), desc="MaxSim variants (one pass)", unit="block"):
        d0, d1 = bounds[b], bounds[b + 1]
        t0, t1 = int(offsets[d0]), int(offsets[d1])
        local = offsets[d0 : d1 + 1] - t0
        cache: dict[str, np.ndarray] = {}
        for name, v in variants.items():
            src = v["source"]
            key = src if src == "float" else f"{src}:{id(v['codec'])}"
            if key not in cache:
                if src == "float":
                    cache[key] = qall @ np.asarray(docs.values[t0:t1], np.float32).T
                elif src == "codes":
                    cache[key] = tables[name][:, v["codes"][t0:t1]]
                else:
                    cache[key] = (
                        qall @ v["codec"].decode(v["codes"][t0:t1], v["residuals"][t0:t1]).T
                    )
            s = cache[key]
            keep = v.get("keep")
            if keep is None:
                per = _segment_max(s, local)
            else:
                kb = keep[t0:t1]
                c = np.zeros(len(kb) + 1, np.int64)
                np.cumsum(kb, out=c[1:])
                per = _segment_max(s[:, kb], c[local])
            out[name][qnz, d0:d1] = np.add.reduceat(per, qoff[:-1][qnz], axis=0)
    return out


def bench(args: argparse.Namespace) -> dict:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm.auto import tqdm

    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import cached_token_ids, cached_token_vectors, dataset_embeddings
    from heron.eval.metrics import evaluate
    from heron.multivector.maxsim import (
        as_token_list,
        exact_maxsim_search,
        maxsim_batch,
        maxsim_rerank_rows,
    )
    from heron.multivector.muvera import FDEEncoder, encoder_from_spec, parse_spec
    from heron.multivector.pooling import pool_tokens
    from heron.multivector.tokencodes import CodedTokens, TokenCodec, salience_keep_mask
    from heron.multivector.tokens import (
        token_ids,
        token_stats,
        vocab_size,
    )
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
    codecs: dict[str, Any] = {}
    coded: dict[str, Any] = {}
    build: dict[str, float] = {}
    specs = {"0": {}}
    specs.update({f"{b}bit": {"residual_bits": b} for b in args.residual_bits if b})
    specs.update({f"pq{m}": {"residual_pq": m} for m in args.residual_pq if m})
    for tag, kw in tqdm(specs.items(), desc="token codecs", unit="codec"):
        t0 = time.perf_counter()
        codecs[tag] = TokenCodec(n_centroids=256, seed=0, **kw).fit(docs)
        coded[tag] = CodedTokens.encode(codecs[tag], docs)
        build[f"codes{tag}"] = time.perf_counter() - t0

    def code_label(tag: str) -> str:
        if tag == "0":
            return "1-byte codes (lookup table)"
        kind = (
            f"{tag[:-3]}-bit scalar residuals"
            if tag.endswith("bit")
            else f"{tag[2:]}-byte PQ residuals"
        )
        return f"1-byte codes + {kind} ({codecs[tag].bytes_per_token} B/token)"

    keep = salience_keep_mask(docs, args.prune, salience="idf", codes=coded["0"].codes)
    keep_rnd = salience_keep_mask(docs, args.prune, salience="random")
    keep_red = salience_keep_mask(docs, args.prune, salience="redundancy")
    tids = cached_token_ids(ds, enc, docs)
    keep_tid = salience_keep_mask(docs, args.prune, salience="token-idf", token_ids=tids)
    keep_com = salience_keep_mask(docs, args.prune, salience="common-pieces", token_ids=tids)
    variants: dict[str, dict] = {
        "exact": {"source": "float"},
        "prune-token-idf": {"source": "float", "keep": keep_tid},
        "prune-common-pieces": {"source": "float", "keep": keep_com},
        "prune-idf": {"source": "float", "keep": keep},
        "prune-redundancy": {"source": "float", "keep": keep_red},
        "prune-random": {"source": "float", "keep": keep_rnd},
    }
    for bits in codecs:
        src = "codes" if bits == "0" else "decoded"
        base = {
            "source": src,
            "codec": codecs[bits],
            "codes": coded[bits].codes,
            "residuals": coded[bits].residuals,
        }
        variants[f"codes{bits}"] = base
        masks = {
            "token-idf": keep_tid,
            "common-pieces": keep_com,
            "idf": keep,
            "redundancy": keep_red,
        }
        for sal in args.prune_codes:
            variants[f"prune-{sal}+codes{bits}"] = {**base, "keep": masks[sal]}
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
    fe_set = {tuple(int(v) for v in c.split(",")) for c in (args.fastembed or [])}
    piece_ids: dict[str, Any] = {}
    for cfg in args.muvera:
        spec = parse_spec(cfg)
        k_sim, d_proj, r_reps, d_final = (spec[k] for k in ("k_sim", "d_proj", "r_reps", "d_final"))
        centred = spec["centre"]
        t0 = time.perf_counter()
        if spec["weights"] is not None and "docs" not in piece_ids:
            piece_ids["docs"] = cached_token_ids(ds, enc, docs)
        fde, doc_w, table = encoder_from_spec(
            cfg,
            docs,
            doc_token_ids=piece_ids.get("docs"),
            vocab_size=vocab_size(enc) if spec["weights"] else None,
        )
        doc_f = fde.encode_documents(docs, weights=doc_w, progress=True)
        b = time.perf_counter() - t0
        q_w: dict[int, np.ndarray] = {}  # query weights by the query array's identity
        if spec["weight_queries"]:
            if "queries" not in piece_ids:
                piece_ids["queries"] = [token_ids([t], enc) for t in data["queries"]]
            for q, tid in zip(qt, piece_ids["queries"]):
                if len(tid) != len(q):
                    raise ValueError("query token ids do not align with the query tokens")
                q_w[id(q)] = table[tid]
        name = (
            f"MUVERA k_sim={k_sim} d_proj={d_proj} r_reps={r_reps}"
            + (f" d_final={d_final}" if d_final else "")
            + (" centred" if centred else "")
            + ("" if spec["fill_empty"] else " unfilled")
            + (f" {spec['weights']} weights" if spec["weights"] else "")
            + (" (queries too)" if spec["weight_queries"] else "")
            + f" ({fde.dimension} dims)"
        )

        def fde_first(
            q: list[np.ndarray], f: FDEEncoder = fde, m: np.ndarray = doc_f, qw: dict = q_w
        ) -> Any:
            w = np.concatenate([qw[id(x)] for x in q]) if qw else None
            return exact_search(f.encode_queries(q, weights=w), m, 100)

        staged(
            name,
            "muvera",
            fde_first,
            fde.dimension * 4,
            dimension=fde.dimension,
            build_seconds=round(b, 1),
            spec=cfg,
        )
        del doc_f
        if (
            (k_sim, d_proj, r_reps) in fe_set
            and d_final is None
            and not centred
            and spec["fill_empty"]
            and spec["weights"] is None
        ):
            from heron._deps import require

            require("fastembed", purpose="the fastembed MUVERA reference")
            from fastembed.postprocess.muvera import Muvera

            mv = Muvera(dim=docs.dim, k_sim=k_sim, dim_proj=d_proj, r_reps=r_reps, random_seed=42)
            t0 = time.perf_counter()
            fe_doc = np.zeros((len(docs), mv.embedding_size), np.float32)
            for i in tqdm(range(len(docs)), desc="fastembed MUVERA docs", unit="doc"):
                x = np.asarray(docs[i], np.float32)
                if len(x):
                    fe_doc[i] = mv.process_document(x)
            b = time.perf_counter() - t0

            def fe_first(q: list[np.ndarray], mv: Any = mv, m: np.ndarray = fe_doc) -> Any:
                qf = np.stack(
                    [mv.process_query(x) if len(x) else np.zeros(mv.embedding_size) for x in q]
                ).astype(np.float32)
                return exact_search(qf, m, 100)

            staged(
                f"fastembed Muvera k_sim={k_sim} dim_proj={d_proj} r_reps={r_reps} ({mv.embedding_size} dims)",
                "fastembed-muvera",
                fe_first,
                mv.embedding_size * 4,
                dimension=mv.embedding_size,
                build_seconds=round(b, 1),
            )
            del fe_doc

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

    kept = float(keep.sum()) / max(len(docs), 1)
    for bits in codecs:
        c = coded[bits]
        compressed(
            code_label(bits) + ", whole corpus",
            "codes",
            f"codes{bits}",
            c.bytes_per_doc(),
            timer=lambda c=c: [c.maxsim_batch([q]) for q in qt_t],
            build_seconds=round(build[f"codes{bits}"], 1),
        )
    compressed(
        f"prune {args.prune:.0%} of tokens: common word pieces first, then random, float16",
        "pruned",
        "prune-common-pieces",
        float(keep_com.sum()) / max(len(docs), 1) * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens by salience (word-piece IDF), float16",
        "pruned",
        "prune-token-idf",
        float(keep_tid.sum()) / max(len(docs), 1) * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens by salience (centroid IDF), float16",
        "pruned",
        "prune-idf",
        kept * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens by salience (within-document redundancy), float16",
        "pruned",
        "prune-redundancy",
        kept * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens at random, float16 (baseline)",
        "pruned",
        "prune-random",
        kept * docs.dim * 2 + 8,
    )
    for sal in args.prune_codes:
        kept = float(
            {"token-idf": keep_tid, "common-pieces": keep_com, "idf": keep, "redundancy": keep_red}[
                sal
            ].sum()
        ) / max(len(docs), 1)
        for bits in codecs:
            compressed(
                f"prune {args.prune:.0%} ({sal}) + " + code_label(bits),
                "pruned+codes",
                f"prune-{sal}+codes{bits}",
                kept * codecs[bits].bytes_per_token + 8,
            )

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


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"multivector-{report['dataset']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    head = [
        "method",
        "nDCG@10",
        "R(exact top-10) in candidates",
        "R(exact top-10)@10",
        "bytes/doc",
        "qps",
        "speed-up vs exact",
    ]
    lines = [
        f"# Multi-vector late interaction on {report['dataset']} ({report['queries']} queries, {report['documents']} docs, "
        f"{report['token_stats']['mean_tokens']:.0f} tokens/doc)",
        "",
        f"Reproduce: `{report['command']}`",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in report["rows"]:
        lines.append(
            "| "
            + " | ".join(
                str(x)
                for x in [
                    r["method"],
                    f"{r['nDCG@10']:.4f}",
                    r.get("recall_top10_in_candidates", ""),
                    r.get("recall_top10_at10", ""),
                    f"{r['bytes_per_doc']:.0f}",
                    r.get("qps", ""),
                    r.get("speedup", ""),
                ]
            )
            + " |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    colors = {
        "single-vector": "gray",
        "exact": "black",
        "muvera": "tab:blue",
        "fastembed-muvera": "tab:cyan",
        "pooled": "tab:green",
        "codes": "tab:red",
        "pruned": "tab:orange",
        "pruned+codes": "tab:purple",
    }
    for r in report["rows"]:
        c = colors.get(r["family"], "k")
        marker = (
            "o"
            if "rerank" in r["method"]
            or r["family"] in ("exact", "codes", "pruned", "pruned+codes", "single-vector")
            else "x"
        )
        axes[0].scatter(r["bytes_per_doc"], r["nDCG@10"], color=c, marker=marker)
        if r.get("speedup"):
            axes[1].scatter(r["speedup"], r["nDCG@10"], color=c, marker=marker)
    for ax, xl in zip(axes, ["bytes per document (log)", "speed-up over exact MaxSim (log)"]):
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("nDCG@10")
        ax.grid(alpha=0.3)
    for fam, c in colors.items():
        axes[0].scatter([], [], color=c, label=fam)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['dataset']}: late interaction (o = final ranking, x = first stage only)")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    plt.close(fig)
