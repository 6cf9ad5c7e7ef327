"""Ragged token storage: one row of token vectors per document, as ``offsets`` + one matrix.

Document ``i`` owns the rows ``values[offsets[i]:offsets[i + 1]]`` of a single ``(n_tokens, d)``
matrix (``float16`` by default: half the bytes of ``float32`` and enough for unit vectors), with
``offsets`` an ``int64`` array of shape ``(n_docs + 1,)``. This is the layout ColBERT stores its
token embeddings in (Khattab & Zaharia, "ColBERT: Efficient and Effective Passage Search via
Contextualized Late Interaction over BERT", SIGIR 2020) and the ``"ragged"`` field kind of a
collection.

On disk a ragged array is a folder: ``manifest.json`` (format, version, dtype, shape),
``offsets.npy``, ``values.npy`` and ``keys.npy``, opened memory-mapped; deletions are a
``deleted.npy`` tombstone mask until :meth:`RaggedArray.compact` rewrites the folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FORMAT = "heron.ragged"
VERSION = 1
_DTYPES = ("float16", "float32")


def _check_dtype(dtype: object) -> np.dtype:
    dt = np.dtype(dtype)  # type: ignore[call-overload]
    if dt.name not in _DTYPES:
        raise ValueError(f"ragged values dtype must be one of {_DTYPES}, got {dt.name!r}")
    return dt


class RaggedArray:
    """Token vectors of many documents: ``offsets`` ``(n+1,)`` + ``values`` ``(n_tokens, d)``.

    Parameters
    ----------
    offsets:
        ``int64`` array, shape ``(n_docs + 1,)``, non-decreasing, ``offsets[0] == 0`` and
        ``offsets[-1] == len(values)``.
    values:
        Token matrix, shape ``(n_tokens, d)`` (``float16`` or ``float32``; may be a memmap).
    keys:
        ``int64`` document keys, shape ``(n_docs,)``; default ``0..n_docs-1``.
    deleted:
        Optional boolean tombstone mask, shape ``(n_docs,)``.
    """

    def __init__(
        self,
        offsets: np.ndarray,
        values: np.ndarray,
        *,
        keys: np.ndarray | None = None,
        deleted: np.ndarray | None = None,
    ) -> None:
        offsets = np.asarray(offsets)
        if offsets.ndim != 1 or len(offsets) < 1 or not np.issubdtype(offsets.dtype, np.integer):
            raise ValueError(
                f"offsets must be a 1-d int array of length n_docs + 1, got shape {offsets.shape} dtype {offsets.dtype}"
            )
        if values.ndim != 2:
            raise ValueError(f"values must be a 2-d (n_tokens, d) array, got shape {values.shape}")
        if (
            int(offsets[0]) != 0
            or int(offsets[-1]) != values.shape[0]
            or np.any(np.diff(offsets) < 0)
        ):
            raise ValueError(
                f"offsets must start at 0, be non-decreasing and end at len(values)={values.shape[0]}; "
                f"got offsets[0]={int(offsets[0])}, offsets[-1]={int(offsets[-1])}"
            )
        n = len(offsets) - 1
        self.offsets = offsets.astype(np.int64, copy=False)
        self.values = values
        self.keys = (
            np.arange(n, dtype=np.int64) if keys is None else np.asarray(keys, dtype=np.int64)
        )
        if self.keys.shape != (n,):
            raise ValueError(
                f"keys must have shape ({n},) (one per document), got {self.keys.shape}"
            )
        if len(np.unique(self.keys)) != n:
            raise ValueError("keys must be unique")
        self.deleted = (
            np.zeros(n, dtype=bool) if deleted is None else np.asarray(deleted, dtype=bool)
        )
        if self.deleted.shape != (n,):
            raise ValueError(f"deleted mask must have shape ({n},), got {self.deleted.shape}")
        self.path: Path | None = None
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def from_list(
        arrays: Sequence[np.ndarray],
        *,
        keys: np.ndarray | Sequence[int] | None = None,
        dtype: object = "float16",
        dim: int | None = None,
    ) -> RaggedArray:
        """Stack a list of ``(n_tokens_i, d)`` arrays (documents may have zero tokens)."""
        dt = _check_dtype(dtype)
        if dim is None:
            dims = {int(a.shape[1]) for a in arrays if np.ndim(a) == 2}
            if len(dims) > 1:
                raise ValueError(
                    f"token vectors of different dimensions {sorted(dims)}; every document needs the same d"
                )
            if not dims:
                raise ValueError("cannot infer the token dimension from an empty list; pass dim=")
            dim = dims.pop()
        lens = np.zeros(len(arrays) + 1, dtype=np.int64)
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if a.ndim != 2 or (a.shape[0] and a.shape[1] != dim):
                raise ValueError(
                    f"document {i}: token vectors must have shape (n_tokens, {dim}), got {a.shape}; mismatched token dimension"
                )
            lens[i + 1] = a.shape[0]
        offsets = np.cumsum(lens)
        values = np.zeros((int(offsets[-1]), dim), dtype=dt)
        for i, a in enumerate(arrays):
            if len(a):
                values[offsets[i] : offsets[i + 1]] = a
        return RaggedArray(offsets, values, keys=None if keys is None else np.asarray(keys))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_live(self) -> int:
        return int(len(self) - self.deleted.sum())

    def lengths(self) -> np.ndarray:
        """Tokens per document, shape ``(n_docs,)``."""
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def rows_of(self, keys: np.ndarray | Sequence[int]) -> np.ndarray:
        """Row numbers of ``keys`` (``-1`` for unknown or deleted keys), shape ``(len(keys),)``."""
        keys = np.asarray(keys, dtype=np.int64)
        if getattr(self, "_order", None) is None or len(self._order) != len(self.keys):
            self._order = np.argsort(self.keys, kind="stable")
            self._sorted = self.keys[self._order]
        rows = np.full(len(keys), -1, dtype=np.int64)
        if len(self._sorted) == 0 or len(keys) == 0:
            return rows
        pos = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        hit = self._sorted[pos] == keys
        rows[hit] = self._order[pos[hit]]
        rows[rows >= 0] = np.where(self.deleted[rows[rows >= 0]], -1, rows[rows >= 0])
        return rows

    def gather(
        self, rows: np.ndarray, *, dtype: object = np.float32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of documents ``rows`` as one matrix + local offsets.

        Returns ``(values (sum_len, d), offsets (len(rows) + 1,))``; a ``-1`` row has no tokens.
        """
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.where(rows >= 0, self.offsets[np.maximum(rows, 0)], 0)
        ends = np.where(rows >= 0, self.offsets[np.maximum(rows, 0) + 1], 0)
        lens = ends - starts
        local = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=local[1:])
        if local[-1] == 0:
            return np.zeros((0, self.dim), dtype=dtype), local
        idx = np.repeat(starts - local[:-1], lens) + np.arange(local[-1])
        return np.asarray(self.values[idx], dtype=dtype), local

    def live(self) -> RaggedArray:
        """The live documents only (a compacted in-memory copy when something was deleted)."""
        if not self.deleted.any():
            return self
        rows = np.flatnonzero(~self.deleted)
        vals, offs = self.gather(rows, dtype=self.values.dtype)
        return RaggedArray(offs, vals, keys=self.keys[rows])

    # ------------------------------------------------------------------ mutation
    def delete(self, keys: Iterable[int]) -> int:
        """Tombstone documents by key; returns how many live documents were deleted.

        Persisted at once when the array was opened from (or saved to) a folder.
        """
        rows = self.rows_of(np.fromiter(keys, dtype=np.int64))
        rows = rows[rows >= 0]
        self.deleted = self.deleted.copy()
        self.deleted[rows] = True
        if self.path is not None:
            _atomic_save(self.path / "deleted.npy", self.deleted)
        return int(len(rows))

    def compact(self) -> RaggedArray:
        """Drop tombstoned documents; rewrites the folder when the array lives on disk."""
        out = self.live()
        if self.path is not None:
            path = self.path
            del self.values  # release the memmap before rewriting
            out = RaggedArray(out.offsets, np.array(out.values), keys=out.keys)
            out.save(path)
            return RaggedArray.open(path)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the folder (``manifest.json`` + ``.npy`` arrays); returns its path."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        _atomic_save(p / "offsets.npy", self.offsets)
        _atomic_save(p / "keys.npy", self.keys)
        _atomic_save(p / "deleted.npy", self.deleted)
        _atomic_save(p / "values.npy", np.asarray(self.values))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "n_docs": len(self),
            "n_tokens": int(self.values.shape[0]),
            "dim": self.dim,
            "dtype": np.dtype(self.values.dtype).name,
        }
        (p / "manifest.json").write_text(json.dumps(manifest, indent=1))
        self.path = p
        return p

    @staticmethod
    def open(path: str | os.PathLike, *, mmap: bool = True) -> RaggedArray:
        """Open a folder written by :meth:`save` (values memory-mapped unless ``mmap=False``)."""
        p = Path(path)
        mf = p / "manifest.json"
        if not mf.is_file():
            raise FileNotFoundError(f"no ragged array at {str(p)!r} (missing manifest.json)")
        manifest = json.loads(mf.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(
                f"{str(p)!r} holds {manifest.get('format')!r}, not a {FORMAT!r} folder"
            )
        if manifest.get("version") != VERSION:
            raise ValueError(
                f"{str(p)!r} is ragged format version {manifest.get('version')}, this heron reads version {VERSION}; "
                "rebuild the token store with this version"
            )
        values = np.load(p / "values.npy", mmap_mode="r" if mmap else None)
        out = RaggedArray(
            np.load(p / "offsets.npy"),
            values,
            keys=np.load(p / "keys.npy"),
            deleted=np.load(p / "deleted.npy") if (p / "deleted.npy").exists() else None,
        )
        out.path = p
        return out


class RaggedWriter:
    """Stream documents' token vectors to a ragged folder without holding them all in memory.

    Parameters
    ----------
    path: the folder to write.
    dim: token dimension ``d``.
    dtype: ``"float16"`` (default) or ``"float32"``.
    """

    def __init__(self, path: str | os.PathLike, *, dim: int, dtype: object = "float16") -> None:
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.dtype = _check_dtype(dtype)
        self._raw = open(self.path / "values.raw.tmp", "wb")  # noqa: SIM115 - closed in close()
        self._lens: list[int] = []

    def append(self, arrays: Sequence[np.ndarray]) -> None:
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if a.ndim != 2 or (a.shape[0] and a.shape[1] != self.dim):
                raise ValueError(
                    f"token vectors must have shape (n_tokens, {self.dim}), got {a.shape} (item {i}); mismatched token dimension"
                )
            self._raw.write(np.ascontiguousarray(a, dtype=self.dtype).tobytes())
            self._lens.append(int(a.shape[0]))

    def close(self, *, keys: np.ndarray | None = None) -> RaggedArray:
        self._raw.close()
        offsets = np.zeros(len(self._lens) + 1, dtype=np.int64)
        np.cumsum(self._lens, out=offsets[1:])
        raw = self.path / "values.raw.tmp"
        vals = np.lib.format.open_memmap(
            self.path / "values.npy.tmp",
            mode="w+",
            dtype=self.dtype,
            shape=(int(offsets[-1]), self.dim),
        )
        src = np.memmap(raw, dtype=self.dtype, mode="r", shape=vals.shape) if offsets[-1] else None
        step = 1 << 16
        for s in range(0, int(offsets[-1]), step):
            vals[s : s + step] = src[s : s + step]  # type: ignore[index]
        vals.flush()
        del vals, src
        os.replace(self.path / "values.npy.tmp", self.path / "values.npy")
        raw.unlink()
        n = len(self._lens)
        keys = np.arange(n, dtype=np.int64) if keys is None else np.asarray(keys, dtype=np.int64)
        _atomic_save(self.path / "offsets.npy", offsets)
        _atomic_save(self.path / "keys.npy", keys)
        _atomic_save(self.path / "deleted.npy", np.zeros(n, dtype=bool))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "n_docs": n,
            "n_tokens": int(offsets[-1]),
            "dim": self.dim,
            "dtype": self.dtype.name,
        }
        (self.path / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return RaggedArray.open(self.path)


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
