"""Encoder precision: bfloat16 / int8 / OpenVINO against the exact float32 path, the CPU-feature
fallback, length-bucketed batching, and what a collection records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heron._deps import has
from heron.encoders.base import length_batches
from heron.encoders.precision import (
    ENV_NO_BF16,
    ENV_PRECISION,
    cpu_has_bf16,
    encoder_kwargs,
    resolve_precision,
)

TEXTS = [
    "Vitamin D deficiency is associated with an increased risk of respiratory infections.",
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "Microstructural development of human newborn cerebral white matter assessed in vivo by MRI.",
    "short",
    "Ünïcödé façade — naïve café, 東京",
    "A much longer sentence that keeps going, with several clauses, commas, and a semicolon; "
    "it tests padding across the batches of a length-bucketed encoder.",
    "What is the capital of France?",
    " ".join(f"token{i} lorem ipsum" for i in range(150)),  # truncated at 256 word pieces
]

needs_st = pytest.mark.skipif(not has("sentence_transformers"), reason="needs heron[encoders]")


# ------------------------------------------------------------------ pure functions
def test_length_batches_is_a_permutation_longest_first():
    lengths = [5, 1, 9, 9, 3, 7, 2]
    batches = length_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert flat.tolist() == [2, 3, 5, 0, 4, 6, 1]  # longest first, ties in input order
    # writing each batch back at its indices restores input order exactly
    out = np.empty(len(lengths), dtype=np.int64)
    for idx in batches:
        out[idx] = np.asarray(lengths)[idx]
    assert out.tolist() == lengths
    assert length_batches([], 4) == []
    with pytest.raises(ValueError, match="batch_size"):
        length_batches(lengths, 0)


def test_resolve_precision_auto_follows_the_cpu(monkeypatch):
    import heron.encoders.precision as prec

    monkeypatch.delenv(ENV_PRECISION, raising=False)
    monkeypatch.delenv(ENV_NO_BF16, raising=False)
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert cpu_has_bf16()
    assert resolve_precision("auto", backend="torch") == "bfloat16"
    assert resolve_precision("auto", backend="onnx") == "float32"
    assert resolve_precision("auto", backend="torch", device="cuda") == "float32"
    # the CPU without bfloat16 arithmetic, and the same forced by the environment
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert resolve_precision("auto", backend="torch") == "float32"
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert resolve_precision("auto", backend="torch") == "bfloat16"
    monkeypatch.setenv(ENV_NO_BF16, "1")
    assert not cpu_has_bf16()
    assert resolve_precision("auto", backend="torch") == "float32"
    monkeypatch.delenv(ENV_NO_BF16)
    monkeypatch.setenv(ENV_PRECISION, "float32")
    assert resolve_precision("auto", backend="torch") == "float32"
    monkeypatch.setenv(ENV_PRECISION, "int8")
    assert resolve_precision("auto", backend="onnx") == "int8"
    assert resolve_precision("auto", backend="torch") == "float32"  # int8 is not torch's
    monkeypatch.setenv(ENV_PRECISION, "half")
    with pytest.raises(ValueError, match="half"):
        resolve_precision("auto", backend="torch")


def test_resolve_precision_refuses_bad_values():
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", backend="torch")
    with pytest.raises(ValueError, match="backend='onnx'"):
        resolve_precision("int8", backend="torch")
    with pytest.raises(ValueError, match="backend='torch'"):
        resolve_precision("bfloat16", backend="onnx")
    assert resolve_precision("float32", backend="onnx") == "float32"
    assert encoder_kwargs({}) == {"precision": "float32"}  # made before precision was recorded
    assert encoder_kwargs({"precision": "int8"}) == {"precision": "int8", "backend": "onnx"}


# ------------------------------------------------------------------ the bundled MiniLM
@pytest.fixture(scope="module")
def f32():
    from heron.encoders.dense import SentenceTransformerEncoder

    return SentenceTransformerEncoder(precision="float32", batch_size=4, backend="torch")


@pytest.fixture(scope="module")
def bf16():
    from heron.encoders.dense import SentenceTransformerEncoder

    return SentenceTransformerEncoder(
        precision="bfloat16", batch_size=4, threads=2, backend="torch"
    )


@pytest.mark.realdata
@needs_st
def test_bfloat16_matches_float32(f32, bf16):
    ref = f32.encode_documents(TEXTS)
    got = bf16.encode_documents(TEXTS)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(axis=1)
    assert cos.min() >= 0.999, cos
    assert bf16.precision == "bfloat16" and f32.precision == "float32"
    assert bf16.name == f32.name == "sentence-transformers/all-MiniLM-L6-v2"  # collections open


@pytest.mark.realdata
@needs_st
def test_length_bucketing_restores_input_order(f32):
    """Batched (4 per batch, longest first) equals one text at a time, row for row."""
    batched = f32.encode_documents(TEXTS)
    one_by_one = np.concatenate([f32.encode_documents([t]) for t in TEXTS])
    assert np.max(np.abs(batched - one_by_one)) < 1e-5
    perm = np.random.default_rng(0).permutation(len(TEXTS))
    shuffled = f32.encode_documents([TEXTS[i] for i in perm])
    assert np.max(np.abs(shuffled - batched[perm])) < 1e-5
    assert f32.encode_documents([]).shape == (0, f32.dim)


@pytest.mark.realdata
@needs_st
def test_token_vectors_in_both_precisions(f32, bf16):
    ref = f32.encode_tokens(TEXTS)
    got = bf16.encode_tokens(TEXTS)
    n = f32.count_tokens(TEXTS)
    for t, r, g, k in zip(TEXTS, ref, got, n):
        assert r.shape == g.shape == (min(k, f32.max_seq_length) - 2, f32.dim), t
        assert (r * g).sum(axis=1).min() >= 0.99
    assert f32.encode_tokens([]) == []


@pytest.mark.realdata
@needs_st
def test_fallback_without_bf16_is_the_exact_path(f32, monkeypatch):
    from heron.encoders.dense import SentenceTransformerEncoder

    monkeypatch.delenv(ENV_PRECISION, raising=False)
    monkeypatch.setenv(ENV_NO_BF16, "1")
    enc = SentenceTransformerEncoder(batch_size=4, backend="torch")  # precision="auto"
    assert enc.precision == "float32"
    assert np.array_equal(enc.encode_queries(TEXTS), f32.encode_queries(TEXTS))
    default = SentenceTransformerEncoder(batch_size=4)  # backend="auto" too
    assert default.precision == "float32"
    assert default.backend == ("openvino" if has("openvino") else "torch")
    assert np.max(np.abs(default.encode_queries(TEXTS) - f32.encode_queries(TEXTS))) < 1e-4
    with pytest.raises(ValueError, match="precision"):
        SentenceTransformerEncoder(precision="float16")


@pytest.mark.realdata
@pytest.mark.skipif(
    not (has("onnxruntime") and has("onnx") and has("sentence_transformers")),
    reason="needs heron[onnx,encoders]",
)
def test_onnx_int8_is_close_and_cached_apart(f32, tmp_path, monkeypatch):
    from heron.encoders.dense import SentenceTransformerEncoder

    monkeypatch.setenv("HERON_CACHE", str(tmp_path))
    enc = SentenceTransformerEncoder(backend="onnx", precision="int8", batch_size=4, threads=2)
    manifest = json.loads((enc._onnx.onnx_path.parent / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["probe_min_cosine"] >= 0.99
    cos = (enc.encode_documents(TEXTS) * f32.encode_documents(TEXTS)).sum(axis=1)
    assert cos.min() >= 0.97, cos
    # the float32 export lives in its own folder, untouched by the int8 one
    f = SentenceTransformerEncoder(backend="onnx", precision="float32")
    assert f._onnx.onnx_path.parent != enc._onnx.onnx_path.parent
    with pytest.raises(ValueError, match="float32 model"):
        from heron.encoders.onnx import export_onnx

        bf = SentenceTransformerEncoder(precision="bfloat16", backend="torch")
        export_onnx(bf._model, bf._path, cache_dir=tmp_path / "x")


@pytest.mark.realdata
@pytest.mark.skipif(
    not (has("openvino") and has("sentence_transformers")), reason="needs heron[openvino]"
)
@pytest.mark.parametrize("precision,least", [("float32", 0.99999), ("bfloat16", 0.999)])
def test_openvino_matches_float32(f32, precision, least):
    from heron.encoders.dense import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(
        backend="openvino", precision=precision, batch_size=4, threads=2
    )
    got = enc.encode_documents(TEXTS)
    assert got.shape == (len(TEXTS), f32.dim) and enc.precision == precision
    cos = (got * f32.encode_documents(TEXTS)).sum(axis=1)
    assert cos.min() >= least, cos
    # the converted model is cached as IR; a second encoder reads it instead of converting
    mtime = enc._runtime.ir_path.stat().st_mtime_ns
    again = SentenceTransformerEncoder(backend="openvino", precision=precision, batch_size=4)
    assert again._runtime.ir_path == enc._runtime.ir_path
    assert again._runtime.ir_path.stat().st_mtime_ns == mtime
    assert np.max(np.abs(again.encode_documents(TEXTS) - got)) < 1e-5
    # token vectors follow the precision too (they run in torch)
    toks = enc.encode_tokens(TEXTS[:2])
    assert [t.shape for t in toks] == [t.shape for t in f32.encode_tokens(TEXTS[:2])]


@pytest.mark.realdata
@needs_st
def test_collection_records_precision_and_reloads_at_it(bf16, tmp_path, caplog):
    from heron.collection import Collection
    from heron.collection.manifest import MANIFEST

    with Collection.create(tmp_path / "c", encoder=bf16) as coll:
        assert coll.fields["dense"]["precision"] == "bfloat16"
    with Collection.open(tmp_path / "c") as coll:
        assert coll.encoder.precision == "bfloat16"
    # a collection made before precision was recorded holds float32 vectors
    path = tmp_path / "c" / MANIFEST
    manifest = json.loads(path.read_text())
    del manifest["fields"]["dense"]["precision"]
    path.write_text(json.dumps(manifest))
    with Collection.open(tmp_path / "c") as coll:
        assert coll.encoder.precision == "float32"
    with caplog.at_level("WARNING"), Collection.open(tmp_path / "c", encoder=bf16):
        pass
    assert "differs from the collection's 'float32'" in caplog.text


@pytest.mark.realdata
@pytest.mark.skipif(
    not (has("transformers") and has("cognition") and has("scipy")),
    reason="needs heron[sparse,encoders]",
)
def test_splade_bfloat16_close_to_float32():
    from heron.encoders.splade import SpladeEncoder

    ref = SpladeEncoder(precision="float32").encode_documents(TEXTS).toarray()
    got = SpladeEncoder(precision="bfloat16").encode_documents(TEXTS).toarray()
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    assert cos.min() >= 0.99, cos
