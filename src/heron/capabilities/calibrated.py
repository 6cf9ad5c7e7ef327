"""Calibrated relevance on a collection: fit and store a Cosine Adapter, threshold with it.

``calibrate(coll, queries, qrels)`` fits a :class:`~heron.calibration.CosineAdapter` on labelled
queries (``qrels`` name documents by the collection's string ids) and stores it under
``coll.index_dir("calibration")``; ``threshold_stage(coll, min_relevance=...)`` loads it as a
:class:`~heron.calibration.RelevanceThreshold` stage (refused if the collection's model changed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from heron.calibration.cosine_adapter import CosineAdapter, RelevanceThreshold, label_candidates
from heron.pipeline import Queries

INDEX = "calibration"


def calibrate(
    coll: Any,
    queries: Sequence[str],
    query_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    depth: int = 100,
    **params: Any,
) -> CosineAdapter:
    """Fit the adapter on ``queries`` (judged in ``qrels``) over this collection and store it."""
    q = Queries(list(queries), list(query_ids))
    first = (coll.retriever("dense") % depth).search(q)
    ids = [coll.snapshot().ids(row[row >= 0]) + [""] * int((row < 0).sum()) for row in first.keys]
    labels = label_candidates(ids, q.ids, qrels)
    vecs = np.asarray(q.embed(coll.encoder), dtype=np.float32)
    adapter = CosineAdapter(**params).fit(vecs, first.scores, labels, model=coll.model)
    adapter.save(coll.index_dir(INDEX))
    coll.set_config(INDEX, {"model": coll.model, "n_queries": len(q), "depth": depth})
    return adapter


def threshold_stage(
    coll: Any, *, min_relevance: float = 0.5, min_hits: int = 0
) -> RelevanceThreshold:
    """The stored adapter as a threshold stage (put after ``coll.retriever('dense') % depth``)."""
    if INDEX not in coll.config:
        raise ValueError(
            "this collection has no calibration; fit one with heron.capabilities.calibrated.calibrate(coll, queries, ids, qrels)"
        )
    adapter = _resident_adapter(coll.path / "indexes" / INDEX)
    return RelevanceThreshold(
        adapter=adapter, encoder=coll.encoder, min_relevance=min_relevance, min_hits=min_hits
    )


_ADAPTERS: dict[str, tuple[int, CosineAdapter]] = {}


def _resident_adapter(folder: Any) -> CosineAdapter:
    """The stored adapter, read once and kept while its files are unchanged (not per search)."""
    stamp = max(p.stat().st_mtime_ns for p in folder.iterdir())
    hit = _ADAPTERS.get(str(folder))
    if hit is None or hit[0] != stamp:
        hit = (stamp, CosineAdapter.load(folder))
        _ADAPTERS[str(folder)] = hit
    return hit[1]
