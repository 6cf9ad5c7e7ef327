"""The codec contract shared by every compressed representation of dense vectors.

A codec is a fitted object after faiss' ``train`` / ``sa_encode`` / ``sa_decode`` (Douze et al.,
"The Faiss library", 2024): :meth:`Codec.fit` learns its state (ranges, codebooks, rotations) on
the corpus, :meth:`Codec.encode` turns ``(n, d)`` float vectors into a 2-d numpy array of codes,
:meth:`Codec.decode` approximates the vectors back, and :meth:`Codec.score` scores float queries
against codes *asymmetrically* (the query is never quantised unless the codec says so).
:meth:`Codec.topk` returns the best rows without materialising an ``(n_queries, n)`` matrix.

Learned state is persisted as a folder: one ``.npy`` per array plus ``codec.json`` naming the
spec, class, parameters, input dimension, model and format version (checked on load; no pickle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from heron.retrieval.topk import merge_topk, pad_topk, topk_rows

#: version of the on-disk codec folder; bumped when the layout changes
FORMAT_VERSION = 1
MANIFEST = "codec.json"


def as_matrix(x: Any, *, what: str = "vectors", dim: int | None = None) -> np.ndarray:
    """Validate a 2-d float matrix and return it as C-contiguous float32."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array of shape (n, d), got {type(x).__name__}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-d (n, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{what} have dimension {x.shape[1]} but the codec was fitted on dimension {dim}; encode vectors of the fitted model/dimension or refit the codec"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{what} must be floating point, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


class Codec:
    """Base class of every codec (see the module docstring for the contract).

    Subclasses set :attr:`kind` (the registry name), implement ``_fit``, ``encode``, ``decode``,
    ``bytes_per_vector`` and ``_state`` / ``_from_state``; they may override :meth:`score` and
    :meth:`topk` with faster kernels.
    """

    kind: ClassVar[str] = "codec"
    #: smallest number of training vectors :meth:`fit` accepts
    min_train: ClassVar[int] = 1

    def __init__(self) -> None:
        self.dim: int | None = None
        self.spec: str = self.kind

    # -- fitting -------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.dim is not None

    def fit(self, x: np.ndarray, **kwargs: Any) -> Codec:
        """Learn the codec's state on corpus vectors ``x`` ``(n, d)``; returns ``self``."""
        x = as_matrix(x, what="training vectors")
        if x.shape[0] < self.min_train:
            raise ValueError(
                f"codec {self.spec!r} needs at least {self.min_train} training vectors, got {x.shape[0]}; fit on more vectors or choose a smaller codec"
            )
        self._fit(x, **kwargs)
        self.dim = int(x.shape[1])
        return self

    def _fit(self, x: np.ndarray, **kwargs: Any) -> None:
        return None

    def _check(self) -> int:
        if self.dim is None:
            raise ValueError(f"codec {self.spec!r} is not fitted; call fit(corpus_vectors) first")
        return self.dim

    def _resident(self, codes: np.ndarray, make: Any) -> Any:
        """``make(codes)``: a copy of ``codes`` in the layout a scan reads fastest, kept while
        the same array object comes back (a collection's resident codes); ``None`` the first
        time an array is seen, so a one-off scan never pays for the copy. Memory only."""
        seen = getattr(self, "_resident_of", None)
        if seen is not None and seen[0] is codes:
            if seen[1] is None:
                self._resident_of = (codes, make(codes))
            return self._resident_of[1]
        self._resident_of = (codes, None)
        return None

    # -- the contract ----------------------------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of ``x`` ``(n, d)``: a 2-d array ``(n, code_width)``."""
        raise NotImplementedError

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate vectors ``(n, d)`` float32 from ``codes``."""
        raise NotImplementedError

    @property
    def bytes_per_vector(self) -> float:
        """Bytes one vector's code occupies in memory."""
        raise NotImplementedError

    def state_bytes(self) -> int:
        """Bytes of the fitted state (codebooks, ranges, rotations) held in memory."""
        _, arrays = self._state()
        return int(sum(a.nbytes for a in arrays.values()))

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Asymmetric scores ``(n_queries, n)``: float queries against codes.

        The default decodes ``codes`` block by block; subclasses score without a full decode.
        """
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        out = np.empty((q.shape[0], len(codes)), dtype=np.float32)
        step = 65536
        for s in range(0, len(codes), step):
            out[:, s : s + step] = q @ self.decode(codes[s : s + step]).T
        return out

    def topk(
        self, queries: np.ndarray, codes: np.ndarray, k: int, *, block_size: int = 32768
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows of ``codes`` per query by :meth:`score`, without an ``(nq, n)`` matrix.

        Returns ``(scores, rows)``, both ``(n_queries, k)``, sorted descending, padded with
        ``-inf`` / ``-1`` when ``k > n``.
        """
        d = self._check()
        q = as_matrix(queries, what="queries", dim=d)
        nq = q.shape[0]
        best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
        best_i = np.full((nq, 0), -1, dtype=np.int64)
        for s in range(0, len(codes), block_size):
            ts, ti = topk_rows(self.score(q, codes[s : s + block_size]), k)
            rows = np.where(ti >= 0, ti + s, -1)
            best_s, best_i = merge_topk(
                np.concatenate([best_s, ts], 1), np.concatenate([best_i, rows], 1), k
            )
        return pad_topk(best_s, best_i, k)

    # -- persistence -----------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_params, arrays)`` describing the fitted state."""
        return {}, {}

    def _load_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None

    def save(self, path: str | os.PathLike, *, model: str | None = None) -> Path:
        """Write the fitted state to folder ``path`` (``.npy`` arrays + ``codec.json``)."""
        d = self._check()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        params, arrays = self._state()
        for name, arr in arrays.items():
            tmp = folder / f"{name}.tmp{os.getpid()}.npy"
            np.save(tmp, np.ascontiguousarray(arr), allow_pickle=False)
            os.replace(tmp, folder / f"{name}.npy")
        manifest = {
            "format": "heron.codec",
            "version": FORMAT_VERSION,
            "spec": self.spec,
            "kind": self.kind,
            "dim": d,
            "model": model,
            "params": params,
            "arrays": sorted(arrays),
        }
        tmp = folder / f"{MANIFEST}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, folder / MANIFEST)
        return folder


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``codec.json`` of a saved codec folder."""
    folder = Path(path)
    mf = folder / MANIFEST
    if not mf.is_file():
        raise FileNotFoundError(
            f"no saved codec at {str(folder)!r} (missing {MANIFEST}); save one with codec.save(path)"
        )
    manifest = json.loads(mf.read_text())
    if manifest.get("format") != "heron.codec":
        raise ValueError(f"{mf} is not a heron codec manifest (format={manifest.get('format')!r})")
    if manifest.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"codec at {str(folder)!r} has format version {manifest.get('version')!r}; this heron reads version {FORMAT_VERSION}; refit and save the codec again"
        )
    return manifest


def load_codec(
    path: str | os.PathLike, *, dim: int | None = None, model: str | None = None
) -> Codec:
    """Load a codec saved with :meth:`Codec.save`.

    Parameters
    ----------
    path: the codec folder.
    dim, model: when given, the dimension / model the caller's vectors come from; a codec fitted
        for another raises ``ValueError`` (nothing is modified).
    """
    from heron.codecs.spec import parse_spec

    manifest = read_manifest(path)
    if dim is not None and manifest["dim"] != dim:
        raise ValueError(
            f"codec at {str(path)!r} was fitted on dimension {manifest['dim']}, but the vectors have dimension {dim}; refit the codec for this model"
        )
    if model is not None and manifest.get("model") not in (None, model):
        raise ValueError(
            f"codec at {str(path)!r} was fitted for model {manifest['model']!r}, not {model!r}; refit the codec for this model"
        )
    codec = parse_spec(manifest["spec"])
    folder = Path(path)
    from heron.limits import file_in

    arrays = {
        name: np.load(file_in(folder, f"{name}.npy", what=f"{MANIFEST} array"), allow_pickle=False)
        for name in manifest["arrays"]
    }
    codec._load_state(manifest["params"], arrays)
    codec.dim = int(manifest["dim"])
    return codec
