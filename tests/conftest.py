"""Shared fixtures: the bundled encoder and the SciFact embeddings, loaded once per session."""

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
