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
_POPCOUNT = np.array([bin(x).count("1") for x in range(1 << 16)], dtype=np.uint8)


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
    def encode_queries(self, queries: Any, *, batch_tokens: int = 1 << 17) -> np.ndarray:
        """Query FDEs (per-partition sums), shape ``(n_queries, dimension)`` float32.

        ``queries``: a list of ``(m_i, d)`` arrays or a :class:`RaggedArray`.
        """
        return self._encode_any(queries, is_query=True, batch_tokens=batch_tokens)

    def encode_documents(
        self, docs: Any, *, batch_tokens: int = 1 << 17, progress: bool = False
    ) -> np.ndarray:
        """Document FDEs (per-partition averages, empty partitions filled), shape ``(n_docs, dimension)``.

        A document without tokens encodes to the zero vector.
        """
        return self._encode_any(docs, is_query=False, batch_tokens=batch_tokens, progress=progress)

    def _encode_any(
        self, x: Any, *, is_query: bool, batch_tokens: int, progress: bool = False
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
                vals, offsets[start : stop + 1] - t0, is_query=is_query
            )
            if bar is not None:
                bar.update(stop - start)
            start = stop
        if bar is not None:
            bar.close()
        return out

    def _encode_block(self, vals: np.ndarray, offs: np.ndarray, *, is_query: bool) -> np.ndarray:
        n = len(offs) - 1
        B = self.n_partitions
        lens = np.diff(offs)
        doc_of = np.repeat(np.arange(n), lens)
        inner = np.zeros((n, self.r_reps, B, self.d_proj), dtype=np.float32)
        if len(vals) == 0:
            return self._finish(inner.reshape(n, -1))
        pow2 = (1 << np.arange(self.k_sim)).astype(np.int64)
        hv = vals - self.centre if self.centre is not None else vals
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
            sums = np.add.reduceat(proj[order], starts, axis=0)
            cells = sc[starts]
            block = np.zeros((n * B, self.d_proj), dtype=np.float32)
            if is_query:
                block[cells] = sums
            else:
                counts = np.diff(np.r_[starts, len(sc)])
                block[cells] = sums / counts[:, None]
                if self.fill_empty:
                    self._fill(block, codes, proj, offs, cells)
            inner[:, r] = block.reshape(n, B, self.d_proj)
        return self._finish(inner.reshape(n, -1))

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
