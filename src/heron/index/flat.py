"""Exact scan over a codec's codes (no index structure): the baseline beside every approximation.

``codec="fp32"`` scans the float copy (blocked matrix product); any other spec of
:mod:`heron.codecs.spec` (``int8``, ``bin``, ``pq48``, ``pca192+fp8`` ...) is fitted at build
time, scanned with the codec's own ``topk`` and re-scored from the float copy (``oversample``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from heron.index.base import AnnIndex, IndexMismatchError


class FlatIndex(AnnIndex):
    """Brute-force search over codes.

    Parameters
    ----------
    codec: any codec spec (default ``"fp32"``: exact inner products).
    oversample, exact_below: see :class:`~heron.index.base.AnnIndex`.
    """

    kind: ClassVar[str] = "flat"
    codecs: ClassVar[tuple[str, ...]] = ("fp32", "any heron codec spec")

    def __init__(
        self, *, codec: str = "fp32", oversample: float | None = None, exact_below: float = 0.02
    ) -> None:
        from heron.codecs.spec import parse_spec

        if not isinstance(codec, str):
            raise TypeError(f"codec must be a spec string such as 'int8', got {codec!r}")
        if codec.lower() != "fp32":
            parse_spec(codec)  # raises with the valid choices
        self._codec: Any = None
        self._codes: list[np.ndarray] = []
        super().__init__(codec=codec, oversample=oversample, exact_below=exact_below)

    @classmethod
    def _codec_names(cls) -> tuple[str, ...]:
        return ()

    def __contains_codec(self) -> bool:  # pragma: no cover
        return True

    def _build(self, x: np.ndarray) -> None:
        self._codes = []
        if self.codec != "fp32":
            from heron.codecs.spec import parse_spec

            self._codec = parse_spec(self.codec).fit(x)

    def _add(self, x: np.ndarray) -> None:
        if self._codec is not None:
            self._codes.append(self._codec.encode(x))

    def memory_bytes(self) -> int:
        if self._codec is None:
            return int(self.ntotal * (self.dim or 0) * 4 + self.keys.nbytes)
        return int(
            sum(c.nbytes for c in self._codes) + self._codec.state_bytes() + self.keys.nbytes
        )

    def _search_labels(
        self,
        q: np.ndarray,
        depth: int,
        mask: np.ndarray | None,
        selectivity: float,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, str]:
        labels = np.arange(self.ntotal) if mask is None else np.flatnonzero(mask)
        if self._codec is None:
            s, lab = self._exact(q, labels, depth)
            return s, lab, "flat"
        if len(self._codes) > 1:
            self._codes = [np.concatenate(self._codes)]
        codes = self._codes[0] if mask is None else self._codes[0][labels]
        s, rows = self._codec.topk(q, codes, depth)
        lab = np.where(rows >= 0, labels[np.maximum(rows, 0)], -1)
        return np.asarray(s, np.float32), lab, f"flat-{self.codec}"

    def _save_structure(self, folder: Path) -> None:
        if self._codec is not None:
            self._codec.save(folder / "codec")
            np.save(
                folder / "codes.npy",
                np.concatenate(self._codes) if self._codes else np.zeros((0, 0), np.uint8),
            )

    def _load_structure(self, folder: Path) -> None:
        if self.codec == "fp32":
            return
        from heron.codecs.base import load_codec

        self._codec = load_codec(folder / "codec", dim=self.dim)
        codes = np.load(folder / "codes.npy")
        if len(codes) != self.ntotal:
            raise IndexMismatchError(
                f"index at {str(folder)!r}: {len(codes)} codes for {self.ntotal} keys; rebuild the index"
            )
        self._codes = [codes]
