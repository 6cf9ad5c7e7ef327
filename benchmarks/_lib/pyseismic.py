"""Benchmark reference: the authors' Rust Seismic (``pyseismic-lsr``) on heron's sparse matrices.

Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
Learned Sparse Representations", SIGIR 2024. Same parameters as :class:`heron.sparse.seismic.SeismicIndex`
(note ``n_postings`` is the *average* list length in the Rust code — a global pruning budget of
``n_postings * V`` postings, each list capped at ``max_fraction * n_postings`` — where heron's is a
per-list cap), so the two can be compared on the same vectors.
"""

from __future__ import annotations

import numpy as np

from heron._deps import require
from heron.results import PAD_KEY, Results, check_k
from heron.sparse.exact import _check_keys, check_csr


class PySeismicIndex:
    """Adapter over ``seismic.SeismicIndex`` returning :class:`~heron.results.Results`."""

    def __init__(self, index, *, n_docs: int, vocab_size: int, keys: np.ndarray) -> None:
        self._index, self.n_docs, self.vocab_size, self.keys = index, n_docs, vocab_size, keys

    @classmethod
    def build(
        cls,
        docs,
        *,
        keys: np.ndarray | None = None,
        n_postings: int = 3500,
        centroid_fraction: float = 0.1,
        summary_energy: float = 0.4,
        doc_cut: int = 15,
        max_fraction: float = 1.5,
        num_threads: int = 0,
    ) -> PySeismicIndex:
        """Build the Rust index over a ``(n, V)`` sparse matrix (rows with no terms are skipped)."""
        seismic = require("seismic", purpose="the pyseismic-lsr backend")
        docs = check_csr(docs, what="docs")
        n, vocab = docs.shape
        keys = _check_keys(keys, n)
        ds = seismic.SeismicDataset(dim=vocab)
        ds.add_documents_by_id(
            [str(i) for i in range(n)],
            docs.indices.astype(np.int64),
            docs.data.astype(np.float32),
            docs.indptr.astype(np.int64),
        )
        idx = seismic.SeismicIndex.build_from_dataset(
            ds,
            n_postings=int(n_postings),
            centroid_fraction=float(centroid_fraction),
            summary_energy=float(summary_energy),
            doc_cut=int(doc_cut),
            max_fraction=float(max_fraction),
            num_threads=int(num_threads),
        )
        return cls(idx, n_docs=n, vocab_size=vocab, keys=keys)

    @staticmethod
    def query_arrays(queries) -> tuple[list, list]:
        """Per-query component strings and values, as ``batch_search`` takes them."""
        seismic = require("seismic", purpose="the pyseismic-lsr backend")
        st = seismic.get_seismic_string()
        comps, vals = [], []
        for i in range(queries.shape[0]):
            a, b = queries.indptr[i], queries.indptr[i + 1]
            comps.append(np.array([str(t) for t in queries.indices[a:b]]).astype(st))
            vals.append(queries.data[a:b].astype(np.float32))
        return comps, vals

    def search(
        self,
        queries,
        k: int = 10,
        *,
        query_cut: int = 10,
        heap_factor: float = 0.9,
        num_threads: int = 1,
        prepared: tuple[list, list] | None = None,
    ) -> Results:
        """Top-``k`` through the Rust index (``num_threads=1`` for single-thread comparisons)."""
        k = check_k(k)
        q = check_csr(queries, what="queries", vocab_size=self.vocab_size)
        comps, vals = prepared if prepared is not None else self.query_arrays(q)
        st = require("seismic", purpose="the pyseismic-lsr backend").get_seismic_string()
        qids = np.array([str(i) for i in range(q.shape[0])]).astype(st)
        res = self._index.batch_search(
            qids, comps, vals, k, query_cut, heap_factor, num_threads=num_threads
        )
        keys = np.full((q.shape[0], k), PAD_KEY, dtype=np.int64)
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        for row in res:
            for j, (qid, s, d) in enumerate(row[:k]):
                i = int(qid)
                keys[i, j] = self.keys[int(d)]
                scores[i, j] = s
        return Results(keys, scores, info={"index": "pyseismic"})
