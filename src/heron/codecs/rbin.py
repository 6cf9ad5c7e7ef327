"""Multi-bit residual binary codes, after BEBR.

Gan et al., "Binary Embedding-based Retrieval at Tencent", KDD 2023: a vector is approximated by
a sum of ``b`` scaled binary codes, each fitted to the residual left by the previous ones
(recurrent binarisation), giving ``b`` bits per dimension::

    r_0 = R^T (x - mu);   B_l = sign(r_l);   r_{l+1} = r_l - alpha_l * B_l
    x_hat = mu + R (sum_l alpha_l * B_l)

``alpha_l`` (per level and dimension) are fitted on the corpus (the mean ``|r_l|``); ``R`` is the
ITQ rotation of :mod:`heron.codecs.binary`. Scoring is asymmetric (float query against the planes,
one byte table per plane byte) or symmetric, BEBR's code-to-code distance: the query is binarised
the same way and ``score = sum_{l,l'} a_l a_l' (d - 2 * hamming(Bq_l, Bx_l'))`` with ``a_l`` the
mean of ``alpha_l``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.codecs import _scan, fastscan
from heron.codecs.base import Codec, as_matrix
from heron.codecs.binary import (
    code_width,
    fit_rotation,
    pack_signs,
    table_scan,
    unpack_signs,
)
from heron.retrieval.topk import pad_topk

SCORINGS = ("asym", "sym")


class ResidualBinaryCodec(Codec):
    """``b``-bit residual binarisation (BEBR-style).

    Parameters
    ----------
    bits: number of binary levels ``b`` (bits per dimension), 1 to 8.
    scoring: ``"asym"`` or ``"sym"`` (code-to-code, popcount).
    rotation: ``"itq"``, ``"random"`` or ``"none"`` (see :class:`~heron.codecs.binary.BinaryCodec`).
    max_train: vectors sampled for fitting.
    seed: randomness of the rotation and the sample.
    fast_scan: as :class:`~heron.codecs.binary.BinaryCodec`'s: the asymmetric scan of resident
        codes takes its candidates from the fast scan over all ``b`` planes as one sign code
        (``b * d <= 1024``) and certifies them exact (:mod:`heron.codecs.fastscan`).
    """

    kind = "rbin"

    def __init__(
        self,
        *,
        bits: int = 2,
        scoring: str = "asym",
        rotation: str = "itq",
        max_train: int = 100_000,
        seed: int = 0,
        fast_scan: bool | str = True,
    ) -> None:
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise ValueError(f"residual binary bits must be an int in 1..8, got {bits!r}")
        if scoring not in SCORINGS:
            raise ValueError(f"residual binary scoring must be one of {SCORINGS}, got {scoring!r}")
        self.bits, self.scoring, self.rotation = bits, scoring, rotation
        self.max_train, self.seed = int(max_train), int(seed)
        self.fast_scan = fastscan.check_choice(fast_scan)
        self.mean: np.ndarray | None = None
        self.R: np.ndarray | None = None
        self.alpha: np.ndarray | None = None
        self.spec = f"rbin{bits}" + ("-sym" if scoring == "sym" else "")

    def _fit(self, x: np.ndarray, **kwargs: Any) -> None:
        xs = x
        if len(x) > self.max_train:
            rng = np.random.default_rng(self.seed)
            xs = x[np.sort(rng.choice(len(x), self.max_train, replace=False))]
        self.mean = xs.mean(axis=0).astype(np.float32)
        xc = xs - self.mean
        self.R = fit_rotation(xc, rotation=self.rotation, seed=self.seed)
        r = xc @ self.R
        alphas = []
        for _ in range(self.bits):
            a = np.abs(r).mean(axis=0)
            alphas.append(a)
            r = r - a * np.where(r >= 0, 1.0, -1.0)
        self.alpha = np.asarray(alphas, dtype=np.float32)

    @property
    def width(self) -> int:
        return code_width(self._check())

    @property
    def bytes_per_vector(self) -> float:
        return float(self.bits * self.width)

    def _planes(self, x: np.ndarray) -> list[np.ndarray]:
        r = (x - self.mean) @ self.R
        out = []
        for lvl in range(self.bits):
            out.append(pack_signs(r, self.width))
            r = r - self.alpha[lvl] * np.where(r >= 0, 1.0, -1.0)
        return out

    def encode(self, x: np.ndarray) -> np.ndarray:
        d = self._check()
        return np.ascontiguousarray(np.concatenate(self._planes(as_matrix(x, dim=d)), axis=1))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        d = self._check()
        w = self.width
        z = np.zeros((len(codes), d), dtype=np.float32)
        for lvl in range(self.bits):
            z += unpack_signs(codes[:, lvl * w : (lvl + 1) * w], d) * self.alpha[lvl]
        return z @ self.R.T + self.mean

    def _sym(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d, w = self._check(), self.width
        a = self.alpha.mean(axis=1)
        qp = self._planes(q)
        out = np.zeros((len(q), len(codes)), dtype=np.float32)
        codes = np.ascontiguousarray(codes)
        for i in range(self.bits):
            for j in range(self.bits):
                cj = np.ascontiguousarray(codes[:, j * w : (j + 1) * w])
                if _scan.fast_available():
                    ham = _scan.hamming_matrix(qp[i].view(np.uint64), cj.view(np.uint64))
                else:
                    ham = (unpack_signs(qp[i], d)[:, None, :] != unpack_signs(cj, d)[None]).sum(-1)
                out += a[i] * a[j] * (d - 2 * ham)
        return out

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        if self.scoring == "sym":
            return self._sym(q, codes)
        return self.decode(codes).dot(q.T).T.astype(np.float32)

    def topk(
        self, queries: np.ndarray, codes: np.ndarray, k: int, *, block_size: int = 32768
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        if self.scoring == "sym" or not _scan.fast_available() or len(codes) == 0:
            return super().topk(q, codes, k, block_size=block_size)
        off = (q @ self.mean)[:, None]
        codes_c = np.ascontiguousarray(codes)
        wq = self.sign_weights(q)
        s, r = fastscan.sign_topk(self, codes, codes_c, wq, k, table_scan)
        return pad_topk(s + off, r, k)

    def sign_weights(self, q: np.ndarray) -> np.ndarray:
        """``(nq, 8 * bits * width)`` float32: the weight of each code bit in the asymmetric
        score, level ``l``'s weights on bytes ``l*width .. (l+1)*width - 1``."""
        d, w = self._check(), self.width
        wq = np.zeros((len(q), self.bits, 8 * w), dtype=np.float32)
        wq[:, :, :d] = (q @ self.R)[:, None, :] * self.alpha[None, :, :]
        return wq.reshape(len(q), -1)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {
            "bits": self.bits,
            "scoring": self.scoring,
            "rotation": self.rotation,
            "seed": self.seed,
        }
        return params, {"mean": self.mean, "R": self.R, "alpha": self.alpha}

    def _load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.R, self.alpha = arrays["mean"], arrays["R"], arrays["alpha"]
