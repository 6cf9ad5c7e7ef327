"""BM25 over a collection's texts, backed by ``bm25s``.

Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009;
Lù, "BM25S: Orders of magnitude faster lexical search via eager sparse scoring", 2024.
Defaults follow Lucene (``method="lucene"``, ``k1=1.2``, ``b=0.75``) with English stop words
and the Snowball English stemmer.

The index is a collection artifact (kind ``bm25`` on the ``text`` field: bm25s's own ``.npy`` +
JSON files plus ``keys.npy``), resident while current and rebuilt once when the collection has
changed since it was built, so results are restricted to documents live in the reader's snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from heron._deps import require
from heron.capabilities.base import ArtifactKind, register_kind
from heron.capabilities.registry import register_retriever
from heron.limits import check_number, load_npy
from heron.pipeline import Queries, Stage, rescore
from heron.results import PAD_KEY, Results, check_k, pad

FORMAT_VERSION = 1
#: bm25s scoring variants
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


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
        k1 = check_number(k1, "BM25 k1", low=0, high=1000)
        b = check_number(b, "BM25 b", low=0, high=1)
        if method not in METHODS:
            raise ValueError(f"BM25 method must be one of {METHODS}, got {method!r}")
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
        self._bm25 = None
        tok = self._tokenize(texts, show=progress) if texts else None
        # no term at all (an empty collection, or only empty texts): nothing matches
        if tok is not None and tok.vocab:
            self._bm25 = bm25s.BM25(
                k1=self.params["k1"], b=self.params["b"], method=self.params["method"]
            )
            self._bm25.index(tok, show_progress=progress)
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
        out = np.zeros(keys.shape, dtype=np.float32)
        if self._bm25 is None:
            return out
        rows = _positions(self.keys, keys)
        tok = self._tokenize(queries)
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
        if self._bm25 is not None:
            self._bm25.save(str(folder / "bm25s"))
        np.save(folder / "keys.npy", self.keys)
        (folder / "bm25.json").write_text(
            json.dumps(
                {
                    "format": "heron-bm25",
                    "version": FORMAT_VERSION,
                    "params": self.params,
                    "docs": int(len(self.keys)),
                    "terms": self._bm25 is not None,
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
        idx.keys = load_npy(folder / "keys.npy")
        if meta.get("terms", True):
            idx._bm25 = bm25s.BM25.load(str(folder / "bm25s"), mmap=mmap)
        return idx


def _positions(sorted_source: np.ndarray, keys: np.ndarray) -> np.ndarray:
    order = np.argsort(sorted_source, kind="stable")
    sk = sorted_source[order]
    pos = np.clip(np.searchsorted(sk, keys), 0, max(len(sk) - 1, 0))
    if not len(sk):
        return np.full(keys.shape, -1)
    return np.where(sk[pos] == keys, order[pos], -1)


@register_kind
class BM25Kind(ArtifactKind):
    """BM25 over the documents' text as a collection artifact (``kind="bm25"``, ``on="text"``).

    Scores depend on corpus statistics (document frequencies, average length), so a version
    serves only the generation it was built from; a search after a write rebuilds it once.
    """

    kind = "bm25"
    field_kind = "text"
    default_field = "text"
    build_params = ("k1", "b", "method", "stopwords", "stemmer")

    def normalise(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(BM25Index(**super().normalise(params)).params)

    def build(self, snap: Any, field: str, params: dict[str, Any], folder: Path, *, progress: bool) -> None:
        texts = snap.texts(snap.keys)
        BM25Index(**params).build(texts, snap.keys, progress=progress).save(folder / "data")

    def open(self, folder: Path, record: Any, collection: Any) -> BM25Index:
        return BM25Index.load(folder / "data")

    def fresh(self, record: Any, snap: Any) -> bool:
        return record.generation == snap.generation

    def retriever(self, collection: Any, name: str, **params: Any) -> BM25Retriever:
        return BM25Retriever(collection, name=name, **{**collection.snapshot().artifacts[name].params, **params})


def bm25_index(collection: Any, *, name: str = "bm25", **params: Any) -> BM25Index:
    """The collection's BM25 index at its current generation (built once if stale), resident."""
    full = BM25Kind().normalise(params)
    return collection.artifact(name, kind="bm25", field="text", params=full)[1]


class BM25Retriever(Stage):
    """BM25 as a pipeline stage (first stage, or re-scoring given candidates)."""

    rescores = True

    def __init__(
        self, collection: Any, *, depth: int = 1000, name: str = "bm25", **params: Any
    ) -> None:
        self.collection = collection
        self.depth = check_k(depth)
        self.params = params
        self.index_name = name
        self.name = "bm25"
        BM25Index(**params)  # validate parameters now

    def with_depth(self, k: int) -> BM25Retriever:
        return BM25Retriever(self.collection, depth=k, name=self.index_name, **self.params)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        snap = self.collection.snapshot()
        full = BM25Kind().normalise(self.params)
        _, idx = self.collection.artifact(
            self.index_name, kind="bm25", field="text", params=full, snap=snap
        )
        if candidates is not None:
            return rescore(candidates, idx.score_pairs(queries.texts, candidates.keys))
        keys, scores = idx.search(queries.texts, self.depth)
        return Results(keys, scores, snap.resolver(), {"retriever": "bm25", "score": "bm25"})


register_retriever("bm25", lambda collection, **p: BM25Retriever(collection, **p))
