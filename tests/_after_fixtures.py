"""Small deterministic fixtures for the after-retrieval tests (rerank, calibration, dimsel, drift)."""

from __future__ import annotations

import hashlib

import numpy as np


class HashEncoder:
    """A real (if crude) bag-of-words encoder: each word hashes to a fixed random unit vector."""

    def __init__(self, dim: int = 32, name: str = "hash-bow") -> None:
        self.dim, self.name = dim, name
        self.calls = 0

    def _word(self, w: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha1(w.lower().encode()).digest()[:4], "little")
        return np.random.default_rng(seed).normal(size=self.dim)

    def encode_queries(self, texts, **_):
        self.calls += 1
        out = np.stack([sum((self._word(w) for w in t.split()), np.zeros(self.dim)) for t in texts])
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(
            np.float32
        )

    encode_documents = encode_queries


DOCS = [
    "python argparse parses command line options",
    "the cat sat on the mat",
    "numpy arrays hold numbers",
    "command line tools in python",
    "dogs and cats are pets",
    "matrix multiplication with numpy",
    "options for the command parser",
    "a mat for the cat",
]


def codec_data(n: int = 600, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32) * (np.arange(1, d + 1) ** -0.5).astype(
        np.float32
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True)
