"""Hybrid retrieval on SciFact / NFCorpus: dense + learned-sparse (SPLADE) + BM25.

Single retrievers (exact dense MiniLM, exact SPLADE splade-tiny, bm25s Lucene k1=1.2 b=0.75 with
English stemming + stop words), then fusion by RRF (c=60, equal weights) and by normalised score
fusion (min-max and z-score) with weights **fitted on the train queries only** (grid of step 0.1
on the simplex, maximising train nDCG@10) and reported on the test queries.

    python benchmarks/hybrid_bench.py --out out/hybrid

Writes ``results.json``, ``results.md`` and ``ndcg.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from heron.encoders import load_encoder  # noqa: E402
from heron.encoders.splade import SpladeEncoder  # noqa: E402
from heron.eval import load_beir  # noqa: E402
from heron.eval.cache import dataset_embeddings, dataset_sparse  # noqa: E402
from heron.eval.fusion import fit_fusion_weights  # noqa: E402
from heron.eval.metrics import evaluate  # noqa: E402
from heron.fusion import fuse_rrf, fuse_scores  # noqa: E402
from heron.results import Results  # noqa: E402
from heron.sparse.exact import ExactSparseIndex  # noqa: E402

DEPTH = 100


def dense_run(doc_emb, q_emb, k=DEPTH) -> Results:
    s = q_emb @ doc_emb.T
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return Results(top, np.take_along_axis(s, top, 1))


def bm25_runs(ds, splits):
    import bm25s
    import Stemmer

    stem = Stemmer.Stemmer("english")
    docs = ds.documents()
    retr = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retr.index(
        bm25s.tokenize(docs, stopwords="en", stemmer=stem, show_progress=False), show_progress=False
    )
    out = {}
    for split in splits:
        _, texts, _ = ds.split(split)
        res, sc = retr.retrieve(
            bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False),
            k=DEPTH,
            show_progress=False,
            n_threads=1,
        )
        keys = np.where(sc > 0, res, -1)
        out[split] = Results(keys, np.where(keys >= 0, sc, -np.inf))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="out/hybrid")
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument("--step", type=float, default=0.1)
    args = ap.parse_args()
    dense_enc, sparse_enc = load_encoder(), SpladeEncoder()
    report = {}
    for name in args.datasets:
        ds = load_beir(name)
        ids = np.asarray(ds.doc_ids)

        def resolver(keys, ids=ids):
            return ids[keys].tolist()

        splits = ["train", "test"]
        runs: dict[str, dict[str, Results]] = {"dense": {}, "splade": {}, "bm25": {}}
        qinfo = {}
        for split in splits:
            e = dataset_embeddings(ds, dense_enc, split=split)
            runs["dense"][split] = dense_run(e["doc_emb"], e["query_emb"])
            sv = dataset_sparse(ds, sparse_enc, split=split)
            runs["splade"][split] = ExactSparseIndex(sv["doc_vecs"]).search(sv["query_vecs"], DEPTH)
            qinfo[split] = (e["query_ids"], e["qrels"])
        for split, r in bm25_runs(ds, splits).items():
            runs["bm25"][split] = r

        def score(res: Results, split: str) -> dict:
            qids, qrels = qinfo[split]  # noqa: B023
            res = res.with_resolver(resolver)
            return evaluate(qrels, res.to_run(qids), ["nDCG@10", "R@100"])

        rows = {}
        for m in runs:
            rows[m] = {
                "test": score(runs[m]["test"], "test"),
                "train": score(runs[m]["train"], "train"),
            }
        combos = {
            "dense+bm25": ["dense", "bm25"],
            "dense+splade": ["dense", "splade"],
            "dense+splade+bm25": ["dense", "splade", "bm25"],
        }
        for cname, members in combos.items():
            rrf = fuse_rrf([runs[m]["test"] for m in members], [1.0] * len(members), 60.0, DEPTH)
            rows[f"rrf:{cname}"] = {"test": score(rrf, "test")}
            for norm in ("minmax", "zscore"):
                qids, qrels = qinfo["train"]
                w, _ = fit_fusion_weights(
                    [runs[m]["train"] for m in members],
                    qrels,
                    qids,
                    norm=norm,
                    step=args.step,
                    doc_ids=lambda r: [resolver(k[k >= 0]) for k in r.keys],
                )
                fused = fuse_scores([runs[m]["test"] for m in members], w, norm=norm, depth=DEPTH)
                rows[f"{norm}:{cname}"] = {
                    "test": score(fused, "test"),
                    "weights": dict(zip(members, w)),
                }
                print(
                    f"[{name}] {norm}:{cname} weights {dict(zip(members, w))} test nDCG@10 {rows[f'{norm}:{cname}']['test']['nDCG@10']:.4f}",
                    flush=True,
                )
        report[name] = rows
        for k, v in rows.items():
            print(f"[{name}] {k:28s} test nDCG@10 {v['test']['nDCG@10']:.4f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    names = list(report)
    lines = [
        "# Hybrid retrieval (test nDCG@10 ×100; fusion weights fitted on train queries only)",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    methods = list(report[names[0]])
    for m in methods:
        cells = []
        for n in names:
            r = report[n][m]
            c = f"{100 * r['test']['nDCG@10']:.2f}"
            if "weights" in r:
                c += " (w=" + "/".join(f"{x:g}" for x in r["weights"].values()) + ")"
            cells.append(c)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print((out / "results.md").read_text())
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 4))
        x = np.arange(len(methods))
        for i, n in enumerate(names):
            ax.bar(
                x + i * 0.8 / len(names),
                [100 * report[n][m]["test"]["nDCG@10"] for m in methods],
                0.8 / len(names),
                label=n,
            )
        ax.set_xticks(x + 0.4 - 0.4 / len(names), methods, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("test nDCG@10")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "ndcg.png", dpi=110)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
