"""Rocchio pseudo-relevance feedback on dense vectors.

Rocchio, "Relevance Feedback in Information Retrieval", in *The SMART Retrieval System*, 1971;
applied to dense retrieval as in Li et al., "Pseudo Relevance Feedback with Deep Language Models
and Dense Retrievers: Successes and Pitfalls", TOIS 2023:
``q' = alpha * q + beta * mean(top-k_fb docs) - gamma * mean(bottom docs)``, then candidates are
re-scored by ``q' . d``.
"""

from __future__ import annotations

import numpy as np

from heron.pipeline import Queries, Stage, rescore
from heron.rerank.vectors import KeyedVectors, check_model, query_vectors
from heron.results import Results


class Rocchio(Stage):
    """Vector Rocchio PRF reranker.

    Parameters
    ----------
    encoder: the model that made the document vectors (for the query vector).
    vectors: stored document vectors by key.
    num_feedback: ``k_fb``, top candidates taken as pseudo-relevant.
    alpha, beta: weights of the query and of the pseudo-relevant centroid.
    gamma: weight of the centroid of the ``num_negative`` lowest candidates (0: off).
    num_negative: how many bottom candidates form the negative centroid.
    """

    def __init__(
        self,
        *,
        encoder: object,
        vectors: KeyedVectors,
        num_feedback: int = 3,
        alpha: float = 1.0,
        beta: float = 0.5,
        gamma: float = 0.0,
        num_negative: int = 10,
    ) -> None:
        if not isinstance(num_feedback, int) or num_feedback < 1:
            raise ValueError(f"num_feedback must be an int >= 1, got {num_feedback!r}")
        if min(alpha, beta, gamma) < 0:
            raise ValueError(f"alpha, beta, gamma must be >= 0, got {alpha}, {beta}, {gamma}")
        check_model(encoder, vectors, "Rocchio")
        self.encoder, self.vectors = encoder, vectors
        self.num_feedback, self.alpha, self.beta, self.gamma = (
            num_feedback,
            float(alpha),
            float(beta),
            float(gamma),
        )
        self.num_negative = int(num_negative)
        self.name = f"Rocchio(k={num_feedback}, a={alpha}, b={beta}, g={gamma})"

    def expand(self, q: np.ndarray, candidates: Results) -> np.ndarray:
        """The feedback query ``q'`` ``(n_queries, d)`` (L2-normalised)."""
        docs = self.vectors.lookup(candidates.keys)
        valid = candidates.valid()
        out = self.alpha * q.astype(np.float32)
        for i in range(len(q)):
            n = int(valid[i].sum())
            top = docs[i, : min(self.num_feedback, n)]
            if len(top):
                out[i] += self.beta * top.mean(0)
            if self.gamma > 0 and n > self.num_feedback:
                bottom = docs[i, max(self.num_feedback, n - self.num_negative) : n]
                out[i] -= self.gamma * bottom.mean(0)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        if candidates is None:
            raise ValueError(
                "Rocchio reranks candidates; put a retriever before it: dense % 100 >> Rocchio(...)"
            )
        qp = self.expand(query_vectors(queries, self.encoder), candidates)
        s = np.einsum("qkd,qd->qk", self.vectors.lookup(candidates.keys), qp)
        return rescore(candidates, s)
