"""ONNX Runtime encoder backend: same vectors as the PyTorch path, pooling, export cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heron._deps import has

TEXTS = [
    "how do I parse command line arguments",
    "read a gzip file line by line",
    "The quick brown fox jumps over the lazy dog.",
    "Vitamin D deficiency is associated with an increased risk of respiratory infections.",
    "a",
    "Ünïcödé façade — naïve café, 東京, emoji 🙂",
    "BM25 ranks documents by term frequency, inverse document frequency and length normalisation.",
    "  leading and trailing spaces  ",
    "Dense retrieval encodes queries and passages into one vector each.",
    "1234 5678 90",
    "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion tensor MRI.",
    "What is the capital of France?",
    "numbers: 3.14159, 2.71828, 1.41421",
    "Tokenizers split rare words into word pieces.",
    "The mitochondria is the powerhouse of the cell.",
    "short",
    "A much longer sentence that keeps going, with several clauses, commas, and a semicolon; it tests padding.",
    "CamelCaseIdentifiersAndsnake_case_names",
    "HTTP/2 multiplexes streams over one TCP connection.",
    # longer than max_seq_length (256 word pieces): truncated the same way by both backends
    " ".join(f"token{i} lorem ipsum dolor sit amet" for i in range(120)),
]

needs_model = pytest.mark.skipif(
    not (has("onnxruntime") and has("onnx") and has("sentence_transformers")),
    reason="needs heron[onnx,encoders]",
)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    from heron.encoders.dense import load_encoder
    from heron.encoders.onnx import OnnxRuntimeEncoder

    torch_enc = load_encoder(precision="float32")  # the exact path is the reference
    cache = tmp_path_factory.mktemp("heron-cache") / "onnx"
    onnx_enc = OnnxRuntimeEncoder(torch_enc._model, torch_enc._path, cache_dir=cache)
    return torch_enc, onnx_enc, cache


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.realdata
@needs_model
def test_same_embeddings_as_torch(encoders):
    torch_enc, onnx_enc, _ = encoders
    n_tokens = torch_enc.count_tokens(TEXTS)
    assert n_tokens[-1] > torch_enc.max_seq_length  # the last text really is truncated
    ref = torch_enc.encode_documents(TEXTS)
    got = _unit(onnx_enc.encode(TEXTS, batch_size=7, max_length=torch_enc.max_seq_length))
    assert got.shape == ref.shape == (len(TEXTS), torch_enc.dim) and got.dtype == np.float32
    assert np.max(np.abs(got - ref)) < 1e-4


@pytest.mark.realdata
@needs_model
def test_order_and_batching_do_not_change_vectors(encoders):
    _, onnx_enc, _ = encoders
    a = onnx_enc.encode(TEXTS, batch_size=4, sort_by_length=True)
    b = onnx_enc.encode(TEXTS, batch_size=64, sort_by_length=False)
    c = onnx_enc.encode(TEXTS[3:4], batch_size=1)
    assert np.max(np.abs(a - b)) < 1e-5 and np.max(np.abs(a[3:4] - c)) < 1e-5
    assert onnx_enc.encode([], batch_size=4).shape == (0, b.shape[1])


@pytest.mark.realdata
@needs_model
def test_export_is_cached_and_fused(encoders):
    from heron.encoders.onnx import EXPORT_FORMAT_VERSION, export_onnx

    torch_enc, onnx_enc, cache = encoders
    manifest = json.loads((onnx_enc.onnx_path.parent / "manifest.json").read_text())
    assert manifest["format_version"] == EXPORT_FORMAT_VERSION
    assert manifest["inputs"][:2] == ["input_ids", "attention_mask"]
    assert manifest["fused_operators"].get("Attention", 0) == 6  # MiniLM-L6: one per layer
    mtime = onnx_enc.onnx_path.stat().st_mtime_ns
    assert export_onnx(torch_enc._model, torch_enc._path, cache_dir=cache) == onnx_enc.onnx_path
    assert onnx_enc.onnx_path.stat().st_mtime_ns == mtime
    assert not torch_enc._model.training  # export left the shared model in eval mode


@pytest.mark.realdata
@needs_model
def test_backend_onnx_through_dense_encoder(encoders, monkeypatch):
    from heron.encoders.dense import SentenceTransformerEncoder

    torch_enc, _, cache = encoders
    monkeypatch.setenv("HERON_CACHE", str(cache.parent))  # finds the fixture's export
    enc = SentenceTransformerEncoder(backend="onnx")
    got = enc.encode_queries(TEXTS[:5])
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.max(np.abs(got - torch_enc.encode_queries(TEXTS[:5]))) < 1e-4


def test_pooling_by_hand():
    from heron.encoders.onnx import pool

    tokens = np.array([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]], dtype=np.float32)  # (1, 3, 2)
    mask = np.array([[1, 1, 0]])  # the third token is padding
    np.testing.assert_allclose(pool(tokens, mask, ["mean"]), [[2.0, -1.0]])
    np.testing.assert_allclose(
        pool(tokens, mask, ["mean_sqrt_len_tokens"]),
        [[4.0 / np.sqrt(2), -2.0 / np.sqrt(2)]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(pool(tokens, mask, ["cls"]), [[1.0, 2.0]])
    np.testing.assert_allclose(pool(tokens, mask, ["max"]), [[3.0, 2.0]])
    assert pool(tokens, mask, ["cls", "mean"]).shape == (1, 4)


def test_pooling_config_read_and_unsupported_mode_refused():
    from heron.encoders.onnx import pooling_modes

    class Cfg:
        def __init__(self, cfg):
            self.cfg = cfg

        def get_config_dict(self):
            return self.cfg

    assert pooling_modes(Cfg({"pooling_mode": "mean"})) == ("mean",)
    assert pooling_modes(Cfg({"pooling_mode": ["cls", "max"]})) == ("cls", "max")
    assert pooling_modes(
        Cfg({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False})
    ) == ("mean",)
    with pytest.raises(ValueError, match="backend='torch'"):
        pooling_modes(Cfg({"pooling_mode": "attention"}))
