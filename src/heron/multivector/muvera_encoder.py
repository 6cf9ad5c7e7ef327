"""MUVERA's Fixed Dimensional Encoding: :class:`FDEEncoder` (one vector per multi-vector set).

Dhulipala, Hadian, Jayaram, Lee & Mirrokni, "MUVERA: Multi-Vector Retrieval via Fixed
Dimensional Encodings", NeurIPS 2024. The algorithm and the options beyond the paper are
described in :mod:`heron.multivector.muvera`; the retriever built on it lives there too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron.multivector._muvera_blocks import (
    FDE_METHODS,
    encode_block_numba,
    fill_empty_partitions,
    use_numba,
)
from heron.multivector.maxsim import as_token_list
from heron.multivector.ragged import RaggedArray

__all__ = ["FDE_METHODS", "FORMAT", "MAX_DIMENSION", "VERSION", "FDEEncoder"]

FORMAT = "heron.muvera"
VERSION = 1
#: Default cap on the FDE dimension (``r_reps * 2**k_sim * d_proj`` or ``d_final``).
MAX_DIMENSION = 1 << 16


class FDEEncoder:
    """Fitted-free MUVERA encoder (all randomness from ``seed``).

    Parameters
    ----------
    dim: token dimension ``d``.
    k_sim: SimHash bits per repetition (``B = 2**k_sim`` partitions); paper's ``k_sim``.
    d_proj: inner projection dimension per partition (``d_proj == dim`` = no projection).
    r_reps: independent repetitions; paper's ``R_reps``.
    d_final: optional final random projection dimension (``None`` = none).
    fill_empty: fill a document's empty partitions with its Hamming-nearest token (paper's
        ``fill_empty_partitions``); queries are never filled.
    seed: random seed (hyperplanes and projections are derived from it).
    max_dimension: guard: raise when the FDE would be longer than this.
    centre: optional ``(dim,)`` vector subtracted from every token *before SimHash partitioning
        only* (block sums/averages use the raw tokens). Contextual token vectors of models like
        MiniLM share a large common direction, so hyperplanes through the origin split them
        unevenly; centring on the corpus mean token (:meth:`fit_centre`) balances the
        partitions. ``None`` = the paper's plain SimHash.
    """

    def __init__(
        self,
        *,
        dim: int,
        k_sim: int = 5,
        d_proj: int = 16,
        r_reps: int = 20,
        d_final: int | None = None,
        fill_empty: bool = True,
        seed: int = 42,
        max_dimension: int = MAX_DIMENSION,
        centre: np.ndarray | None = None,
    ) -> None:
        for name, v in (
            ("dim", dim),
            ("k_sim", k_sim),
            ("d_proj", d_proj),
            ("r_reps", r_reps),
            ("seed", seed),
            ("max_dimension", max_dimension),
        ):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {v!r}")
        if dim <= 0 or r_reps <= 0 or d_proj <= 0:
            raise ValueError(
                f"dim, d_proj and r_reps must be positive, got dim={dim}, d_proj={d_proj}, r_reps={r_reps}"
            )
        if not 0 <= k_sim <= 16:
            raise ValueError(f"k_sim must be in 0..16 (2**k_sim partitions), got {k_sim}")
        if d_proj > dim:
            raise ValueError(
                f"d_proj={d_proj} exceeds the token dimension {dim}; use d_proj <= {dim}"
            )
        if d_final is not None and (
            isinstance(d_final, bool) or not isinstance(d_final, (int, np.integer)) or d_final <= 0
        ):
            raise ValueError(f"d_final must be a positive int or None, got {d_final!r}")
        inner = int(r_reps) * (1 << int(k_sim)) * int(d_proj)
        out = inner if d_final is None else int(d_final)
        worst = max(inner, out)
        if worst > max_dimension:
            raise ValueError(
                f"FDE dimension explodes: r_reps * 2**k_sim * d_proj = {r_reps} * {1 << k_sim} * {d_proj} = {inner}"
                + (f" (final projection to {d_final})" if d_final is not None else "")
                + f", i.e. {worst * 4:,} bytes per document in float32, above max_dimension={max_dimension}; "
                "lower k_sim, d_proj or r_reps, or pass a larger max_dimension"
            )
        if d_final is not None and inner * int(d_final) > (1 << 28):
            raise ValueError(
                f"the final projection matrix would be {inner} x {d_final} = {inner * d_final:,} entries; "
                "lower d_final or the inner FDE dimension"
            )
        self.dim, self.k_sim, self.d_proj, self.r_reps = (
            int(dim),
            int(k_sim),
            int(d_proj),
            int(r_reps),
        )
        self.d_final, self.fill_empty, self.seed, self.max_dimension = (
            (None if d_final is None else int(d_final)),
            bool(fill_empty),
            int(seed),
            int(max_dimension),
        )
        self.centre: np.ndarray | None = None
        if centre is not None:
            c = np.asarray(centre, dtype=np.float32)
            if c.shape != (self.dim,) or not np.isfinite(c).all():
                raise ValueError(
                    f"centre must be a finite ({self.dim},) vector, got shape {c.shape}; use fit_centre(docs)"
                )
            self.centre = c
        self.n_partitions = 1 << self.k_sim
        self.inner_dimension = inner
        self.dimension = out
        rng = np.random.default_rng(self.seed)
        self.hyperplanes = rng.standard_normal((self.r_reps, self.dim, self.k_sim)).astype(
            np.float32
        )
        if self.d_proj < self.dim:
            self.projections: np.ndarray | None = (
                rng.choice(
                    np.array([-1.0, 1.0], dtype=np.float32),
                    size=(self.r_reps, self.dim, self.d_proj),
                )
                / np.sqrt(self.d_proj)
            ).astype(np.float32)
        else:
            self.projections = None
        if self.d_final is not None:
            self.final: np.ndarray | None = (
                rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(inner, self.d_final))
                / np.sqrt(self.d_final)
            ).astype(np.float32)
        else:
            self.final = None

    def params(self) -> dict:
        return {
            "dim": self.dim,
            "k_sim": self.k_sim,
            "d_proj": self.d_proj,
            "r_reps": self.r_reps,
            "d_final": self.d_final,
            "fill_empty": self.fill_empty,
            "seed": self.seed,
            "max_dimension": self.max_dimension,
            "centre": None if self.centre is None else [float(v) for v in self.centre],
        }

    def fit_centre(self, docs: Any, *, max_tokens: int = 1 << 18, seed: int = 0) -> FDEEncoder:
        """Set :attr:`centre` to the mean document token (from up to ``max_tokens`` sampled tokens).

        ``docs``: a :class:`RaggedArray` or a ``(n_tokens, dim)`` array. Returns ``self``.
        """
        values = docs.values if isinstance(docs, RaggedArray) else np.asarray(docs)
        if values.ndim != 2 or values.shape[1] != self.dim or len(values) == 0:
            raise ValueError(
                f"fit_centre needs a non-empty (n_tokens, {self.dim}) token matrix, got shape {values.shape}"
            )
        n = len(values)
        if n > max_tokens:
            idx = np.sort(np.random.default_rng(seed).choice(n, max_tokens, replace=False))
            values = values[idx]
        self.centre = np.asarray(values, dtype=np.float32).mean(axis=0)
        return self

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.params().items() if k != "centre"}
        shown["centre"] = self.centre is not None
        return (
            "FDEEncoder("
            + ", ".join(f"{k}={v!r}" for k, v in shown.items())
            + f") -> {self.dimension} dims"
        )

    # ------------------------------------------------------------------ encoding
    def encode_queries(
        self,
        queries: Any,
        *,
        weights: np.ndarray | None = None,
        batch_tokens: int = 1 << 17,
        method: str = "auto",
    ) -> np.ndarray:
        """Query FDEs (per-partition sums), shape ``(n_queries, dimension)`` float32.

        ``queries``: a list of ``(m_i, d)`` arrays or a :class:`RaggedArray`. ``weights``:
        optional ``(n_tokens,)`` non-negative weight per token (all queries' tokens
        concatenated): block ``k`` becomes ``sum_i w_i * proj(q_i)``; see :meth:`encode_documents`.
        """
        return self._encode_any(
            queries, is_query=True, batch_tokens=batch_tokens, weights=weights, method=method
        )

    def encode_documents(
        self,
        docs: Any,
        *,
        weights: np.ndarray | None = None,
        batch_tokens: int = 1 << 17,
        progress: bool = False,
        method: str = "auto",
    ) -> np.ndarray:
        """Document FDEs (per-partition averages, empty partitions filled), shape ``(n_docs, dimension)``.

        A document without tokens encodes to the zero vector.

        ``weights``: optional ``(n_tokens,)`` non-negative weight per token (aligned with the
        concatenated token matrix, e.g. ``docs.values``). Block ``k`` becomes the *weighted*
        average ``sum_i w_i proj(d_i) / sum_i w_i`` over the tokens in partition ``k``; tokens of
        weight 0 are left out of the FDE entirely (they neither enter an average nor fill an
        empty partition), so low-information tokens (stopword and punctuation word pieces, see
        :func:`piece_weights`) stop diluting the averages that stand in for MaxSim's max. A
        document whose weights are all 0 is encoded with uniform weights. The exact MaxSim
        rerank is unaffected (it reads the full token store). ``None`` = the paper's plain
        average (same as all weights 1).

        ``method``: ``"auto"`` (the fused numba kernel when numba is installed), ``"numba"`` or
        ``"numpy"`` (reference loop); both give the same FDEs up to float rounding.
        """
        return self._encode_any(
            docs,
            is_query=False,
            batch_tokens=batch_tokens,
            progress=progress,
            weights=weights,
            method=method,
        )

    def _encode_any(
        self,
        x: Any,
        *,
        is_query: bool,
        batch_tokens: int,
        progress: bool = False,
        weights: np.ndarray | None = None,
        method: str = "auto",
    ) -> np.ndarray:
        if isinstance(x, RaggedArray):
            values, offsets = x.values, x.offsets
            if x.dim != self.dim:
                raise ValueError(
                    f"token dimension {x.dim} does not match the FDE encoder's dim={self.dim}"
                )
        else:
            lst = as_token_list(x, self.dim)
            offsets = np.zeros(len(lst) + 1, dtype=np.int64)
            np.cumsum([len(a) for a in lst], out=offsets[1:])
            values = (
                np.concatenate(lst, axis=0) if offsets[-1] else np.zeros((0, self.dim), np.float32)
            )
        n = len(offsets) - 1
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float32)
            if weights.shape != (int(offsets[-1]),):
                raise ValueError(
                    f"weights must have one entry per token, shape ({int(offsets[-1])},), got {weights.shape}"
                )
            if not (np.isfinite(weights).all() and (weights >= 0).all()):
                raise ValueError(
                    "weights must be finite and non-negative (0 = leave the token out)"
                )
        out = np.zeros((n, self.dimension), dtype=np.float32)
        start = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="MUVERA FDEs", unit="doc")
        while start < n:
            stop = int(np.searchsorted(offsets, offsets[start] + batch_tokens, side="right")) - 1
            stop = min(max(stop, start + 1), n)
            t0, t1 = int(offsets[start]), int(offsets[stop])
            vals = np.asarray(values[t0:t1], dtype=np.float32)
            out[start:stop] = self._encode_block(
                vals,
                offsets[start : stop + 1] - t0,
                is_query=is_query,
                weights=None if weights is None else weights[t0:t1],
                method=method,
            )
            if bar is not None:
                bar.update(stop - start)
            start = stop
        if bar is not None:
            bar.close()
        return out

    def _encode_block(
        self,
        vals: np.ndarray,
        offs: np.ndarray,
        *,
        is_query: bool,
        weights: np.ndarray | None = None,
        method: str = "auto",
    ) -> np.ndarray:
        n = len(offs) - 1
        B = self.n_partitions
        lens = np.diff(offs)
        doc_of = np.repeat(np.arange(n), lens)
        w = None
        if weights is not None and len(vals):
            w = weights.copy()
            total = np.zeros(n, np.float64)
            np.add.at(total, doc_of, w)
            w[(total == 0)[doc_of]] = 1.0  # all-zero sets fall back to uniform weights
            keep = w > 0
            if not keep.all():
                vals, w, doc_of = vals[keep], w[keep], doc_of[keep]
                offs = np.zeros(n + 1, np.int64)
                np.cumsum(np.bincount(doc_of, minlength=n), out=offs[1:])
        inner = np.zeros((n, self.r_reps, B, self.d_proj), dtype=np.float32)
        if len(vals) == 0:
            return self._finish(inner.reshape(n, -1))
        pow2 = (1 << np.arange(self.k_sim)).astype(np.int64)
        hv = vals - self.centre if self.centre is not None else vals
        if use_numba(method):
            return self._finish(encode_block_numba(self, vals, hv, offs, w, is_query=is_query))
        for r in range(self.r_reps):
            codes = (
                ((hv @ self.hyperplanes[r]) > 0).astype(np.int64) @ pow2
                if self.k_sim
                else np.zeros(len(vals), np.int64)
            )
            proj = vals @ self.projections[r] if self.projections is not None else vals
            cell = doc_of * B + codes
            order = np.argsort(cell, kind="stable")
            sc = cell[order]
            starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
            contrib = proj[order] if w is None else proj[order] * w[order, None]
            sums = np.add.reduceat(contrib, starts, axis=0)
            cells = sc[starts]
            block = np.zeros((n * B, self.d_proj), dtype=np.float32)
            if is_query:
                block[cells] = sums
            else:
                if w is None:
                    counts = np.diff(np.r_[starts, len(sc)])
                else:
                    counts = np.add.reduceat(w[order], starts)
                block[cells] = sums / counts[:, None]
                if self.fill_empty:
                    fill_empty_partitions(self, block, codes, proj, offs, cells)
            inner[:, r] = block.reshape(n, B, self.d_proj)
        return self._finish(inner.reshape(n, -1))

    def _finish(self, fde: np.ndarray) -> np.ndarray:
        if self.final is not None:
            return np.asarray(fde @ self.final, dtype=np.float32)
        return fde

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters as JSON (all random matrices are re-derived from the seed)."""
        Path(path).write_text(
            json.dumps({"format": FORMAT, "version": VERSION, "params": self.params()}, indent=1)
        )

    @staticmethod
    def load(path: str | os.PathLike) -> FDEEncoder:
        meta = json.loads(Path(path).read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(
                f"{str(path)!r} is not a {FORMAT} v{VERSION} file (got {meta.get('format')!r} v{meta.get('version')}); rebuild the MUVERA index"
            )
        return FDEEncoder(**meta["params"])
