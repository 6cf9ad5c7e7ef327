"""BM25 over a collection's texts, backed by ``bm25s``.

Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009;
Lù, "BM25S: Orders of magnitude faster lexical search via eager sparse scoring", 2024.
Defaults follow Lucene (``method="lucene"``, ``k1=1.2``, ``b=0.75``) with English stop words
and the Snowball English stemmer.

The index is stored under ``indexes/bm25/g<generation>/`` (bm25s's own ``.npy`` + JSON files
plus ``keys.npy``) and rebuilt when the collection has changed since it was built; results are
always restricted to documents live in the reader's snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from heron._deps import require
from heron.capabilities.registry import register_retriever
from heron.pipeline import Queries, Stage, rescore
from heron.results import PAD_KEY, Results, check_k, pad

FORMAT_VERSION = 1


def _stemmer(language: str) -> Any:
    try:
        stemmer_mod = require("Stemmer", purpose="BM25 stemming")
    except ImportError:
        return None
    return stemmer_mod.Stemmer(language)


class BM25Index:
    """A bm25s index plus the collection keys of its documents.

    Parameters
    ----------
    k1, b: BM25 saturation and length normalisation.
    method: bm25s variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``).
    stopwords: stop-word list name for bm25s (``"en"``) or ``None``.
    stemmer: Snowball language or ``None``.
    """

    def __init__(
        self,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | None = "en",
        stemmer: str | None = "english",
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.params = {
            "k1": float(k1),
            "b": float(b),
            "method": method,
            "stopwords": stopwords,
            "stemmer": stemmer,
        }
        self.keys = np.zeros(0, dtype=np.int64)
        self._bm25: Any = None

    def _tokenize(self, texts: list[str], *, show: bool = False) -> Any:
        bm25s = require("bm25s", purpose="BM25")
        st = _stemmer(self.params["stemmer"]) if self.params["stemmer"] else None
        return bm25s.tokenize(
            texts, stopwords=self.params["stopwords"], stemmer=st, show_progress=show
        )

    def build(self, texts: list[str], keys: np.ndarray, *, progress: bool = False) -> BM25Index:
        bm25s = require("bm25s", purpose="BM25")
        self.keys = np.asarray(keys, dtype=np.int64)
        self._bm25 = bm25s.BM25(
            k1=self.params["k1"], b=self.params["b"], method=self.params["method"]
        )
        if texts:
            self._bm25.index(self._tokenize(texts, show=progress), show_progress=progress)
        return self

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(keys, scores)``, each ``(n_queries, k)``, padded."""
        nq = len(queries)
        if self._bm25 is None or len(self.keys) == 0:
            return np.full((nq, k), PAD_KEY, np.int64), np.full((nq, k), -np.inf, np.float32)
        kk = min(k, len(self.keys))
        tok = self._tokenize(queries)
        docs, scores = self._bm25.retrieve(tok, k=kk, show_progress=False, n_threads=1)
        keys = self.keys[docs]
        scores = scores.astype(np.float32)
        keys = np.where(scores > 0, keys, PAD_KEY)
        scores = np.where(scores > 0, scores, -np.inf).astype(np.float32)
        return pad(keys, scores, k)

    def score_pairs(self, queries: list[str], keys: np.ndarray) -> np.ndarray:
        """BM25 scores of given candidates ``(n_queries, k)`` (0 for unknown keys)."""
        rows = _positions(self.keys, keys)
        tok = self._tokenize(queries)
        out = np.zeros(keys.shape, dtype=np.float32)
        vocab = tok.vocab
        inv = {v: k for k, v in vocab.items()}
        for i, ids in enumerate(tok.ids):
            words = [inv[t] for t in ids]
            full = self._bm25.get_scores(words) if words else np.zeros(len(self.keys))
            ok = rows[i] >= 0
            out[i][ok] = full[rows[i][ok]]
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._bm25.save(str(folder / "bm25s"))
        np.save(folder / "keys.npy", self.keys)
        (folder / "bm25.json").write_text(
            json.dumps(
                {
                    "format": "heron-bm25",
                    "version": FORMAT_VERSION,
                    "params": self.params,
                    "docs": int(len(self.keys)),
                }
            )
        )

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True) -> BM25Index:
        bm25s = require("bm25s", purpose="BM25")
        meta = json.loads((folder / "bm25.json").read_text())
        if meta.get("format") != "heron-bm25" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"BM25 index at {str(folder)!r} has format {meta.get('format')!r} v{meta.get('version')!r}; expected heron-bm25 v{FORMAT_VERSION}. Delete it to rebuild"
            )
        idx = cls(**meta["params"])
        idx.keys = np.load(folder / "keys.npy")
        idx._bm25 = bm25s.BM25.load(str(folder / "bm25s"), mmap=mmap)
        return idx


def _positions(sorted_source: np.ndarray, keys: np.ndarray) -> np.ndarray:
    order = np.argsort(sorted_source, kind="stable")
    sk = sorted_source[order]
    pos = np.clip(np.searchsorted(sk, keys), 0, max(len(sk) - 1, 0))
    if not len(sk):
        return np.full(keys.shape, -1)
    return np.where(sk[pos] == keys, order[pos], -1)


_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int, str], BM25Index] = {}


def bm25_index(collection: Any, **params: Any) -> BM25Index:
    """The collection's BM25 index at its current generation, built (and saved) if stale."""
    snap = collection.snapshot()
    tag = json.dumps(BM25Index(**params).params, sort_keys=True)
    key = (str(collection.path), snap.generation, tag)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        root = collection.index_dir("bm25")
        want = root / f"g{snap.generation:010d}"
        idx = None
        if (want / "bm25.json").exists():
            try:
                cand = BM25Index.load(want)
                if json.dumps(cand.params, sort_keys=True) == tag:
                    idx = cand
            except (ValueError, OSError):
                idx = None
        if idx is None:
            texts = snap.texts(snap.keys)
            idx = BM25Index(**params).build(texts, snap.keys, progress=len(texts) > 20000)
            tmp = root / f".tmp-{os.getpid()}-{threading.get_ident()}"
            shutil.rmtree(tmp, ignore_errors=True)
            idx.save(tmp)
            shutil.rmtree(want, ignore_errors=True)
            os.replace(tmp, want)
            for old in root.glob("g*"):
                if old.name < want.name:
                    shutil.rmtree(old, ignore_errors=True)
        _LOADED.clear()
        _LOADED[key] = idx
        return idx


class BM25Retriever(Stage):
    """BM25 as a pipeline stage (first stage, or re-scoring given candidates)."""

    def __init__(self, collection: Any, *, depth: int = 1000, **params: Any) -> None:
        self.collection = collection
        self.depth = check_k(depth)
        self.params = params
        self.name = "bm25"
        BM25Index(**params)  # validate parameters now

    def with_depth(self, k: int) -> BM25Retriever:
        return BM25Retriever(self.collection, depth=k, **self.params)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        idx = bm25_index(self.collection, **self.params)
        if candidates is not None:
            return rescore(candidates, idx.score_pairs(queries.texts, candidates.keys))
        keys, scores = idx.search(queries.texts, self.depth)
        return Results(keys, scores, self.collection.resolver(), {"retriever": "bm25"})


register_retriever("bm25", lambda collection, **p: BM25Retriever(collection, **p))
