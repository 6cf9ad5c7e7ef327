"""Floating-point codecs: float32, float16, bfloat16 and float8 (E4M3, E5M2).

float8 follows "Optimization of embeddings storage for RAG systems using quantization and
dimensionality reduction" (float8 storage beats int8 at 4x): each dimension is scaled by a
per-dimension factor fitted on the corpus (``max|x_i| / max_float8``) so values use the format's
normal range, then cast with ``ml_dtypes`` (Micikevicius et al., "FP8 Formats for Deep Learning",
2022). Codes are the raw bit patterns (``uint16`` for 16-bit formats, ``uint8`` for float8).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron._deps import require
from heron.codecs.base import Codec, as_matrix

#: format name -> (ml_dtypes attribute or numpy dtype name, bits)
FORMATS: dict[str, tuple[str, int]] = {
    "fp32": ("float32", 32),
    "fp16": ("float16", 16),
    "bf16": ("bfloat16", 16),
    "fp8e4m3": ("float8_e4m3fn", 8),
    "fp8e5m2": ("float8_e5m2", 8),
}


def _dtype(fmt: str) -> Any:
    name, _ = FORMATS[fmt]
    if name in ("float32", "float16"):
        return np.dtype(name)
    ml = require("ml_dtypes", purpose=f"the {fmt} codec")
    return np.dtype(getattr(ml, name))


def _max_finite(fmt: str) -> float:
    dt = _dtype(fmt)
    if dt in (np.dtype(np.float32), np.dtype(np.float16)):
        return float(np.finfo(dt).max)
    return float(require("ml_dtypes", purpose=f"the {fmt} codec").finfo(dt).max)


class FloatCodec(Codec):
    """Store vectors in a narrower floating-point format.

    Parameters
    ----------
    format: one of ``"fp32"``, ``"fp16"``, ``"bf16"``, ``"fp8e4m3"``, ``"fp8e5m2"``.
    scaled: fit a per-dimension scale so the largest corpus value maps to the format's largest
        finite value (default: on for float8, off otherwise).
    """

    kind = "float"

    def __init__(self, *, format: str = "fp16", scaled: bool | None = None) -> None:
        super().__init__()
        if format not in FORMATS:
            raise ValueError(f"unknown float format {format!r}; choose from {sorted(FORMATS)}")
        self.format = format
        self.bits = FORMATS[format][1]
        self.scaled = (self.bits == 8) if scaled is None else bool(scaled)
        self.scale: np.ndarray | None = None
        self.spec = format
        self._table: np.ndarray | None = None

    def _fit(self, x: np.ndarray, **kwargs: Any) -> None:
        if self.scaled:
            top = _max_finite(self.format)
            m = np.abs(x).max(axis=0)
            self.scale = np.where(m > 0, m / top, 1.0).astype(np.float32)
        else:
            self.scale = np.ones(x.shape[1], dtype=np.float32)

    @property
    def bytes_per_vector(self) -> float:
        return self._check() * self.bits / 8

    def _raw(self) -> np.dtype:
        return np.dtype({32: np.float32, 16: np.uint16, 8: np.uint8}[self.bits])

    def encode(self, x: np.ndarray) -> np.ndarray:
        d = self._check()
        x = as_matrix(x, dim=d)
        dt = _dtype(self.format)
        y = x / self.scale if self.scaled else x
        if self.bits == 8:
            top = _max_finite(self.format)
            y = np.clip(y, -top, top)  # e4m3fn has no inf: saturate instead of NaN
        return np.ascontiguousarray(y.astype(dt).view(self._raw()))

    def _value_table(self) -> np.ndarray:
        if self._table is None:
            self._table = (
                np.arange(256, dtype=np.uint8).view(_dtype(self.format)).astype(np.float32)
            )
        return self._table

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._check()
        codes = np.asarray(codes)
        if self.bits == 8:
            y = self._value_table()[codes]
        elif self.bits == 16:
            y = codes.view(_dtype(self.format)).astype(np.float32)
        else:
            y = codes.astype(np.float32, copy=False)
        return y * self.scale if self.scaled else y

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"format": self.format, "scaled": self.scaled}, {"scale": self.scale}

    def _load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.scaled = bool(params["scaled"])
        self.scale = arrays["scale"]
