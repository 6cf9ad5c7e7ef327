"""Query-aware dimension selection (learned predictor) and the training-free PRF mask.

Learned: "Learning to Select: Query-Aware Adaptive Dimension Selection for Dense Retrieval",
2026. Oracle per-dimension importance is built from relevance labels,
``u(q) = q * (mean of relevant docs - mean of top non-relevant docs)`` (elementwise), and a
ridge-regression predictor ``W`` maps the query embedding to it: ``importance(q) = [q, 1] W``.
At search time only the ``m`` dimensions of highest predicted importance score:
``score(d) = sum_{i in top-m} q_i d_i``.

With ``prior="q2"`` the predictor is shrunk toward the query's own energy per dimension,
``importance(q) = s * q**2 + [q, 1] W`` (``s >= 0`` the least-squares scale of ``q**2`` on the
oracle, ``W`` ridge-fitted to the residual): a large ``l2`` falls back to keeping the ``m``
largest ``|q_i|``, which is nearly lossless, so the labels only move the selection where they
agree across queries (less memorising of "queries like this want that document").

Training-free baseline (DIME): Faggioli et al., "Dimension Importance Estimation for Dense
Information Retrieval", SIGIR 2024: ``importance(q) = q * mean(top-k_fb first-stage docs)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from heron._state import check_query_model, load_state, save_state
from heron.pipeline import Queries, Stage
from heron.rerank.vectors import KeyedVectors, query_vectors, search_vectors
from heron.results import Results

FORMAT_VERSION = 1
MIN_QUERIES = 20
PRIORS = ("none", "q2")


def masked_queries(q: np.ndarray, importance: np.ndarray, m: int) -> np.ndarray:
    """Zero all but the ``m`` most important dimensions of each query, shape ``(n, d)``.

    With ``m >= d`` the queries are returned unchanged (plain search exactly).
    """
    q = np.asarray(q, dtype=np.float32)
    d = q.shape[1]
    if not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m (dimensions kept) must be an int >= 1, got {m!r}")
    if m >= d:
        return q
    top = np.argpartition(-np.asarray(importance), m - 1, axis=1)[:, :m]
    mask = np.zeros_like(q, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return np.where(mask, q, np.float32(0))


def prf_importance(
    q: np.ndarray, first_stage: Results, vectors: KeyedVectors, num_feedback: int = 5
) -> np.ndarray:
    """DIME importance ``q * mean(top-k_fb docs)``, shape ``(n, d)``."""
    docs = vectors.lookup(first_stage.keys[:, :num_feedback])
    cnt = np.maximum(first_stage.valid()[:, :num_feedback].sum(1, keepdims=True), 1)
    return np.asarray(q, dtype=np.float32) * (docs.sum(1) / cnt)


def mix_importance(learned: np.ndarray, prf: np.ndarray, weight: float) -> np.ndarray:
    """``weight * learned + (1 - weight) * prf``, each row first scaled to mean ``|value|`` 1.

    Shapes ``(n, d)``; ``weight`` in ``[0, 1]`` (1: learned only, 0: the PRF mask).
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight!r}")

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.abs(x).mean(1, keepdims=True), 1e-12)

    return float(weight) * unit(learned) + (1.0 - float(weight)) * unit(prf)


class DimensionSelector:
    """Predicts per-dimension importance from a query embedding (ridge regression on oracle importance).

    Parameters
    ----------
    l2: ridge penalty.
    num_negatives: top-ranked non-relevant documents whose centroid is subtracted in the oracle (0: none).
    prior: ``"none"`` (plain ridge on the oracle) or ``"q2"`` (shrink toward ``s * q**2``).
    """

    def __init__(self, *, l2: float = 1.0, num_negatives: int = 10, prior: str = "none") -> None:
        if l2 < 0 or num_negatives < 0:
            raise ValueError(f"need l2 >= 0 and num_negatives >= 0, got {l2}, {num_negatives}")
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        self.l2, self.num_negatives, self.prior = float(l2), int(num_negatives), prior
        self.prior_scale = 0.0
        self.model: str | None = None
        self.dim: int | None = None
        self.W: np.ndarray | None = None

    @staticmethod
    def oracle(
        q: np.ndarray, relevant: Sequence[np.ndarray], negatives: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """Oracle importance ``q * (mean(relevant) - mean(negatives))``, shape ``(n, d)``."""
        out = np.zeros_like(np.asarray(q, dtype=np.float64))
        for i, rel in enumerate(relevant):
            c = rel.mean(0)
            if negatives is not None and len(negatives[i]):
                c = c - negatives[i].mean(0)
            out[i] = q[i] * c
        return out

    def fit_labels(
        self,
        query_vectors: np.ndarray,
        query_ids: Sequence[str],
        qrels: Mapping[str, Mapping[str, int]],
        doc_vectors: np.ndarray,
        doc_ids: Sequence[str],
        *,
        model: str | None = None,
    ) -> DimensionSelector:
        """Build the oracle from ``qrels`` and fit the predictor.

        Parameters
        ----------
        query_vectors: ``(n_queries, d)`` training queries.
        query_ids: their ids (keys of ``qrels``).
        qrels: ``{query_id: {doc_id: relevance}}``.
        doc_vectors: ``(n_docs, d)`` corpus vectors; ``doc_ids`` their ids.
        model: encoder name (stored; other models are refused).
        """
        keep, u = self.oracle_labels(query_vectors, query_ids, qrels, doc_vectors, doc_ids)
        return self.fit(np.asarray(query_vectors, dtype=np.float32)[keep], u, model=model)

    def oracle_labels(
        self,
        query_vectors: np.ndarray,
        query_ids: Sequence[str],
        qrels: Mapping[str, Mapping[str, int]],
        doc_vectors: np.ndarray,
        doc_ids: Sequence[str],
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, importance)``: the training queries with relevant documents (row indices,
        ``(n,)``) and their oracle importance ``(n, d)`` (see :meth:`fit_labels`)."""
        q = np.asarray(query_vectors, dtype=np.float32)
        pos = {d: i for i, d in enumerate(doc_ids)}
        rel, neg, keep = [], [], []
        top = None
        if self.num_negatives:
            kv = KeyedVectors(np.arange(len(doc_ids)), doc_vectors)
            top = search_vectors(q, kv, self.num_negatives * 3).keys
        for i, qid in enumerate(query_ids):
            r = [pos[d] for d, g in qrels.get(str(qid), {}).items() if g > 0 and d in pos]
            if not r:
                continue
            keep.append(i)
            rel.append(doc_vectors[r])
            if top is not None:
                rs = set(r)
                neg.append(doc_vectors[[j for j in top[i] if j not in rs][: self.num_negatives]])
        if len(keep) < MIN_QUERIES:
            raise ValueError(
                f"dimension selection needs at least {MIN_QUERIES} training queries with relevant documents; got {len(keep)}"
            )
        keep = np.asarray(keep, dtype=np.int64)
        return keep, self.oracle(q[keep], rel, neg if top is not None else None)

    def fit(
        self, query_vectors: np.ndarray, importance: np.ndarray, *, model: str | None = None
    ) -> DimensionSelector:
        """Ridge regression ``[q, 1] W ~= importance``; ``importance`` ``(n, d)``."""
        q = np.asarray(query_vectors, dtype=np.float64)
        u = np.asarray(importance, dtype=np.float64)
        if q.shape != u.shape:
            raise ValueError(
                f"query_vectors and importance must have the same shape, got {q.shape} and {u.shape}"
            )
        if len(q) < MIN_QUERIES:
            raise ValueError(
                f"dimension selection needs at least {MIN_QUERIES} training queries; got {len(q)}"
            )
        self.prior_scale = 0.0
        if self.prior == "q2":
            q2 = q * q
            self.prior_scale = max(0.0, float((u * q2).sum() / max((q2 * q2).sum(), 1e-300)))
            u = u - self.prior_scale * q2
        x = np.hstack([q, np.ones((len(q), 1))])
        reg = self.l2 * np.eye(x.shape[1])
        reg[-1, -1] = 0.0
        self.W = np.linalg.solve(x.T @ x + reg, x.T @ u).astype(np.float32)
        self.model, self.dim = model, int(q.shape[1])
        return self

    def importance(self, query_vectors: np.ndarray, *, model: str | None = None) -> np.ndarray:
        """Predicted importance ``(n, d)``."""
        if self.W is None:
            raise ValueError(
                "this DimensionSelector is not fitted; call fit_labels(...) or DimensionSelector.load(path)"
            )
        q = np.asarray(query_vectors, dtype=np.float32)
        check_query_model("this DimensionSelector", self.model, int(self.dim or 0), model, q)
        imp = q @ self.W[:-1] + self.W[-1]
        if self.prior_scale:
            imp = imp + np.float32(self.prior_scale) * q * q
        return imp

    def save(self, path: str | os.PathLike) -> None:
        if self.W is None:
            raise ValueError("cannot save an unfitted DimensionSelector")
        save_state(
            path,
            "DimensionSelector",
            FORMAT_VERSION,
            {
                "model": self.model,
                "dim": self.dim,
                "l2": self.l2,
                "num_negatives": self.num_negatives,
                "prior": self.prior,
                "prior_scale": self.prior_scale,
            },
            {"W": self.W},
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> DimensionSelector:
        params, arrays = load_state(path, "DimensionSelector", FORMAT_VERSION)
        self = cls(
            l2=params["l2"],
            num_negatives=params["num_negatives"],
            prior=params.get("prior", "none"),
        )
        self.model, self.dim, self.W = params["model"], params["dim"], arrays["W"]
        self.prior_scale = float(params.get("prior_scale", 0.0))
        return self


class DimensionSelectRetriever(Stage):
    """Exact dense retrieval scoring only each query's top-``m`` dimensions.

    Parameters
    ----------
    vectors: document vectors.
    encoder: query encoder.
    m: dimensions kept per query (``>= d``: plain search).
    selector: a fitted :class:`DimensionSelector`; ``None`` uses the training-free PRF importance.
    num_feedback: PRF documents (when ``selector`` is None).
    depth: hits returned.
    """

    def __init__(
        self,
        *,
        vectors: KeyedVectors,
        encoder: object,
        m: int,
        selector: DimensionSelector | None = None,
        num_feedback: int = 5,
        depth: int = 1000,
    ) -> None:
        if not isinstance(m, int) or m < 1:
            raise ValueError(f"m must be an int >= 1, got {m!r}")
        if selector is not None and selector.dim is not None and selector.dim != vectors.dim:
            raise ValueError(
                f"the DimensionSelector was trained for dimension {selector.dim}, the vectors have {vectors.dim}"
            )
        self.vectors, self.encoder, self.m, self.selector, self.num_feedback, self.depth = (
            vectors,
            encoder,
            m,
            selector,
            num_feedback,
            depth,
        )
        self.name = f"DimSelect(m={m}, {'learned' if selector else 'prf'})"

    def with_depth(self, k: int) -> Stage:
        return DimensionSelectRetriever(
            vectors=self.vectors,
            encoder=self.encoder,
            m=self.m,
            selector=self.selector,
            num_feedback=self.num_feedback,
            depth=k,
        )

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        q = query_vectors(queries, self.encoder)
        if self.m >= q.shape[1]:
            return search_vectors(q, self.vectors, self.depth)
        if self.selector is not None:
            imp = self.selector.importance(q, model=getattr(self.encoder, "name", None))
        else:
            imp = prf_importance(
                q,
                search_vectors(q, self.vectors, self.num_feedback),
                self.vectors,
                self.num_feedback,
            )
        return search_vectors(masked_queries(q, imp, self.m), self.vectors, self.depth)
