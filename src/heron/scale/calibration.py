"""Calibrated relevance (``min_relevance=``) on a sharded collection: one adapter, fitted on merged scores.

A single collection's ``min_relevance`` (:mod:`heron.capabilities.calibrated`) maps each hit's raw
score to a probability with a Cosine Adapter (Rossi et al., "Relevance Filtering for
Embedding-based Retrieval", CIKM 2024). The map is *query dependent*: its inputs are the query
vector and the query's whole first-stage score list (top-1 score, gaps to ranks 2/5/20, mean and
spread of the top 10, and each score relative to the top-1 and the rank-100 score). A shard's
own list differs from the global one (its top-1 is not the global top-1), so an adapter fitted or
applied per shard gives other probabilities than the single node. Here the adapter is fitted
once on the *merged* top-``depth`` lists and applied after the exact merge of the top-100
(as :meth:`heron.Collection.search` thresholds ``stage % max(k, 100)``): given the same adapter,
the thresholded hits equal the single node's. It is stored in the sharded folder
(``calibration/``, named in ``shards.json``); per-shard calibrations are never used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heron.calibration.cosine_adapter import (
    CosineAdapter,
    check_threshold,
    label_candidates,
    threshold_results,
)
from heron.results import Results
from heron.scale import routing

FOLDER = "calibration"
#: the candidate depth the threshold reads (as a single collection's ``stage % max(k, 100)``)
MIN_DEPTH = 100

_CACHE: dict[str, tuple[int, CosineAdapter]] = {}


def calibrate(sc: Any, queries: Any, query_ids: Sequence[str], qrels: Mapping[str, Mapping[str, int]], *,
              depth: int = 100, **params: Any) -> CosineAdapter:
    """Fit the adapter on the merged dense top-``depth`` of labelled queries and store it in ``sc``.

    ``queries``: texts, query vectors ``(n, dim)`` or :class:`~heron.pipeline.Queries` (with
    cached vectors for ``model="none"``); ``qrels`` name documents by string id; ``params`` go to
    :class:`~heron.calibration.CosineAdapter`.
    """
    texts, vectors = sc._queries(queries)
    if len(query_ids) != len(texts):
        raise ValueError(f"got {len(query_ids)} query ids for {len(texts)} queries")
    vectors = sc._vectors(texts, vectors)
    first = sc.search(vectors, depth, using="dense")
    labels = label_candidates(first.doc_ids(), [str(q) for q in query_ids], qrels)
    labels = np.pad(labels, ((0, 0), (0, first.k - labels.shape[1])))
    adapter = CosineAdapter(**params).fit(vectors, first.scores, labels, model=sc.model)
    folder = sc.path / FOLDER
    adapter.save(folder)
    sc.manifest["calibration"] = {"folder": FOLDER, "model": sc.model, "n_queries": len(texts), "depth": depth,
                                  "fitted_on": "merged scores of all shards"}
    routing.write_manifest(sc.path, sc.manifest)
    return adapter


def adapter_of(path: Path, manifest: Mapping[str, Any]) -> CosineAdapter:
    """The stored adapter (read once, re-read when its files change); a ValueError if none."""
    if "calibration" not in manifest:
        raise ValueError(
            "this sharded collection has no calibration for min_relevance; fit one on the merged scores with "
            "ShardedCollection.calibrate(queries, query_ids, qrels) (a shard's own calibration is not used: "
            "it maps scores by the shard's score list, which differs from the global one; see docs/scale.md)"
        )
    folder = path / manifest["calibration"].get("folder", FOLDER)
    stamp = max(p.stat().st_mtime_ns for p in folder.iterdir())
    hit = _CACHE.get(str(folder))
    if hit is None or hit[0] != stamp:
        hit = _CACHE[str(folder)] = (stamp, CosineAdapter.load(folder))
    return hit[1]


def threshold(res: Results, adapter: CosineAdapter, vectors: np.ndarray, model: str,
              min_relevance: float, min_hits: int) -> Results:
    """Probabilities of the merged hits, the hits at or above ``min_relevance`` kept (scores: probabilities)."""
    if isinstance(min_hits, bool) or not isinstance(min_hits, int) or min_hits < 0:
        raise ValueError(f"min_hits must be an int >= 0, got {min_hits!r}")
    p = adapter.predict(vectors, res.scores, model=model)
    return threshold_results(res, p, check_threshold(min_relevance), min_hits=min_hits)
