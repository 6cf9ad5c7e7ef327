"""OpenVINO backend for sentence-transformers models (``SentenceTransformerEncoder(backend="openvino")``).

The Hugging Face transformer under a ``SentenceTransformer`` is converted in memory with
``openvino.convert_model`` (dynamic batch and sequence axes; about 1.5 s for all-MiniLM-L6-v2, so
nothing is cached) and compiled for the CPU with an explicit inference precision: ``"float32"``
(``f32``) or ``"bfloat16"`` (``bf16``, run on AVX512_BF16 / AMX). Tokenisation, truncation and
pooling are those of :mod:`heron.encoders.onnx` (the model's own tokenizer; pooling read from its
``Pooling`` module and done in numpy). Texts are batched by token length; results come back in
input order. OpenVINO: https://docs.openvino.ai (Intel).

Install with ``pip install "heron[openvino]"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from heron._deps import require
from heron.encoders.base import length_batches
from heron.encoders.onnx import (
    _MODEL_INPUTS,
    _cores,
    _forward_params,
    _hf_model,
    _split_modules,
    _TokenEmbeddings,
    pool,
    pooling_modes,
)

OPENVINO_PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}


class OpenVinoEncoder:
    """Run a sentence-transformers model's transformer with OpenVINO on the CPU; pool in numpy.

    Parameters
    ----------
    st_model:
        A loaded ``SentenceTransformer`` made of ``Transformer``, ``Pooling`` [, ``Normalize``].
    threads:
        Inference threads; default: the cores this process may run on.
    precision:
        ``"float32"`` or ``"bfloat16"`` (OpenVINO's ``INFERENCE_PRECISION_HINT``).
    """

    def __init__(
        self, st_model: Any, *, threads: int | None = None, precision: str = "float32"
    ) -> None:
        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(
                f"OpenVINO precision must be one of {tuple(OPENVINO_PRECISIONS)}, got {precision!r}"
            )
        ov = require("openvino", extra="openvino", purpose="the OpenVINO encoder backend")
        torch = require("torch", purpose="converting the encoder for OpenVINO")
        self._st = st_model
        self.precision = precision
        self._transformer, pooling = _split_modules(st_model)
        self.pooling_modes = pooling_modes(pooling)
        hf = _hf_model(self._transformer)
        sample = ["an example text", "another, somewhat longer example text"]
        feats = self._features(sample, int(st_model.max_seq_length), as_numpy=False)
        accepted = set(_forward_params(hf))
        self.input_names = [k for k in _MODEL_INPUTS if k in feats and k in accepted]
        wrapper = _TokenEmbeddings(torch, hf, self.input_names).eval()
        was_training = hf.training
        try:
            with torch.no_grad():
                model = ov.convert_model(
                    wrapper, example_input=tuple(feats[k] for k in self.input_names)
                )
        finally:
            hf.train(was_training)
        self._compiled = ov.Core().compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision],
                "INFERENCE_NUM_THREADS": int(threads) if threads else _cores(),
                "PERFORMANCE_HINT": "LATENCY",
            },
        )
        self.dim = int(
            st_model.get_embedding_dimension()
            if hasattr(st_model, "get_embedding_dimension")
            else st_model.get_sentence_embedding_dimension()
        )

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        max_length: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Pooled, **un-normalised** sentence vectors of ``n`` texts, ``(n, d)`` float32."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        max_length = int(max_length or self._st.max_seq_length)
        tok = self._transformer.tokenizer
        lengths = [
            len(ids) for ids in tok(texts, truncation=True, max_length=max_length)["input_ids"]
        ]
        batches = length_batches(lengths, batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"encoding (openvino {self.precision})", unit="batch")
        for idx in batches:
            feats = self._features([texts[i] for i in idx], max_length, as_numpy=True)
            tokens = self._compiled([feats[k] for k in self.input_names])[0]
            out[idx] = pool(tokens, feats["attention_mask"], self.pooling_modes)
        return out

    def _features(self, texts: list[str], max_length: int, *, as_numpy: bool) -> dict[str, Any]:
        if hasattr(self._st, "preprocess"):
            feats = self._st.preprocess(texts, max_length=max_length)
        else:  # sentence-transformers < 5
            feats = self._st.tokenize(texts)
        feats = {k: v for k, v in feats.items() if k in _MODEL_INPUTS}
        if as_numpy:
            return {k: np.asarray(v.numpy(), dtype=np.int64) for k, v in feats.items()}
        return feats
