"""Pick a configuration from measured sweep results (never from heuristics).

Rules: keep configurations that meet every constraint (memory budget on the in-memory index
bytes, minimum quality, maximum single-query latency); among those keep the Pareto frontier over
(memory, quality, latency); then, when a memory budget is given, take the best quality
(ties: fewer bytes, then faster); without a budget, take the smallest index that meets the
quality floor. When the sweep ran on a sample of the corpus, memory is extrapolated exactly
(``n_full * bytes_per_vector + state``) and latency linearly in ``n_full / n_sample``; quality is
taken from the sample as is, which the explanation states.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from heron.bench.pareto import pareto_front

QUALITY_METRICS = ("recall10_exact", "ndcg10_retention", "ndcg10")
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(text: str | int | float) -> int:
    """``"64MB"`` -> 64_000_000, ``"1.5GiB"`` -> 1610612736; plain numbers are bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(
            f"cannot read memory budget {text!r}; write a number with a unit, e.g. 64MB, 512MiB, 2GB"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _fmt_bytes(b: float) -> str:
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.2f} {unit}"
    return f"{b:.0f} B"


@dataclass
class Recommendation:
    """The chosen configuration and why."""

    row: dict | None
    explanation: list[str] = field(default_factory=list)
    frontier: list[dict] = field(default_factory=list)
    extrapolated: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict:
        """Collection configuration of the pick.

        A codec row gives ``{"spec", "oversample", "rescore"}``; an index row (from
        :func:`heron.bench.index_sweep.run_index_sweep`) gives ``{"kind", "codec", "oversample",
        **params}`` (build and search parameters named as the index takes them).
        """
        if self.row is None:
            return {}
        if "index" in self.row:
            return {
                "kind": self.row["index"],
                "codec": self.row["codec"],
                "oversample": self.row["oversample"],
                **self.row.get("params", {}),
            }
        return {
            "spec": self.row["codec"],
            "oversample": self.row["oversample"],
            "rescore": self.row["rescore"],
        }


def label(row: dict) -> str:
    """Human name of a measured row: ``"int8 x2"`` or ``"hnsw:fp32 ef_search=64"``."""
    if "label" in row:
        return str(row["label"])
    return f"{row['codec']} x{row['oversample']}"


def recommend(
    rows: list[dict],
    *,
    memory: int | None = None,
    min_quality: float | None = None,
    latency_ms: float | None = None,
    metric: str = "recall10_exact",
    n_docs: int | None = None,
) -> Recommendation:
    """Choose among measured ``rows`` (from :func:`heron.bench.sweep.run_sweep`).

    Parameters
    ----------
    memory: budget in bytes for the in-memory index (codes + codec state).
    min_quality: floor on ``metric``.
    latency_ms: ceiling on the single-query latency.
    metric: ``"recall10_exact"`` (default), ``"ndcg10_retention"`` or ``"ndcg10"``.
    n_docs: size of the full corpus when the rows were measured on a sample.
    """
    if metric not in QUALITY_METRICS:
        raise ValueError(f"quality metric must be one of {QUALITY_METRICS}, got {metric!r}")
    if not rows:
        raise ValueError("no measured configurations to choose from; run `heron bench` first")
    if metric not in rows[0]:
        raise ValueError(
            f"the measurements have no {metric!r} (no relevance judgements?); use --metric recall10_exact"
        )
    rec = Recommendation(None)
    sample_n = rows[0]["n_docs"]
    scale = 1.0
    cands = [dict(r) for r in rows]
    if n_docs and n_docs != sample_n:
        scale = n_docs / sample_n
        from heron.bench.index_sweep import latency_scale

        for r in cands:
            r["memory_bytes"] = int(n_docs * r["bytes_per_vector"] + r["state_bytes"])
            r["latency_ms"] = r["latency_ms"] * latency_scale(r.get("index", "flat"), scale)
        rec.extrapolated = [
            f"measured on a sample of {sample_n} of {n_docs} documents",
            f"memory extrapolated as n_docs x bytes_per_vector + codec state (x{scale:.1f})",
            f"latency extrapolated by cost model: flat scans linear in corpus size (x{scale:.1f}), IVF at fixed nprobe with nlist ~ sqrt(n) as sqrt (x{latency_scale('ivf', scale):.2f}), HNSW walks as log n (x{latency_scale('hnsw', scale):.2f})",
            f"quality ({metric}) taken from the sample as measured; on a larger corpus neighbours are denser and recall at a fixed oversample can be lower",
        ]
    ok = []
    for r in cands:
        why = []
        if memory is not None and r["memory_bytes"] > memory:
            why.append("memory")
        if min_quality is not None and r[metric] < min_quality:
            why.append("quality")
        if latency_ms is not None and r["latency_ms"] > latency_ms:
            why.append("latency")
        if not why:
            ok.append(r)
    keys = [("memory_bytes", "min"), (metric, "max")] + (
        [("latency_ms", "min")] if latency_ms is not None else []
    )
    rec.frontier = [cands[i] for i in pareto_front(cands, keys)]
    cons = []
    if memory is not None:
        cons.append(f"memory <= {_fmt_bytes(memory)}")
    if min_quality is not None:
        cons.append(f"{metric} >= {min_quality}")
    if latency_ms is not None:
        cons.append(f"latency <= {latency_ms} ms/query")
    if not ok:
        best_q = max(cands, key=lambda r: r[metric])
        smallest = min(cands, key=lambda r: r["memory_bytes"])
        rec.explanation = [
            f"no measured configuration meets {', '.join(cons) or 'the constraints'}",
            f"best {metric}: {label(best_q)} = {best_q[metric]:.4f} at {_fmt_bytes(best_q['memory_bytes'])}",
            f"smallest: {label(smallest)} at {_fmt_bytes(smallest['memory_bytes'])} ({metric} {smallest[metric]:.4f})",
        ]
        return rec
    front = [ok[i] for i in pareto_front(ok, keys)]
    if memory is not None or min_quality is None:
        pick = max(front, key=lambda r: (r[metric], -r["memory_bytes"], -r["latency_ms"]))
        goal = f"the highest {metric} within the constraints"
    else:
        pick = min(front, key=lambda r: (r["memory_bytes"], -r[metric], r["latency_ms"]))
        goal = f"the smallest index meeting {metric} >= {min_quality}"
    rec.row = pick
    rec.explanation = [
        f"constraints: {', '.join(cons) or 'none'}; {len(ok)} of {len(cands)} measured configurations meet them, {len(front)} of those are Pareto-optimal (memory, {metric}{', latency' if latency_ms is not None else ''})",
        f"picked {goal}: {label(pick)} (oversample {pick['oversample']}, rescore {pick['rescore']})",
        f"measured: {metric} {pick[metric]:.4f}, recall@10 of exact top-10 {pick['recall10_exact']:.4f}"
        + (
            f", nDCG@10 {pick['ndcg10']:.4f} ({100 * pick['ndcg10_retention']:.1f}% of float32)"
            if "ndcg10" in pick
            else ""
        )
        + f", {pick['bytes_per_vector']:.0f} bytes/vector ({pick['compression']:.0f}x smaller than float32), index {_fmt_bytes(pick['memory_bytes'])}, {pick['latency_ms']:.2f} ms/query",
    ]
    others = sorted((r for r in front if r is not pick), key=lambda r: -r[metric])[:3]
    for r in others:
        rec.explanation.append(
            f"runner-up on the frontier: {label(r)}: {metric} {r[metric]:.4f} at {_fmt_bytes(r['memory_bytes'])}, {r['latency_ms']:.2f} ms/query"
        )
    return rec


def collection_sources(collection: Any) -> list[str]:
    """Names of the datasets a collection was built from (its ``sources`` config), in order."""
    return [str(s.get("dataset")) for s in collection.config.get("sources", []) if s.get("dataset")]


def provenance_mismatch(collection: Any, meta: dict, report: str = "the report") -> str | None:
    """Why measurements described by ``meta`` (a bench report's ``meta``) may not apply to
    ``collection``; ``None`` when they do.

    A configuration is measured on one dataset's vectors: its recall, memory and latency say
    nothing about an unrelated collection. It applies when the report's dataset is one the
    collection was built from (recorded by ``heron index`` as config ``sources``) and, when both
    are known, the report's model is the collection's.
    """
    where = f"collection {str(collection.path)!r}"
    measured = meta.get("dataset")
    sources = collection_sources(collection)
    if not measured:
        return f"{report} does not name the dataset it measured, so it cannot be matched to {where}"
    if not sources:
        return (
            f"the configuration was measured on dataset {measured!r} ({report}), but {where} does "
            "not record the dataset it was built from (only `heron index` records it)"
        )
    if measured not in sources:
        return (
            f"the configuration was measured on dataset {measured!r} ({report}), but {where} was "
            f"built from {', '.join(repr(s) for s in sources)}; measure that data "
            f"(heron bench {sources[0]})"
        )
    model = meta.get("model")
    if model and collection.model not in ("none", model):
        return (
            f"the configuration was measured with model {model!r} ({report}), but {where} uses "
            f"{collection.model!r}; measure with --model {collection.model}"
        )
    return None
