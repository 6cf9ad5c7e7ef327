"""Dimension-reducing transforms that compose with any codec (``"pca192+fp8"``).

* :class:`PCA`: project the centred vectors on the top ``d'`` principal axes (the storage study
  "Optimization of embeddings storage for RAG systems using quantization and dimensionality
  reduction": PCA to 50% + float8 gives 8x);
* :class:`Matryoshka`: keep the first ``d'`` coordinates (Kusupati et al., "Matryoshka
  Representation Learning", NeurIPS 2022; used by Qwen3-VL-Embedding) — meaningful only for
  models trained that way;
* :class:`SparseRandomProjection`: very sparse random projection (Li, Hastie & Church, "Very
  Sparse Random Projections", KDD 2006; as in FastRP), entries ``+-sqrt(s/d')`` with probability
  ``1/(2s)``, ``s = sqrt(d)``, so inner products are preserved in expectation.

:class:`Chain` wraps ``transform + codec`` as one codec: the query is transformed (not quantised)
and ``q . x ~ q' . y_hat + offset(q)`` where ``offset`` is the query's product with the mean the
transform removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.codecs.base import Codec, as_matrix
from heron.codecs.binary import single_thread_blas
from heron.retrieval.topk import pad_topk


class Transform:
    """A fitted linear map ``y = (x - mean) @ W``; ``q . x ~ (q @ W) . y + q . mean``."""

    kind = "transform"

    def __init__(self, *, n_components: int) -> None:
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components <= 0:
            raise ValueError(
                f"{self.kind} needs a positive int number of output dimensions, got {n_components!r}"
            )
        self.n_components = n_components
        self.mean: np.ndarray | None = None
        self.W: np.ndarray | None = None  # (d, d')
        self.spec = f"{self.kind}{n_components}"

    def fit(self, x: np.ndarray) -> Transform:
        if self.n_components > x.shape[1]:
            raise ValueError(
                f"{self.spec} asks for {self.n_components} dimensions but the vectors have only {x.shape[1]}; choose n_components <= {x.shape[1]}"
            )
        self._fit(x)
        return self

    def _fit(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((x - self.mean) @ self.W, dtype=np.float32)

    def apply_query(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(q @ W, q . mean)``: the transformed query and its per-query offset ``(nq,)``."""
        return np.ascontiguousarray(q @ self.W, dtype=np.float32), (q @ self.mean).astype(
            np.float32
        )

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return y @ self.W.T + self.mean

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "W": self.W}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.W = arrays["mean"], arrays["W"]


class PCA(Transform):
    """Principal component analysis to ``n_components`` dimensions (centred)."""

    kind = "pca"

    def _fit(self, x: np.ndarray) -> None:
        if len(x) < 2:
            raise ValueError(f"{self.spec} needs at least 2 training vectors, got {len(x)}")
        self.mean = x.mean(axis=0).astype(np.float32)
        xc = (x - self.mean).astype(np.float64)
        cov = xc.T @ xc / max(len(x) - 1, 1)
        with single_thread_blas():
            vals, vecs = np.linalg.eigh(cov)
        self.W = np.ascontiguousarray(vecs[:, ::-1][:, : self.n_components], dtype=np.float32)


class Matryoshka(Transform):
    """Keep the first ``n_components`` coordinates (Matryoshka prefix truncation)."""

    kind = "mrl"

    def _fit(self, x: np.ndarray) -> None:
        d = x.shape[1]
        self.mean = np.zeros(d, dtype=np.float32)
        self.W = np.eye(d, self.n_components, dtype=np.float32)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x[:, : self.n_components], dtype=np.float32)


class SparseRandomProjection(Transform):
    """Very sparse random projection to ``n_components`` dimensions (Li et al. 2006).

    Parameters
    ----------
    n_components: output dimension ``d'``.
    density: fraction of non-zero entries (default ``1/sqrt(d)``).
    seed: the projection's seed.
    """

    kind = "srp"

    def __init__(self, *, n_components: int, density: float | None = None, seed: int = 0) -> None:
        super().__init__(n_components=n_components)
        self.density, self.seed = density, int(seed)

    def _fit(self, x: np.ndarray) -> None:
        d = x.shape[1]
        p = self.density if self.density is not None else 1.0 / np.sqrt(d)
        if not 0 < p <= 1:
            raise ValueError(f"random projection density must be in (0, 1], got {p}")
        rng = np.random.default_rng(self.seed)
        u = rng.random((d, self.n_components))
        sign = np.where(rng.random((d, self.n_components)) < 0.5, -1.0, 1.0)
        self.W = np.where(u < p, sign, 0.0).astype(np.float32) / np.float32(
            np.sqrt(p * self.n_components)
        )
        self.mean = np.zeros(d, dtype=np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        # least-squares reconstruction (the projection is not orthogonal)
        with single_thread_blas():
            return (y @ np.linalg.pinv(self.W)).astype(np.float32)


TRANSFORMS: dict[str, type[Transform]] = {
    "pca": PCA,
    "mrl": Matryoshka,
    "srp": SparseRandomProjection,
}


class Chain(Codec):
    """``transforms + codec`` as one codec (e.g. PCA to 192 dimensions, then float8)."""

    kind = "chain"

    def __init__(self, transforms: list[Transform], codec: Codec) -> None:
        super().__init__()
        self.transforms, self.codec = list(transforms), codec
        self.spec = "+".join([t.spec for t in self.transforms] + [codec.spec])

    def _fit(self, x: np.ndarray, **kwargs: Any) -> None:
        q = kwargs.pop("queries", None)
        for t in self.transforms:
            t.fit(x)
            x = t.apply(x)
            if q is not None:
                q = t.apply_query(q)[0]
        if q is not None:
            kwargs["queries"] = q
        self.codec.fit(x, **kwargs)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t.apply(x)
        return x

    def forward_query(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        off = np.zeros(len(q), dtype=np.float32)
        for t in self.transforms:
            q, o = t.apply_query(q)
            off += o
        return q, off

    @property
    def bytes_per_vector(self) -> float:
        return self.codec.bytes_per_vector

    def state_bytes(self) -> int:
        return self.codec.state_bytes() + sum(
            a.nbytes for t in self.transforms for a in t.arrays().values()
        )

    def encode(self, x: np.ndarray) -> np.ndarray:
        d = self._check()
        return self.codec.encode(self.forward(as_matrix(x, dim=d)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        y = self.codec.decode(codes)
        for t in reversed(self.transforms):
            y = t.inverse(y)
        return y.astype(np.float32)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d = self._check()
        q, off = self.forward_query(as_matrix(queries, what="queries", dim=d))
        return self.codec.score(q, codes) + off[:, None]

    def topk(
        self, queries: np.ndarray, codes: np.ndarray, k: int, *, block_size: int = 32768
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self._check()
        q, off = self.forward_query(as_matrix(queries, what="queries", dim=d))
        s, r = self.codec.topk(q, codes, k, block_size=block_size)
        return pad_topk(s + off[:, None], r, k)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params, carrays = self.codec._state()
        arrays = {f"c_{name}": a for name, a in carrays.items()}
        for i, t in enumerate(self.transforms):
            for name, a in t.arrays().items():
                arrays[f"t{i}_{name}"] = a
        return {"codec": params, "codec_dim": self.codec.dim}, arrays

    def _load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for i, t in enumerate(self.transforms):
            t.load({k[len(f"t{i}_") :]: v for k, v in arrays.items() if k.startswith(f"t{i}_")})
        self.codec._load_state(
            params["codec"], {k[2:]: v for k, v in arrays.items() if k.startswith("c_")}
        )
        self.codec.dim = int(params["codec_dim"])
