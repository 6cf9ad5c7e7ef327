"""Scoring helpers of ``heron bench --multivector``: runs, recall, exact rerank, one-pass MaxSim.

:func:`multi_pass` computes the full-corpus MaxSim matrices of several variants (exact, pruned,
coded) in one pass over the token store (Khattab & Zaharia, "ColBERT", SIGIR 2020, for MaxSim).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["_recall", "_rerank_all", "_run_dict", "multi_pass"]


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
