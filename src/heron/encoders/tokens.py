"""The ``"tokens"`` field encoder: per-token vectors of a collection's documents (kind ``ragged``).

A collection declares the field with::

    coll.add_field("tokens", kind="ragged", encoder="tokens", model="sentence-transformers/all-MiniLM-L6-v2")

(or :func:`heron.capabilities.multivector.add_token_field`); documents added later get their token
vectors computed on ``add``. Any sentence-transformers model (or ColBERT-style checkpoint loaded
through sentence-transformers) is accepted by name or path; vectors are stored as float16.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from heron.encoders.registry import register_field_encoder


class TokenFieldEncoder:
    """Document texts -> list of ``(n_tokens_i, d)`` float16 arrays (special tokens dropped, unit rows).

    Parameters
    ----------
    model: sentence-transformers model name or path (default all-MiniLM-L6-v2).
    dtype: stored dtype, ``"float16"`` (default) or ``"float32"``.
    """

    def __init__(self, model: str | None = None, *, dtype: str = "float16") -> None:
        from heron.encoders.dense import DEFAULT_MODEL, load_encoder

        if dtype not in ("float16", "float32"):
            raise ValueError(f"token dtype must be 'float16' or 'float32', got {dtype!r}")
        self.encoder = load_encoder(model or DEFAULT_MODEL)
        self.name, self.dim, self.dtype = self.encoder.name, int(self.encoder.dim), dtype

    def encode_documents(self, texts: Sequence[str], *, progress: bool = False) -> list[np.ndarray]:
        out = []
        for s in range(0, len(texts), 256):
            out.extend(self.encoder.encode_tokens(list(texts[s : s + 256])))
        return [np.asarray(x, dtype=self.dtype).reshape(-1, self.dim) for x in out]

    def encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self.encoder.encode_tokens(list(texts))


def _factory(spec: dict[str, Any]) -> TokenFieldEncoder:
    return TokenFieldEncoder(spec.get("model"), dtype=spec.get("dtype", "float16"))


register_field_encoder("tokens", _factory)
