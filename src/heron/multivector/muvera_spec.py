"""MUVERA configuration beyond the paper: word-piece weights and the benchmark spec grammar.

:func:`piece_weights` (per-token weights in the FDE document averages / query sums),
:func:`parse_spec` (``"K_SIM,D_PROJ,R_REPS[,D_FINAL][,FLAG...]"``) and :func:`encoder_from_spec`
(the :class:`~heron.multivector.muvera_encoder.FDEEncoder` a spec describes). Dhulipala et al.,
"MUVERA: Multi-Vector Retrieval via Fixed Dimensional Encodings", NeurIPS 2024.
"""

from __future__ import annotations

import numpy as np

from heron.multivector.muvera_encoder import FDEEncoder
from heron.multivector.ragged import RaggedArray

__all__ = ["PIECE_WEIGHTS", "SPEC_FLAGS", "encoder_from_spec", "parse_spec", "piece_weights"]

#: Word-piece weighting schemes of :func:`piece_weights`.
PIECE_WEIGHTS = ("common-pieces", "idf")


def piece_weights(
    token_ids: np.ndarray,
    lengths: np.ndarray,
    *,
    scheme: str = "common-pieces",
    common_df: float = 0.3,
    vocab_size: int | None = None,
) -> np.ndarray:
    """Per-word-piece FDE weights from a corpus' document frequencies, shape ``(vocab_size,)``.

    Look a token's weight up by its vocabulary id (``table[ids]``) and pass the result as
    ``weights=`` to :meth:`FDEEncoder.encode_documents` / :meth:`FDEEncoder.encode_queries`.

    Parameters
    ----------
    token_ids: ``(n_tokens,)`` vocabulary id of every document token (concatenated in document
        order, e.g. :func:`heron.eval.cache.cached_token_ids`).
    lengths: ``(n_docs,)`` tokens per document (``docs.lengths()``).
    scheme: ``"common-pieces"`` — weight 0 for word pieces found in more than ``common_df`` of
        the documents (stopwords, punctuation: ~1/3 of MiniLM's tokens on SciFact and
        NFCorpus), 1 otherwise; ``"idf"`` — ``log((n_docs + 1) / (df + 1))`` (a piece in every
        document gets ~0).
    common_df: document-frequency share above which a piece is common (``"common-pieces"``).
    vocab_size: table length (the tokenizer's vocabulary size, so query ids always fit);
        default ``max(token_ids) + 1``. Pieces never seen in the corpus have ``df = 0``.
    """
    if scheme not in PIECE_WEIGHTS:
        raise ValueError(f"scheme must be one of {PIECE_WEIGHTS}, got {scheme!r}")
    tid = np.asarray(token_ids, dtype=np.int64)
    lens = np.asarray(lengths, dtype=np.int64)
    if tid.ndim != 1 or lens.ndim != 1 or int(lens.sum()) != len(tid):
        raise ValueError(
            f"token_ids ({tid.shape}) must hold one id per token of the documents (lengths sum to {int(lens.sum())})"
        )
    if len(tid) and tid.min() < 0:
        raise ValueError("token_ids must be non-negative vocabulary ids")
    size = int(tid.max()) + 1 if len(tid) else 0
    if vocab_size is not None:
        if int(vocab_size) < size:
            raise ValueError(f"vocab_size={vocab_size} is smaller than the largest id + 1 ({size})")
        size = int(vocab_size)
    n_docs = len(lens)
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lens)
    pairs = np.unique(doc_of * max(size, 1) + tid)
    df = np.bincount(pairs % max(size, 1), minlength=size).astype(np.float64)
    if scheme == "common-pieces":
        if not 0.0 < float(common_df) < 1.0:
            raise ValueError(f"common_df must be in (0, 1), got {common_df!r}")
        return (df <= float(common_df) * n_docs).astype(np.float32)
    return np.log((n_docs + 1.0) / (df + 1.0)).astype(np.float32)


#: Flags of :func:`parse_spec` and what they set.
SPEC_FLAGS = {
    "c": "centre tokens on the corpus mean before SimHash (fit_centre)",
    "e": "leave empty document partitions empty (fill_empty=False)",
    "s": "document weights: common word pieces left out (piece_weights 'common-pieces')",
    "sq": "as 's', and the same weights on query tokens",
    "w": "document weights: word-piece IDF (piece_weights 'idf')",
    "wq": "as 'w', and the same weights on query tokens",
}


def parse_spec(spec: str) -> dict:
    """Parse a benchmark FDE spec ``"K_SIM,D_PROJ,R_REPS[,D_FINAL][,FLAG...]"``.

    Flags are listed in :data:`SPEC_FLAGS` (e.g. ``"4,8,80,c,w,e"``). Returns a dict with the
    :class:`FDEEncoder` keyword arguments (``k_sim``, ``d_proj``, ``r_reps``, ``d_final``,
    ``fill_empty``) plus ``centre`` (bool), ``weights`` (``None``, ``"common-pieces"`` or
    ``"idf"``) and ``weight_queries`` (bool).
    """
    raw = [v.strip().lower() for v in str(spec).split(",") if v.strip()]
    nums = [v for v in raw if v.isdigit()]
    flags = [v for v in raw if not v.isdigit()]
    bad = [f for f in flags if f not in SPEC_FLAGS]
    if len(nums) not in (3, 4) or bad or raw[: len(nums)] != nums:
        raise ValueError(
            f"bad MUVERA spec {spec!r}: expected K_SIM,D_PROJ,R_REPS[,D_FINAL] then flags from "
            f"{sorted(SPEC_FLAGS)}, e.g. '4,8,80,c'" + (f" (unknown flags {bad})" if bad else "")
        )
    wf = [f for f in flags if f in ("s", "sq", "w", "wq")]
    if len(wf) > 1:
        raise ValueError(f"bad MUVERA spec {spec!r}: choose one of the weight flags, got {wf}")
    return {
        "k_sim": int(nums[0]),
        "d_proj": int(nums[1]),
        "r_reps": int(nums[2]),
        "d_final": int(nums[3]) if len(nums) == 4 else None,
        "fill_empty": "e" not in flags,
        "centre": "c" in flags,
        "weights": None if not wf else ("common-pieces" if wf[0][0] == "s" else "idf"),
        "weight_queries": bool(wf) and wf[0].endswith("q"),
    }


def encoder_from_spec(
    spec: str,
    docs: RaggedArray,
    *,
    doc_token_ids: np.ndarray | None = None,
    vocab_size: int | None = None,
    seed: int = 42,
) -> tuple[FDEEncoder, np.ndarray | None, np.ndarray | None]:
    """Build the encoder of a :func:`parse_spec` spec for the token store ``docs``.

    Returns ``(encoder, doc_weights, piece_table)``: the encoder (centre fitted on ``docs`` with
    ``c``), the ``(n_tokens,)`` document token weights for :meth:`FDEEncoder.encode_documents`
    (``None`` without a weight flag), and the ``(vocab_size,)`` word-piece weight table (look up
    query token ids in it when ``parse_spec(spec)["weight_queries"]``). Weight flags need
    ``doc_token_ids`` (:func:`heron.eval.cache.cached_token_ids`).
    """
    cfg = parse_spec(spec)
    enc = FDEEncoder(
        dim=docs.dim,
        k_sim=cfg["k_sim"],
        d_proj=cfg["d_proj"],
        r_reps=cfg["r_reps"],
        d_final=cfg["d_final"],
        fill_empty=cfg["fill_empty"],
        seed=seed,
    )
    if cfg["centre"]:
        enc.fit_centre(docs)
    if cfg["weights"] is None:
        return enc, None, None
    if doc_token_ids is None:
        raise ValueError(
            f"MUVERA spec {spec!r} weights word pieces: pass doc_token_ids "
            "(heron.eval.cache.cached_token_ids)"
        )
    ids = np.asarray(doc_token_ids)
    table = piece_weights(ids, docs.lengths(), scheme=cfg["weights"], vocab_size=vocab_size)
    return enc, table[ids], table
