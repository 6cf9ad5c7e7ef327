"""Private helpers of :class:`heron.multivector.muvera_encoder.FDEEncoder`.

The numba dispatch (:func:`use_numba`, :func:`encode_block_numba`, which drives the fused kernel
of :mod:`._fde_numba`) and the numpy path's filling of empty document partitions
(:func:`fill_empty_partitions`). Dhulipala et al., "MUVERA", NeurIPS 2024.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from heron.multivector.muvera_encoder import FDEEncoder

#: FDE encoding back-ends (``"auto"`` = numba when installed).
FDE_METHODS = ("auto", "numba", "numpy")
_POPCOUNT = np.array([bin(x).count("1") for x in range(1 << 16)], dtype=np.uint8)


def use_numba(method: str) -> bool:
    """Whether ``method`` (one of :data:`FDE_METHODS`) encodes with the numba kernel."""
    from heron._deps import has

    if method not in FDE_METHODS:
        raise ValueError(f"method must be one of {FDE_METHODS}, got {method!r}")
    if method == "numba" and not has("numba"):
        raise ValueError(
            "method='numba' needs numba: pip install 'heron[fast]', or use method='numpy'"
        )
    return method == "numba" or (method == "auto" and has("numba"))


def encode_block_numba(
    enc: FDEEncoder,
    vals: np.ndarray,
    hv: np.ndarray,
    offs: np.ndarray,
    w: np.ndarray | None,
    *,
    is_query: bool,
) -> np.ndarray:
    """Same blocks as the numpy loop, from one fused numba pass per group of repetitions."""
    from heron.multivector import _fde_numba as kern

    n, R, B, dp = len(offs) - 1, enc.r_reps, enc.n_partitions, enc.d_proj
    out = np.zeros((n, R, B, dp), dtype=np.float32)
    if enc.k_sim:
        planes = enc.hyperplanes.transpose(1, 0, 2).reshape(enc.dim, R * enc.k_sim)
        bits = (hv @ planes > 0).reshape(len(vals), R, enc.k_sim)
        codes = np.ascontiguousarray(bits @ (1 << np.arange(enc.k_sim)).astype(np.int64))
    else:
        codes = np.zeros((len(vals), R), np.int64)
    ww = np.ones(len(vals), np.float32) if w is None else np.ascontiguousarray(w, np.float32)
    offs = np.ascontiguousarray(offs, dtype=np.int64)
    step = max(1, (1 << 25) // max(1, len(vals) * dp))  # repetitions per pass (<= 128 MB)
    for r0 in range(0, R, step):
        r1 = min(R, r0 + step)
        if enc.projections is not None:
            mats = enc.projections[r0:r1].transpose(1, 0, 2).reshape(enc.dim, -1)
            proj = (vals @ mats).reshape(len(vals), r1 - r0, dp)
        else:
            proj = np.repeat(vals[:, None, :], r1 - r0, axis=1)
        part = np.zeros((n, r1 - r0, B, dp), dtype=np.float32)
        kern.fde_blocks(
            np.ascontiguousarray(codes[:, r0:r1]),
            np.ascontiguousarray(proj, dtype=np.float32),
            ww,
            offs,
            B,
            bool(is_query),
            bool(enc.fill_empty),
            _POPCOUNT,
            part,
        )
        out[:, r0:r1] = part
    return out.reshape(n, -1)


def fill_empty_partitions(
    enc: FDEEncoder,
    block: np.ndarray,
    codes: np.ndarray,
    proj: np.ndarray,
    offs: np.ndarray,
    cells: np.ndarray,
) -> None:
    """Set each empty (document, partition) cell to the document token with the nearest SimHash code."""
    B = enc.n_partitions
    n = len(offs) - 1
    lens = np.diff(offs)
    nz = lens > 0
    if not nz.any():
        return
    empty = np.ones(n * B, dtype=bool)
    empty[cells] = False
    empty.reshape(n, B)[~nz] = False  # documents without tokens stay zero
    if not empty.any():
        return
    ham = _POPCOUNT[codes[:, None] ^ np.arange(B)[None, :]].astype(np.int64)  # (n_tok, B)
    key = (ham << 32) | np.arange(len(codes), dtype=np.int64)[:, None]
    best = np.zeros((n, B), dtype=np.int64)
    best[nz] = np.minimum.reduceat(key, offs[:-1][nz], axis=0)
    tok = (best & 0xFFFFFFFF).reshape(-1)
    e = np.flatnonzero(empty)
    block[e] = proj[tok[e]]
