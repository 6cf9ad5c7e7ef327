"""Look up stored document vectors / texts by collection key (what rerankers need)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, PAD_SCORE, Results
from heron.retrieval.topk import topk_rows


class KeyedVectors:
    """Document vectors addressable by ``int64`` key.

    Parameters
    ----------
    keys:
        ``int64`` array ``(n,)`` of document keys (any order, unique).
    vectors:
        ``float32`` array ``(n, d)``, row ``i`` belongs to ``keys[i]``.
    model:
        Name of the encoder that produced the vectors (checked against query encoders).
    """

    def __init__(self, keys: np.ndarray, vectors: np.ndarray, *, model: str | None = None) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.asarray(vectors)
        if keys.ndim != 1 or vectors.ndim != 2 or len(keys) != len(vectors):
            raise ValueError(
                f"KeyedVectors needs keys (n,) and vectors (n, d) with the same n, got {keys.shape} and {vectors.shape}"
            )
        if len(np.unique(keys)) != len(keys):
            raise ValueError("KeyedVectors keys must be unique")
        self.keys, self.vectors, self.model = keys, vectors, model
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row numbers of ``keys`` (any shape); ``-1`` for padding; unknown keys raise ``KeyError``."""
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(self._sorted, keys)
        pos = np.clip(pos, 0, max(len(self._sorted) - 1, 0))
        found = (self._sorted[pos] == keys) if len(self._sorted) else np.zeros(keys.shape, bool)
        pad = keys == PAD_KEY
        if np.any(~found & ~pad):
            bad = keys[~found & ~pad][:5].tolist()
            raise KeyError(
                f"keys {bad} have no stored vector; the vectors and the candidates come from different collections"
            )
        return np.where(pad, -1, self._order[pos])

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Vectors of ``keys`` (shape ``(..., )``) as ``float32`` ``(..., d)``; padding rows are zero."""
        rows = self.rows(keys)
        out = np.asarray(self.vectors[np.maximum(rows, 0).ravel()], dtype=np.float32).reshape(
            *rows.shape, self.dim
        )
        out[rows < 0] = 0.0
        return out

    @staticmethod
    def from_snapshot(
        snapshot: object, field: str = "dense", model: str | None = None
    ) -> KeyedVectors:
        """Vectors of a collection :class:`Snapshot` (``snapshot.keys``, ``snapshot.dense(field)``)."""
        return KeyedVectors(snapshot.keys, snapshot.dense(field), model=model)  # type: ignore[attr-defined]


class KeyedTexts:
    """Document texts addressable by key: wraps a ``keys -> list[str]`` callable or a list.

    Parameters
    ----------
    source:
        A callable mapping an ``int64`` key array to texts (e.g. ``snapshot.texts``), or a
        sequence of texts indexed by key (key ``i`` -> ``source[i]``).
    """

    def __init__(self, source: Callable[[np.ndarray], Sequence[str]] | Sequence[str]) -> None:
        self._fn = source if callable(source) else None
        self._seq = None if callable(source) else list(source)

    def __call__(self, keys: np.ndarray) -> list[str]:
        keys = np.asarray(keys, dtype=np.int64)
        if self._fn is not None:
            return [str(t) for t in self._fn(keys)]
        assert self._seq is not None
        return [self._seq[int(k)] for k in keys]


def query_vectors(queries: object, encoder: object) -> np.ndarray:
    """Dense query vectors ``(n_queries, d)`` from a :class:`~heron.pipeline.Queries` batch (memoised)."""
    return np.asarray(queries.embed(encoder), dtype=np.float32)  # type: ignore[attr-defined]


def check_model(encoder: object, vectors: KeyedVectors, what: str) -> None:
    """Refuse an encoder whose name or dimension differs from the stored vectors'."""
    name = getattr(encoder, "name", None)
    dim = getattr(encoder, "dim", None)
    if vectors.model is not None and name is not None and name != vectors.model:
        raise ValueError(
            f"{what}: the query encoder is {name!r} but the document vectors were made by {vectors.model!r}; "
            "use the same model for both (or a drift map, heron.drift, to bridge them)"
        )
    if dim is not None and int(dim) != vectors.dim:
        raise ValueError(
            f"{what}: the query encoder has dimension {dim} but the document vectors have {vectors.dim}"
        )


class VectorSearch(Stage):
    """Exact inner-product retriever over :class:`KeyedVectors` (array-level; collections use
    :mod:`heron.retrieval`'s dense retriever).

    Parameters
    ----------
    vectors: the document vectors.
    encoder: query encoder (anything with ``name`` and ``encode_queries``).
    depth: hits returned when nothing cuts the stage.
    """

    def __init__(self, vectors: KeyedVectors, encoder: object, *, depth: int = 1000) -> None:
        self.vectors, self.encoder, self.depth = vectors, encoder, int(depth)
        self.name = f"VectorSearch({getattr(encoder, 'name', '?')})"

    def with_depth(self, k: int) -> Stage:
        return VectorSearch(self.vectors, self.encoder, depth=k)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        q = query_vectors(queries, self.encoder)
        return search_vectors(q, self.vectors, self.depth)


def search_vectors(
    q: np.ndarray, vectors: KeyedVectors, k: int, *, block_size: int = 4096
) -> Results:
    """Exact top-``k`` keys by inner product of ``q`` ``(n_queries, d)`` with ``vectors``."""
    q = np.ascontiguousarray(q, dtype=np.float32)
    mat = vectors.vectors
    keys = np.full((len(q), k), PAD_KEY, dtype=np.int64)
    scores = np.full((len(q), k), PAD_SCORE, dtype=np.float32)
    for s in range(0, len(q), block_size):
        sc = q[s : s + block_size] @ np.asarray(mat, dtype=np.float32).T
        ts, rows = topk_rows(sc, k)
        keys[s : s + len(sc)] = np.where(rows >= 0, vectors.keys[np.maximum(rows, 0)], PAD_KEY)
        scores[s : s + len(sc)] = ts
    return Results(keys, scores)
