"""Quality sweeps for late interaction, without the full ``heron bench-multivector`` run.

Two deterministic sweeps on a BEIR dataset's cached MiniLM token vectors (test split):

* ``muvera``: for each FDE setting ``K_SIM,D_PROJ,R_REPS[,D_FINAL][,FLAGS...]`` the share of
  the exact-MaxSim top-10 inside the FDE top-100 / 200 / 500, and nDCG@10 after exact MaxSim
  rerank of the top-100 / 200. Flags: ``c`` = tokens centred on the corpus mean before SimHash;
  ``s`` = common word pieces (stopwords, punctuation; ``piece_weights(scheme="common-pieces")``)
  left out of the document FDEs, ``sq`` = also of the query FDEs; ``w`` / ``wq`` = word-piece
  IDF-weighted document averages (and query sums); ``e`` = empty document partitions left
  empty (the paper's ``fill_empty_partitions`` off);
* ``prune``: nDCG@10 of exact MaxSim after pruning a fraction of each document's tokens by
  word-piece IDF (``token-idf``) and at random;
* ``pooled``: pooled multi-stage search (``window`` / ``kmeans`` <= 8 vectors per document,
  ``mean`` = 1): share of the exact top-10 in the pooled top-100, nDCG@10 of the first stage
  and after exact MaxSim rerank of the top-100.

The exact top-100 and the document FDEs are cached (``heron.eval.cache.cached_array``).
Choose settings on ``--split train`` (a seeded ``--max-queries`` sample), then report ``test``.

Usage::

    python benchmarks/multivector_sweep.py muvera nfcorpus 5,16,20 5,16,20,c 5,8,40,c
    python benchmarks/multivector_sweep.py muvera nfcorpus 4,8,80,c 4,8,80,c,sq --split train --max-queries 500
    python benchmarks/multivector_sweep.py prune nfcorpus --fraction 0.5
    python benchmarks/multivector_sweep.py pooled scifact
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", choices=["muvera", "prune", "pooled"])
    p.add_argument("dataset")
    p.add_argument("settings", nargs="*", default=["5,16,20", "5,16,20,c"])
    p.add_argument("--fraction", type=float, default=0.5, help="share of tokens pruned")
    p.add_argument("--out", default="out/multivector")
    p.add_argument(
        "--split",
        default="test",
        help="query split (select settings on 'train', report them on 'test')",
    )
    p.add_argument(
        "--max-queries",
        type=int,
        default=0,
        help="use a seeded sample of this many queries of the split (0 = all)",
    )
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from heron.cli.bench_multivector import _run_dict, multi_pass
    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import cached_array, cached_token_ids, cached_token_vectors
    from heron.eval.metrics import evaluate
    from heron.multivector.maxsim import (
        as_token_list,
        exact_maxsim_search,
        maxsim_rerank_rows,
    )
    from heron.multivector.muvera import encoder_from_spec, parse_spec
    from heron.multivector.pooling import pool_tokens
    from heron.multivector.tokencodes import salience_keep_mask
    from heron.multivector.tokens import (
        token_ids,
        vocab_size,
    )
    from heron.retrieval.topk import exact_search, topk_rows

    ds = load_beir(args.dataset)
    enc = load_encoder()
    data = cached_token_vectors(ds, enc, split=args.split)
    docs = data["docs"]
    qt = as_token_list(data["query_tokens"])
    qids, ids, qrels = list(data["query_ids"]), data["doc_ids"], data["qrels"]
    qtexts = list(data["queries"])
    if 0 < args.max_queries < len(qids):
        pick = np.sort(np.random.default_rng(0).choice(len(qids), args.max_queries, replace=False))
        qt, qids, qtexts = [qt[i] for i in pick], [qids[i] for i in pick], [qtexts[i] for i in pick]
        qrels = {q: qrels[q] for q in qids}
    split_tag = "" if args.split == "test" else f"-{args.split}"

    def ndcg(rows: np.ndarray, scores: np.ndarray) -> float:
        return evaluate(qrels, _run_dict(ids, qids, rows, scores), ["nDCG@10"])["nDCG@10"]

    load = [round(x, 2) for x in os.getloadavg()]
    results: list[dict] = []
    if args.sweep == "prune":
        tid = cached_token_ids(ds, enc, docs)
        variants = {
            "exact": {"source": "float"},
            "token-idf": {
                "source": "float",
                "keep": salience_keep_mask(
                    docs, args.fraction, salience="token-idf", token_ids=tid
                ),
            },
            "common-pieces": {
                "source": "float",
                "keep": salience_keep_mask(
                    docs, args.fraction, salience="common-pieces", token_ids=tid
                ),
            },
            "random": {
                "source": "float",
                "keep": salience_keep_mask(docs, args.fraction, salience="random"),
            },
        }
        full = multi_pass(qt, docs, variants)
        base = None
        for name, m in full.items():
            s, r = topk_rows(m, 100)
            nd = ndcg(r, s)
            base = nd if base is None else base
            results.append(
                {
                    "method": f"prune {args.fraction:.0%} ({name})" if name != "exact" else name,
                    "nDCG@10": round(nd, 4),
                    "delta_points": round((nd - base) * 100, 2),
                }
            )
    else:

        def exact() -> np.ndarray:
            s, r = exact_maxsim_search(qt, docs, 100, progress=True)
            return np.concatenate([r.astype(np.float32), s], axis=1)

        ex = cached_array(f"maxsim-exact-top100-{args.dataset}{split_tag}", qids, exact)
        ex_r, ex_s = ex[:, :100].astype(np.int64), ex[:, 100:]
        nd_ex = ndcg(ex_r, ex_s)
        results.append({"method": "exact MaxSim", "nDCG@10": round(nd_ex, 4)})
        top10 = ex_r[:, :10]
        pool_specs = [("window", 8), ("kmeans", 8), ("mean", 1)] if args.sweep == "pooled" else []
        for method, nv in pool_specs:
            t0 = time.perf_counter()
            pooled = pool_tokens(docs, method=method, n_vectors=nv)
            build = time.perf_counter() - t0
            s1, r1 = exact_maxsim_search(qt, pooled, 100)
            hit = [len(np.intersect1d(top10[i], r1[i])) / 10 for i in range(len(qt))]
            rr = np.zeros_like(r1)
            rs = np.full(r1.shape, -np.inf, np.float32)
            for i, q in enumerate(qt):
                sc = maxsim_rerank_rows(q, docs, r1[i])
                o = np.argsort(-sc, kind="stable")
                rr[i], rs[i] = r1[i][o], sc[o]
            nd = ndcg(rr, rs)
            row = {
                "method": f"pooled {method} (<= {nv} vectors/doc, mean {pooled.lengths().mean():.1f})",
                "build_s": round(build, 1),
                "exact_top10_in_top100": round(float(np.mean(hit)), 4),
                "nDCG@10_first_stage": round(ndcg(r1, s1), 4),
                "nDCG@10_rerank100": round(nd, 4),
                "delta_points_rerank100": round((nd - nd_ex) * 100, 2),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        q_ids = None
        for spec in args.settings if args.sweep == "muvera" else []:
            cfg = parse_spec(spec)
            wtag = {None: "", "common-pieces": "-ws", "idf": "-ww"}[cfg["weights"]]
            fde, dw, table = encoder_from_spec(
                spec,
                docs,
                doc_token_ids=cached_token_ids(ds, enc, docs) if wtag else None,
                vocab_size=vocab_size(enc) if wtag else None,
            )
            qw = None
            if cfg["weight_queries"]:
                q_ids = token_ids(qtexts, enc) if q_ids is None else q_ids
                if len(q_ids) != sum(len(q) for q in qt):
                    raise ValueError("query token ids do not align with the query tokens")
                qw = table[q_ids]
            t0 = time.perf_counter()
            doc_f = cached_array(
                f"muvera-fde-{args.dataset}-{json.dumps(fde.params(), sort_keys=True)}" + wtag,
                ids,
                lambda fde=fde, dw=dw: fde.encode_documents(docs, weights=dw, progress=True),
            )
            row: dict = {
                "method": f"MUVERA {spec} ({fde.dimension} dims)",
                "build_s": round(time.perf_counter() - t0, 1),
            }
            _, r = exact_search(fde.encode_queries(qt, weights=qw), doc_f, 500)
            for k in (100, 200, 500):
                hit = [len(np.intersect1d(top10[i], r[i, :k])) / 10 for i in range(len(qt))]
                row[f"exact_top10_in_top{k}"] = round(float(np.mean(hit)), 4)
            for k in (100, 200):
                rr = np.zeros((len(qt), k), np.int64)
                rs = np.zeros((len(qt), k), np.float32)
                for i, q in enumerate(qt):
                    sc = maxsim_rerank_rows(q, docs, r[i, :k])
                    o = np.argsort(-sc, kind="stable")
                    rr[i], rs[i] = r[i, :k][o], sc[o]
                nd = ndcg(rr, rs)
                row[f"nDCG@10_rerank{k}"] = round(nd, 4)
                row[f"delta_points_rerank{k}"] = round((nd - nd_ex) * 100, 2)
            results.append(row)
            print(json.dumps(row), flush=True)
            del doc_f
    cmd = shlex.join(["python", "benchmarks/multivector_sweep.py", *(argv or sys.argv[1:])])
    report = {
        "dataset": args.dataset,
        "sweep": args.sweep,
        "loadavg": load,
        "rows": results,
        "command": cmd,
    }
    od = Path(args.out)
    od.mkdir(parents=True, exist_ok=True)
    stem = od / f"multivector-sweep-{args.sweep}-{args.dataset}{split_tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    keys = list(dict.fromkeys(k for r in results for k in r))
    md = [
        f"# {args.sweep} sweep, {args.dataset}",
        "",
        f"`{cmd}`",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    md += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in results]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
