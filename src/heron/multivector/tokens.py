"""Per-token vectors of a text corpus, encoded once and cached on disk as ragged folders.

Any encoder exposing ``encode_tokens(texts) -> list[(n_tok_i, d) float32]`` (special and
padding tokens dropped, rows L2-normalised) works: the bundled all-MiniLM-L6-v2, any
sentence-transformers model by name or path, or a ColBERT-style checkpoint wrapped the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heron.multivector.ragged import RaggedArray, RaggedWriter


def encode_tokens_to(
    path: str | Path, texts: Sequence[str], encoder: Any, *, batch: int = 256, progress: bool = True
) -> RaggedArray:
    """Encode ``texts`` token by token and stream them into a ragged folder at ``path``.

    Returns the opened (memory-mapped) :class:`~heron.multivector.ragged.RaggedArray`.
    """
    if not hasattr(encoder, "encode_tokens"):
        raise TypeError(
            f"encoder {type(encoder).__name__} has no encode_tokens(texts); use a token-level encoder"
        )
    dim = int(encoder.dim)
    writer = RaggedWriter(path, dim=dim)
    starts = range(0, len(texts), batch)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"token vectors -> {Path(path).name}", unit="batch")
    for s in starts:
        chunk = list(texts[s : s + batch])
        writer.append(encoder.encode_tokens(chunk) if chunk else [])
    return writer.close()


def token_ids(texts: Sequence[str], encoder: Any, *, batch: int = 1024) -> np.ndarray:
    """Vocabulary ids of the tokens ``encoder.encode_tokens`` keeps, concatenated, shape ``(n_tokens,)``.

    Same truncation (``max_seq_length``) and the same special-token filtering as
    :meth:`~heron.encoders.dense.SentenceTransformerEncoder.encode_tokens`, so id ``i`` belongs to
    token vector ``i`` of the ragged store. Needs the encoder's Hugging Face tokenizer
    (``encoder.tokenizer`` or a sentence-transformers ``encoder._model.tokenizer``).
    """
    tok = _tokenizer(encoder)
    max_len = int(getattr(encoder, "max_seq_length", 512))
    special = np.array(sorted(set(tok.all_special_ids)), dtype=np.int64)
    out: list[np.ndarray] = []
    for s in range(0, len(texts), batch):
        enc = tok(list(texts[s : s + batch]), truncation=True, max_length=max_len)["input_ids"]
        for ids in enc:
            a = np.asarray(ids, dtype=np.int64)
            out.append(a[~np.isin(a, special)])
    return np.concatenate(out).astype(np.int32) if out else np.zeros(0, np.int32)


def _tokenizer(encoder: Any) -> Any:
    tok = getattr(encoder, "tokenizer", None)
    if tok is None:
        tok = getattr(getattr(encoder, "_model", None), "tokenizer", None)
    if tok is None:
        raise TypeError(
            f"encoder {type(encoder).__name__} exposes no tokenizer; token ids need a Hugging Face tokenizer"
        )
    return tok


def vocab_size(encoder: Any) -> int:
    """Number of ids of the encoder's tokenizer (special tokens included): the length of a
    word-piece table such as :func:`heron.multivector.muvera.piece_weights`."""
    return len(_tokenizer(encoder))


def token_stats(r: RaggedArray) -> dict:
    lens = r.lengths()
    return {
        "n_docs": len(r),
        "n_tokens": int(lens.sum()),
        "mean_tokens": float(lens.mean()) if len(lens) else 0.0,
        "empty_docs": int((lens == 0).sum()),
    }


__all__ = [
    "encode_tokens_to",
    "token_ids",
    "token_stats",
    "vocab_size",
]
