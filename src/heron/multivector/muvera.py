"""MUVERA Fixed Dimensional Encodings (FDEs): one vector per multi-vector set.

Dhulipala, Hadian, Jayaram, Lee & Mirrokni, "MUVERA: Multi-Vector Retrieval via Fixed
Dimensional Encodings", NeurIPS 2024.

For each of ``r_reps`` repetitions, ``k_sim`` random Gaussian hyperplanes (SimHash) split the
token space into ``B = 2**k_sim`` partitions. A query's block ``k`` is the **sum** of its tokens
falling in partition ``k``; a document's block is their **average** (the asymmetry that makes
``<FDE(q), FDE(d)>`` approximate the Chamfer / MaxSim similarity). A document partition left
empty is, with ``fill_empty``, set to the document token whose SimHash bits are nearest (Hamming)
to the partition. Each block is shrunk to ``d_proj`` dimensions by a random ``±1/sqrt(d_proj)``
matrix (identity when ``d_proj == d``), the repetitions are concatenated
(``r_reps * B * d_proj`` dims), and an optional ``±1/sqrt(d_final)`` final projection maps the
result to ``d_final`` dims.

FDEs are ordinary dense vectors: any exact or approximate inner-product index, and any vector
codec (PQ, binary), applies to them. :class:`MuveraRetriever` is the paper's pipeline: FDE search
for candidates, then exact MaxSim rerank.

Beyond the paper (each optional, off by default): tokens centred before SimHash
(:meth:`FDEEncoder.fit_centre`) and per-token weights in the document averages / query sums
(:func:`piece_weights`: word-piece IDF or common pieces dropped). Measured on MiniLM token
vectors (docs/multivector.md, MUVERA recall), fewer partitions with more repetitions,
centring, IDF-weighted document averages and unfilled partitions (``"4,8,80,c,w,e"`` in
:func:`parse_spec` terms) gave the best recall of the exact MaxSim top-10 at 10240 dims.
Encoding runs in a fused numba kernel when numba is installed (:mod:`._fde_numba`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron.multivector.maxsim import as_token_list, query_tokens, rerank_maxsim
from heron.multivector.ragged import RaggedArray
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k

FORMAT = "heron.muvera"
VERSION = 1
#: Default cap on the FDE dimension (``r_reps * 2**k_sim * d_proj`` or ``d_final``).
MAX_DIMENSION = 1 << 16
#: FDE encoding back-ends (``"auto"`` = numba when installed).
FDE_METHODS = ("auto", "numba", "numpy")
_POPCOUNT = np.array([bin(x).count("1") for x in range(1 << 16)], dtype=np.uint8)


#: Word-piece weighting schemes of :func:`piece_weights`.
PIECE_WEIGHTS = ("common-pieces", "idf")


def piece_weights(
    token_ids: np.ndarray,
    lengths: np.ndarray,
    *,
    scheme: str = "common-pieces",
    common_df: float = 0.3,
    vocab_size: int | None = None,
) -> np.ndarray:
    """Per-word-piece FDE weights from a corpus' document frequencies, shape ``(vocab_size,)``.

    Look a token's weight up by its vocabulary id (``table[ids]``) and pass the result as
    ``weights=`` to :meth:`FDEEncoder.encode_documents` / :meth:`FDEEncoder.encode_queries`.

    Parameters
    ----------
    token_ids: ``(n_tokens,)`` vocabulary id of every document token (concatenated in document
        order, e.g. :func:`heron.eval.cache.cached_token_ids`).
    lengths: ``(n_docs,)`` tokens per document (``docs.lengths()``).
    scheme: ``"common-pieces"`` — weight 0 for word pieces found in more than ``common_df`` of
        the documents (stopwords, punctuation: ~1/3 of MiniLM's tokens on SciFact and
        NFCorpus), 1 otherwise; ``"idf"`` — ``log((n_docs + 1) / (df + 1))`` (a piece in every
        document gets ~0).
    common_df: document-frequency share above which a piece is common (``"common-pieces"``).
    vocab_size: table length (the tokenizer's vocabulary size, so query ids always fit);
        default ``max(token_ids) + 1``. Pieces never seen in the corpus have ``df = 0``.
    """
    if scheme not in PIECE_WEIGHTS:
        raise ValueError(f"scheme must be one of {PIECE_WEIGHTS}, got {scheme!r}")
    tid = np.asarray(token_ids, dtype=np.int64)
    lens = np.asarray(lengths, dtype=np.int64)
    if tid.ndim != 1 or lens.ndim != 1 or int(lens.sum()) != len(tid):
        raise ValueError(
            f"token_ids ({tid.shape}) must hold one id per token of the documents (lengths sum to {int(lens.sum())})"
        )
    if len(tid) and tid.min() < 0:
        raise ValueError("token_ids must be non-negative vocabulary ids")
    size = int(tid.max()) + 1 if len(tid) else 0
    if vocab_size is not None:
        if int(vocab_size) < size:
            raise ValueError(f"vocab_size={vocab_size} is smaller than the largest id + 1 ({size})")
        size = int(vocab_size)
    n_docs = len(lens)
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lens)
    pairs = np.unique(doc_of * max(size, 1) + tid)
    df = np.bincount(pairs % max(size, 1), minlength=size).astype(np.float64)
    if scheme == "common-pieces":
        if not 0.0 < float(common_df) < 1.0:
            raise ValueError(f"common_df must be in (0, 1), got {common_df!r}")
        return (df <= float(common_df) * n_docs).astype(np.float32)
    return np.log((n_docs + 1.0) / (df + 1.0)).astype(np.float32)


#: Flags of :func:`parse_spec` and what they set.
SPEC_FLAGS = {
    "c": "centre tokens on the corpus mean before SimHash (fit_centre)",
    "e": "leave empty document partitions empty (fill_empty=False)",
    "s": "document weights: common word pieces left out (piece_weights 'common-pieces')",
    "sq": "as 's', and the same weights on query tokens",
    "w": "document weights: word-piece IDF (piece_weights 'idf')",
    "wq": "as 'w', and the same weights on query tokens",
}


def parse_spec(spec: str) -> dict:
    """Parse a benchmark FDE spec ``"K_SIM,D_PROJ,R_REPS[,D_FINAL][,FLAG...]"``.

    Flags are listed in :data:`SPEC_FLAGS` (e.g. ``"4,8,80,c,w,e"``). Returns a dict with the
    :class:`FDEEncoder` keyword arguments (``k_sim``, ``d_proj``, ``r_reps``, ``d_final``,
    ``fill_empty``) plus ``centre`` (bool), ``weights`` (``None``, ``"common-pieces"`` or
    ``"idf"``) and ``weight_queries`` (bool).
    """
    raw = [v.strip().lower() for v in str(spec).split(",") if v.strip()]
    nums = [v for v in raw if v.isdigit()]
    flags = [v for v in raw if not v.isdigit()]
    bad = [f for f in flags if f not in SPEC_FLAGS]
    if len(nums) not in (3, 4) or bad or raw[: len(nums)] != nums:
        raise ValueError(
            f"bad MUVERA spec {spec!r}: expected K_SIM,D_PROJ,R_REPS[,D_FINAL] then flags from "
            f"{sorted(SPEC_FLAGS)}, e.g. '4,8,80,c'" + (f" (unknown flags {bad})" if bad else "")
        )
    wf = [f for f in flags if f in ("s", "sq", "w", "wq")]
    if len(wf) > 1:
        raise ValueError(f"bad MUVERA spec {spec!r}: choose one of the weight flags, got {wf}")
    return {
        "k_sim": int(nums[0]),
        "d_proj": int(nums[1]),
        "r_reps": int(nums[2]),
        "d_final": int(nums[3]) if len(nums) == 4 else None,
        "fill_empty": "e" not in flags,
        "centre": "c" in flags,
        "weights": None if not wf else ("common-pieces" if wf[0][0] == "s" else "idf"),
        "weight_queries": bool(wf) and wf[0].endswith("q"),
    }


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
        if self._numba(method):
            return self._finish(self._encode_block_numba(vals, hv, offs, w, is_query=is_query))
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
                    self._fill(block, codes, proj, offs, cells)
            inner[:, r] = block.reshape(n, B, self.d_proj)
        return self._finish(inner.reshape(n, -1))

    def _numba(self, method: str) -> bool:
        from heron._deps import has

        if method not in FDE_METHODS:
            raise ValueError(f"method must be one of {FDE_METHODS}, got {method!r}")
        if method == "numba" and not has("numba"):
            raise ValueError(
                "method='numba' needs numba: pip install 'heron[fast]', or use method='numpy'"
            )
        return method == "numba" or (method == "auto" and has("numba"))

    def _encode_block_numba(
        self,
        vals: np.ndarray,
        hv: np.ndarray,
        offs: np.ndarray,
        w: np.ndarray | None,
        *,
        is_query: bool,
    ) -> np.ndarray:
        """Same blocks as the numpy loop, from one fused numba pass per group of repetitions."""
        from heron.multivector import _fde_numba as kern

        n, R, B, dp = len(offs) - 1, self.r_reps, self.n_partitions, self.d_proj
        out = np.zeros((n, R, B, dp), dtype=np.float32)
        if self.k_sim:
            planes = self.hyperplanes.transpose(1, 0, 2).reshape(self.dim, R * self.k_sim)
            bits = (hv @ planes > 0).reshape(len(vals), R, self.k_sim)
            codes = np.ascontiguousarray(bits @ (1 << np.arange(self.k_sim)).astype(np.int64))
        else:
            codes = np.zeros((len(vals), R), np.int64)
        ww = np.ones(len(vals), np.float32) if w is None else np.ascontiguousarray(w, np.float32)
        offs = np.ascontiguousarray(offs, dtype=np.int64)
        step = max(1, (1 << 25) // max(1, len(vals) * dp))  # repetitions per pass (<= 128 MB)
        for r0 in range(0, R, step):
            r1 = min(R, r0 + step)
            if self.projections is not None:
                mats = self.projections[r0:r1].transpose(1, 0, 2).reshape(self.dim, -1)
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
                bool(self.fill_empty),
                _POPCOUNT,
                part,
            )
            out[:, r0:r1] = part
        return out.reshape(n, -1)

    def _fill(
        self,
        block: np.ndarray,
        codes: np.ndarray,
        proj: np.ndarray,
        offs: np.ndarray,
        cells: np.ndarray,
    ) -> None:
        """Set each empty (document, partition) cell to the document token with the nearest SimHash code."""
        B = self.n_partitions
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


def encoder_from_spec(
    spec: str,
    docs: RaggedArray,
    *,
    doc_token_ids: np.ndarray | None = None,
    vocab_size: int | None = None,
    seed: int = 42,
) -> tuple[FDEEncoder, np.ndarray | None, np.ndarray | None]:
    """Build the encoder of a :func:`parse_spec` spec for the token store ``docs``.

    Returns ``(encoder, doc_weights, piece_table)``: the encoder (centre fitted on ``docs`` with
    ``c``), the ``(n_tokens,)`` document token weights for :meth:`FDEEncoder.encode_documents`
    (``None`` without a weight flag), and the ``(vocab_size,)`` word-piece weight table (look up
    query token ids in it when ``parse_spec(spec)["weight_queries"]``). Weight flags need
    ``doc_token_ids`` (:func:`heron.eval.cache.cached_token_ids`).
    """
    cfg = parse_spec(spec)
    enc = FDEEncoder(
        dim=docs.dim,
        k_sim=cfg["k_sim"],
        d_proj=cfg["d_proj"],
        r_reps=cfg["r_reps"],
        d_final=cfg["d_final"],
        fill_empty=cfg["fill_empty"],
        seed=seed,
    )
    if cfg["centre"]:
        enc.fit_centre(docs)
    if cfg["weights"] is None:
        return enc, None, None
    if doc_token_ids is None:
        raise ValueError(
            f"MUVERA spec {spec!r} weights word pieces: pass doc_token_ids "
            "(heron.eval.cache.cached_token_ids)"
        )
    ids = np.asarray(doc_token_ids)
    table = piece_weights(ids, docs.lengths(), scheme=cfg["weights"], vocab_size=vocab_size)
    return enc, table[ids], table


class MuveraRetriever(Stage):
    """MUVERA retrieval: FDE inner-product search for candidates, exact MaxSim rerank.

    Parameters
    ----------
    encoder: the :class:`FDEEncoder` the document FDEs were built with.
    doc_fdes: ``(n_docs, dimension)`` document FDEs (float32/float16, rows aligned with ``docs``).
    docs: token store for the exact rerank (its ``keys`` are returned).
    token_encoder: text -> token vectors encoder for query texts (optional with precomputed tokens).
    candidates: FDE hits reranked per query (paper: a few hundred); ``rerank=False`` returns the
        FDE ranking itself.
    depth: hits returned.
    index: optional object with ``search(queries (n, D), k) -> (scores, rows)`` replacing the exact
        FDE scan (an ANN index or a compressed codec built on ``doc_fdes``).
    """

    name = "muvera"

    def __init__(
        self,
        *,
        encoder: FDEEncoder,
        doc_fdes: np.ndarray,
        docs: RaggedArray,
        token_encoder: Any | None = None,
        candidates: int = 100,
        rerank: bool = True,
        depth: int = 100,
        resolver: Any = None,
        index: Any = None,
    ) -> None:
        if doc_fdes.ndim != 2 or doc_fdes.shape != (len(docs), encoder.dimension):
            raise ValueError(
                f"doc_fdes must have shape ({len(docs)}, {encoder.dimension}), got {doc_fdes.shape}"
            )
        if docs.dim != encoder.dim:
            raise ValueError(
                f"token dimension {docs.dim} does not match the FDE encoder's dim={encoder.dim}"
            )
        self.encoder, self.doc_fdes, self.docs = encoder, doc_fdes, docs
        self.token_encoder, self.candidates, self.rerank = (
            token_encoder,
            check_k(candidates),
            bool(rerank),
        )
        self.depth, self.resolver, self.index = check_k(depth), resolver, index

    def with_depth(self, k: int) -> MuveraRetriever:
        return MuveraRetriever(
            encoder=self.encoder,
            doc_fdes=self.doc_fdes,
            docs=self.docs,
            token_encoder=self.token_encoder,
            candidates=self.candidates,
            rerank=self.rerank,
            depth=k,
            resolver=self.resolver,
            index=self.index,
        )

    def fde_search(self, qt: list[np.ndarray], k: int) -> Results:
        """FDE top-``k`` candidates (no rerank)."""
        from heron.retrieval.topk import exact_search

        qf = self.encoder.encode_queries(qt)
        if self.index is not None:
            s, r = self.index.search(qf, k)
        else:
            valid = ~self.docs.deleted if self.docs.deleted.any() else None
            s, r = exact_search(qf, self.doc_fdes, k, valid=valid)
        r = np.asarray(r, dtype=np.int64)
        keys = np.where(r >= 0, self.docs.keys[np.maximum(r, 0)], PAD_KEY)
        return Results(keys, np.where(r >= 0, s, -np.inf), self.resolver, {"stage": "muvera-fde"})

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        qt = query_tokens(queries, self.token_encoder, self.docs.dim)
        if not self.rerank:
            return self.fde_search(qt, self.depth)
        cand = self.fde_search(qt, max(self.candidates, self.depth))
        return rerank_maxsim(qt, self.docs, cand, depth=self.depth)
