"""``heron eval`` spec ``fusion:A+B+...``: normalised score fusion with weights fitted on train.

Registered in :data:`heron.eval.runner.HYBRID_BUILDERS` under the prefix ``"fusion:"``
(``hybrid:`` stays reciprocal-rank fusion). For ``fusion:dense+splade+bm25?norm=minmax``:

1. each named retriever is built over the dataset collection with depth ``pool`` (default 100);
2. they are run on the dataset's ``train`` queries only and the weights are chosen on the simplex
   grid (``step``, default 0.1) maximising train nDCG@10 (:func:`fit_fusion_weights`);
   without a ``train`` split the weights are equal and a notice is printed;
3. the returned :class:`~heron.fusion.ScoreFusion` stage is evaluated on the requested split.

Members are plain retriever names; the parameters after ``?`` (``norm``, ``step``, ``pool``)
belong to the fusion. Normalisations: ``minmax`` (default) or ``zscore``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from heron.eval.beir import BeirDataset
from heron.eval.cache import dataset_embeddings
from heron.eval.metrics import evaluate
from heron.eval.runner import HYBRID_BUILDERS, build_stage, parse_spec
from heron.fusion.score import NORMALISATIONS, ScoreFusion, fuse_scores, weight_grid
from heron.pipeline import Queries, Stage
from heron.results import Results

PREFIX = "fusion:"


def build_fusion(
    collection: Any, spec: str, *, depth: int = 1000, dataset: BeirDataset | None = None
) -> Stage:
    """The fitted :class:`ScoreFusion` stage for a ``fusion:`` spec (see the module docstring)."""
    body, params = parse_spec(spec[len(PREFIX) :])
    parts = [p for p in body.split("+") if p]
    if len(parts) < 2:
        raise ValueError(
            f"fusion needs at least two retrievers, e.g. fusion:dense+bm25; got {spec!r}"
        )
    unknown = set(params) - {"norm", "step", "pool"}
    if unknown:
        raise ValueError(
            f"unknown fusion parameter(s) {sorted(unknown)} in {spec!r}; use norm, step, pool"
        )
    norm = params.get("norm", "minmax")
    if norm not in NORMALISATIONS:
        raise ValueError(f"norm must be one of {NORMALISATIONS}, got {norm!r} in {spec!r}")
    pool = int(params.get("pool", min(depth, 100)))
    stages = [build_stage(collection, p, depth=pool, dataset=dataset) for p in parts]
    if dataset is None or "train" not in dataset.qrels:
        print(
            f"{spec}: the dataset has no 'train' split, so the fusion weights are equal "
            f"({1 / len(parts):.3g} each), not fitted",
            file=sys.stderr,
        )
        return ScoreFusion(*stages, norm=norm, depth=depth)
    qids, qtexts, qrels = dataset.split("train")
    enc = collection.encoder
    qvec = dataset_embeddings(dataset, enc, split="train", progress=False)["query_emb"]
    queries = Queries(qtexts, qids, vectors={enc.name: qvec})
    runs = [s.transform(queries) for s in stages]
    weights, _ = fit_fusion_weights(
        runs, qrels, qids, norm=norm, step=float(params.get("step", 0.1))
    )
    print(
        f"{spec}: weights fitted on {len(qids)} train queries: "
        + ", ".join(f"{p}={w:g}" for p, w in zip(parts, weights)),
        file=sys.stderr,
    )
    return ScoreFusion(*stages, weights=weights, norm=norm, depth=depth)


def fit_fusion_weights(
    runs: Sequence[Results],
    qrels: dict[str, dict[str, int]],
    query_ids: Sequence[str],
    *,
    norm: str = "minmax",
    measure: str = "nDCG@10",
    step: float = 0.1,
    doc_ids: Callable[[Results], list[list[str]]] | None = None,
) -> tuple[tuple[float, ...], list[tuple[tuple[float, ...], float]]]:
    """Grid-search fusion weights maximising ``measure`` on *training* queries.

    ``runs`` are the single retrievers' results on the training queries ``query_ids`` (never
    the test queries) and ``qrels`` their judgements. Returns ``(best_weights, table)`` where
    ``table`` lists every ``(weights, value)`` tried.
    """
    table = []
    for w in weight_grid(len(runs), step):
        fused = fuse_scores(runs, w, norm=norm, depth=max(r.k for r in runs))
        ids = doc_ids(fused) if doc_ids is not None else fused.doc_ids()
        run = {
            q: {d: float(s) for d, s in zip(row, sc)}
            for q, row, sc in zip(query_ids, ids, fused.scores)
        }
        table.append((w, evaluate(qrels, run, [measure])[measure]))
    best = max(table, key=lambda t: (t[1], -max(t[0])))
    return best[0], table


HYBRID_BUILDERS.register(PREFIX, build_fusion)
