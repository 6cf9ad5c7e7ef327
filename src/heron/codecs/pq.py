"""Product quantisation (PQ) and optimised PQ (OPQ), trained with faiss.

Jégou, Douze & Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI 2011; Ge et al.,
"Optimized Product Quantization", TPAMI 2014. A vector (after an optional learned rotation for
OPQ) is split into ``M`` sub-vectors, each replaced by the index of its nearest of ``2**nbits``
centroids; one byte per sub-vector at ``nbits=8``. Scoring is asymmetric distance computation:
one table per query of ``q_m . c_{m,j}`` summed over the ``M`` code bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron._deps import require
from heron.codecs import _scan
from heron.codecs.base import Codec, as_matrix
from heron.retrieval.topk import pad_topk


class PQCodec(Codec):
    """Product quantiser with ``M`` sub-quantisers of 256 centroids (8 bits each).

    Parameters
    ----------
    M: number of sub-quantisers (bytes per vector); must divide the dimension.
    opq: learn an OPQ rotation before quantising. Plain PQ has no rotation: ``R`` stays
        ``None`` and neither memory nor the saved state holds a ``(d, d)`` identity.
    max_train: vectors sampled for training.
    seed: sampling / k-means seed.
    """

    kind = "pq"
    nbits = 8
    ksub = 256
    min_train = 256

    def __init__(
        self, *, M: int = 48, opq: bool = False, max_train: int = 65536, seed: int = 0
    ) -> None:
        super().__init__()
        if isinstance(M, bool) or not isinstance(M, int) or M <= 0:
            raise ValueError(f"PQ needs a positive int number of sub-quantisers M, got {M!r}")
        self.M, self.opq = M, bool(opq)
        self.max_train, self.seed = int(max_train), int(seed)
        self.R: np.ndarray | None = None  # (d, d): rotated = x @ R; None = no rotation
        self.centroids: np.ndarray | None = None  # (M, ksub, dsub)
        self.spec = f"{'opq' if opq else 'pq'}{M}"

    def _sample(self, x: np.ndarray) -> np.ndarray:
        if len(x) <= self.max_train:
            return x
        rng = np.random.default_rng(self.seed)
        return x[np.sort(rng.choice(len(x), self.max_train, replace=False))]

    def _fit(self, x: np.ndarray, **kwargs: Any) -> None:
        d = x.shape[1]
        if d % self.M:
            divisors = [m for m in range(1, d + 1) if d % m == 0]
            raise ValueError(
                f"PQ with M={self.M} sub-quantisers needs M to divide the dimension {d}; choose M from {divisors}"
            )
        faiss = require("faiss", purpose="product quantisation")
        xs = np.ascontiguousarray(self._sample(x))
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # k-means on a sample: one thread avoids oversubscription
        try:
            self._train(faiss, xs, d)
        finally:
            faiss.omp_set_num_threads(threads)

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """``x @ R`` (``x`` itself for plain PQ, which has no rotation)."""
        return x if self.R is None else x @ self.R

    def _train(self, faiss: Any, xs: np.ndarray, d: int) -> None:
        if self.opq:
            opq = faiss.OPQMatrix(d, self.M)
            opq.niter = 25
            # OPQ trains its own product quantiser every iteration; with faiss's default of 39
            # points per centroid it prints one "WARNING clustering ... please provide at least"
            # line per sub-quantiser and iteration (M x niter lines) on corpora under ~10k
            # vectors. Hand it a quantiser that accepts small samples, as below.
            inner = faiss.ProductQuantizer(d, self.M, self.nbits)
            inner.cp.min_points_per_centroid = 1
            inner.cp.seed = self.seed
            opq.pq = inner
            opq.train(xs)
            A = faiss.vector_to_array(opq.A).reshape(d, d)  # faiss applies y = A x
            self.R = np.ascontiguousarray(A.T, dtype=np.float32)
        else:
            self.R = None
        xr = np.ascontiguousarray(self.rotate(xs))
        pq = faiss.ProductQuantizer(d, self.M, self.nbits)
        pq.cp.seed = self.seed
        pq.cp.max_points_per_centroid = 10_000
        pq.cp.min_points_per_centroid = (
            1  # small corpora are fine; fewer than 256 points raise above
        )
        pq.verbose = False
        pq.cp.verbose = False
        pq.train(xr)
        self.centroids = (
            faiss.vector_to_array(pq.centroids)
            .reshape(self.M, self.ksub, d // self.M)
            .astype(np.float32)
        )

    @property
    def bytes_per_vector(self) -> float:
        self._check()
        return float(self.M)

    def assign(self, xr: np.ndarray, centroids: np.ndarray | None = None) -> np.ndarray:
        """Nearest-centroid codes ``(n, M)`` uint8 of rotated vectors ``xr`` ``(n, d)``."""
        c = self.centroids if centroids is None else centroids
        M, ksub, dsub = c.shape
        codes = np.empty((len(xr), M), dtype=np.uint8)
        cn = (c**2).sum(-1)  # (M, ksub)
        for s in range(0, len(xr), 16384):
            sub = xr[s : s + 16384].reshape(-1, M, dsub)
            dist = cn[None] - 2 * np.einsum("nmd,mkd->nmk", sub, c, optimize=True)
            codes[s : s + 16384] = dist.argmin(-1)
        return codes

    def encode(self, x: np.ndarray) -> np.ndarray:
        d = self._check()
        return self.assign(self.rotate(as_matrix(x, dim=d)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._check()
        codes = np.asarray(codes)
        xr = self.centroids[np.arange(self.M)[None, :], codes].reshape(len(codes), -1)
        return xr if self.R is None else xr @ self.R.T

    def lut(self, queries: np.ndarray) -> np.ndarray:
        """Asymmetric tables ``(nq, M, 256)``: ``q_m . c_{m, j}`` in the rotated space."""
        qr = self.rotate(queries).reshape(len(queries), self.M, -1)
        return np.einsum("qmd,mkd->qmk", qr, self.centroids, optimize=True).astype(np.float32)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        tab = self.lut(q)
        codes = np.asarray(codes)
        out = np.zeros((len(q), len(codes)), dtype=np.float32)
        for m in range(self.M):
            out += tab[:, m, codes[:, m]]
        return out

    def topk(
        self, queries: np.ndarray, codes: np.ndarray, k: int, *, block_size: int = 32768
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        if not _scan.fast_available() or len(codes) == 0:
            return super().topk(q, codes, k, block_size=block_size)
        parts = [
            _scan.lut_topk(self.lut(q[i : i + 512]), np.ascontiguousarray(codes), k)
            for i in range(0, len(q), 512)
        ]
        return pad_topk(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), k
        )

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {"centroids": self.centroids}
        if self.R is not None:
            arrays["R"] = self.R
        return {"M": self.M, "opq": self.opq, "seed": self.seed}, arrays

    def _load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        R = arrays.get("R")
        # plain PQ saved before R was dropped stored an identity: do not keep it in memory
        if R is not None and not params.get("opq", True) and _is_identity(R):
            R = None
        self.R, self.centroids = R, arrays["centroids"]


def _is_identity(R: np.ndarray) -> bool:
    return (
        R.ndim == 2
        and R.shape[0] == R.shape[1]
        and np.array_equal(R, np.eye(len(R), dtype=R.dtype))
    )
