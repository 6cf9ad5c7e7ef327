"""Rerankers and calibrated filtering over a :class:`~heron.Collection`, as named retrievers.

Registered names (each is ``dense % depth >> stage``):

* ``"e2rank"``: :class:`~heron.rerank.E2Rank` (params: ``depth``, ``num_feedback``, ``alpha``, ...);
* ``"rocchio"``: :class:`~heron.rerank.Rocchio`;
* ``"cross_encoder"``: :class:`~heron.rerank.CrossEncoderReranker` (param ``model``: a local folder);
* ``"calibrated"``: dense then :class:`~heron.calibration.RelevanceThreshold` with the adapter
  stored by :func:`heron.capabilities.calibrated.calibrate` (param ``min_relevance``).
"""

from __future__ import annotations

from typing import Any

from heron.pipeline import Stage
from heron.rerank.vectors import KeyedTexts, KeyedVectors


def collection_vectors(coll: Any) -> KeyedVectors:
    """The live dense vectors of ``coll``'s current snapshot, by key."""
    snap = coll.snapshot()
    return KeyedVectors(snap.keys, snap.dense(), model=coll.model)


def collection_texts(coll: Any) -> KeyedTexts:
    return KeyedTexts(lambda keys: coll.snapshot().texts(keys))


def _dense(coll: Any, depth: int) -> Stage:
    return coll.retriever("dense") % depth


def e2rank(coll: Any, *, depth: int = 100, **params: Any) -> Stage:
    from heron.rerank.e2rank import E2Rank

    return _dense(coll, depth) >> E2Rank(
        encoder=coll.encoder,
        vectors=collection_vectors(coll),
        texts=collection_texts(coll),
        **params,
    )


def rocchio(coll: Any, *, depth: int = 100, **params: Any) -> Stage:
    from heron.rerank.prf import Rocchio

    return _dense(coll, depth) >> Rocchio(
        encoder=coll.encoder, vectors=collection_vectors(coll), **params
    )


def cross_encoder(coll: Any, *, model: str, depth: int = 100, **params: Any) -> Stage:
    from heron.rerank.cross_encoder import CrossEncoderReranker

    return _dense(coll, depth) >> CrossEncoderReranker(
        model, texts=collection_texts(coll), **params
    )


def calibrated(
    coll: Any, *, min_relevance: float = 0.5, depth: int = 100, min_hits: int = 0
) -> Stage:
    from heron.capabilities.calibrated import threshold_stage

    return _dense(coll, depth) >> threshold_stage(
        coll, min_relevance=min_relevance, min_hits=min_hits
    )


def _register() -> None:
    from heron.capabilities.registry import register_retriever

    register_retriever("e2rank", e2rank)
    register_retriever("rocchio", rocchio)
    register_retriever("cross_encoder", cross_encoder)
    register_retriever("calibrated", calibrated)


_register()
