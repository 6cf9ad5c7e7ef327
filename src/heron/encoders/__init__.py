"""Text encoders: dense single-vector (sentence-transformers on torch, ONNX Runtime or OpenVINO).

Every encoder exposes ``name`` (stored in a collection's manifest), ``dim``,
``encode_queries(texts)`` and ``encode_documents(texts)`` returning ``float32`` arrays of shape
``(n, dim)``, L2-normalised.
"""

from __future__ import annotations

from heron.encoders.base import Encoder, check_texts
from heron.encoders.dense import (
    DEFAULT_MODEL,
    SentenceTransformerEncoder,
    load_encoder,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "Encoder",
    "SentenceTransformerEncoder",
    "check_texts",
    "load_encoder",
    "resolve_model",
]
