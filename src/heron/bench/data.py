"""Cached dataset embeddings for the benchmark, with optional sampling of the corpus."""

from __future__ import annotations

import numpy as np


def dataset_vectors(
    dataset: str,
    *,
    split: str = "test",
    model: str | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> dict:
    """Embeddings of a BEIR dataset (cached) and an evaluator; sampled when the corpus is large.

    Returns a dict with ``doc_emb``, ``query_emb``, ``evaluate`` (``None`` when sampled: the
    relevance judgements refer to documents outside the sample), ``n_docs`` (full size),
    ``n_sample`` and ``model``.
    """
    from heron.bench.sweep import beir_evaluator
    from heron.encoders.dense import load_encoder
    from heron.eval import load_beir
    from heron.eval.cache import dataset_embeddings

    enc = load_encoder(model) if model else load_encoder()
    emb = dataset_embeddings(load_beir(dataset), enc, split=split)
    x, q = emb["doc_emb"], emb["query_emb"]
    n = len(x)
    if sample is not None and sample < n:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, sample, replace=False))
        return {
            "doc_emb": x[rows],
            "query_emb": q,
            "evaluate": None,
            "n_docs": n,
            "n_sample": sample,
            "model": enc.name,
        }
    ev = beir_evaluator(emb["doc_ids"], emb["query_ids"], emb["qrels"])
    return {
        "doc_emb": x,
        "query_emb": q,
        "evaluate": ev,
        "n_docs": n,
        "n_sample": n,
        "model": enc.name,
    }
