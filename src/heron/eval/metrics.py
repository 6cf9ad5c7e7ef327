"""Standard IR measures through ``ir-measures`` (trec_eval semantics).

MacAvaney et al., "Streamlining Evaluation with ir-measures", ECIR 2022.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from heron._deps import require

DEFAULT_MEASURES = ("nDCG@10", "R@100", "RR@10", "AP")
#: Display names for the report table.
LABELS = {"nDCG@10": "nDCG@10", "R@100": "Recall@100", "RR@10": "MRR@10", "AP": "MAP"}


def evaluate(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    measures: Sequence[str] = DEFAULT_MEASURES,
) -> dict[str, float]:
    """Mean of each measure over the queries in ``qrels``.

    Queries in ``qrels`` missing from ``run`` count as zero (trec_eval ``-c``).

    Parameters
    ----------
    qrels: ``{query_id: {doc_id: relevance}}``.
    run: ``{query_id: {doc_id: score}}``.
    measures: ir-measures names, e.g. ``"nDCG@10"``, ``"R@100"``, ``"RR@10"``, ``"AP"``.
    """
    irm = require("ir_measures", purpose="evaluation")
    parsed = [irm.parse_measure(m) for m in measures]
    run = {q: dict(run.get(q, {})) for q in qrels}
    # ir-measures drops queries without results; count them as zero like trec_eval -c.
    for q, r in run.items():
        if not r:
            run[q] = {"__none__": 0.0}
    agg = irm.calc_aggregate(parsed, {q: dict(d) for q, d in qrels.items()}, run)
    return {m: float(agg[p]) for m, p in zip(measures, parsed)}


def per_query(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    measure: str = "nDCG@10",
) -> dict[str, float]:
    """Per-query values of one measure (queries without results score 0)."""
    irm = require("ir_measures", purpose="evaluation")
    m = irm.parse_measure(measure)
    out = {q: 0.0 for q in qrels}
    for row in irm.iter_calc(
        [m], {q: dict(d) for q, d in qrels.items()}, {q: dict(r) for q, r in run.items() if r}
    ):
        out[row.query_id] = float(row.value)
    return out


def drop_identical_ids(
    run: Mapping[str, Mapping[str, float]],
) -> tuple[dict[str, dict[str, float]], int]:
    """``run`` without hits whose document id equals the query id, and how many were removed.

    BEIR (``EvaluateRetrieval.evaluate(..., ignore_identical_ids=True)``) and MTEB do this on
    datasets where queries are also documents (ArguAna, Quora, CQADupStack, SciDocs), so a
    query does not retrieve itself. The remaining hits keep their scores (and so their order).
    """
    out: dict[str, dict[str, float]] = {}
    removed = 0
    for q, hits in run.items():
        if q in hits:
            removed += 1
            out[q] = {d: s for d, s in hits.items() if d != q}
        else:
            out[q] = dict(hits)
    return out, removed
