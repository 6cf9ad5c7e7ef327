"""Sweep index type x codec x search parameters on a dataset's vectors (``heron bench --indexes``).

Each configuration is an *index spec* ``KIND:CODEC`` (``"hnsw:fp32"``, ``"ivf:int8"``,
``"ivf:bin"``, ``"flat:int4"`` ...) built once with the build parameters of the grid below, then
searched at every point of its search grid (``ef_search`` for HNSW, ``nprobe`` for IVF, times the
rescoring ``oversample`` for compressed codes). Every row is measured, never estimated: recall@10
of the float32-exact top-10 (and nDCG@10 / Recall@100 when judgements exist), the in-memory index
bytes (:meth:`heron.index.AnnIndex.memory_bytes`: codes, links or list ids, centroids, keys; the
memory-mapped float rescoring copy is not resident and not counted), single-query latency (median
over ``n_latency`` queries searched one at a time), batched queries/second and build time. Rows use
the same fields as :func:`heron.bench.sweep.run_sweep`, plus ``index`` and ``params``, so
:func:`heron.bench.recommend.recommend` chooses among codecs and indexes alike.

Index papers: Malkov & Yashunin, TPAMI 2018 (HNSW); Jégou, Douze & Schmid, TPAMI 2011 (IVF-ADC).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

#: default index specs swept by ``heron bench --indexes``
DEFAULT_INDEXES = (
    "flat:fp32",
    "flat:int8",
    "flat:bin",
    "hnsw:fp32",
    "hnsw:int8",
    "hnsw:bin",
    "ivf:fp32",
    "ivf:int8",
    "ivf:bin",
    "ivf:pq48",
)
#: search-time grids: parameter -> values (per kind), oversample per codec family
EF_GRID = (16, 32, 64, 128)
NPROBE_GRID = (4, 8, 16, 32, 64)
OVERSAMPLE_GRID = {"fp32": (0,), "bin": (10, 20), "pq": (4, 10), "other": (0, 2)}
HNSW_BUILD = {"M": 16, "ef_construction": 100}


def parse_index_spec(spec: str) -> tuple[str, str]:
    """``"hnsw:int8"`` -> ``("hnsw", "int8")``; a bare kind means float32 (``"hnsw"``)."""
    from heron.index import INDEX_TYPES

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"index spec must be a string like 'hnsw:fp32', got {spec!r}")
    kind, _, codec = spec.strip().lower().partition(":")
    if kind not in INDEX_TYPES:
        raise ValueError(
            f"unknown index type {kind!r} in spec {spec!r}; write KIND:CODEC with KIND one of {sorted(INDEX_TYPES)}, e.g. 'ivf:int8'"
        )
    return kind, codec or "fp32"


def default_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: ``4 sqrt(n)`` rounded to a power of two, within [8, 65536]."""
    return int(min(65536, max(8, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))))


def _oversamples(codec: str) -> tuple[float, ...]:
    if codec == "fp32":
        return OVERSAMPLE_GRID["fp32"]
    if codec.startswith("bin"):
        return OVERSAMPLE_GRID["bin"]
    if codec.startswith(("pq", "opq")):
        return OVERSAMPLE_GRID["pq"]
    return OVERSAMPLE_GRID["other"]


def search_grid(kind: str, codec: str, n: int) -> list[dict[str, Any]]:
    """Search-time parameter points for one built index (``oversample`` included)."""
    if kind == "hnsw":
        knobs: list[dict[str, Any]] = [{"ef_search": ef} for ef in EF_GRID]
    elif kind == "ivf":
        nlist = default_nlist(n)
        knobs = [{"nprobe": p} for p in NPROBE_GRID if p <= nlist]
    else:
        knobs = [{}]
    return [{**kp, "oversample": os_} for kp in knobs for os_ in _oversamples(codec)]


def latency_scale(kind: str, factor: float) -> float:
    """How single-query latency grows when the corpus grows ``factor``-fold, per index kind.

    Flat scans are linear in ``n``; IVF with ``nlist ~ sqrt(n)`` at a fixed ``nprobe`` scans
    ``~ n / nlist ~ sqrt(n)`` codes; an HNSW walk grows about like ``log n`` (here: the ratio of
    logarithms). These are the standard cost models, stated wherever they are used.
    """
    if factor <= 1:
        return 1.0
    if kind == "flat":
        return factor
    if kind == "ivf":
        return math.sqrt(factor)
    return 1.0 + math.log(factor) / math.log(1e4)  # hnsw: log n growth from a >= 10k sample


def run_index_sweep(
    doc_emb: np.ndarray,
    query_emb: np.ndarray,
    *,
    indexes: Sequence[str] = DEFAULT_INDEXES,
    evaluate: Any = None,
    n_latency: int = 30,
    progress: bool = True,
) -> list[dict]:
    """Build and measure every index spec at every point of its search grid.

    Parameters
    ----------
    doc_emb: ``(n, d)`` corpus vectors (float32); their row numbers are the keys.
    query_emb: ``(nq, d)`` query vectors.
    indexes: index specs ``KIND:CODEC`` (see :func:`parse_index_spec`).
    evaluate: optional ``fn(rows (nq, k)) -> {"nDCG@10": .., "R@100": ..}`` over row numbers.
    n_latency: queries searched one at a time for the single-query latency (median).

    Returns
    -------
    One JSON-serialisable dict per (index, search point).
    """
    from tqdm.auto import tqdm

    from heron.bench.sweep import _exact, _recall
    from heron.index import make_index

    specs = [parse_index_spec(s) for s in indexes]
    x = np.ascontiguousarray(doc_emb, dtype=np.float32)
    q = np.ascontiguousarray(query_emb, dtype=np.float32)
    n, d = x.shape
    keys = np.arange(n, dtype=np.int64)
    gt10 = _exact(q, x, 10)
    base = evaluate(_exact(q, x, 100)) if evaluate else {}
    rows: list[dict] = []
    for kind, codec in tqdm(specs, desc="indexes", disable=not progress):
        build: dict[str, Any] = {"codec": codec}
        if kind == "hnsw":
            build.update(HNSW_BUILD)
        elif kind == "ivf":
            build["nlist"] = default_nlist(n)
        idx = make_index(kind, **build)
        t0 = time.perf_counter()
        idx.build(x, keys)
        build_s = time.perf_counter() - t0
        mem = int(idx.memory_bytes())
        for sp in search_grid(kind, codec, n):
            k100 = idx.search(q, 100, params=sp)[1]
            k10 = idx.search(q, 10, params=sp)[1]
            t0 = time.perf_counter()
            idx.search(q, 10, params=sp)
            batched_s = time.perf_counter() - t0
            lat = []
            for i in range(min(n_latency, len(q))):
                qi = q[i : i + 1]
                idx.search(qi, 10, params=sp)  # warm this query's path once
                t0 = time.perf_counter()
                idx.search(qi, 10, params=sp)
                lat.append(time.perf_counter() - t0)
            knob = {p: v for p, v in sp.items() if p != "oversample"}
            row: dict[str, Any] = {
                "index": kind,
                "codec": codec,
                "params": {**{p: v for p, v in build.items() if p != "codec"}, **knob},
                "label": f"{kind}:{codec}"
                + "".join(f" {p}={v}" for p, v in knob.items())
                + (f" x{sp['oversample']:g}" if sp["oversample"] else ""),
                "oversample": sp["oversample"],
                "rescore": "float32" if sp["oversample"] else "none",
                "recall10_exact": _recall(k10, gt10),
                "bytes_per_vector": mem / n,
                "compression": 4.0 * d * n / mem,
                "memory_bytes": mem,
                "state_bytes": 0,
                "qps": len(q) / batched_s,
                "latency_ms": 1000 * float(np.median(lat)) if lat else float("nan"),
                "fit_s": build_s,
                "n_docs": n,
                "n_queries": len(q),
            }
            if evaluate:
                m10 = evaluate(np.concatenate([k10, np.full((len(k10), 90), -1)], axis=1))
                row["ndcg10"] = m10["nDCG@10"]
                row["recall100"] = evaluate(k100)["R@100"]
                row["ndcg10_retention"] = (
                    m10["nDCG@10"] / base["nDCG@10"] if base.get("nDCG@10") else float("nan")
                )
            rows.append(row)
    return rows
