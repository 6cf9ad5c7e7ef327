"""Token-code compression of late-interaction indexes: 1-byte centroid codes, residuals, pruning.

After "Hierarchical Patch Compression for ColPali" (HPC-ColPali: k-means codes of patch vectors
in one byte, salience-based pruning of the least useful patches) and ColBERTv2's residual
compression (Santhanam et al., "ColBERTv2: Effective and Efficient Retrieval via Lightweight Late
Interaction", NAACL 2022: a centroid id plus a ``b``-bit-per-dimension quantised residual).

* :class:`TokenCodec` learns ``n_centroids`` (<= 256, so one byte per token) spherical k-means
  centroids and, optionally, per-dimension residual buckets of ``residual_bits`` bits.
* :class:`CodedTokens` holds a corpus' codes (ragged, like :class:`RaggedArray`) and scores
  MaxSim on them: with codes only, through a lookup table ``T = Q @ C.T`` (``(m, 256)``), since
  ``<q, c_code> = T[:, code]``; with residuals, by decoding blocks of tokens.
* :func:`salience_keep_mask` prunes a fraction ``p`` of each document's tokens, least salient
  first (salience = inverse document frequency of the token's centroid: tokens falling in
  centroids that nearly every document uses — stop words, punctuation — go first).

The codec lives in :mod:`.token_codec`, the pruning in :mod:`.token_pruning`; every name is
importable from here too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron.multivector.maxsim import _segment_max, as_token_list, maxsim_batch
from heron.multivector.ragged import RaggedArray, _atomic_save
from heron.multivector.token_codec import FORMAT, VERSION, TokenCodec, _read_manifest
from heron.multivector.token_pruning import (
    SALIENCE,
    _kept_offsets,
    prune_tokens,
    salience_keep_mask,
)
from heron.retrieval.topk import topk_rows

__all__ = [
    "FORMAT",
    "SALIENCE",
    "VERSION",
    "CodedTokens",
    "TokenCodec",
    "prune_tokens",
    "salience_keep_mask",
]


class CodedTokens:
    """A corpus' token codes: ragged ``codes`` (+ residuals) with ``offsets``, ``keys``.

    Build with :meth:`encode`; score with :meth:`maxsim_batch` (whole corpus) or
    :meth:`maxsim_rows` (candidates).
    """

    def __init__(
        self,
        *,
        codec: TokenCodec,
        codes: np.ndarray,
        offsets: np.ndarray,
        keys: np.ndarray,
        residuals: np.ndarray | None = None,
        deleted: np.ndarray | None = None,
    ) -> None:
        if codes.ndim != 1 or int(offsets[-1]) != len(codes):
            raise ValueError(
                f"codes must be 1-d with len == offsets[-1] ({int(offsets[-1])}), got shape {codes.shape}"
            )
        self.codec, self.codes, self.offsets, self.keys, self.residuals = (
            codec,
            codes,
            np.asarray(offsets, np.int64),
            np.asarray(keys, np.int64),
            residuals,
        )
        self.deleted = (
            np.zeros(len(self.keys), bool) if deleted is None else np.asarray(deleted, bool)
        )
        self._dedup: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def encode(
        codec: TokenCodec, docs: RaggedArray, *, keep: np.ndarray | None = None
    ) -> CodedTokens:
        """Encode a token store (optionally only the tokens where ``keep`` ``(n_tokens,)`` is True)."""
        if docs.dim != codec.dim:
            raise ValueError(
                f"token dimension {docs.dim} does not match the codec's {codec.dim}; mismatched token dimension"
            )
        codes, res = codec.encode(docs.values)
        offsets = docs.offsets
        if keep is not None:
            codes, offsets = codes[keep], _kept_offsets(docs.offsets, keep)
            res = res[keep] if res is not None else None
        return CodedTokens(
            codec=codec,
            codes=codes,
            offsets=offsets,
            keys=docs.keys.copy(),
            residuals=res,
            deleted=docs.deleted.copy(),
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(len(self.codes))

    def bytes_per_doc(self) -> float:
        """Mean stored bytes per document (codes + residuals + 8-byte offset)."""
        n = max(len(self), 1)
        return (
            self.codes.nbytes
            + (self.residuals.nbytes if self.residuals is not None else 0)
            + self.offsets.nbytes
        ) / n

    def _dedup_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct codes per document (codes-only MaxSim needs each centroid once per document)."""
        if self._dedup is None:
            doc_of = np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.offsets))
            u = np.unique(doc_of * 256 + self.codes.astype(np.int64))
            ud, uc = u // 256, (u % 256).astype(np.uint8)
            offs = np.zeros(len(self) + 1, dtype=np.int64)
            np.cumsum(np.bincount(ud, minlength=len(self)), out=offs[1:])
            self._dedup = (uc, offs)
        return self._dedup

    def maxsim_batch(self, queries: Any, *, block_tokens: int = 1 << 16) -> np.ndarray:
        """MaxSim of every query against every document on the codes, ``(n_queries, n_docs)``."""
        qs = as_token_list(queries, self.codec.dim)
        if self.codec.has_residuals and self.residuals is not None:
            out = np.full((len(qs), len(self)), -np.inf, dtype=np.float32)
            bounds = _doc_blocks(self.offsets, block_tokens)
            for d0, d1 in zip(bounds[:-1], bounds[1:]):
                t0, t1 = int(self.offsets[d0]), int(self.offsets[d1])
                vals = self.codec.decode(self.codes[t0:t1], self.residuals[t0:t1])
                out[:, d0:d1] = maxsim_batch(qs, vals, self.offsets[d0 : d1 + 1] - t0)
        else:
            codes, offs = self._dedup_codes()
            out = _lut_maxsim(qs, self.codec.centroids, codes, offs, block_tokens)  # type: ignore[arg-type]
        if self.deleted.any():
            out[:, self.deleted] = -np.inf
        return out

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, rows)`` by MaxSim on codes."""
        return topk_rows(self.maxsim_batch(queries), k)

    def maxsim_rows(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """MaxSim on codes of one query against documents ``rows`` (``-1`` -> ``-inf``)."""
        rows = np.asarray(rows, np.int64)
        out = np.full(len(rows), -np.inf, dtype=np.float32)
        q = np.asarray(query, np.float32)
        if len(q) == 0:
            return out
        ok = rows >= 0
        starts, ends = self.offsets[rows[ok]], self.offsets[rows[ok] + 1]
        lens = ends - starts
        local = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(lens, out=local[1:])
        idx = np.repeat(starts - local[:-1], lens) + np.arange(local[-1])
        if self.codec.has_residuals and self.residuals is not None:
            s = q @ self.codec.decode(self.codes[idx], self.residuals[idx]).T
        else:
            s = (q @ self.codec.centroids.T)[:, self.codes[idx]]  # type: ignore[union-attr]
        out[ok] = _segment_max(s, local).sum(axis=0)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        self.codec.save(p / "codec")
        _atomic_save(p / "codes.npy", self.codes)
        _atomic_save(p / "offsets.npy", self.offsets)
        _atomic_save(p / "keys.npy", self.keys)
        _atomic_save(p / "deleted.npy", self.deleted)
        if self.residuals is not None:
            _atomic_save(p / "residuals.npy", self.residuals)
        (p / "manifest.json").write_text(
            json.dumps(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "n_docs": len(self),
                    "n_tokens": self.n_tokens,
                },
                indent=1,
            )
        )

    @staticmethod
    def open(path: str | os.PathLike, *, mmap: bool = True) -> CodedTokens:
        p = Path(path)
        _read_manifest(p / "manifest.json", FORMAT)
        mode = "r" if mmap else None
        return CodedTokens(
            codec=TokenCodec.load(p / "codec"),
            codes=np.load(p / "codes.npy", mmap_mode=mode),
            offsets=np.load(p / "offsets.npy"),
            keys=np.load(p / "keys.npy"),
            residuals=np.load(p / "residuals.npy", mmap_mode=mode)
            if (p / "residuals.npy").exists()
            else None,
            deleted=np.load(p / "deleted.npy"),
        )


def _doc_blocks(offsets: np.ndarray, block_tokens: int) -> list[int]:
    n = len(offsets) - 1
    bounds = [0]
    while bounds[-1] < n:
        start = bounds[-1]
        stop = int(np.searchsorted(offsets, offsets[start] + block_tokens, side="right")) - 1
        bounds.append(min(max(stop, start + 1), n))
    return bounds


def _lut_maxsim(
    qs: list[np.ndarray],
    centroids: np.ndarray,
    codes: np.ndarray,
    offs: np.ndarray,
    block_tokens: int,
) -> np.ndarray:
    """MaxSim through lookup tables: ``T = Q @ C.T``; a token's score is ``T[:, code]``."""
    n = len(offs) - 1
    out = np.full((len(qs), n), -np.inf, dtype=np.float32)
    qlens = np.array([len(q) for q in qs], np.int64)
    qnz = qlens > 0
    if not qnz.any():
        return out
    qoff = np.zeros(len(qs) + 1, np.int64)
    np.cumsum(qlens, out=qoff[1:])
    table = np.concatenate([q for q in qs if len(q)]) @ centroids.T  # (total_q_tok, n_centroids)
    bounds = _doc_blocks(offs, block_tokens)
    for d0, d1 in zip(bounds[:-1], bounds[1:]):
        t0, t1 = int(offs[d0]), int(offs[d1])
        s = table[:, codes[t0:t1]]
        per = _segment_max(s, offs[d0 : d1 + 1] - t0)
        out[qnz, d0:d1] = np.add.reduceat(per, qoff[:-1][qnz], axis=0)
    return out
