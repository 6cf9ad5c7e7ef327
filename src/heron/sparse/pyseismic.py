"""The authors' Rust Seismic (``pyseismic-lsr``) over heron's sparse matrices.

Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
Learned Sparse Representations", SIGIR 2024. Same parameters as :class:`heron.sparse.seismic.SeismicIndex`
(note ``n_postings`` is the *average* list length in the Rust code — a global pruning budget of
``n_postings * V`` postings, each list capped at ``max_fraction * n_postings`` — as heron's
``pruning="global"``), so the two can be compared on the same vectors.

It is faster than heron's own index at every measured size (1.3–1.5× at 100k–300k, 1.39× at 1M,
``docs/sparse.md``), so it is the default Seismic backend when
installed (``pip install pyseismic-lsr``); heron's numba index stays selectable
(``backend="heron"``) and is the fallback.

Persisted as the library's own binary file (``index.seismic``, written by its ``save``) beside
``keys.npy`` and a ``manifest.json`` naming the format, the library version and the shapes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

from heron._deps import require
from heron.results import PAD_KEY, Results, check_k
from heron.sparse.exact import _check_keys, check_csr

logger = logging.getLogger(__name__)

FORMAT = "heron.pyseismic"
FORMAT_VERSION = 1


def available() -> bool:
    """Whether ``pyseismic-lsr`` is installed (the default Seismic backend when it is)."""
    try:
        import seismic  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence the Rust library's progress lines (written to file descriptor 1) unless logging is at DEBUG."""
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _library_version() -> str:
    try:
        return metadata.version("pyseismic-lsr")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


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
        with quiet_stdout():
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

    def save(self, path: str | Path) -> Path:
        """Write the index to folder ``path`` (the library's file + ``keys.npy`` + ``manifest.json``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with quiet_stdout():
            self._index.save(str(path / "index"))
        np.save(path / "keys.npy", np.ascontiguousarray(self.keys, dtype=np.int64))
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "library": "pyseismic-lsr",
            "library_version": _library_version(),
            "n_docs": self.n_docs,
            "vocab_size": self.vocab_size,
        }
        (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> PySeismicIndex:
        """Open an index written by :meth:`save`."""
        seismic = require("seismic", purpose="the pyseismic-lsr backend", extra="sparse")
        path = Path(path)
        mf = path / "manifest.json"
        if not mf.is_file():
            raise FileNotFoundError(f"no pyseismic index at {str(path)!r} (manifest.json missing)")
        m = json.loads(mf.read_text())
        if m.get("format") != FORMAT or m.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} holds format {m.get('format')!r} v{m.get('version')}, not {FORMAT!r} "
                f"v{FORMAT_VERSION}; rebuild the index"
            )
        with quiet_stdout():
            index = seismic.SeismicIndex.load(str(path / "index.index.seismic"))
        keys = np.load(path / "keys.npy", mmap_mode="r")
        return cls(index, n_docs=int(m["n_docs"]), vocab_size=int(m["vocab_size"]), keys=keys)

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
