"""Rerankers over a candidate list: embedding-based listwise (E²Rank), Rocchio PRF, cross-encoder."""

from heron.rerank.cross_encoder import CrossEncoderReranker
from heron.rerank.e2rank import E2Rank
from heron.rerank.prf import Rocchio
from heron.rerank.vectors import KeyedTexts, KeyedVectors

__all__ = ["CrossEncoderReranker", "E2Rank", "KeyedTexts", "KeyedVectors", "Rocchio"]
