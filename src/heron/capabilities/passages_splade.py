"""Learned-sparse (SPLADE) retrieval over a chunked collection's passages:
``coll.retriever("passages_splade")``.

The third retriever over the same situated passages as ``passages`` (dense) and
``passages_bm25`` (lexical): each passage of the collection's passages field, with the context
it was chunked with (title / heading path, neighbours), is encoded by a SPLADE model (Formal et
al., "SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking", SIGIR 2021; the
bundled ``splade-tiny`` by default) and scored exactly (sparse dot product) against the query;
a document scores as its best passage (max, MaxP) and ``results.info["passages"]`` names that
passage. So dense, BM25 and SPLADE rank the same units and fuse naturally
(``hybrid:passages+passages_splade``).

The passage vectors are encoded in memory once per snapshot and model (not persisted): a
collection whose documents change often pays the encoding again, as ``passages_bm25`` pays
its index build.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from heron.capabilities.passages import _default_field
from heron.capabilities.passages_bm25 import OVERSAMPLE, best_passages, live_passages
from heron.capabilities.registry import register_retriever
from heron.pipeline import Queries, Stage
from heron.results import Results, check_k

log = logging.getLogger(__name__)

#: more passages than this are encoded with a progress bar
PROGRESS_OVER = 2000


def passage_splade(collection: Any, field: str, snap: Any, encoder: Any) -> tuple:
    """``(index, owner_keys, local_index)``: an exact sparse index over the snapshot's passages
    encoded by ``encoder`` (``(n_passages, vocab)`` CSR), memoised per snapshot."""

    def build() -> tuple:
        from heron.sparse.exact import ExactSparseIndex

        passages, owner, local = live_passages(collection, field, snap)
        log.info("encoding %d passages with %s", len(passages), encoder.name)
        texts = [p.encoded for p in passages]
        vecs = encoder.encode_documents(texts, progress=len(texts) > PROGRESS_OVER)
        idx = ExactSparseIndex(vecs, keys=np.arange(len(passages), dtype=np.int64))
        return idx, owner, local

    return snap.memo(("passages_splade", field, encoder.name), build)


class PassageSpladeRetriever(Stage):
    """Documents ranked by their best passage's SPLADE score.

    Parameters
    ----------
    collection: a collection with a passages field.
    field: the passages field (default: the collection's only one, or ``"passages"``).
    model: the SPLADE model (default the bundled ``splade-tiny``); ignored with ``encoder``.
    encoder: a loaded :class:`~heron.encoders.splade.SpladeEncoder`.
    depth: hits returned when not cut.
    """

    def __init__(
        self,
        collection: Any,
        *,
        field: str | None = None,
        model: str | None = None,
        encoder: Any = None,
        depth: int = 1000,
    ) -> None:
        self.collection = collection
        self.field = field or _default_field(collection)
        self.depth = check_k(depth)
        if encoder is None:
            from heron.encoders.splade import DEFAULT_SPARSE_MODEL, load_sparse_encoder

            encoder = load_sparse_encoder(model or DEFAULT_SPARSE_MODEL)
        self.encoder = encoder
        self.name = "passages_splade"

    def with_depth(self, k: int) -> PassageSpladeRetriever:
        return PassageSpladeRetriever(
            self.collection, field=self.field, encoder=self.encoder, depth=k
        )

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        queries = Queries.of(queries)
        snap = self.collection.snapshot()
        idx, owner, local = passage_splade(self.collection, self.field, snap, self.encoder)
        key = f"sparse:{self.encoder.name}"
        q = queries.cached(key)
        if q is None:
            q = self.encoder.encode_queries(queries.texts)
            queries.put(key, q)
        k = self.depth
        hits = idx.search(q, min(max(k * OVERSAMPLE, k), max(len(owner), 1)))
        out_k, out_s, out_p = best_passages(
            np.asarray(hits.keys), np.asarray(hits.scores), owner, local, k, candidates
        )
        info = {
            "retriever": "passages_splade",
            "score": "splade",
            "field": self.field,
            "passages": out_p,
        }
        return Results(out_k, out_s, snap.resolver(), info)


register_retriever(
    "passages_splade", lambda collection, **p: PassageSpladeRetriever(collection, **p)
)

__all__ = ["PassageSpladeRetriever", "passage_splade"]
