"""1-bit binary codes: the sign of each (centred, rotated) dimension.

Before taking signs the corpus mean is subtracted and the vectors are rotated by an orthogonal
matrix learned with Iterative Quantization (Gong & Lazebnik, "Iterative Quantization: A
Procrustean Approach to Learning Binary Codes", CVPR 2011), which balances the variance over
bits and minimises the quantisation error. Two scorings:

* ``"asym"``: the float query against the codes, ``q . x_hat`` with
  ``x_hat = mu + R^T (scale * sign)``, scanned with a table of the 256 values of each code byte;
* ``"hamming"``: the query's own sign code, ``score = d - 2 * popcount(a xor b)`` (the dot product
  of the two sign vectors), scanned with hardware popcount as faiss' ``IndexBinaryFlat`` does.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from heron._deps import has
from heron.codecs import _scan, fastscan
from heron.codecs.base import Codec, as_matrix
from heron.retrieval.topk import pad_topk

ROTATIONS = ("itq", "random", "none")
SCORINGS = ("asym", "hamming")

#: (256, 8) table of +-1: bit t of byte value v (little bit order)
_SIGNS = (((np.arange(256)[:, None] >> np.arange(8)) & 1) * 2 - 1).astype(np.float32)


def fit_rotation(xc: np.ndarray, *, rotation: str, iters: int = 30, seed: int = 0) -> np.ndarray:
    """An orthogonal ``(d, d)`` matrix ``R`` applied as ``xc @ R`` before taking signs."""
    d = xc.shape[1]
    if rotation == "none":
        return np.eye(d, dtype=np.float32)
    return _fit_rotation(xc, rotation=rotation, iters=iters, seed=seed)


def single_thread_blas() -> Any:
    """Context limiting BLAS to one thread (small dense linear algebra is far faster that way on
    busy machines); a no-op without ``threadpoolctl``."""
    if has("threadpoolctl"):
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1, user_api="blas")
    return contextlib.nullcontext()


def _fit_rotation(xc: np.ndarray, *, rotation: str, iters: int, seed: int) -> np.ndarray:
    d = xc.shape[1]
    rng = np.random.default_rng(seed)
    with single_thread_blas():
        r, _ = np.linalg.qr(rng.standard_normal((d, d)))
    if rotation == "itq":
        x64 = xc.astype(np.float64)
        # b = sign(x @ r) in one reused (n, d) buffer: a fresh one per iteration (two, with the
        # product) is 600 MB of new pages each time at 100k × 384, which cost more than the
        # arithmetic where page faults are slow (first-touch in a VM: ~5 s per GB)
        b = np.empty_like(x64)
        pos = np.empty(x64.shape, dtype=bool)
        for _ in range(iters):
            np.matmul(x64, r, out=b)
            np.greater_equal(b, 0.0, out=pos)
            np.multiply(pos, 2.0, out=b)
            b -= 1.0  # +1 where x @ r >= 0, else -1
            c = x64.T @ b
            with single_thread_blas():  # the (d, d) SVD: small, faster on one thread
                u, _, vt = np.linalg.svd(c)
                r = u @ vt
    return r.astype(np.float32)


def pack_signs(z: np.ndarray, width: int) -> np.ndarray:
    """Bits ``z >= 0`` packed little-endian into ``(n, width)`` uint8 (zero padded)."""
    bits = np.packbits(z >= 0, axis=1, bitorder="little")
    if bits.shape[1] < width:
        bits = np.concatenate(
            [bits, np.zeros((len(bits), width - bits.shape[1]), np.uint8)], axis=1
        )
    return np.ascontiguousarray(bits)


def unpack_signs(codes: np.ndarray, d: int) -> np.ndarray:
    """``(n, d)`` float32 of +-1 from packed codes."""
    bits = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1, count=d, bitorder="little")
    return bits.astype(np.float32) * 2 - 1


def byte_tables(w: np.ndarray, width: int) -> np.ndarray:
    """Tables ``(nq, width, 256)``: ``sum_t w[8m+t] * sign_t(v)`` for every byte value ``v``.

    With numba, :func:`heron.codecs._kernels.byte_tables` (one call: 3-5x faster than the
    matrix product for one query, on every asymmetric query; the table scan and the fast scan's
    re-scoring both read these, so their scores agree bit for bit)."""
    if _scan.fast_available():
        return _scan._kernels().byte_tables(np.ascontiguousarray(w, dtype=np.float32), width)
    nq, d = w.shape
    wp = np.zeros((nq, width * 8), dtype=np.float32)
    wp[:, :d] = w
    return (wp.reshape(nq * width, 8) @ _SIGNS.T).reshape(nq, width, 256)


def table_scan(
    w: np.ndarray, codes: np.ndarray, k: int, *, block: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``w . sign(code)`` by float byte tables over every code (exact).

    ``w`` ``(nq, 8 * width)`` float32 weights, one per code bit; ``codes`` ``(n, width)`` uint8,
    C-contiguous; ``block`` queries share a pass (their tables: ``block * width`` KB).
    """
    width = codes.shape[1]
    parts = [
        _scan.lut_topk(byte_tables(w[i : i + block], width), codes, k)
        for i in range(0, len(w), block)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def code_width(d: int) -> int:
    """Bytes per packed sign plane: ``ceil(d/8)`` rounded up to whole 64-bit words."""
    return ((d + 63) // 64) * 8


class BinaryCodec(Codec):
    """Sign codes after centring and an (ITQ) rotation; one bit per dimension.

    Parameters
    ----------
    scoring: ``"asym"`` (float query against codes) or ``"hamming"`` (popcount).
    centre: subtract the corpus mean before taking signs.
    rotation: ``"itq"`` (learned, Gong & Lazebnik 2011), ``"random"`` orthogonal, or ``"none"``.
    itq_iters: ITQ iterations.
    max_train: vectors sampled for fitting the rotation.
    seed: randomness of the initial rotation and the sample.
    fast_scan: let the asymmetric scan of resident codes (the same array searched again) take
        its candidates from a 4-bit fast scan (heron's AVX-512 kernel, or faiss' where the CPU
        lacks VBMI) and certify them exact (:mod:`heron.codecs.fastscan`); ``"heron"`` or
        ``"faiss"`` names one; ``False`` scans every code with the float tables. Not
        stored: a choice of how to scan, not of what the codes are.
    """

    kind = "binary"

    def __init__(
        self,
        *,
        scoring: str = "asym",
        centre: bool = True,
        rotation: str = "itq",
        itq_iters: int = 30,
        max_train: int = 100_000,
        seed: int = 0,
        fast_scan: bool | str = True,
    ) -> None:
        super().__init__()
        if scoring not in SCORINGS:
            raise ValueError(f"binary scoring must be one of {SCORINGS}, got {scoring!r}")
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        self.scoring, self.centre, self.rotation = scoring, bool(centre), rotation
        self.itq_iters, self.max_train, self.seed = int(itq_iters), int(max_train), int(seed)
        self.fast_scan = fastscan.check_choice(fast_scan)
        self.mean: np.ndarray | None = None
        self.R: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.spec = "bin" if scoring == "asym" else "bin-ham"
        if rotation == "none" and not centre:
            self.spec += "-plain"

    # -- fitting ---------------------------------------------------------------
    def _sample(self, x: np.ndarray) -> np.ndarray:
        if len(x) <= self.max_train:
            return x
        rng = np.random.default_rng(self.seed)
        return x[np.sort(rng.choice(len(x), self.max_train, replace=False))]

    def _fit(self, x: np.ndarray, **kwargs: Any) -> None:
        xs = self._sample(x)
        self.mean = (
            xs.mean(axis=0).astype(np.float32) if self.centre else np.zeros(x.shape[1], np.float32)
        )
        xc = xs - self.mean
        # rotation "none" keeps R = None: no (d, d) identity in memory, in the state or its bytes
        self.R = (
            None
            if self.rotation == "none"
            else fit_rotation(xc, rotation=self.rotation, iters=self.itq_iters, seed=self.seed)
        )
        self.scale = np.abs(self._rot(xc)).mean(axis=0).astype(np.float32)

    def _rot(self, x: np.ndarray) -> np.ndarray:
        return x if self.R is None else x @ self.R

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """Centred, rotated vectors ``(n, d)``."""
        return self._rot(x - self.mean)

    @property
    def width(self) -> int:
        return code_width(self._check())

    @property
    def bytes_per_vector(self) -> float:
        return float(self.width)

    def encode(self, x: np.ndarray) -> np.ndarray:
        d = self._check()
        return pack_signs(self.rotate(as_matrix(x, dim=d)), self.width)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        d = self._check()
        z = unpack_signs(codes, d) * self.scale
        return (z if self.R is None else z @ self.R.T) + self.mean

    # -- scoring ---------------------------------------------------------------
    def query_codes(self, queries: np.ndarray) -> np.ndarray:
        """The queries' own sign codes (for Hamming scoring)."""
        return self.encode(queries)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Scores ``(nq, n)``: ``q . decode(codes)`` (asym) or ``d - 2 * hamming`` (hamming)."""
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        if self.scoring == "hamming":
            qc = self.query_codes(q)
            if _scan.fast_available():
                ham = _scan.hamming_matrix(
                    qc.view(np.uint64), np.ascontiguousarray(codes).view(np.uint64)
                )
            else:
                ham = (unpack_signs(qc, d)[:, None, :] != unpack_signs(codes, d)[None]).sum(-1)
            return (d - 2 * ham).astype(np.float32)
        w = self._rot(q) * self.scale
        return (w @ unpack_signs(codes, d).T + (q @ self.mean)[:, None]).astype(np.float32)

    def topk(
        self, queries: np.ndarray, codes: np.ndarray, k: int, *, block_size: int = 32768
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        if not _scan.fast_available() or len(codes) == 0:
            return super().topk(q, codes, k, block_size=block_size)
        given = codes
        codes = np.ascontiguousarray(codes)
        if self.scoring == "hamming":
            dist, rows = _scan.hamming_topk(
                self.query_codes(q).view(np.uint64),
                codes.view(np.uint64),
                k,
                columns=self._columns(given),
            )
            s = np.where(rows >= 0, d - 2 * dist, -np.inf).astype(np.float32)
            return pad_topk(s, rows, k)
        off = (q @ self.mean)[:, None]
        s, r = fastscan.sign_topk(
            self, given, codes, self.sign_weights(q), k, table_scan
        )
        return pad_topk(s + off, r, k)

    def sign_weights(self, q: np.ndarray) -> np.ndarray:
        """``(nq, 8 * width)`` float32: the weight of each code bit in the asymmetric score
        (``score = sign_weights(q) . sign(code) + q . mean``)."""
        d = self._check()
        if d == 8 * self.width:  # no padding bits: the product itself (the same values)
            return np.ascontiguousarray(self._rot(q) * self.scale, dtype=np.float32)
        w = np.zeros((len(q), 8 * self.width), dtype=np.float32)
        w[:, :d] = self._rot(q) * self.scale
        return w

    def _columns(self, codes: np.ndarray) -> np.ndarray | None:
        """The by-word copy (``_scan.column_words``) that the Hamming scan reads fastest."""
        return self._resident(
            codes, lambda c: _scan.column_words(np.ascontiguousarray(c).view(np.uint64))
        )

    # -- state -------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {
            "scoring": self.scoring,
            "centre": self.centre,
            "rotation": self.rotation,
            "itq_iters": self.itq_iters,
            "seed": self.seed,
        }
        arrays = {"mean": self.mean, "scale": self.scale}
        if self.R is not None:
            arrays["R"] = self.R
        return params, arrays

    def _load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        R = arrays.get("R")
        if params.get("rotation") == "none":
            R = None  # saved before R was dropped: an identity
        self.mean, self.R, self.scale = arrays["mean"], R, arrays["scale"]
