"""Codec invariants on small seeded data: round trips, asymmetric scores, save/load, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests._after_fixtures import codec_data as data

from heron.codecs import load_codec, parse_spec
from heron.retrieval.topk import topk_rows

SPECS = [
    "fp32",
    "fp16",
    "bf16",
    "fp8",
    "fp8e5m2",
    "int8",
    "int4",
    "bin",
    "bin-ham",
    "bin-plain",
    "rbin2",
    "rbin2-sym",
    "rbin3",
    "pq8",
    "opq8",
    "dpq8",
    "dopq8",
    "pca16+fp8",
    "mrl16+fp16",
    "srp24+int8",
    "pca16+pq4",
]
#: max relative reconstruction error ||x - decode(encode(x))|| / ||x||
ERROR_BOUND = {
    "fp32": 1e-7,
    "fp16": 1e-3,
    "bf16": 1e-2,
    "fp8": 0.08,
    "fp8e5m2": 0.15,
    "int8": 0.02,
    "int4": 0.2,
}


@pytest.fixture(scope="module")
def fitted() -> dict:
    x = data()
    out = {}
    for spec in SPECS:
        c = parse_spec(spec)
        kwargs = {"queries": x[:64]} if spec.startswith(("dpq", "dopq")) else {}
        out[spec] = c.fit(x, **kwargs)
    return out


@pytest.mark.parametrize("spec", SPECS)
def test_roundtrip_and_stable(fitted, spec):
    x = data()
    c = fitted[spec]
    codes = c.encode(x)
    assert codes.ndim == 2 and len(codes) == len(x)
    assert np.array_equal(codes, c.encode(x))  # encoding twice is stable
    xh = c.decode(codes)
    assert xh.shape == x.shape
    err = np.linalg.norm(xh - x, axis=1).mean()
    assert err <= ERROR_BOUND.get(spec, 0.95)
    if spec in ERROR_BOUND or spec.startswith(("pq", "opq", "bin", "rbin")):
        # decode(encode(decode(encode(x)))) is a fixed point for quantisers without a lossy transform
        assert np.mean(c.encode(xh) == codes) > 0.9
    assert c.bytes_per_vector > 0


@pytest.mark.parametrize("spec", [s for s in SPECS if s not in ("bin-ham", "rbin2-sym")])
def test_score_is_decoded_dot(fitted, spec):
    x = data()
    q = data(5, seed=1)
    c = fitted[spec]
    codes = c.encode(x)
    ref = q @ c.decode(codes).T
    if spec.startswith("srp"):  # random projection scores in the projected space (JL estimate)
        ref = (q @ c.transforms[0].W) @ c.codec.decode(codes).T
    np.testing.assert_allclose(c.score(q, codes), ref, atol=2e-4, rtol=1e-4)
    s, r = c.topk(q, codes, 7)
    es, er = topk_rows(ref, 7)
    np.testing.assert_allclose(s, es, atol=2e-4)
    assert np.mean(r == er) > 0.9  # ties aside, the same rows


def test_hamming_scores_are_sign_dot_products(fitted):
    x, q = data(), data(5, seed=1)
    c = fitted["bin-ham"]
    codes, qc = c.encode(x), c.encode(q)
    sq = np.unpackbits(qc, axis=1, bitorder="little")[:, :32] * 2.0 - 1
    sx = np.unpackbits(codes, axis=1, bitorder="little")[:, :32] * 2.0 - 1
    np.testing.assert_array_equal(c.score(q, codes), sq @ sx.T)
    s, r = c.topk(q, codes, 20)
    np.testing.assert_array_equal(s, -np.sort(-(sq @ sx.T), axis=1)[:, :20])


def test_symmetric_rbin_matches_decoded_product_of_planes(fitted):
    c = fitted["rbin2-sym"]
    x, q = data(), data(5, seed=1)
    codes = c.encode(x)
    a = c.alpha.mean(axis=1)
    w = c.width

    def z(cd):
        return sum(
            a[i]
            * (
                np.unpackbits(cd[:, i * w : (i + 1) * w], axis=1, bitorder="little")[:, :32] * 2.0
                - 1
            )
            for i in range(2)
        )

    np.testing.assert_allclose(c.score(q, codes), z(c.encode(q)) @ z(codes).T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", SPECS)
def test_save_load_bit_exact(fitted, spec, tmp_path):
    x = data()
    c = fitted[spec]
    c.save(tmp_path / "c", model="m")
    c2 = load_codec(tmp_path / "c", dim=32, model="m")
    codes = c.encode(x)
    assert np.array_equal(codes, c2.encode(x))
    assert np.array_equal(c.decode(codes), c2.decode(codes))
    _, a1 = c._state()
    _, a2 = c2._state()
    assert all(np.array_equal(a1[k], a2[k]) for k in a1)


def test_load_refuses_other_dim_or_model(fitted, tmp_path):
    c = fitted["int8"]
    c.save(tmp_path / "c", model="m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}
    with pytest.raises(ValueError, match="dimension 32"):
        load_codec(tmp_path / "c", dim=64)
    with pytest.raises(ValueError, match="model"):
        load_codec(tmp_path / "c", model="other")
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}
    with pytest.raises(ValueError, match="dimension"):
        c.encode(np.zeros((2, 64), np.float32))
    manifest = json.loads((tmp_path / "c" / "codec.json").read_text())
    manifest["version"] = 99
    (tmp_path / "c" / "codec.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="version"):
        load_codec(tmp_path / "c")


def test_bad_specs_and_fits():
    with pytest.raises(ValueError, match="valid codecs: .*int8.*pq<M>"):
        parse_spec("int3")
    with pytest.raises(ValueError, match="unknown codec spec"):
        parse_spec("pca+fp8")
    with pytest.raises(TypeError):
        parse_spec(None)
    with pytest.raises(ValueError, match="at least 256"):
        parse_spec("pq4").fit(data(100))
    with pytest.raises(ValueError, match="divide"):
        parse_spec("pq5").fit(data())
    with pytest.raises(ValueError, match="only 32"):
        parse_spec("pca64+fp8").fit(data())
    with pytest.raises(ValueError, match="not fitted"):
        parse_spec("int8").encode(data())


def test_ranges_fitted_on_corpus_not_queries(fitted):
    c = fitted["int8"]
    lo = c.lo.copy()
    c.score(data(3, seed=5) * 10, c.encode(data()))
    assert np.array_equal(lo, c.lo)


def test_query_metric_transform_is_exact_and_helps():
    """dopq: (q Rq) . (x R) = q . x, and the query metric beats Euclidean OPQ on held-out
    queries from a skewed query distribution (the score error it minimises)."""
    from heron.codecs.distill_pq import DistilledPQCodec, query_metric

    rng = np.random.default_rng(7)
    d = 32
    x = data(1500, d, seed=2)
    scale = np.ones(d, np.float32)
    scale[:4] = 6.0  # queries mostly look at four directions
    qs = rng.standard_normal((500, d)).astype(np.float32) * scale
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    A, Ainv = query_metric(qs, 0.3)
    np.testing.assert_allclose(A @ Ainv, np.eye(d), atol=1e-8)
    train, test = qs[:300], qs[300:]
    errs = {}
    for metric in ("euclidean", "query"):
        c = DistilledPQCodec(M=4, opq=True, metric=metric, shrink=0.3, epochs=0)
        c.fit(x, queries=train)
        codes = c.encode(x)
        np.testing.assert_allclose(
            c.score(test[:5], codes), test[:5] @ c.decode(codes).T, atol=1e-4
        )
        errs[metric] = float(np.mean((test @ x.T - c.score(test, codes)) ** 2))
    assert errs["query"] < 0.8 * errs["euclidean"], errs


def test_itq_rotation_equals_the_allocating_loop():
    """ITQ reuses one buffer per fit: the rotation is the one the plain loop finds."""
    from heron.codecs.binary import fit_rotation

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 48)) @ rng.standard_normal((48, 48))
    x = (x - x.mean(axis=0)).astype(np.float32)
    r = np.linalg.qr(np.random.default_rng(0).standard_normal((48, 48)))[0]
    x64 = x.astype(np.float64)
    for _ in range(7):
        u, _, vt = np.linalg.svd(x64.T @ np.where(x64 @ r >= 0, 1.0, -1.0))
        r = u @ vt
    got = fit_rotation(x, rotation="itq", iters=7, seed=0)
    np.testing.assert_allclose(got, r.astype(np.float32), atol=1e-6)
    assert np.array_equal(x @ got >= 0, x @ r.astype(np.float32) >= 0)
