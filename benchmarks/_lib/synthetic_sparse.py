"""Seeded synthetic learned-sparse corpora (Zipfian vocabulary, topical structure).

Benchmark code (not part of the ``heron`` package): used to stress the Seismic index at scale (1,000,000 documents) without encoding text. A real
learned-sparse corpus (SPLADE on MS MARCO) has a heavy-tailed term distribution and topical
co-occurrence; the generator imitates both:

* every document belongs to one of ``n_topics`` topics; each of its ``doc_nnz`` distinct terms is
  drawn with probability ``topic_share`` from its topic's own Zipfian list of ``topic_vocab``
  terms, otherwise from the global Zipfian vocabulary (exponent ``zipf_s``);
* weights are log-normal, scaled up for rarer terms (as SPLADE weights informative terms);
* a query picks a topic and draws ``query_nnz`` distinct terms the same way, with a larger
  topic share, so its top hits are a meaningful neighbourhood rather than noise.

Everything is determined by ``seed`` (one ``numpy.random.Generator``; vectorised, no compiled kernel).
"""

from __future__ import annotations

import numpy as np

from heron._deps import require


def _rows(
    rng: np.random.Generator,
    n_rows: int,
    nnz: int,
    cdf_rank: np.ndarray,
    topic_ranks: np.ndarray,
    topic_cdf: np.ndarray,
    share: float,
    idf_rank: np.ndarray,
    sigma: float,
    *,
    chunk: int = 8192,
):
    """Rows of ``nnz`` distinct term *ranks* each (fewer if draws repeat), with weights.

    Each row draws ``3 · nnz`` candidate terms (topic list with probability ``share``, else the
    global Zipf law) and keeps its first ``nnz`` distinct ones in draw order.
    Returns CSR parts ``(indptr, ranks, values)``, ranks sorted within a row.
    """
    vocab = len(cdf_rank)
    n_topics, tv = topic_ranks.shape
    m = 3 * nnz
    ptrs, cols, vals = [np.zeros(1, dtype=np.int64)], [], []
    for r0 in range(0, n_rows, chunk):
        c = min(chunk, n_rows - r0)
        topic = rng.integers(n_topics, size=c)
        from_topic = rng.random((c, m)) < share
        tj = np.minimum(np.searchsorted(topic_cdf, rng.random((c, m))), tv - 1)
        gt = np.minimum(np.searchsorted(cdf_rank, rng.random((c, m))), vocab - 1)
        t = np.where(from_topic, topic_ranks[topic[:, None], tj], gt)
        key = np.arange(c, dtype=np.int64)[:, None] * vocab + t
        uniq, first = np.unique(key.ravel(), return_index=True)
        row, term = uniq // vocab, uniq % vocab
        order = np.lexsort((first % m, row))  # per row, by draw position
        start = np.searchsorted(row[order], np.arange(c))
        rank = np.arange(len(order)) - start[row[order]]
        kept = np.sort(order[rank < nnz])  # back to (row, term) order
        row, term = row[kept], term[kept]
        w = np.exp(sigma * rng.standard_normal(len(term))) * (0.3 + idf_rank[term])
        counts = np.bincount(row, minlength=c)
        ptrs.append(ptrs[-1][-1] + np.cumsum(counts))
        cols.append(term)
        vals.append(w.astype(np.float32))
    return np.concatenate(ptrs), np.concatenate(cols), np.concatenate(vals)


def synthetic_sparse(
    n_docs: int,
    *,
    n_queries: int = 1000,
    vocab_size: int = 30522,
    doc_nnz: int = 120,
    query_nnz: int = 30,
    zipf_s: float = 1.0,
    n_topics: int = 2000,
    topic_vocab: int = 300,
    topic_share: float = 0.5,
    query_topic_share: float = 0.7,
    seed: int = 0,
):
    """Generate a seeded Zipfian learned-sparse corpus and queries.

    Parameters
    ----------
    n_docs, n_queries:
        Rows to generate.
    vocab_size:
        Number of term ids ``V`` (30,522 like BERT's WordPiece vocabulary).
    doc_nnz, query_nnz:
        Distinct terms per document / query (~120 and ~30 in SPLADE on MS MARCO).
    zipf_s:
        Exponent of the global Zipf law over term ranks.
    n_topics, topic_vocab, topic_share, query_topic_share:
        Topical structure (see module docstring).
    seed:
        Everything is a function of this seed.

    Returns
    -------
    docs, queries:
        ``scipy.sparse.csr_matrix`` of shapes ``(n_docs, V)`` and ``(n_queries, V)``, ``float32``,
        sorted indices, strictly positive values.
    """
    for name, v in (
        ("n_docs", n_docs),
        ("n_queries", n_queries),
        ("vocab_size", vocab_size),
        ("doc_nnz", doc_nnz),
        ("query_nnz", query_nnz),
        ("n_topics", n_topics),
        ("topic_vocab", topic_vocab),
    ):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if doc_nnz > vocab_size or query_nnz > vocab_size or topic_vocab > vocab_size:
        raise ValueError(
            f"doc_nnz ({doc_nnz}), query_nnz ({query_nnz}) and topic_vocab ({topic_vocab}) must be <= vocab_size ({vocab_size})"
        )
    for name, v in (("topic_share", topic_share), ("query_topic_share", query_topic_share)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    if zipf_s <= 0:
        raise ValueError(f"zipf_s must be > 0, got {zipf_s}")
    sp = require("scipy.sparse", purpose="sparse matrices")
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    p = ranks**-zipf_s
    p /= p.sum()
    # term ids are a seeded permutation of ranks so frequent terms are spread over the id space
    perm = rng.permutation(vocab_size)
    # the kernel samples in rank space; ``perm`` maps ranks to term ids afterwards
    cdf_rank = np.cumsum(p)
    # rarer terms weigh more, as learned weights do for informative terms
    idf = np.log1p(1.0 / (p * vocab_size + 1e-12))
    # topics favour mid/low-frequency terms (log-uniform ranks) with their own Zipf weights
    topic_ranks = np.exp(
        rng.uniform(np.log(50), np.log(vocab_size), size=(n_topics, topic_vocab))
    ).astype(np.int64)
    topic_ranks = np.minimum(topic_ranks, vocab_size - 1)
    topic_terms = perm[topic_ranks].astype(np.int64)
    tp = np.arange(1, topic_vocab + 1, dtype=np.float64) ** -0.8
    topic_cdf = np.cumsum(tp / tp.sum())
    idf_rank = idf / idf.max()
    inv_perm = np.argsort(perm)
    topic_ranks_i = inv_perm[topic_terms]

    def make(n, nnz, share):
        ip, ranks, vals = _rows(
            rng, n, nnz, cdf_rank, topic_ranks_i, topic_cdf, share, idf_rank, 0.5
        )
        m = sp.csr_matrix((vals, perm[ranks].astype(np.int32), ip), shape=(n, vocab_size))
        m.sort_indices()
        return m

    docs = make(int(n_docs), int(doc_nnz), float(topic_share))
    queries = make(int(n_queries), int(query_nnz), float(query_topic_share))
    return docs, queries


def cached_synthetic_sparse(n_docs: int, *, progress: bool = True, **kwargs):
    """:func:`synthetic_sparse`, stored once under ``$HERON_CACHE/synthetic-sparse/``.

    The folder name encodes every parameter (``n_docs``, ``seed``, ...), so a changed parameter
    generates a new corpus. Each matrix is three ``.npy`` arrays (``indptr``, ``indices``,
    ``data``) plus ``manifest.json``; later calls memory-map them (read-only) instead of
    regenerating.

    Returns ``(docs, queries)`` as :func:`synthetic_sparse` does.
    """
    import hashlib
    import json
    import os
    import time

    from heron.eval.cache import cache_dir

    sp = require("scipy.sparse", purpose="sparse matrices")
    params = {"n_docs": int(n_docs), **{k: kwargs[k] for k in sorted(kwargs)}}
    tag = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir() / "synthetic-sparse" / f"n{int(n_docs)}-{tag}"
    mf = folder / "manifest.json"
    if not mf.is_file():
        t0 = time.perf_counter()
        docs, queries = synthetic_sparse(n_docs, **kwargs)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for name, m in (("docs", docs), ("queries", queries)):
            for part in ("indptr", "indices", "data"):
                np.save(tmp / f"{name}.{part}.npy", getattr(m, part))
        shapes = {"docs": list(docs.shape), "queries": list(queries.shape)}
        meta = {"format": "heron.synthetic-sparse", "version": 1, "params": params}
        meta.update(shapes=shapes, seconds=round(time.perf_counter() - t0, 1))
        (tmp / "manifest.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, folder)
        if progress:
            print(f"[synthetic] generated {shapes} in {meta['seconds']}s -> {folder}", flush=True)
        return docs, queries
    meta = json.loads(mf.read_text())
    out = []
    for name in ("docs", "queries"):
        parts = [
            np.load(folder / f"{name}.{p}.npy", mmap_mode="r")
            for p in ("indptr", "indices", "data")
        ]
        m = sp.csr_matrix((parts[2], parts[1], parts[0]), shape=tuple(meta["shapes"][name]))
        m.has_sorted_indices = True
        out.append(m)
    return out[0], out[1]
