"""Model-agnostic common-direction filter, after EmbedFilter.

"Your UnEmbedding Matrix is Secretly a Feature Lens for Text Embeddings", 2025: embeddings align
with frequent, uninformative directions; filtering out that subspace improves them and reduces
dimension. Without an LLM unembedding matrix we use the model-agnostic form: the top ``r``
uncentred principal directions of the corpus embeddings (the dominant directions every text
shares, cf. Mu & Viswanath, "All-but-the-Top", ICLR 2018) are projected out of queries and
documents, which are then re-normalised; the output has ``d - r`` dimensions (coordinates in the
orthogonal complement).
"""

from __future__ import annotations

import os

import numpy as np

from heron._state import load_state, save_state

FORMAT_VERSION = 1


class CommonDirectionFilter:
    """Remove the ``num_directions`` dominant common directions of a corpus.

    Parameters
    ----------
    num_directions: ``r``, directions removed (0: identity up to re-normalisation).
    center: also subtract the corpus mean before projecting (the mean is the first common direction).
    """

    def __init__(self, *, num_directions: int = 1, center: bool = False) -> None:
        if not isinstance(num_directions, int) or num_directions < 0:
            raise ValueError(f"num_directions must be an int >= 0, got {num_directions!r}")
        self.num_directions, self.center = num_directions, bool(center)
        self.basis: np.ndarray | None = None  # (d, d - r) orthonormal complement
        self.mean: np.ndarray | None = None
        self.model: str | None = None

    def fit(self, x: np.ndarray, *, model: str | None = None) -> CommonDirectionFilter:
        """Fit on corpus embeddings ``x`` ``(n, d)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or self.num_directions >= x.shape[1]:
            raise ValueError(
                f"need (n, d) embeddings with d > num_directions={self.num_directions}, got {x.shape}"
            )
        self.mean = x.mean(0) if self.center else np.zeros(x.shape[1])
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=True)
        self.basis = vt[self.num_directions :].T.astype(np.float32)
        self.mean = self.mean.astype(np.float32)
        self.model = model
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Filtered, re-normalised embeddings ``(n, d - r)``."""
        if self.basis is None or self.mean is None:
            raise ValueError(
                "this CommonDirectionFilter is not fitted; call fit(corpus_embeddings) first"
            )
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.basis.shape[0]:
            raise ValueError(f"expected (n, {self.basis.shape[0]}) embeddings, got {x.shape}")
        y = (x - self.mean) @ self.basis
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    def save(self, path: str | os.PathLike) -> None:
        if self.basis is None or self.mean is None:
            raise ValueError("cannot save an unfitted CommonDirectionFilter")
        save_state(
            path,
            "CommonDirectionFilter",
            FORMAT_VERSION,
            {"num_directions": self.num_directions, "center": self.center, "model": self.model},
            {"basis": self.basis, "mean": self.mean},
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> CommonDirectionFilter:
        params, arrays = load_state(path, "CommonDirectionFilter", FORMAT_VERSION)
        self = cls(num_directions=params["num_directions"], center=params["center"])
        self.basis, self.mean, self.model = arrays["basis"], arrays["mean"], params["model"]
        return self
