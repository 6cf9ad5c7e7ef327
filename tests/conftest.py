"""Shared fixtures (the bundled encoder, the SciFact embeddings, loaded once per session) and tiers.

Tests live in one folder per tier, and each folder is a marker (``pytest -m comparison``):

* ``unit/``        one module at a time on tiny, hand-checkable or seeded inputs;
* ``comparison/``  against a reference implementation (numpy oracles of numba kernels,
  ONNX vs torch, exact vs Seismic/pyseismic, ir-measures on hand-edited runs);
* ``integration/`` collections, lifecycle and concurrency, pipelines, the CLI, evaluation end to end;
* ``realdata/``    real BEIR data from ``$HERON_DATA`` with the bundled model (marker ``realdata``).

Property-based tests (hypothesis) are also marked ``invariants``, whatever their folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# benchmark-only code (synthetic generators, the pyseismic adapter) is importable as ``_lib``
_BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")
if _BENCHMARKS not in sys.path:
    sys.path.insert(0, _BENCHMARKS)


# tests/ itself holds shared helpers (``_after_fixtures``) imported from every tier's folder
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

TIERS = ("unit", "comparison", "integration", "realdata")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        if getattr(getattr(item, "function", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.invariants)


@pytest.fixture(scope="session")
def encoder():
    from heron.encoders import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def scifact():
    from heron.eval import data_root, load_beir

    if not (data_root() / "scifact").is_dir():
        pytest.skip(f"SciFact not found under {data_root()} (set HERON_DATA)")
    return load_beir("scifact")


@pytest.fixture(scope="session")
def scifact_emb(scifact, encoder):
    from heron.eval.cache import dataset_embeddings

    return dataset_embeddings(scifact, encoder, split="test", progress=False)
