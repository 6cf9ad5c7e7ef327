"""Input checks shared by heron's indexes: vectors, document keys, integer parameters.

Each raises a ``TypeError`` / ``ValueError`` naming the bad value and the fix (see
:class:`heron.index.base.AnnIndex`, which uses them on every build, add and search).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_keys", "as_vectors", "check_param"]


def as_vectors(x: Any, *, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """Validate ``(n, d)`` float vectors; returns C-contiguous float32."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array of shape (n, d), got {type(x).__name__}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-d (n, d), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{what} must be floating point, got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{what} have dimension {x.shape[1]}, the index holds dimension {dim}; "
            "use vectors of the same model or rebuild the index"
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def as_keys(keys: Any, n: int | None = None) -> np.ndarray:
    """Validate document keys: 1-d non-negative integers, unique; returns int64."""
    k = np.asarray(keys)
    if k.ndim != 1 or (k.size and not np.issubdtype(k.dtype, np.integer)):
        raise TypeError(f"keys must be a 1-d integer array, got shape {k.shape} dtype {k.dtype}")
    k = k.astype(np.int64)
    if n is not None and len(k) != n:
        raise ValueError(f"got {len(k)} keys for {n} vectors; pass one key per vector")
    if k.size and k.min() < 0:
        raise ValueError("keys must be >= 0 (-1 is the padding key)")
    if len(np.unique(k)) != len(k):
        raise ValueError("keys must be unique; use upsert (remove then add) to replace a vector")
    return k


def check_param(name: str, value: Any, *, low: int = 1) -> int:
    """A positive int parameter (``nlist``, ``nprobe``, ``M``, ``ef_search`` ...); faiss takes
    them as a C ``int``, so at most ``2**31 - 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"index parameter {name} must be an int >= {low}, got {value!r}")
    if value > _C_INT_MAX:
        raise ValueError(
            f"index parameter {name}={value} is over {_C_INT_MAX} (faiss takes a 32-bit int); use a smaller value"
        )
    return int(value)


_C_INT_MAX = 2**31 - 1
