"""The ``"passages"`` field encoder: situated passage vectors of each document (kind ``ragged``).

Each document is split by :mod:`heron.encoders.chunking` into passages; every passage is encoded
with its situated context (title, heading path, neighbouring text; SitEmb, Wu et al. 2025) by the
collection's dense model, and the document's field row holds its passages' vectors, shape
``(n_passages_i, d)``, in document order. Passage ``j`` of a document is therefore row ``j`` of
its ragged field; its character span is recomputed from the stored text and the chunk spec
(:meth:`PassageEncoder.spans`), so spans need no storage and can never disagree with the text.

A collection declares it with ``Collection.create(path, chunking="sentences:128")`` or
``fields={"passages": PassagesField(chunking="sentences:128", context="title")}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from heron.encoders.chunking import ChunkSpec, Passage, chunk_documents, hf_tokenize
from heron.encoders.registry import register_field_encoder

logger = logging.getLogger(__name__)


class PassageEncoder:
    """Document texts -> ragged ``(offsets, vectors)`` of situated passage vectors.

    Parameters
    ----------
    dense:
        A dense encoder (``encode_documents``, ``name``, ``dim``; a Hugging Face tokenizer at
        ``_model.tokenizer`` is used to count word pieces, else whitespace words are counted).
    spec:
        A :class:`~heron.encoders.chunking.ChunkSpec` or its string / dict form.
    """

    #: the collection passes each document's metadata (its ``title`` is the passage context)
    uses_metadata = True

    def __init__(self, dense: Any, spec: ChunkSpec | str | Mapping[str, Any]) -> None:
        self.dense = dense
        self.spec = ChunkSpec.parse(spec if not isinstance(spec, Mapping) else dict(spec))
        self.name, self.dim = dense.name, int(dense.dim)
        self.precision = getattr(dense, "precision", None)
        tok = getattr(getattr(dense, "_model", None), "tokenizer", None)
        if tok is not None and getattr(tok, "is_fast", False):
            self._tokenize = hf_tokenize(tok)
        else:
            from heron.encoders.chunking import whitespace_tokenize

            self._tokenize = whitespace_tokenize
        limit = getattr(dense, "max_seq_length", None)
        if limit is not None and self.spec.size > int(limit) - 2:
            logger.warning(
                "passages of %d word pieces exceed the model's window of %d; they will be truncated",
                self.spec.size,
                limit,
            )

    def chunk(
        self, texts: Sequence[str], titles: Sequence[str] | None = None
    ) -> tuple[np.ndarray, list[Passage]]:
        """Passages of every text: ``offsets`` ``(n + 1,)`` and the passage list."""
        return chunk_documents(texts, self.spec, titles=titles, tokenize=self._tokenize)

    def spans(self, text: str, title: str = "") -> np.ndarray:
        """Character spans ``(n_passages, 2)`` of one document's passages."""
        _, ps = self.chunk([text], [title])
        return np.asarray([(p.start, p.end) for p in ps], dtype=np.int64).reshape(-1, 2)

    def encode_passages(
        self, texts: Sequence[str], titles: Sequence[str] | None = None, *, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Situated passage vectors: ``offsets`` ``(n + 1,)`` int64, ``vectors`` ``(P, d)`` float32."""
        offsets, passages = self.chunk(texts, titles)
        if not passages:
            return offsets, np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.dense.encode_documents([p.encoded for p in passages], progress=progress)
        return offsets, np.asarray(vecs, dtype=np.float32)

    def encode_documents(
        self,
        texts: Sequence[str],
        *,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ragged field rows of ``texts`` (titles from ``metadata[i]["title"]``)."""
        titles = None
        if metadata is not None:
            titles = [str((m or {}).get("title") or "") for m in metadata]
        return self.encode_passages(texts, titles, progress=progress)


def _factory(spec: dict[str, Any]) -> PassageEncoder:
    from heron.encoders.dense import DEFAULT_MODEL, load_encoder

    kw: dict[str, Any] = {}
    if spec.get("precision"):
        kw["precision"] = spec["precision"]
        if spec["precision"] == "int8":
            kw["backend"] = "onnx"
    if spec.get("pooling"):
        kw["pooling"] = spec["pooling"]
    chunking = spec.get("chunking")
    if chunking is None:
        raise ValueError(f"passages field spec {spec} needs 'chunking' (e.g. 'sentences:128')")
    return PassageEncoder(load_encoder(spec.get("model") or DEFAULT_MODEL, **kw), chunking)


register_field_encoder("passages", _factory)

__all__ = ["PassageEncoder"]
