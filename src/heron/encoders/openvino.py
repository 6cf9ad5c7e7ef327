"""OpenVINO backend for sentence-transformers models (``SentenceTransformerEncoder(backend="openvino")``).

The Hugging Face transformer under a ``SentenceTransformer`` is converted with
``openvino.convert_model`` (dynamic batch and sequence axes) once, saved as OpenVINO IR under
``$HERON_CACHE/openvino/<model>-<key>/`` (the key hashes the model path, its weights file, the
OpenVINO version and this module's format version), and compiled for the CPU with an explicit
inference precision: ``"float32"``
(``f32``) or ``"bfloat16"`` (``bf16``, run on AVX512_BF16 / AMX). Tokenisation, truncation and
pooling are those of :mod:`heron.encoders.onnx` (the model's own tokenizer; pooling read from its
``Pooling`` module and done in numpy). Texts are batched by token length; results come back in
input order. OpenVINO: https://docs.openvino.ai (Intel).

Install with ``pip install "heron[openvino]"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heron._deps import require
from heron.encoders.base import length_batches
from heron.encoders.onnx import (
    _MODEL_INPUTS,
    _cores,
    _default_cache,
    _forward_params,
    _hf_model,
    _split_modules,
    _TokenEmbeddings,
    pool,
    pooling_modes,
    weights_hash,
)

OPENVINO_PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}
#: Version of the cached IR's layout; part of the cache key.
IR_FORMAT_VERSION = 1


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
    path:
        The path or name the model was loaded from (part of the IR cache key).
    cache_dir:
        Where converted models are kept; default ``$HERON_CACHE/openvino``.
    """

    def __init__(
        self,
        st_model: Any,
        path: str,
        *,
        threads: int | None = None,
        precision: str = "float32",
        cache_dir: str | os.PathLike | None = None,
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
        self.ir_path = self._converted(ov, torch, path, cache_dir)
        self.input_names = json.loads((self.ir_path.parent / "manifest.json").read_text())["inputs"]
        core = ov.Core()
        model = core.read_model(str(self.ir_path))
        self._compiled = core.compile_model(
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

    def _converted(self, ov: Any, torch: Any, path: str, cache_dir: Any) -> Path:
        """Convert (once, cached as IR) the transformer; return the ``model.xml`` path."""
        hf = _hf_model(self._transformer)
        dtype = next(iter(hf.parameters())).dtype
        if dtype != torch.float32:
            raise ValueError(f"OpenVINO conversion needs the float32 model, got one in {dtype}")
        model_id = str(Path(path).resolve()) if os.path.isdir(path) else str(path)
        key = hashlib.sha1(
            f"{model_id}\x1f{weights_hash(path, hf)}\x1f{ov.__version__}\x1f{IR_FORMAT_VERSION}".encode()
        ).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(model_id).name)[:60]
        root = Path(cache_dir) if cache_dir is not None else _default_cache() / "openvino"
        folder = root / f"{safe or 'model'}-{key}"
        xml, manifest_path = folder / "model.xml", folder / "manifest.json"
        if xml.exists() and (folder / "model.bin").exists() and manifest_path.exists():
            return xml
        folder.mkdir(parents=True, exist_ok=True)
        sample = ["an example text", "another, somewhat longer example text"]
        feats = self._features(sample, int(self._st.max_seq_length), as_numpy=False)
        accepted = set(_forward_params(hf))
        names = [k for k in _MODEL_INPUTS if k in feats and k in accepted]
        wrapper = _TokenEmbeddings(torch, hf, names).eval()
        was_training = hf.training
        try:
            with torch.no_grad():
                model = ov.convert_model(wrapper, example_input=tuple(feats[k] for k in names))
        finally:
            hf.train(was_training)
        # write under temporary names, then rename: concurrent processes never read half a model
        tmp = folder / f"tmp{os.getpid()}"
        ov.save_model(model, str(tmp.with_suffix(".xml")), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), folder / "model.bin")
        os.replace(tmp.with_suffix(".xml"), xml)
        manifest = {
            "format": "heron-openvino-encoder",
            "format_version": IR_FORMAT_VERSION,
            "model": model_id,
            "openvino": ov.__version__,
            "inputs": names,
        }
        tmp_m = folder / f"manifest.tmp{os.getpid()}.json"
        tmp_m.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp_m, manifest_path)
        return xml

    def _features(self, texts: list[str], max_length: int, *, as_numpy: bool) -> dict[str, Any]:
        if hasattr(self._st, "preprocess"):
            feats = self._st.preprocess(texts, max_length=max_length)
        else:  # sentence-transformers < 5
            feats = self._st.tokenize(texts)
        feats = {k: v for k, v in feats.items() if k in _MODEL_INPUTS}
        if as_numpy:
            return {k: np.asarray(v.numpy(), dtype=np.int64) for k, v in feats.items()}
        return feats
