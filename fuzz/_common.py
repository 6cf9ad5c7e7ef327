"""Shared by the atheris harnesses: the documented error types and a tiny collection.

A harness calls :func:`fuzz` with its one-input function; any exception other than the
documented ones (``ValueError``, ``TypeError``, ``KeyError`` and their subclasses) propagates
and atheris reports it as a crash with the input that caused it.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np  # imported before instrumentation: only heron's code is instrumented

DOCUMENTED = (ValueError, TypeError, KeyError)


def fuzz(one_input: Callable[[bytes], None]) -> None:
    import atheris

    def guarded(data: bytes) -> None:
        try:
            one_input(data)
        except DOCUMENTED:
            pass

    atheris.Setup(sys.argv, guarded)
    atheris.Fuzz()


def tiny_collection():
    """A 6-document ``model='none'`` collection with metadata and a BM25 index (in a temp dir)."""
    import heron

    root = Path(tempfile.mkdtemp(prefix="heron-fuzz-")) / "c"
    c = heron.Collection.create(root, model="none", dim=4)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    meta = [{"year": 2020 + i, "tags": ["a", "b"][: i % 3], "title": f"t{i}", "n": {"x": i}} for i in range(6)]
    c.add([f"doc {i} about cats" for i in range(6)], ids=[f"d{i}" for i in range(6)], metadata=meta, vectors=x)
    c.create_index(kind="bm25")
    return c


def scratch() -> Path:
    """A per-process scratch folder in memory when possible (/dev/shm)."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    return Path(tempfile.mkdtemp(prefix="heron-fuzz-", dir=base))
