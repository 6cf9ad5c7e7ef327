"""BM25 with corpus statistics merged across shards, scoring exactly as one ``bm25s`` index.

BM25's score of a document depends on two corpus statistics: the document frequency ``df(t)``
of each query term (through ``idf``) and the average document length ``avgdl`` (Robertson &
Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009). A shard's own
``bm25s`` index bakes its *local* statistics into its precomputed scores, so per-shard BM25
scores differ from the single-node scores. Here each shard keeps, resident, the term
frequencies and lengths of its documents (:class:`ShardTerms`); a query runs in two rounds:

1. every shard reports ``(n_docs, total_length, df of each query term)`` (:meth:`ShardTerms.stats`),
   the driver sums them (:func:`merge_stats`);
2. every shard scores its documents with the global ``N``, ``df`` and ``avgdl``
   (:meth:`ShardTerms.search`), with the same float arithmetic as ``bm25s`` (Lù, "BM25S", 2024):
   per-(document, term) scores computed as ``bm25s`` precomputes them, then summed in float32 in
   the query's token order, so each score equals the single-node score.

Tokenisation is :class:`heron.capabilities.bm25.BM25Index`'s (stop words, Snowball stemmer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from heron.capabilities.bm25 import BM25Index
from heron.results import PAD_KEY

#: variants whose scores this module reproduces (no non-occurrence term)
METHODS = ("lucene", "robertson", "atire")


@dataclass
class GlobalStats:
    """Corpus statistics summed over shards."""

    n_docs: int
    total_len: int
    df: dict[str, int]

    @property
    def avgdl(self) -> float:
        # bm25s: np.array(doc lengths).mean(), a float64 of an exact integer sum
        return float(np.float64(self.total_len) / np.float64(max(self.n_docs, 1)))


def merge_stats(parts: list[tuple[int, int, dict[str, int]]]) -> GlobalStats:
    """Sum per-shard ``(n_docs, total_len, df)``."""
    df: dict[str, int] = {}
    for _, _, d in parts:
        for t, c in d.items():
            df[t] = df.get(t, 0) + int(c)
    return GlobalStats(sum(p[0] for p in parts), sum(p[1] for p in parts), df)


def _idf(method: str, df: int, n: int) -> float:
    if method == "lucene":
        return math.log(1 + (n - df + 0.5) / (df + 0.5))
    if method == "robertson":
        return max(math.log((n - df + 0.5) / (df + 0.5)), 0.0)
    return math.log(n / df)  # atire


class ShardTerms:
    """Term frequencies and document lengths of one shard's documents (postings per term).

    Parameters
    ----------
    texts: the shard's live document texts, shape ``(n_docs,)``.
    keys: their collection keys, shape ``(n_docs,)``.
    params: BM25 parameters (``k1``, ``b``, ``method``, ``stopwords``, ``stemmer``).
    """

    def __init__(self, texts: list[str], keys: np.ndarray, params: dict[str, Any]) -> None:
        self.index = BM25Index(**params)
        if self.index.params["method"] not in METHODS:
            raise ValueError(
                f"sharded BM25 supports methods {METHODS}, got {self.index.params['method']!r}"
            )
        self.keys = np.asarray(keys, dtype=np.int64)
        self.terms: dict[str, int] = {}
        self.lengths = np.zeros(len(texts), dtype=np.int64)
        self.indptr = np.zeros(1, dtype=np.int64)
        self.rows = np.zeros(0, dtype=np.int32)
        self.tf = np.zeros(0, dtype=np.uint16)
        if not texts:
            return
        tok = self.index._tokenize(list(texts))
        inv = {v: t for t, v in tok.vocab.items()}
        self.lengths = np.array([len(ids) for ids in tok.ids], dtype=np.int64)
        doc = np.repeat(np.arange(len(tok.ids)), self.lengths)
        term = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in tok.ids]) if len(doc) else np.zeros(0, np.int64)
        pairs, counts = np.unique(np.stack([term, doc]), axis=1, return_counts=True)
        # postings of each term: rows ascending, like bm25s's CSC matrix
        n_terms = len(tok.vocab)
        self.indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.add.at(self.indptr, pairs[0] + 1, 1)
        self.indptr = np.cumsum(self.indptr)
        # 6 bytes a posting: int32 row + uint16 count (uint32 past 65,535 repeats of a term)
        self.rows = pairs[1].astype(np.int32)
        self.tf = counts.astype(np.uint16 if counts.max(initial=0) < 2**16 else np.uint32)
        self.terms = {inv[i]: i for i in range(n_terms)}

    def tokens(self, queries: list[str]) -> list[list[str]]:
        """Each query's tokens in order (as ``bm25s`` sees them)."""
        tok = self.index._tokenize(list(queries))
        inv = {v: t for t, v in tok.vocab.items()}
        return [[inv[i] for i in ids] for ids in tok.ids]

    def stats(self, tokens: list[list[str]]) -> tuple[int, int, dict[str, int]]:
        """``(n_docs, total_length, {term: df})`` for the query terms in this shard."""
        df: dict[str, int] = {}
        for q in tokens:
            for t in q:
                i = self.terms.get(t)
                if i is not None:
                    df[t] = int(self.indptr[i + 1] - self.indptr[i])
        return len(self.keys), int(self.lengths.sum()), df

    def scores(self, tokens: list[str], g: GlobalStats) -> np.ndarray:
        """BM25 scores of every document of the shard for one query, shape ``(n_docs,)``."""
        p = self.index.params
        k1, b, method = p["k1"], p["b"], p["method"]
        avgdl = np.float64(g.avgdl)
        out = np.zeros(len(self.keys), dtype=np.float32)
        for t in tokens:
            if t not in g.df:  # not in the global vocabulary: bm25s skips it
                continue
            idf = np.float32(_idf(method, g.df[t], g.n_docs))
            i = self.terms.get(t)
            if i is None:
                continue
            lo, hi = self.indptr[i], self.indptr[i + 1]
            rows, tf = self.rows[lo:hi], self.tf[lo:hi].astype(np.float32)
            part = k1 * ((1 - b) + b * self.lengths[rows] / avgdl)  # float64, as bm25s
            if method == "atire":
                tfc = (tf * (k1 + 1)) / (tf + part)
            else:
                tfc = tf / (part + tf)
            out[rows] += (idf * tfc).astype(np.float32)
        return out

    def search(
        self, tokens: list[list[str]], g: GlobalStats, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(keys, scores)`` ``(n_queries, k)`` with global statistics (score > 0 only).

        ``allowed``: keys a filter admits (``None``: all). With a filter every admitted document is
        a candidate, score 0 included, as a single node's exact filtered BM25 scores them
        (:class:`heron.capabilities.filtered.Filtered`). Ties go to the smaller key.
        """
        nq = len(tokens)
        keys_out = np.full((nq, k), PAD_KEY, np.int64)
        scores_out = np.full((nq, k), -np.inf, np.float32)
        mask = None if allowed is None else np.isin(self.keys, allowed)
        for qi, q in enumerate(tokens):
            s = self.scores(q, g)
            ok = s > 0 if mask is None else mask
            idx = np.flatnonzero(ok)
            if not len(idx):
                continue
            order = np.lexsort((self.keys[idx], -s[idx]))[:k]
            keys_out[qi, : len(order)] = self.keys[idx[order]]
            scores_out[qi, : len(order)] = s[idx[order]]
        return keys_out, scores_out
