"""Salience-based pruning of a late-interaction index's tokens.

After "Hierarchical Patch Compression for ColPali" (HPC-ColPali: salience-based pruning of the
least useful patches). :func:`salience_keep_mask` keeps the ``1 - p`` most salient tokens of each
document (salience: inverse document frequency of the token's centroid or word piece, common
word pieces, redundancy within the document, or random); :func:`prune_tokens` applies the mask
to a token store.
"""

from __future__ import annotations

import numpy as np

from heron.multivector.ragged import RaggedArray

__all__ = ["SALIENCE", "prune_tokens", "salience_keep_mask"]

#: Salience measures of :func:`salience_keep_mask`.
SALIENCE = ("idf", "token-idf", "common-pieces", "redundancy", "random")


def _kept_offsets(offsets: np.ndarray, keep: np.ndarray) -> np.ndarray:
    c = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(keep, out=c[1:])
    return c[offsets]


def salience_keep_mask(
    docs: RaggedArray,
    fraction: float,
    *,
    salience: str = "idf",
    codes: np.ndarray | None = None,
    token_ids: np.ndarray | None = None,
    common_df: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """Boolean mask ``(n_tokens,)`` keeping the ``1 - fraction`` most salient tokens of each document.

    Every non-empty document keeps at least one token.

    Parameters
    ----------
    docs: token store.
    fraction: share ``p`` of each document's tokens to prune, in ``[0, 1)``.
    salience: ``"idf"`` — log inverse document frequency of the token's centroid (needs
        ``codes``, the tokens' centroid ids); ``"token-idf"`` — log inverse document frequency of
        the token's *vocabulary id* over the corpus (needs ``token_ids``; stopword and
        punctuation word pieces go first, as in lexical IDF weighting and ColBERT pruning
        studies); ``"common-pieces"`` — word pieces found in more than ``common_df`` of the
        documents (stopwords, punctuation) go first, the rest at random (needs ``token_ids``;
        measured here to beat both ``"token-idf"`` and ``"random"``); ``"redundancy"`` — minus
        the token's highest
        cosine to another token of the same document (near-duplicates go first: MaxSim keeps
        only the best match, so a duplicated token adds little); ``"random"`` — a baseline.
    codes: centroid id per token ``(n_tokens,)`` (from :meth:`TokenCodec.encode`).
    token_ids: vocabulary id per token ``(n_tokens,)`` (from
        :func:`heron.eval.cache.cached_token_ids`). Ties in salience are broken at random
        (``seed``).
    """
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"fraction to prune must be in [0, 1), got {fraction!r}")
    if salience not in SALIENCE:
        raise ValueError(f"salience must be one of {SALIENCE}, got {salience!r}")
    lens = docs.lengths()
    n_tok = int(lens.sum())
    doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
    if salience == "idf":
        if codes is None or len(codes) != n_tok:
            raise ValueError(
                f"salience='idf' needs codes, one centroid id per token ({n_tok}); encode with a TokenCodec first"
            )
        codes = np.asarray(codes, np.int64)
        pairs = np.unique(doc_of * 256 + codes)
        df = np.bincount(pairs % 256, minlength=256).astype(np.float64)
        sal = np.log((len(docs) + 1) / (df[codes] + 1))
    elif salience in ("token-idf", "common-pieces"):
        if token_ids is None or len(token_ids) != n_tok:
            raise ValueError(
                f"salience={salience!r} needs token_ids, one vocabulary id per token ({n_tok}); "
                "see heron.eval.cache.cached_token_ids"
            )
        tid = np.asarray(token_ids, np.int64)
        _, inv = np.unique(tid, return_inverse=True)
        n_types = int(inv.max()) + 1 if n_tok else 0
        pairs = np.unique(doc_of * n_types + inv)
        df = np.bincount(pairs % n_types, minlength=n_types).astype(np.float64)
        if salience == "common-pieces":
            if not 0.0 < float(common_df) < 1.0:
                raise ValueError(f"common_df must be in (0, 1), got {common_df!r}")
            common = df[inv] > float(common_df) * len(docs)
            sal = np.random.default_rng(seed).random(n_tok) - common
        else:
            tie = np.random.default_rng(seed).random(n_tok) * 1e-6
            sal = np.log((len(docs) + 1) / (df[inv] + 1)) + tie
    elif salience == "redundancy":
        sal = np.zeros(n_tok)
        for i in range(len(docs)):
            x = np.asarray(docs[i], np.float32)
            if len(x) > 1:
                sim = x @ x.T
                np.fill_diagonal(sim, -np.inf)
                sal[docs.offsets[i] : docs.offsets[i + 1]] = -sim.max(axis=1)
    else:
        sal = np.random.default_rng(seed).random(n_tok)
    keep_n = np.where(
        lens > 0, np.maximum(1, np.ceil(lens * (1.0 - float(fraction))).astype(np.int64)), 0
    )
    order = np.lexsort((-sal, doc_of))  # by document, most salient first
    rank = np.empty(n_tok, np.int64)
    rank[order] = np.arange(n_tok) - np.repeat(docs.offsets[:-1], lens)
    return rank < np.repeat(keep_n, lens)


def prune_tokens(docs: RaggedArray, keep: np.ndarray) -> RaggedArray:
    """The token store restricted to ``keep`` ``(n_tokens,)`` (an in-memory copy)."""
    keep = np.asarray(keep, bool)
    if keep.shape != (docs.values.shape[0],):
        raise ValueError(f"keep mask must have shape ({docs.values.shape[0]},), got {keep.shape}")
    return RaggedArray(
        _kept_offsets(docs.offsets, keep),
        np.asarray(docs.values[keep]),
        keys=docs.keys.copy(),
        deleted=docs.deleted.copy(),
    )
