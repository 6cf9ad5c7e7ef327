"""Cross-encoder reranking through sentence-transformers' ``CrossEncoder``.

Nogueira & Cho, "Passage Re-ranking with BERT", arXiv 1901.04085, 2019. Each (query, document)
pair is scored jointly by a sequence-classification transformer; candidates are re-sorted by
that score. Any model name or local folder that ``sentence_transformers.CrossEncoder`` loads
works (no cross-encoder ships offline with heron; point ``model`` at a local folder).
"""

from __future__ import annotations

import numpy as np

from heron._deps import require
from heron.pipeline import Queries, Stage, rescore
from heron.rerank.vectors import KeyedTexts
from heron.results import PAD_KEY, Results


class CrossEncoderReranker(Stage):
    """Rerank candidates with a cross-encoder.

    Parameters
    ----------
    model: a sentence-transformers CrossEncoder name or local path.
    texts: document texts by key.
    batch_size: pairs per forward pass.
    max_length: word pieces per (query, document) pair.
    device: torch device.
    """

    def __init__(
        self,
        model: str,
        *,
        texts: KeyedTexts,
        batch_size: int = 32,
        max_length: int = 512,
        device: str = "cpu",
    ) -> None:
        if not isinstance(model, str) or not model:
            raise TypeError(f"model must be a CrossEncoder name or folder, got {model!r}")
        st = require("sentence_transformers", purpose="cross-encoder reranking")
        self.model_name = model
        self.model = st.CrossEncoder(model, max_length=max_length, device=device)
        self.texts, self.batch_size = texts, int(batch_size)
        self.name = f"CrossEncoder({model})"

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        if candidates is None:
            raise ValueError(
                "CrossEncoderReranker reranks candidates; put a retriever before it: dense % 100 >> CrossEncoderReranker(...)"
            )
        scores = np.full(candidates.keys.shape, -np.inf, dtype=np.float32)
        pairs, where = [], []
        for i, (q, row) in enumerate(zip(queries.texts, candidates.keys)):
            real = np.flatnonzero(row != PAD_KEY)
            for j, t in zip(real, self.texts(row[real])):
                pairs.append((q, t))
                where.append((i, j))
        if pairs:
            s = np.asarray(
                self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False),
                dtype=np.float32,
            )
            s = s.reshape(len(pairs), -1)[:, -1]
            idx = np.asarray(where)
            scores[idx[:, 0], idx[:, 1]] = s
        return rescore(candidates, scores)
