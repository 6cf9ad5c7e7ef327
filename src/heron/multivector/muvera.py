"""MUVERA Fixed Dimensional Encodings (FDEs): one vector per multi-vector set.

Dhulipala, Hadian, Jayaram, Lee & Mirrokni, "MUVERA: Multi-Vector Retrieval via Fixed
Dimensional Encodings", NeurIPS 2024.

For each of ``r_reps`` repetitions, ``k_sim`` random Gaussian hyperplanes (SimHash) split the
token space into ``B = 2**k_sim`` partitions. A query's block ``k`` is the **sum** of its tokens
falling in partition ``k``; a document's block is their **average** (the asymmetry that makes
``<FDE(q), FDE(d)>`` approximate the Chamfer / MaxSim similarity). A document partition left
empty is, with ``fill_empty``, set to the document token whose SimHash bits are nearest (Hamming)
to the partition. Each block is shrunk to ``d_proj`` dimensions by a random ``±1/sqrt(d_proj)``
matrix (identity when ``d_proj == d``), the repetitions are concatenated
(``r_reps * B * d_proj`` dims), and an optional ``±1/sqrt(d_final)`` final projection maps the
result to ``d_final`` dims.

FDEs are ordinary dense vectors: any exact or approximate inner-product index, and any vector
codec (PQ, binary), applies to them. :class:`MuveraRetriever` is the paper's pipeline: FDE search
for candidates, then exact MaxSim rerank.

Beyond the paper (each optional, off by default): tokens centred before SimHash
(:meth:`FDEEncoder.fit_centre`) and per-token weights in the document averages / query sums
(:func:`piece_weights`: word-piece IDF or common pieces dropped). Measured on MiniLM token
vectors (docs/multivector.md, MUVERA recall), fewer partitions with more repetitions,
centring, IDF-weighted document averages and unfilled partitions (``"4,8,80,c,w,e"`` in
:func:`parse_spec` terms) gave the best recall of the exact MaxSim top-10 at 10240 dims.
Encoding runs in a fused numba kernel when numba is installed (:mod:`._fde_numba`).

The encoder lives in :mod:`.muvera_encoder`, word-piece weights and the spec grammar in
:mod:`.muvera_spec`; every name is importable from here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.multivector._muvera_blocks import FDE_METHODS
from heron.multivector.maxsim import query_tokens, rerank_maxsim
from heron.multivector.muvera_encoder import FORMAT, MAX_DIMENSION, VERSION, FDEEncoder
from heron.multivector.muvera_spec import (
    PIECE_WEIGHTS,
    SPEC_FLAGS,
    encoder_from_spec,
    parse_spec,
    piece_weights,
)
from heron.multivector.ragged import RaggedArray
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k

__all__ = [
    "FDE_METHODS",
    "FORMAT",
    "MAX_DIMENSION",
    "PIECE_WEIGHTS",
    "SPEC_FLAGS",
    "VERSION",
    "FDEEncoder",
    "MuveraRetriever",
    "encoder_from_spec",
    "parse_spec",
    "piece_weights",
]


class MuveraRetriever(Stage):
    """MUVERA retrieval: FDE inner-product search for candidates, exact MaxSim rerank.

    Parameters
    ----------
    encoder: the :class:`FDEEncoder` the document FDEs were built with.
    doc_fdes: ``(n_docs, dimension)`` document FDEs, float32 or float16 (rows aligned with
        ``docs``); float16 FDEs are scanned in place (:func:`.muvera_scan.fde_search`).
    docs: token store for the exact rerank (its ``keys`` are returned).
    token_encoder: text -> token vectors encoder for query texts (optional with precomputed tokens).
    candidates: FDE hits reranked per query (paper: a few hundred); ``rerank=False`` returns the
        FDE ranking itself.
    depth: hits returned.
    index: optional object with ``search(queries (n, D), k) -> (scores, rows)`` replacing the exact
        FDE scan (an ANN index or a compressed codec built on ``doc_fdes``).
    """

    name = "muvera"

    def __init__(
        self,
        *,
        encoder: FDEEncoder,
        doc_fdes: np.ndarray,
        docs: RaggedArray,
        token_encoder: Any | None = None,
        candidates: int = 100,
        rerank: bool = True,
        depth: int = 100,
        resolver: Any = None,
        index: Any = None,
    ) -> None:
        if doc_fdes.ndim != 2 or doc_fdes.shape != (len(docs), encoder.dimension):
            raise ValueError(
                f"doc_fdes must have shape ({len(docs)}, {encoder.dimension}), got {doc_fdes.shape}"
            )
        if docs.dim != encoder.dim:
            raise ValueError(
                f"token dimension {docs.dim} does not match the FDE encoder's dim={encoder.dim}"
            )
        self.encoder, self.doc_fdes, self.docs = encoder, doc_fdes, docs
        self.token_encoder, self.candidates, self.rerank = (
            token_encoder,
            check_k(candidates),
            bool(rerank),
        )
        self.depth, self.resolver, self.index = check_k(depth), resolver, index

    def with_depth(self, k: int) -> MuveraRetriever:
        return MuveraRetriever(
            encoder=self.encoder,
            doc_fdes=self.doc_fdes,
            docs=self.docs,
            token_encoder=self.token_encoder,
            candidates=self.candidates,
            rerank=self.rerank,
            depth=k,
            resolver=self.resolver,
            index=self.index,
        )

    def fde_search(self, qt: list[np.ndarray], k: int) -> Results:
        """FDE top-``k`` candidates (no rerank)."""
        from heron.multivector.muvera_scan import fde_search

        qf = self.encoder.encode_queries(qt)
        if self.index is not None:
            s, r = self.index.search(qf, k)
        else:
            valid = ~self.docs.deleted if self.docs.deleted.any() else None
            s, r = fde_search(qf, self.doc_fdes, k, valid=valid)
        r = np.asarray(r, dtype=np.int64)
        keys = np.where(r >= 0, self.docs.keys[np.maximum(r, 0)], PAD_KEY)
        return Results(keys, np.where(r >= 0, s, -np.inf), self.resolver, {"stage": "muvera-fde"})

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        qt = query_tokens(queries, self.token_encoder, self.docs.dim)
        if not self.rerank:
            return self.fde_search(qt, self.depth)
        cand = self.fde_search(qt, max(self.candidates, self.depth))
        return rerank_maxsim(qt, self.docs, cand, depth=self.depth)
