"""Per-token vectors of a text corpus, encoded once and cached on disk as ragged folders.

Any encoder exposing ``encode_tokens(texts) -> list[(n_tok_i, d) float32]`` (special and
padding tokens dropped, rows L2-normalised) works: the bundled all-MiniLM-L6-v2, any
sentence-transformers model by name or path, or a ColBERT-style checkpoint wrapped the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def cached_token_vectors(
    dataset: Any, encoder: Any, *, split: str = "test", progress: bool = True
) -> dict:
    """Cached token vectors of a :class:`~heron.eval.beir.BeirDataset`.

    Stored under ``$HERON_CACHE/tokens/<dataset>-<model>-<hash>/`` (float16 ragged folders).

    Returns
    -------
    dict with ``doc_ids``, ``docs`` (:class:`RaggedArray`, memory-mapped, row ``i`` = document
    ``doc_ids[i]``), ``query_ids``, ``queries`` (texts), ``query_tokens`` (:class:`RaggedArray`)
    and ``qrels`` of the ``split``.
    """
    from heron.eval.cache import cache_dir

    qids, qtexts, qrels = dataset.split(split)
    h = hashlib.sha1("\x1f".join(dataset.doc_ids).encode()).hexdigest()[:12]
    safe_model = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.name)[-60:]
    root = cache_dir() / "tokens" / f"{dataset.name}-{safe_model}-{h}"
    dpath = root / "docs"
    if not (dpath / "manifest.json").exists():
        encode_tokens_to(dpath, dataset.documents(), encoder, progress=progress)
    qh = hashlib.sha1("\x1f".join(qids).encode()).hexdigest()[:12]
    qpath = root / f"queries-{split}-{qh}"
    if not (qpath / "manifest.json").exists():
        encode_tokens_to(qpath, qtexts, encoder, progress=False)
    docs = RaggedArray.open(dpath)
    queries = RaggedArray.open(qpath)
    if len(docs) != len(dataset.doc_ids) or len(queries) != len(qids):
        raise ValueError(
            f"token cache at {str(root)!r} does not match the dataset; delete the folder to rebuild it"
        )
    return {
        "doc_ids": dataset.doc_ids,
        "docs": docs,
        "query_ids": qids,
        "queries": qtexts,
        "query_tokens": queries,
        "qrels": qrels,
    }


def token_stats(r: RaggedArray) -> dict:
    lens = r.lengths()
    return {
        "n_docs": len(r),
        "n_tokens": int(lens.sum()),
        "mean_tokens": float(lens.mean()) if len(lens) else 0.0,
        "empty_docs": int((lens == 0).sum()),
    }


__all__ = ["cached_token_vectors", "encode_tokens_to", "token_stats"]
