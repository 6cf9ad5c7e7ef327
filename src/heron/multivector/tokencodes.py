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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from heron.multivector.maxsim import _segment_max, as_token_list, maxsim_batch
from heron.multivector.ragged import RaggedArray, _atomic_save
from heron.retrieval.topk import topk_rows

FORMAT = "heron.tokencodes"
VERSION = 1
SALIENCE = ("idf", "token-idf", "common-pieces", "redundancy", "random")


class TokenCodec:
    """k-means centroid codes (1 byte per token) with optional quantised residuals.

    Parameters
    ----------
    n_centroids: number of centroids, at most 256 (codes are ``uint8``).
    residual_bits: bits per dimension of the residual (0 = codes only, 1, 2, 4 or 8;
        ColBERTv2's scalar residual compression).
    residual_pq: instead of ``residual_bits``, product-quantise the residual with this many
        one-byte sub-quantisers (must divide ``d``; e.g. 48 for d=384 -> 49 bytes per token).
    n_iter: k-means iterations.
    sample: tokens sampled to train the centroids and the residual buckets.
    seed: random seed.
    """

    def __init__(
        self,
        *,
        n_centroids: int = 256,
        residual_bits: int = 0,
        residual_pq: int = 0,
        n_iter: int = 10,
        sample: int = 65536,
        seed: int = 0,
    ) -> None:
        if (
            isinstance(n_centroids, bool)
            or not isinstance(n_centroids, (int, np.integer))
            or not 1 <= n_centroids <= 256
        ):
            raise ValueError(
                f"n_centroids must be an int in 1..256 (one-byte codes), got {n_centroids!r}"
            )
        if residual_bits not in (0, 1, 2, 4, 8):
            raise ValueError(f"residual_bits must be one of 0, 1, 2, 4, 8, got {residual_bits!r}")
        if isinstance(residual_pq, bool) or not isinstance(residual_pq, int) or residual_pq < 0:
            raise ValueError(f"residual_pq must be a non-negative int, got {residual_pq!r}")
        if residual_pq and residual_bits:
            raise ValueError(
                "choose one residual: residual_bits (scalar) or residual_pq (product quantiser)"
            )
        self.residual_pq = int(residual_pq)
        self.pq_centroids: np.ndarray | None = None  # (M, 256, d/M)
        if not isinstance(n_iter, int) or n_iter < 1 or not isinstance(sample, int) or sample < 1:
            raise ValueError(
                f"n_iter and sample must be positive ints, got n_iter={n_iter!r}, sample={sample!r}"
            )
        self.n_centroids, self.residual_bits, self.n_iter, self.sample, self.seed = (
            int(n_centroids),
            int(residual_bits),
            n_iter,
            sample,
            int(seed),
        )
        self.centroids: np.ndarray | None = None  # (n_centroids, d) float32, unit rows
        self.cutoffs: np.ndarray | None = None  # (d, 2**b - 1) residual bucket boundaries
        self.weights: np.ndarray | None = None  # (d, 2**b) residual bucket values

    # ------------------------------------------------------------------ fitting
    @property
    def has_residuals(self) -> bool:
        return bool(self.residual_bits or self.residual_pq)

    @property
    def dim(self) -> int:
        self._check_fitted()
        return int(self.centroids.shape[1])  # type: ignore[union-attr]

    def _check_fitted(self) -> None:
        if self.centroids is None:
            raise ValueError("this TokenCodec is not fitted; call fit(token_vectors) first")

    def fit(self, x: np.ndarray | RaggedArray) -> TokenCodec:
        """Learn centroids (spherical k-means) and residual buckets from ``x`` ``(n_tokens, d)``."""
        values = x.values if isinstance(x, RaggedArray) else np.asarray(x)
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"fit needs a non-empty (n_tokens, d) array, got shape {values.shape}")
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.choice(len(values), size=min(self.sample, len(values)), replace=False))
        xs = np.asarray(values[idx], dtype=np.float32)
        k = min(self.n_centroids, len(xs))
        c = xs[rng.choice(len(xs), size=k, replace=False)].copy()
        for _ in range(self.n_iter):
            a = _assign(xs, c)
            onehot = np.zeros((len(xs), k), np.float32)
            onehot[np.arange(len(xs)), a] = 1.0
            sums = onehot.T @ xs  # one BLAS call instead of a slow np.add.at
            cnt = np.bincount(a, minlength=k)
            empty = cnt == 0
            sums[empty] = xs[rng.integers(0, len(xs), int(empty.sum()))]
            c = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        self.centroids = c.astype(np.float32)
        if self.residual_bits:
            res = xs - self.centroids[_assign(xs, self.centroids)]
            nb = 1 << self.residual_bits
            qs = np.linspace(0, 1, nb + 1)[1:-1]
            self.cutoffs = np.quantile(res, qs, axis=0).T.astype(np.float32)  # (d, nb-1)
            bucket = _bucketize(res, self.cutoffs)
            w = np.zeros((res.shape[1], nb), dtype=np.float32)
            for b in range(nb):
                m = bucket == b
                cnt = m.sum(axis=0)
                w[:, b] = np.where(cnt > 0, (res * m).sum(axis=0) / np.maximum(cnt, 1), 0.0)
            self.weights = w
        if self.residual_pq:
            d = xs.shape[1]
            if d % self.residual_pq:
                raise ValueError(
                    f"residual_pq={self.residual_pq} must divide the token dimension {d}"
                )
            res = xs - self.centroids[_assign(xs, self.centroids)]
            sub = res.reshape(len(res), self.residual_pq, d // self.residual_pq)
            self.pq_centroids = np.stack(
                [_kmeans_l2(sub[:, m], 256, self.n_iter, rng) for m in range(self.residual_pq)]
            )
        return self

    # ------------------------------------------------------------------ codec contract
    @property
    def bytes_per_token(self) -> int:
        """Stored bytes per token: 1 (code) + ``ceil(d * residual_bits / 8)`` or + ``residual_pq``."""
        return 1 + (-(-self.dim * self.residual_bits // 8)) + self.residual_pq

    def encode(
        self, x: np.ndarray, *, batch: int = 1 << 16
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(codes (n,) uint8, residuals (n, ceil(d*b/8)) uint8 or None)`` of ``x`` ``(n, d)``."""
        self._check_fitted()
        x = np.asarray(x)
        if x.ndim != 2 or (len(x) and x.shape[1] != self.dim):
            raise ValueError(
                f"encode needs (n, {self.dim}) token vectors, got shape {x.shape}; mismatched token dimension"
            )
        codes = np.zeros(len(x), dtype=np.uint8)
        res = (
            np.zeros((len(x), self.bytes_per_token - 1), dtype=np.uint8)
            if self.has_residuals
            else None
        )
        for s in range(0, len(x), batch):
            xb = np.asarray(x[s : s + batch], dtype=np.float32)
            a = _assign(xb, self.centroids)  # type: ignore[arg-type]
            codes[s : s + len(xb)] = a
            if res is not None and self.residual_pq:
                r = (xb - self.centroids[a]).reshape(len(xb), self.residual_pq, -1)  # type: ignore[index]
                for m in range(self.residual_pq):
                    c = self.pq_centroids[m]  # type: ignore[index]
                    dist = (c * c).sum(1)[None, :] - 2.0 * (r[:, m] @ c.T)
                    res[s : s + len(xb), m] = np.argmin(dist, axis=1)
            elif res is not None:
                bucket = _bucketize(xb - self.centroids[a], self.cutoffs)  # type: ignore[index,arg-type]
                res[s : s + len(xb)] = _pack(bucket, self.residual_bits)
        return codes, res

    def decode(self, codes: np.ndarray, residuals: np.ndarray | None = None) -> np.ndarray:
        """Approximate token vectors ``(n, d)`` float32 from codes (and residuals)."""
        self._check_fitted()
        out = self.centroids[np.asarray(codes, dtype=np.int64)]  # type: ignore[index]
        if self.residual_pq and residuals is not None:
            r = np.asarray(residuals, dtype=np.int64)
            parts = self.pq_centroids[np.arange(self.residual_pq)[None, :], r]  # type: ignore[index]
            return (out + parts.reshape(len(r), -1)).astype(np.float32, copy=False)
        if self.residual_bits and residuals is not None:
            bucket = _unpack(residuals, self.residual_bits, self.dim)
            out = (
                out
                + np.take_along_axis(
                    self.weights[None, :, :], bucket[:, :, None].astype(np.int64), axis=2
                )[:, :, 0]
            )  # type: ignore[index]
        return out.astype(np.float32, copy=False)

    # ------------------------------------------------------------------ persistence
    def params(self) -> dict:
        return {
            "n_centroids": self.n_centroids,
            "residual_bits": self.residual_bits,
            "residual_pq": self.residual_pq,
            "n_iter": self.n_iter,
            "sample": self.sample,
            "seed": self.seed,
        }

    def save(self, path: str | os.PathLike) -> None:
        self._check_fitted()
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        _atomic_save(p / "centroids.npy", self.centroids)  # type: ignore[arg-type]
        if self.residual_bits:
            _atomic_save(p / "cutoffs.npy", self.cutoffs)  # type: ignore[arg-type]
            _atomic_save(p / "weights.npy", self.weights)  # type: ignore[arg-type]
        if self.residual_pq:
            _atomic_save(p / "pq_centroids.npy", self.pq_centroids)  # type: ignore[arg-type]
        (p / "codec.json").write_text(
            json.dumps(
                {"format": FORMAT + ".codec", "version": VERSION, "params": self.params()}, indent=1
            )
        )

    @staticmethod
    def load(path: str | os.PathLike) -> TokenCodec:
        p = Path(path)
        meta = _read_manifest(p / "codec.json", FORMAT + ".codec")
        c = TokenCodec(**meta["params"])
        c.centroids = np.load(p / "centroids.npy")
        if c.residual_bits:
            c.cutoffs, c.weights = np.load(p / "cutoffs.npy"), np.load(p / "weights.npy")
        if c.residual_pq:
            c.pq_centroids = np.load(p / "pq_centroids.npy")
        return c


def _kmeans_l2(x: np.ndarray, k: int, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Plain (Euclidean) k-means of ``x`` ``(n, ds)`` -> ``(k, ds)`` centroids (PQ codebooks)."""
    k_eff = min(k, len(x))
    c = np.zeros((k, x.shape[1]), np.float32)
    c[:k_eff] = x[rng.choice(len(x), size=k_eff, replace=False)]
    for _ in range(n_iter):
        a = np.argmin((c * c).sum(1)[None, :] - 2.0 * (x @ c.T), axis=1)
        cnt = np.bincount(a, minlength=k)
        for j in range(x.shape[1]):
            sums = np.bincount(a, weights=x[:, j], minlength=k)
            c[:, j] = np.where(cnt > 0, sums / np.maximum(cnt, 1), c[:, j])
    return c


def _read_manifest(path: Path, fmt: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"no {fmt} manifest at {str(path)!r}")
    meta = json.loads(path.read_text())
    if meta.get("format") != fmt or meta.get("version") != VERSION:
        raise ValueError(
            f"{str(path)!r} is {meta.get('format')!r} v{meta.get('version')}, expected {fmt!r} v{VERSION}; rebuild it"
        )
    return meta


def _assign(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.argmax(x @ c.T, axis=1)


def _bucketize(res: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Per-dimension bucket ids of residuals ``(n, d)`` given cutoffs ``(d, nb-1)`` -> uint8."""
    out = np.zeros(res.shape, dtype=np.uint8)
    for j in range(cutoffs.shape[1]):
        out += res > cutoffs[:, j][None, :]
    return out


def _pack(bucket: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return bucket.astype(np.uint8)
    bitplanes = ((bucket[:, :, None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(
        len(bucket), -1
    )
    return np.packbits(bitplanes, axis=1)


def _unpack(packed: np.ndarray, bits: int, d: int) -> np.ndarray:
    if bits == 8:
        return packed.astype(np.uint8)
    planes = np.unpackbits(packed, axis=1, count=d * bits).reshape(len(packed), d, bits)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=2).astype(np.uint8)


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


def _kept_offsets(offsets: np.ndarray, keep: np.ndarray) -> np.ndarray:
    c = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(keep, out=c[1:])
    return c[offsets]


def salience_keep_mask(
    docs: RaggedArray,
    fraction: float,
    *,
    salience: str = "idf",
    codes: np.ndarray | None = None,
    token_ids: np.ndarray | None = None,
    common_df: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """Boolean mask ``(n_tokens,)`` keeping the ``1 - fraction`` most salient tokens of each document.

    Every non-empty document keeps at least one token.

    Parameters
    ----------
    docs: token store.
    fraction: share ``p`` of each document's tokens to prune, in ``[0, 1)``.
    salience: ``"idf"`` — log inverse document frequency of the token's centroid (needs
        ``codes``, the tokens' centroid ids); ``"token-idf"`` — log inverse document frequency of
        the token's *vocabulary id* over the corpus (needs ``token_ids``; stopword and
        punctuation word pieces go first, as in lexical IDF weighting and ColBERT pruning
        studies); ``"common-pieces"`` — word pieces found in more than ``common_df`` of the
        documents (stopwords, punctuation) go first, the rest at random (needs ``token_ids``;
        measured here to beat both ``"token-idf"`` and ``"random"``); ``"redundancy"`` — minus
        the token's highest
        cosine to another token of the same document (near-duplicates go first: MaxSim keeps
        only the best match, so a duplicated token adds little); ``"random"`` — a baseline.
    codes: centroid id per token ``(n_tokens,)`` (from :meth:`TokenCodec.encode`).
    token_ids: vocabulary id per token ``(n_tokens,)`` (from
        :func:`heron.eval.cache.cached_token_ids`). Ties in salience are broken at random
        (``seed``).
    """
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"fraction to prune must be in [0, 1), got {fraction!r}")
    if salience not in SALIENCE:
        raise ValueError(f"salience must be one of {SALIENCE}, got {salience!r}")
    lens = docs.lengths()
    n_tok = int(lens.sum())
    doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
    if salience == "idf":
        if codes is None or len(codes) != n_tok:
            raise ValueError(
                f"salience='idf' needs codes, one centroid id per token ({n_tok}); encode with a TokenCodec first"
            )
        codes = np.asarray(codes, np.int64)
        pairs = np.unique(doc_of * 256 + codes)
        df = np.bincount(pairs % 256, minlength=256).astype(np.float64)
        sal = np.log((len(docs) + 1) / (df[codes] + 1))
    elif salience in ("token-idf", "common-pieces"):
        if token_ids is None or len(token_ids) != n_tok:
            raise ValueError(
                f"salience={salience!r} needs token_ids, one vocabulary id per token ({n_tok}); "
                "see heron.eval.cache.cached_token_ids"
            )
        tid = np.asarray(token_ids, np.int64)
        _, inv = np.unique(tid, return_inverse=True)
        n_types = int(inv.max()) + 1 if n_tok else 0
        pairs = np.unique(doc_of * n_types + inv)
        df = np.bincount(pairs % n_types, minlength=n_types).astype(np.float64)
        if salience == "common-pieces":
            if not 0.0 < float(common_df) < 1.0:
                raise ValueError(f"common_df must be in (0, 1), got {common_df!r}")
            common = df[inv] > float(common_df) * len(docs)
            sal = np.random.default_rng(seed).random(n_tok) - common
        else:
            tie = np.random.default_rng(seed).random(n_tok) * 1e-6
            sal = np.log((len(docs) + 1) / (df[inv] + 1)) + tie
    elif salience == "redundancy":
        sal = np.zeros(n_tok)
        for i in range(len(docs)):
            x = np.asarray(docs[i], np.float32)
            if len(x) > 1:
                sim = x @ x.T
                np.fill_diagonal(sim, -np.inf)
                sal[docs.offsets[i] : docs.offsets[i + 1]] = -sim.max(axis=1)
    else:
        sal = np.random.default_rng(seed).random(n_tok)
    keep_n = np.where(
        lens > 0, np.maximum(1, np.ceil(lens * (1.0 - float(fraction))).astype(np.int64)), 0
    )
    order = np.lexsort((-sal, doc_of))  # by document, most salient first
    rank = np.empty(n_tok, np.int64)
    rank[order] = np.arange(n_tok) - np.repeat(docs.offsets[:-1], lens)
    return rank < np.repeat(keep_n, lens)


def prune_tokens(docs: RaggedArray, keep: np.ndarray) -> RaggedArray:
    """The token store restricted to ``keep`` ``(n_tokens,)`` (an in-memory copy)."""
    keep = np.asarray(keep, bool)
    if keep.shape != (docs.values.shape[0],):
        raise ValueError(f"keep mask must have shape ({docs.values.shape[0]},), got {keep.shape}")
    return RaggedArray(
        _kept_offsets(docs.offsets, keep),
        np.asarray(docs.values[keep]),
        keys=docs.keys.copy(),
        deleted=docs.deleted.copy(),
    )
