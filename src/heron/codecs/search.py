"""Two-stage search: an exact scan over compressed codes, then rescoring from a finer copy.

The first stage scores every code with :meth:`~heron.codecs.base.Codec.topk` and keeps
``oversample * k`` candidates; the second stage re-scores only those with the float16/float32
vectors, which are kept on disk and memory-mapped, so only the codes (``bytes_per_vector`` per
document) live in memory. This is the rescoring recipe of the binary/int8 embedding literature
(e.g. BEBR, Gan et al. KDD 2023; Shakir et al., "Binary and Scalar Embedding Quantization", 2024).
``oversample`` is a search-time parameter; ``oversample=0`` (or no rescoring matrix) returns the
first stage alone. The ANN indexes of heron build on the same two calls.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from heron.codecs import _scan
from heron.codecs.base import Codec, as_matrix, load_codec
from heron.limits import check_oversample, first_stage_depth
from heron.retrieval.topk import merge_topk

RESCORE_DTYPES = ("float16", "float32")


def rescore_rows(
    queries: np.ndarray, rows: np.ndarray, matrix: np.ndarray, k: int, *, chunk: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidate rows; top ``k`` of them.

    Parameters
    ----------
    queries: ``(nq, d)`` float32.
    rows: ``(nq, K)`` int64 candidate row numbers, ``-1`` padded.
    matrix: ``(n, d)`` float16/float32, typically a memmap.
    k: hits kept per query.

    Returns
    -------
    ``(scores (nq, k) float32 descending, rows (nq, k) int64)``, padded ``-inf`` / ``-1``.
    """
    nq, K = rows.shape
    fast = _scan.gather_dot(queries, rows, matrix)
    if fast is not None:
        out_s = fast
    else:
        out_s = _gather_dot_numpy(queries, rows, matrix, chunk)
    return merge_topk(out_s, rows, k)


def _gather_dot_numpy(
    queries: np.ndarray, rows: np.ndarray, matrix: np.ndarray, chunk: int
) -> np.ndarray:
    """numpy reference of ``_scan.gather_dot``: gathered blocks and an einsum."""
    nq, K = rows.shape
    out_s = np.full((nq, K), -np.inf, dtype=np.float32)
    for s in range(0, nq, chunk):
        r = rows[s : s + chunk]
        valid = r >= 0
        uniq, inv = np.unique(np.where(valid, r, 0), return_inverse=True)
        block = np.asarray(matrix[uniq], dtype=np.float32)  # sorted reads from the memmap
        vec = block[inv.reshape(r.shape)]  # (b, K, d)
        sc = np.einsum("qd,qkd->qk", queries[s : s + chunk], vec, optimize=True)
        out_s[s : s + chunk] = np.where(valid, sc, -np.inf)
    return out_s


class TwoStageSearcher:
    """Compressed first stage + rescoring from a memory-mapped float matrix.

    Parameters
    ----------
    codec: a fitted codec.
    codes: ``(n, width)`` codes of the corpus from ``codec.encode``.
    rescore: optional ``(n, d)`` float16/float32 matrix (e.g. ``np.load(path, mmap_mode="r")``)
        for the second stage; ``None`` serves the first stage only.
    """

    def __init__(
        self, codec: Codec, codes: np.ndarray, *, rescore: np.ndarray | None = None
    ) -> None:
        if not codec.fitted:
            raise ValueError(f"codec {codec.spec!r} is not fitted; fit it on the corpus first")
        if rescore is not None and (
            rescore.ndim != 2 or len(rescore) != len(codes) or rescore.shape[1] != codec.dim
        ):
            raise ValueError(
                f"rescore matrix of shape {rescore.shape} does not match {len(codes)} codes of dimension {codec.dim}"
            )
        self.codec, self.codes, self.rescore = codec, codes, rescore

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory: the codes plus the codec's fitted state."""
        return int(self.codes.nbytes + self.codec.state_bytes())

    def first_stage(self, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``depth`` rows by the codec's own score: ``(scores, rows)`` ``(nq, depth)``."""
        return self.codec.topk(queries, self.codes, depth)

    def search(
        self, queries: np.ndarray, k: int, *, oversample: float = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows per query: ``(scores (nq, k), rows (nq, k))``.

        ``oversample`` sets the first stage's depth to ``ceil(oversample * k)`` candidates which
        are re-scored exactly; ``0`` (or no rescoring matrix) returns the first stage's top ``k``.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        oversample = check_oversample(oversample)
        q = as_matrix(queries, what="queries", dim=self.codec.dim)
        if self.rescore is None or oversample == 0:
            return self.first_stage(q, int(k))
        depth = first_stage_depth(int(k), oversample, len(self.codes))
        _, rows = self.first_stage(q, depth)
        return rescore_rows(q, rows, self.rescore, int(k))

    # -- persistence -------------------------------------------------------------
    @classmethod
    def build(
        cls,
        codec: Codec,
        x: np.ndarray,
        folder: str | os.PathLike,
        *,
        rescore_dtype: str | None = "float16",
        model: str | None = None,
        fit: bool = True,
        progress: bool = False,
    ) -> TwoStageSearcher:
        """Fit (optionally) and encode ``x``, write codec + codes + rescoring copy to ``folder``."""
        if rescore_dtype is not None and rescore_dtype not in RESCORE_DTYPES:
            raise ValueError(
                f"rescore_dtype must be one of {RESCORE_DTYPES} or None, got {rescore_dtype!r}"
            )
        x = as_matrix(x, what="corpus vectors")
        if fit:
            codec.fit(x)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        codec.save(folder / "codec", model=model)
        codes = codec.encode(x)
        np.save(folder / "codes.npy", codes)
        if rescore_dtype is not None:
            np.save(folder / "rescore.npy", x.astype(rescore_dtype))
        meta = {
            "format": "heron.twostage",
            "version": 1,
            "n": len(x),
            "rescore_dtype": rescore_dtype,
            "model": model,
        }
        (folder / "twostage.json").write_text(json.dumps(meta, indent=1))
        return cls.open(folder, model=model)

    @classmethod
    def open(
        cls, folder: str | os.PathLike, *, dim: int | None = None, model: str | None = None
    ) -> TwoStageSearcher:
        """Open a folder written by :meth:`build` (codes in memory, rescoring copy memory-mapped)."""
        folder = Path(folder)
        meta_path = folder / "twostage.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no two-stage index at {str(folder)!r} (missing twostage.json)"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != 1:
            raise ValueError(
                f"two-stage index at {str(folder)!r} has version {meta.get('version')!r}; this heron reads version 1; rebuild it"
            )
        codec = load_codec(folder / "codec", dim=dim, model=model)
        codes = np.load(folder / "codes.npy")
        rescore = (
            np.load(folder / "rescore.npy", mmap_mode="r")
            if (folder / "rescore.npy").exists()
            else None
        )
        return cls(codec, codes, rescore=rescore)
