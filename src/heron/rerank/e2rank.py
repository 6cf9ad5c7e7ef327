"""Embedding-based listwise reranking (E²Rank).

Liu et al., "E²Rank: Your Text Embedding can Also be an Effective and Efficient Listwise
Reranker", arXiv 2510.22733, 2025. The query and its top-``K`` first-stage candidates are written
into one *listwise prompt*; the prompt's embedding acts as a pseudo-relevance-feedback query, and
every candidate is re-scored by its cosine with it (one encoder call per query, the candidates'
stored vectors are reused). ``alpha`` mixes in the original query-document cosine.
"""

from __future__ import annotations

import numpy as np

from heron.pipeline import Queries, Stage, rescore
from heron.rerank.vectors import KeyedTexts, KeyedVectors, check_model, query_vectors
from heron.results import PAD_KEY, Results

DEFAULT_TEMPLATE = "{query}\n{docs}"
DEFAULT_DOC_TEMPLATE = "[{rank}] {text}"


class E2Rank(Stage):
    """Listwise-prompt embedding reranker.

    ``score(d) = alpha * cos(q, d) + (1 - alpha) * cos(embed(prompt(q, top_K)), d)``

    Parameters
    ----------
    encoder:
        The model that made the document vectors (``name``, ``dim``, ``encode_queries``).
    vectors:
        Stored document vectors by key.
    texts:
        Document texts by key (to write the prompt).
    num_feedback:
        ``K``: how many top candidates go into the prompt.
    alpha:
        Weight of the original query cosine in ``[0, 1]`` (0: prompt only, as in the paper).
    template:
        Prompt format with ``{query}`` and ``{docs}`` fields.
    doc_template:
        Format of each listed document with ``{rank}`` and ``{text}``; joined by newlines.
    doc_words:
        Words kept per listed document (the encoder truncates the whole prompt anyway).
    """

    def __init__(
        self,
        *,
        encoder: object,
        vectors: KeyedVectors,
        texts: KeyedTexts,
        num_feedback: int = 5,
        alpha: float = 0.0,
        template: str = DEFAULT_TEMPLATE,
        doc_template: str = DEFAULT_DOC_TEMPLATE,
        doc_words: int = 40,
    ) -> None:
        if not isinstance(num_feedback, int) or num_feedback < 1:
            raise ValueError(f"num_feedback (K) must be an int >= 1, got {num_feedback!r}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if "{query}" not in template or "{docs}" not in template:
            raise ValueError(f"template must contain '{{query}}' and '{{docs}}', got {template!r}")
        if "{text}" not in doc_template:
            raise ValueError(f"doc_template must contain '{{text}}', got {doc_template!r}")
        if not isinstance(doc_words, int) or doc_words < 1:
            raise ValueError(f"doc_words must be an int >= 1, got {doc_words!r}")
        check_model(encoder, vectors, "E2Rank")
        self.encoder, self.vectors, self.texts = encoder, vectors, texts
        self.num_feedback, self.alpha = num_feedback, float(alpha)
        self.template, self.doc_template, self.doc_words = template, doc_template, doc_words
        self.name = f"E2Rank(K={num_feedback}, alpha={alpha})"
        self._memo: dict[str, np.ndarray] = {}

    def prompts(self, queries: Queries, candidates: Results) -> list[str]:
        """The listwise prompt of each query, shape ``(n_queries,)``."""
        out = []
        for text, row in zip(queries.texts, candidates.keys):
            top = row[row != PAD_KEY][: self.num_feedback]
            docs = self.texts(top) if len(top) else []
            lines = [
                self.doc_template.format(rank=r + 1, text=" ".join(d.split()[: self.doc_words]))
                for r, d in enumerate(docs)
            ]
            out.append(self.template.format(query=text, docs="\n".join(lines)))
        return out

    def embed_prompts(self, prompts: list[str]) -> np.ndarray:
        """Prompt embeddings ``(n, d)``; memoised per prompt text (a repeated query costs nothing)."""
        todo = sorted({p for p in prompts if p not in self._memo})
        if todo:
            emb = np.asarray(self.encoder.encode_queries(todo), dtype=np.float32)
            if len(self._memo) + len(todo) > 100_000:
                self._memo.clear()
            self._memo.update(zip(todo, emb))
        return (
            np.stack([self._memo[p] for p in prompts])
            if prompts
            else np.zeros((0, self.vectors.dim), np.float32)
        )

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        if candidates is None:
            raise ValueError(
                "E2Rank reranks candidates; put a retriever before it: dense % 100 >> E2Rank(...)"
            )
        docs = self.vectors.lookup(candidates.keys)  # (nq, k, d)
        p = self.embed_prompts(self.prompts(queries, candidates))
        s = np.einsum("qkd,qd->qk", docs, p)
        if self.alpha > 0:
            q = query_vectors(queries, self.encoder)
            s = self.alpha * np.einsum("qkd,qd->qk", docs, q) + (1 - self.alpha) * s
        return rescore(candidates, s)
