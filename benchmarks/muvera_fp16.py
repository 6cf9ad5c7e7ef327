"""MUVERA FDEs stored as float16 and scanned in place, against the float32 FDEs (exact baseline).

On a BEIR dataset's cached MiniLM token vectors (test split; ``heron.eval.cache``), with the
setting chosen in docs/multivector.md (``4,8,80,c,w,e``: 10,240 dims): recall of the exact
MaxSim top-10 inside the FDE top-``k`` (k = 100, 200), overlap of the float16 and float32 FDE
top-100, nDCG@10 after the exact MaxSim rerank of the top-100, and, one query at a time on
``--threads`` threads, the FDE scan latency, the bytes it reads and the Python-heap memory it
allocates (``tracemalloc`` peak, which counts numpy buffers).

    python benchmarks/muvera_fp16.py nfcorpus --out out/muvera_fp16
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["nfcorpus", "scifact"])
    p.add_argument("--spec", default="4,8,80,c,w,e")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("out/muvera_fp16"))
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numba

    from heron.encoders import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import cached_array, cached_token_ids, cached_token_vectors
    from heron.eval.metrics import evaluate
    from heron.multivector.maxsim import as_token_list, exact_maxsim_search, maxsim_rerank_rows
    from heron.multivector.muvera import encoder_from_spec, parse_spec
    from heron.multivector.muvera_scan import fde_search
    from heron.multivector.tokens import token_ids, vocab_size

    numba.set_num_threads(args.threads)
    ds = load_beir(args.dataset)
    enc = load_encoder()
    data = cached_token_vectors(ds, enc, split="test")
    docs, qt = data["docs"], as_token_list(data["query_tokens"])
    qids, ids, qrels = list(data["query_ids"]), data["doc_ids"], data["qrels"]

    def exact() -> np.ndarray:
        s, r = exact_maxsim_search(qt, docs, 100, progress=True)
        return np.concatenate([r.astype(np.float32), s], axis=1)

    ex = cached_array(f"maxsim-exact-top100-{args.dataset}", qids, exact)
    top10 = ex[:, :10].astype(np.int64)
    cfg = parse_spec(args.spec)
    wtag = {None: "", "common-pieces": "-ws", "idf": "-ww"}[cfg["weights"]]
    fde, dw, table = encoder_from_spec(
        args.spec, docs,
        doc_token_ids=cached_token_ids(ds, enc, docs) if wtag else None,
        vocab_size=vocab_size(enc) if wtag else None,
    )
    qw = table[token_ids(list(data["queries"]), enc)] if cfg["weight_queries"] else None
    d32 = cached_array(
        f"muvera-fde-{args.dataset}-{json.dumps(fde.params(), sort_keys=True)}" + wtag, ids,
        lambda: fde.encode_documents(docs, weights=dw, progress=True),
    )
    d32 = np.ascontiguousarray(d32, dtype=np.float32)
    d16 = d32.astype(np.float16)
    qf = fde.encode_queries(qt, weights=qw)
    out: dict = {"dataset": args.dataset, "spec": args.spec, "dims": int(fde.dimension),
                 "docs": len(ids), "queries": len(qids), "threads": args.threads,
                 "load_1min": [round(os.getloadavg()[0], 2)]}
    tops = {}
    for name, mat in (("float32", d32), ("float16", d16)):
        _, r = fde_search(qf, mat, 200)
        tops[name] = r
        row = {"bytes_per_query_scan": int(mat.nbytes)}
        for k in (100, 200):
            row[f"exact_top10_in_top{k}"] = round(float(np.mean(
                [len(np.intersect1d(top10[i], r[i, :k])) / 10 for i in range(len(qt))])), 4)
        rr = np.zeros((len(qt), 100), np.int64)
        rs = np.zeros((len(qt), 100), np.float32)
        for i, q in enumerate(qt):
            sc = maxsim_rerank_rows(q, docs, r[i, :100])
            o = np.argsort(-sc, kind="stable")
            rr[i], rs[i] = r[i, :100][o], sc[o]
        run = {qid: {ids[j]: float(s) for j, s in zip(rr[i, :10], rs[i, :10])} for i, qid in enumerate(qids)}
        row["nDCG@10_rerank100"] = round(evaluate(qrels, run, ["nDCG@10"])["nDCG@10"], 4)
        fde_search(qf[:1], mat, 100)  # compile / page in
        lat = []
        for i in range(len(qt)):
            t = time.perf_counter()
            fde_search(qf[i : i + 1], mat, 100)
            lat.append((time.perf_counter() - t) * 1e3)
        tracemalloc.start()
        fde_search(qf[:1], mat, 100)
        row["scan_alloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        row["scan_p50_ms"] = round(float(np.median(lat)), 3)
        row["scan_total_ms"] = round(float(np.sum(lat)), 1)
        out[name] = row
        print(name, json.dumps(row), flush=True)
    out["fde_top100_overlap_f16_vs_f32"] = round(float(np.mean(
        [len(np.intersect1d(tops["float16"][i, :100], tops["float32"][i, :100])) / 100
         for i in range(len(qt))])), 4)
    out["load_1min"].append(round(os.getloadavg()[0], 2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.dataset}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
