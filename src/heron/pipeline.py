"""A small composition algebra over :class:`~heron.results.Results`, after PyTerrier.

Macdonald & Tonellotto, "Declarative Experimentation in Information Retrieval using
PyTerrier", ICTIR 2020.

Every retriever, reranker and filter is a :class:`Stage`: ``stage(queries, candidates)`` maps a
batch of queries (and optionally the candidates of the previous stage) to :class:`Results`.
Operators build pipelines:

* ``a % k``   cut-off: keep the top ``k`` of ``a`` (``compile`` passes ``k`` down as the retriever's depth)
* ``a >> b``  then: ``b`` re-scores the candidates ``a`` produced
* ``a | b``   fusion by reciprocal rank (:class:`RRF`); ``RRF(a, b, weights=[2, 1])`` for weights

Example::

    pipe = (dense % 100 | bm25 % 100) >> rerank % 10
    res = pipe.search(["how do I parse arguments"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from heron.encoders.base import check_texts
from heron.limits import check_number
from heron.results import PAD_KEY, Results, check_k, pad, per_hit


class Queries:
    """A batch of query texts with memoised per-encoder embeddings.

    Stages that need a dense query vector call :meth:`embed` so a pipeline encodes each query
    once per model, however many stages use it.

    Parameters
    ----------
    texts: the query strings, shape ``(n_queries,)``.
    ids: optional query ids (default ``"0"``, ``"1"``, ...).
    vectors: optional precomputed embeddings ``{encoder_name: (n_queries, d)}``.
    """

    def __init__(
        self,
        texts: Sequence[str] | str,
        ids: Sequence[str] | None = None,
        *,
        vectors: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.texts = check_texts(texts, what="queries")
        self.ids = (
            [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(self.texts))]
        )
        if len(self.ids) != len(self.texts):
            raise ValueError(f"got {len(self.ids)} query ids for {len(self.texts)} queries")
        self._vectors: dict[str, Any] = dict(vectors or {})
        for name, v in self._vectors.items():
            shape = getattr(v, "shape", None)  # dense arrays or scipy sparse matrices
            if shape is None or len(shape) < 1 or shape[0] != len(self.texts):
                raise ValueError(
                    f"precomputed query vectors for {name!r} must have one row per query ({len(self.texts)})"
                )

    def __len__(self) -> int:
        return len(self.texts)

    def embed(self, encoder: Any, *, kind: str = "dense") -> Any:
        """Embed the queries with ``encoder`` (memoised by ``(kind, encoder.name)``)."""
        key = encoder.name if kind == "dense" else f"{kind}:{encoder.name}"
        if key not in self._vectors:
            for i, t in enumerate(self.texts):
                if not t.strip():
                    raise ValueError(f"query {i} is empty; pass a non-empty query text")
            self._vectors[key] = encoder.encode_queries(self.texts)
        return self._vectors[key]

    def cached(self, key: str) -> Any:
        return self._vectors.get(key)

    def put(self, key: str, value: Any) -> None:
        self._vectors[key] = value

    @staticmethod
    def of(queries: Queries | Sequence[str] | str) -> Queries:
        return queries if isinstance(queries, Queries) else Queries(queries)


class Stage:
    """Base class of every pipeline stage.

    Subclasses implement :meth:`transform`. A *retriever* ignores ``candidates`` (it produces
    them); a *reranker* requires them. ``depth`` is how many hits a retriever returns when not
    cut explicitly.
    """

    #: default number of hits a retriever produces when nothing cuts it
    depth: int = 1000
    name: str = "stage"
    #: given candidates, a retriever scores exactly those (used by ``filter=`` on small matches)
    rescores: bool = False

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        raise NotImplementedError

    def search(self, queries: Queries | Sequence[str] | str, k: int | None = None) -> Results:
        """Run the pipeline on query texts; returns the top ``k`` (default: the pipeline's depth)."""
        q = Queries.of(queries)
        stage: Stage = self if k is None else Cutoff(self, check_k(k))
        return stage.compile().transform(q, None)

    def __call__(
        self, queries: Queries | Sequence[str] | str, candidates: Results | None = None
    ) -> Results:
        return self.transform(Queries.of(queries), candidates)

    def compile(self) -> Stage:
        """Return an equivalent pipeline with cut-offs pushed into retrievers' ``depth``."""
        return self

    def with_depth(self, k: int) -> Stage:
        """A copy of this stage producing ``k`` hits (retrievers override to search less)."""
        return self

    # operators --------------------------------------------------------------
    def __mod__(self, k: int) -> Stage:
        return Cutoff(self, check_k(k))

    def __rshift__(self, other: Stage) -> Stage:
        if not isinstance(other, Stage):
            raise TypeError(f"'>>' needs a Stage on the right, got {type(other).__name__}")
        return Then(self, other)

    def __or__(self, other: Stage) -> Stage:
        if not isinstance(other, Stage):
            raise TypeError(f"'|' needs a Stage on the right, got {type(other).__name__}")
        left = list(self.stages) if isinstance(self, RRF) and self.weights is None else [self]
        return RRF(*left, other)

    def __repr__(self) -> str:
        return self.name


class Cutoff(Stage):
    """Keep the top ``k`` hits of ``inner`` (``inner % k``)."""

    def __init__(self, inner: Stage, k: int) -> None:
        self.inner, self.k = inner, check_k(k)
        self.depth = self.k
        self.name = f"({inner!r} % {k})"

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        return self.inner.transform(queries, candidates).cut(self.k)

    def compile(self) -> Stage:
        inner = self.inner.compile()
        return Cutoff(inner.with_depth(self.k), self.k)


class Then(Stage):
    """``first >> second``: ``second`` re-scores the candidates of ``first``."""

    def __init__(self, first: Stage, second: Stage) -> None:
        self.first, self.second = first, second
        self.depth = second.depth
        self.name = f"({first!r} >> {second!r})"

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        return self.second.transform(queries, self.first.transform(queries, candidates))

    def compile(self) -> Stage:
        return Then(self.first.compile(), self.second.compile())

    def with_depth(self, k: int) -> Stage:
        return Then(self.first, self.second.with_depth(k))


class FunctionStage(Stage):
    """Wrap ``fn(queries, candidates) -> Results`` as a stage."""

    def __init__(self, fn: Callable[[Queries, Results | None], Results], name: str = "fn") -> None:
        self.fn, self.name = fn, name

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        return self.fn(queries, candidates)


class RRF(Stage):
    """Reciprocal-rank fusion of several stages.

    Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual
    Rank Learning Methods", SIGIR 2009: ``score(d) = sum_i w_i / (c + rank_i(d))``.

    Parameters
    ----------
    stages: the stages to fuse (each run on the same queries and candidates).
    weights: one weight per stage (default all 1).
    c: the rank constant (60 in the paper).
    depth: hits kept after fusion (default: the largest input depth).

    Exactly tied hits of a stage share the rank of the first of them ("competition" ranking,
    :func:`tied_ranks`), so the fused scores do not depend on how an engine orders its ties
    (bm25s' partial sort, a segment's insertion order, a sharded merge): a single node and a
    sharded collection fuse to the same scores (``docs/scale.md``).
    """

    def __init__(
        self,
        *stages: Stage,
        weights: Sequence[float] | None = None,
        c: float = 60.0,
        depth: int | None = None,
    ) -> None:
        if len(stages) < 2:
            raise ValueError(f"RRF needs at least two stages, got {len(stages)}")
        if weights is not None:
            weights = [check_number(w, "RRF weight", low=0) for w in weights]
            if len(weights) != len(stages):
                raise ValueError(
                    f"RRF needs one non-negative weight per stage ({len(stages)}), got {weights}"
                )
        c = check_number(c, "RRF rank constant c", low=0)
        self.stages, self.weights, self.c = list(stages), weights, float(c)
        self.depth = depth or max(s.depth for s in stages)
        self.name = "(" + " | ".join(repr(s) for s in stages) + ")"

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        runs = [s.transform(queries, candidates) for s in self.stages]
        w = self.weights or [1.0] * len(runs)
        return fuse_rrf(runs, w, self.c, self.depth)

    def compile(self) -> Stage:
        return RRF(
            *[s.compile() for s in self.stages], weights=self.weights, c=self.c, depth=self.depth
        )

    def with_depth(self, k: int) -> Stage:
        return RRF(*self.stages, weights=self.weights, c=self.c, depth=k)


def tied_ranks(scores: np.ndarray) -> np.ndarray:
    """0-based ranks of a ranked row in which a run of exactly equal adjacent scores shares the
    rank of its first hit: ``[0.9, 0.7, 0.7, 0.5] -> [0, 1, 1, 3]``. Shape ``(k,) -> (k,)``."""
    k = len(scores)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.ones(k, dtype=bool)
    starts[1:] = scores[1:] != scores[:-1]
    return np.maximum.accumulate(np.where(starts, np.arange(k), 0))


def fuse_rrf(runs: Sequence[Results], weights: Sequence[float], c: float, depth: int) -> Results:
    """Fuse result batches by weighted reciprocal rank; returns the top ``depth`` per query.

    Exactly tied hits of one run share a rank (:func:`tied_ranks`), so the fusion does not
    depend on the order of ties."""
    n = runs[0].n_queries
    if any(r.n_queries != n for r in runs):
        raise ValueError("all fused runs must have the same number of queries")
    keys_out = np.full((n, depth), PAD_KEY, dtype=np.int64)
    scores_out = np.full((n, depth), -np.inf, dtype=np.float32)
    for qi in range(n):
        ks = np.concatenate([r.keys[qi] for r in runs])
        contrib = np.concatenate(
            [wt / (c + 1.0 + tied_ranks(r.scores[qi])) for r, wt in zip(runs, weights)]
        )
        valid = ks != PAD_KEY
        ks, contrib = ks[valid], contrib[valid]
        if len(ks) == 0:
            continue
        uniq, inv = np.unique(ks, return_inverse=True)
        tot = np.zeros(len(uniq))
        np.add.at(tot, inv, contrib)
        order = np.lexsort((uniq, -tot))[:depth]
        keys_out[qi, : len(order)] = uniq[order]
        scores_out[qi, : len(order)] = tot[order]
    resolver = next((r.resolver for r in runs if r.resolver is not None), None)
    return Results(keys_out, scores_out, resolver)


def rescore(candidates: Results, scores: np.ndarray, depth: int | None = None) -> Results:
    """Re-sort candidates by new ``scores`` (shape ``(n_queries, k)``; padding ignored).

    Never drops or duplicates a candidate: the output holds the same keys per row.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape != candidates.keys.shape:
        raise ValueError(
            f"rescore needs scores of shape {candidates.keys.shape}, got {scores.shape}"
        )
    s = np.where(candidates.valid(), scores, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    keys = np.take_along_axis(candidates.keys, order, axis=1)
    s = np.take_along_axis(s, order, axis=1).astype(np.float32)
    info = per_hit(candidates.info, keys.shape, lambda a: np.take_along_axis(a, order, axis=1))
    if depth is not None:
        keys, s = pad(keys[:, :depth], s[:, :depth], depth)
        info = per_hit(info, order.shape, lambda a: a[:, :depth])
    return Results(keys, s, candidates.resolver, info)
