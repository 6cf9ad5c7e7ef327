"""Token codes: :class:`TokenCodec`, 1-byte centroid codes of token vectors plus quantised residuals.

After "Hierarchical Patch Compression for ColPali" (HPC-ColPali: k-means codes of patch vectors
in one byte) and ColBERTv2's residual compression (Santhanam et al., "ColBERTv2: Effective and
Efficient Retrieval via Lightweight Late Interaction", NAACL 2022: a centroid id plus a
``b``-bit-per-dimension quantised residual). The corpus store scoring MaxSim on these codes is
:class:`heron.multivector.tokencodes.CodedTokens`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from heron.multivector.ragged import RaggedArray, _atomic_save

__all__ = ["FORMAT", "VERSION", "TokenCodec"]

FORMAT = "heron.tokencodes"
VERSION = 1


class TokenCodec:
    """k-means centroid codes (1 byte per token) with optional quantised residuals.

    Parameters
    ----------
    n_centroids: number of centroids, at most 256 (codes are ``uint8``).
    residual_bits: bits per dimension of the residual (0 = codes only, 1, 2, 4 or 8;
        ColBERTv2's scalar residual compression).
    residual_pq: instead of ``residual_bits``, product-quantise the residual with this many
        one-byte sub-quantisers (must divide ``d``; e.g. 48 for d=384 -> 49 bytes per token).
    n_iter: k-means iterations.
    sample: tokens sampled to train the centroids and the residual buckets.
    seed: random seed.
    """

    def __init__(
        self,
        *,
        n_centroids: int = 256,
        residual_bits: int = 0,
        residual_pq: int = 0,
        n_iter: int = 10,
        sample: int = 65536,
        seed: int = 0,
    ) -> None:
        if (
            isinstance(n_centroids, bool)
            or not isinstance(n_centroids, (int, np.integer))
            or not 1 <= n_centroids <= 256
        ):
            raise ValueError(
                f"n_centroids must be an int in 1..256 (one-byte codes), got {n_centroids!r}"
            )
        if residual_bits not in (0, 1, 2, 4, 8):
            raise ValueError(f"residual_bits must be one of 0, 1, 2, 4, 8, got {residual_bits!r}")
        if isinstance(residual_pq, bool) or not isinstance(residual_pq, int) or residual_pq < 0:
            raise ValueError(f"residual_pq must be a non-negative int, got {residual_pq!r}")
        if residual_pq and residual_bits:
            raise ValueError(
                "choose one residual: residual_bits (scalar) or residual_pq (product quantiser)"
            )
        self.residual_pq = int(residual_pq)
        self.pq_centroids: np.ndarray | None = None  # (M, 256, d/M)
        if not isinstance(n_iter, int) or n_iter < 1 or not isinstance(sample, int) or sample < 1:
            raise ValueError(
                f"n_iter and sample must be positive ints, got n_iter={n_iter!r}, sample={sample!r}"
            )
        self.n_centroids, self.residual_bits, self.n_iter, self.sample, self.seed = (
            int(n_centroids),
            int(residual_bits),
            n_iter,
            sample,
            int(seed),
        )
        self.centroids: np.ndarray | None = None  # (n_centroids, d) float32, unit rows
        self.cutoffs: np.ndarray | None = None  # (d, 2**b - 1) residual bucket boundaries
        self.weights: np.ndarray | None = None  # (d, 2**b) residual bucket values

    # ------------------------------------------------------------------ fitting
    @property
    def has_residuals(self) -> bool:
        return bool(self.residual_bits or self.residual_pq)

    @property
    def dim(self) -> int:
        self._check_fitted()
        return int(self.centroids.shape[1])  # type: ignore[union-attr]

    def _check_fitted(self) -> None:
        if self.centroids is None:
            raise ValueError("this TokenCodec is not fitted; call fit(token_vectors) first")

    def fit(self, x: np.ndarray | RaggedArray) -> TokenCodec:
        """Learn centroids (spherical k-means) and residual buckets from ``x`` ``(n_tokens, d)``."""
        values = x.values if isinstance(x, RaggedArray) else np.asarray(x)
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"fit needs a non-empty (n_tokens, d) array, got shape {values.shape}")
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.choice(len(values), size=min(self.sample, len(values)), replace=False))
        xs = np.asarray(values[idx], dtype=np.float32)
        k = min(self.n_centroids, len(xs))
        c = xs[rng.choice(len(xs), size=k, replace=False)].copy()
        for _ in range(self.n_iter):
            a = _assign(xs, c)
            onehot = np.zeros((len(xs), k), np.float32)
            onehot[np.arange(len(xs)), a] = 1.0
            sums = onehot.T @ xs  # one BLAS call instead of a slow np.add.at
            cnt = np.bincount(a, minlength=k)
            empty = cnt == 0
            sums[empty] = xs[rng.integers(0, len(xs), int(empty.sum()))]
            c = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        self.centroids = c.astype(np.float32)
        if self.residual_bits:
            res = xs - self.centroids[_assign(xs, self.centroids)]
            nb = 1 << self.residual_bits
            qs = np.linspace(0, 1, nb + 1)[1:-1]
            self.cutoffs = np.quantile(res, qs, axis=0).T.astype(np.float32)  # (d, nb-1)
            bucket = _bucketize(res, self.cutoffs)
            w = np.zeros((res.shape[1], nb), dtype=np.float32)
            for b in range(nb):
                m = bucket == b
                cnt = m.sum(axis=0)
                w[:, b] = np.where(cnt > 0, (res * m).sum(axis=0) / np.maximum(cnt, 1), 0.0)
            self.weights = w
        if self.residual_pq:
            d = xs.shape[1]
            if d % self.residual_pq:
                raise ValueError(
                    f"residual_pq={self.residual_pq} must divide the token dimension {d}"
                )
            res = xs - self.centroids[_assign(xs, self.centroids)]
            sub = res.reshape(len(res), self.residual_pq, d // self.residual_pq)
            self.pq_centroids = np.stack(
                [_kmeans_l2(sub[:, m], 256, self.n_iter, rng) for m in range(self.residual_pq)]
            )
        return self

    # ------------------------------------------------------------------ codec contract
    @property
    def bytes_per_token(self) -> int:
        """Stored bytes per token: 1 (code) + ``ceil(d * residual_bits / 8)`` or + ``residual_pq``."""
        return 1 + (-(-self.dim * self.residual_bits // 8)) + self.residual_pq

    def encode(
        self, x: np.ndarray, *, batch: int = 1 << 16
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(codes (n,) uint8, residuals (n, ceil(d*b/8)) uint8 or None)`` of ``x`` ``(n, d)``."""
        self._check_fitted()
        x = np.asarray(x)
        if x.ndim != 2 or (len(x) and x.shape[1] != self.dim):
            raise ValueError(
                f"encode needs (n, {self.dim}) token vectors, got shape {x.shape}; mismatched token dimension"
            )
        codes = np.zeros(len(x), dtype=np.uint8)
        res = (
            np.zeros((len(x), self.bytes_per_token - 1), dtype=np.uint8)
            if self.has_residuals
            else None
        )
        for s in range(0, len(x), batch):
            xb = np.asarray(x[s : s + batch], dtype=np.float32)
            a = _assign(xb, self.centroids)  # type: ignore[arg-type]
            codes[s : s + len(xb)] = a
            if res is not None and self.residual_pq:
                r = (xb - self.centroids[a]).reshape(len(xb), self.residual_pq, -1)  # type: ignore[index]
                for m in range(self.residual_pq):
                    c = self.pq_centroids[m]  # type: ignore[index]
                    dist = (c * c).sum(1)[None, :] - 2.0 * (r[:, m] @ c.T)
                    res[s : s + len(xb), m] = np.argmin(dist, axis=1)
            elif res is not None:
                bucket = _bucketize(xb - self.centroids[a], self.cutoffs)  # type: ignore[index,arg-type]
                res[s : s + len(xb)] = _pack(bucket, self.residual_bits)
        return codes, res

    def decode(self, codes: np.ndarray, residuals: np.ndarray | None = None) -> np.ndarray:
        """Approximate token vectors ``(n, d)`` float32 from codes (and residuals)."""
        self._check_fitted()
        out = self.centroids[np.asarray(codes, dtype=np.int64)]  # type: ignore[index]
        if self.residual_pq and residuals is not None:
            r = np.asarray(residuals, dtype=np.int64)
            parts = self.pq_centroids[np.arange(self.residual_pq)[None, :], r]  # type: ignore[index]
            return (out + parts.reshape(len(r), -1)).astype(np.float32, copy=False)
        if self.residual_bits and residuals is not None:
            bucket = _unpack(residuals, self.residual_bits, self.dim)
            out = (
                out
                + np.take_along_axis(
                    self.weights[None, :, :], bucket[:, :, None].astype(np.int64), axis=2
                )[:, :, 0]
            )  # type: ignore[index]
        return out.astype(np.float32, copy=False)

    # ------------------------------------------------------------------ persistence
    def params(self) -> dict:
        return {
            "n_centroids": self.n_centroids,
            "residual_bits": self.residual_bits,
            "residual_pq": self.residual_pq,
            "n_iter": self.n_iter,
            "sample": self.sample,
            "seed": self.seed,
        }

    def save(self, path: str | os.PathLike) -> None:
        self._check_fitted()
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        _atomic_save(p / "centroids.npy", self.centroids)  # type: ignore[arg-type]
        if self.residual_bits:
            _atomic_save(p / "cutoffs.npy", self.cutoffs)  # type: ignore[arg-type]
            _atomic_save(p / "weights.npy", self.weights)  # type: ignore[arg-type]
        if self.residual_pq:
            _atomic_save(p / "pq_centroids.npy", self.pq_centroids)  # type: ignore[arg-type]
        (p / "codec.json").write_text(
            json.dumps(
                {"format": FORMAT + ".codec", "version": VERSION, "params": self.params()}, indent=1
            )
        )

    @staticmethod
    def load(path: str | os.PathLike) -> TokenCodec:
        p = Path(path)
        meta = _read_manifest(p / "codec.json", FORMAT + ".codec")
        c = TokenCodec(**meta["params"])
        c.centroids = np.load(p / "centroids.npy")
        if c.residual_bits:
            c.cutoffs, c.weights = np.load(p / "cutoffs.npy"), np.load(p / "weights.npy")
        if c.residual_pq:
            c.pq_centroids = np.load(p / "pq_centroids.npy")
        return c


def _kmeans_l2(x: np.ndarray, k: int, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Plain (Euclidean) k-means of ``x`` ``(n, ds)`` -> ``(k, ds)`` centroids (PQ codebooks)."""
    k_eff = min(k, len(x))
    c = np.zeros((k, x.shape[1]), np.float32)
    c[:k_eff] = x[rng.choice(len(x), size=k_eff, replace=False)]
    for _ in range(n_iter):
        a = np.argmin((c * c).sum(1)[None, :] - 2.0 * (x @ c.T), axis=1)
        cnt = np.bincount(a, minlength=k)
        for j in range(x.shape[1]):
            sums = np.bincount(a, weights=x[:, j], minlength=k)
            c[:, j] = np.where(cnt > 0, sums / np.maximum(cnt, 1), c[:, j])
    return c


def _read_manifest(path: Path, fmt: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"no {fmt} manifest at {str(path)!r}")
    meta = json.loads(path.read_text())
    if meta.get("format") != fmt or meta.get("version") != VERSION:
        raise ValueError(
            f"{str(path)!r} is {meta.get('format')!r} v{meta.get('version')}, expected {fmt!r} v{VERSION}; rebuild it"
        )
    return meta


def _assign(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.argmax(x @ c.T, axis=1)


def _bucketize(res: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Per-dimension bucket ids of residuals ``(n, d)`` given cutoffs ``(d, nb-1)`` -> uint8."""
    out = np.zeros(res.shape, dtype=np.uint8)
    for j in range(cutoffs.shape[1]):
        out += res > cutoffs[:, j][None, :]
    return out


def _pack(bucket: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return bucket.astype(np.uint8)
    bitplanes = ((bucket[:, :, None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(
        len(bucket), -1
    )
    return np.packbits(bitplanes, axis=1)


def _unpack(packed: np.ndarray, bits: int, d: int) -> np.ndarray:
    if bits == 8:
        return packed.astype(np.uint8)
    planes = np.unpackbits(packed, axis=1, count=d * bits).reshape(len(packed), d, bits)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=2).astype(np.uint8)
