"""Scalar quantisation to int8 / int4 with per-dimension ranges fitted on the corpus.

Each dimension ``i`` keeps a range ``[lo_i, hi_i]`` (the corpus min/max, or quantiles when
``clip`` is set) split into ``2**bits`` levels; ``x_i ~ lo_i + c_i * step_i``. The ranges are part
of the fitted state and never recomputed from a query batch (Jacob et al., "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018; the
storage study "Optimization of embeddings storage for RAG systems using quantization and
dimensionality reduction", 2025). Scoring is asymmetric:
``q . x_hat = q . lo + (q * step) . c``; int8 scans the byte codes directly, int4 scans a table
of the 256 values of each byte (two dimensions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.codecs import _scan
from heron.codecs.base import Codec, as_matrix
from heron.retrieval.topk import pad_topk


class ScalarQuantizer(Codec):
    """Per-dimension uniform scalar quantiser.

    Parameters
    ----------
    bits: 8 (one byte per dimension) or 4 (two dimensions per byte).
    clip: quantile cut at each end of a dimension's range (0 = min/max). Outliers are clamped.
    """

    kind = "scalar"

    def __init__(self, *, bits: int = 8, clip: float | None = None) -> None:
        super().__init__()
        if bits not in (4, 8):
            raise ValueError(f"scalar quantiser bits must be 8 or 4, got {bits!r}")
        self.bits = bits
        self.clip = float(clip if clip is not None else (0.0 if bits == 8 else 0.001))
        if not 0.0 <= self.clip < 0.5:
            raise ValueError(f"clip must be a quantile in [0, 0.5), got {clip!r}")
        self.lo: np.ndarray | None = None
        self.step: np.ndarray | None = None
        self.spec = f"int{bits}"

    @property
    def levels(self) -> int:
        return 2**self.bits

    def _fit(self, x: np.ndarray, **kwargs: Any) -> None:
        if self.clip > 0:
            lo, hi = np.quantile(x, [self.clip, 1 - self.clip], axis=0)
        else:
            lo, hi = x.min(axis=0), x.max(axis=0)
        span = np.maximum(hi - lo, 1e-12)
        self.lo = lo.astype(np.float32)
        self.step = (span / (self.levels - 1)).astype(np.float32)

    @property
    def bytes_per_vector(self) -> float:
        d = self._check()
        return float(d if self.bits == 8 else (d + 1) // 2)

    def encode(self, x: np.ndarray) -> np.ndarray:
        d = self._check()
        x = as_matrix(x, dim=d)
        c = np.clip(np.rint((x - self.lo) / self.step), 0, self.levels - 1).astype(np.uint8)
        if self.bits == 8:
            return np.ascontiguousarray(c)
        if d % 2:
            c = np.concatenate([c, np.zeros((len(c), 1), np.uint8)], axis=1)
        return np.ascontiguousarray(c[:, 0::2] | (c[:, 1::2] << 4))

    def _levels(self, codes: np.ndarray) -> np.ndarray:
        d = self._check()
        codes = np.asarray(codes, dtype=np.uint8)
        if self.bits == 8:
            return codes
        c = np.empty((len(codes), 2 * codes.shape[1]), dtype=np.uint8)
        c[:, 0::2] = codes & 15
        c[:, 1::2] = codes >> 4
        return c[:, :d]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.lo + self._levels(codes).astype(np.float32) * self.step

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        out = np.empty((len(q), len(codes)), dtype=np.float32)
        w = q * self.step
        off = (q @ self.lo)[:, None]
        for s in range(0, len(codes), 32768):
            out[:, s : s + 32768] = (
                w @ self._levels(codes[s : s + 32768]).T.astype(np.float32) + off
            )
        return out

    def int_query(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The int8 scan's integer query: ``(qw (nq, d) int16, scale (nq,) float64)``.

        ``qw ~ scale * (q * step)``, rounded, with the largest scale such that
        ``|qw| <= 32767`` and ``255 * sum(|qw|) < 2**31`` (the int32 accumulator cannot
        overflow), so ``q . x_hat = (qw . c) / scale + q . lo`` up to the rounding of the query
        (relative error below ``2**-15`` per coefficient).
        """
        w = np.asarray(queries, dtype=np.float64) * self.step
        a = np.abs(w)
        big = np.maximum(a.max(axis=1), 1e-30)
        tot = np.maximum(a.sum(axis=1), 1e-30)
        scale = np.minimum(32767.0 / big, 0.999 * (2**31 - 1) / (255.0 * tot))
        qw = np.clip(np.rint(w * scale[:, None]), -32767, 32767).astype(np.int16)
        return qw, scale

    def lut(self, queries: np.ndarray) -> np.ndarray:
        """int4 tables ``(nq, ceil(d/2), 256)``: the score of each byte value for each query."""
        d = self._check()
        w = queries * self.step
        if d % 2:
            w = np.concatenate([w, np.zeros((len(w), 1), np.float32)], axis=1)
        v = np.arange(256)
        lo_vals, hi_vals = (v & 15).astype(np.float32), (v >> 4).astype(np.float32)
        return (w[:, 0::2, None] * lo_vals + w[:, 1::2, None] * hi_vals).astype(np.float32)

    def topk(
        self, queries: np.ndarray, codes: np.ndarray, k: int, *, block_size: int = 32768
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        if not _scan.fast_available() or len(codes) == 0:
            return super().topk(q, codes, k, block_size=block_size)
        off = (q @ self.lo)[:, None]
        if self.bits == 8:
            qw, scale = self.int_query(q)
            si, r = _scan.i16u8_topk(qw, codes, k)
            s = np.where(r >= 0, si / scale[:, None], -np.inf).astype(np.float32)
        else:
            parts = [
                _scan.lut_topk(self.lut(q[i : i + 256]), codes, k) for i in range(0, len(q), 256)
            ]
            s, r = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return pad_topk(s + off, r, k)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"bits": self.bits, "clip": self.clip}, {"lo": self.lo, "step": self.step}

    def _load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.lo, self.step = arrays["lo"], arrays["step"]
