"""``filter=`` for every retriever: metadata filters where an index cannot apply them itself.

ANN indexes filter inside the search (faiss ``IDSelector``); every other retriever is wrapped by
:class:`Filtered`. When few documents match, the retriever scores exactly those documents (it
re-scores them as candidates: exact for every method that can score given documents); otherwise
it searches deeper until ``depth`` matching hits are found or the whole collection was ranked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k, pad, per_hit

#: at most this many matching documents are scored directly as candidates
EXACT_MATCHES = 20_000


class Filtered(Stage):
    """Keep only hits whose metadata matches ``flt`` (a :mod:`heron.index.filters` filter)."""

    def __init__(self, collection: Any, inner: Stage, flt: dict[str, Any], *, depth: int | None = None) -> None:
        from heron.index.filters import compile_filter

        compile_filter(flt)  # validate now
        self.collection, self.inner, self.filter = collection, inner, flt
        self.depth = check_k(depth or inner.depth)
        self.name = f"filtered({inner!r})"

    def with_depth(self, k: int) -> Filtered:
        return Filtered(self.collection, self.inner, self.filter, depth=k)

    def compile(self) -> Stage:
        return Filtered(self.collection, self.inner.compile(), self.filter, depth=self.depth)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        snap = self.collection.snapshot()
        allowed = snap.matching_keys(self.filter)
        nq, k = len(queries), self.depth
        if candidates is not None:
            keep = np.isin(candidates.keys, allowed) & candidates.valid()
            masked = Results(np.where(keep, candidates.keys, PAD_KEY),
                             np.where(keep, candidates.scores, -np.inf).astype(np.float32),
                             candidates.resolver, dict(candidates.info))
            return self.inner.transform(queries, masked)
        info = {"filter_matches": int(len(allowed))}
        if len(allowed) == 0:
            r = Results.empty(nq, k)
            return Results(r.keys, r.scores, snap.resolver(), info)
        if len(allowed) <= EXACT_MATCHES and self.inner.rescores:
            cand = Results(np.broadcast_to(allowed, (nq, len(allowed))).copy(),
                           np.zeros((nq, len(allowed)), np.float32), snap.resolver())
            res = self.inner.transform(queries, cand).cut(k)
            res.info.update(info, strategy="filter-exact")
            return res
        depth, n = max(k, 1), len(snap)
        while True:  # ranked deeper until k matching hits (or everything was ranked)
            depth = min(n, depth * 4)
            res = self.inner.with_depth(depth).transform(queries, None)
            keep = np.isin(res.keys, allowed) & res.valid()
            enough = keep.sum(axis=1).min() >= min(k, len(allowed))
            if enough or depth >= n:
                break
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        kept = np.take_along_axis(keep, order, 1)
        keys = np.where(kept, np.take_along_axis(res.keys, order, 1), PAD_KEY)
        scores = np.where(keys != PAD_KEY, np.take_along_axis(res.scores, order, 1), -np.inf)
        keys, scores = pad(keys, scores.astype(np.float32), k)

        def align(a: np.ndarray) -> np.ndarray:
            """A per-hit array (``info["passages"]``) taken along with its hits, -1 elsewhere."""
            v = np.where(kept, np.take_along_axis(a, order, 1), -1).astype(a.dtype, copy=False)
            fill = np.full((len(v), k - v.shape[1]), -1, dtype=v.dtype)
            return np.concatenate([v, fill], axis=1) if fill.shape[1] else v

        out = per_hit(res.info, res.keys.shape, align)
        return Results(keys, scores, res.resolver, {**out, **info, "strategy": f"filter-post({depth})"})
