"""Multi-vector late interaction: ragged storage, exact MaxSim, MUVERA, pooling, token codes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.multivector.maxsim import (
    MaxSim,
    exact_maxsim_search,
    maxsim,
    maxsim_batch,
    maxsim_rerank_rows,
)
from heron.multivector.muvera import (
    FDEEncoder,
    MuveraRetriever,
    encoder_from_spec,
    parse_spec,
    piece_weights,
)
from heron.multivector.pooling import PooledRetriever, pool_tokens
from heron.multivector.ragged import RaggedArray, RaggedWriter
from heron.multivector.tokencodes import CodedTokens, TokenCodec, prune_tokens, salience_keep_mask
from heron.pipeline import Queries
from heron.results import Results


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def corpus(seed: int = 0, n: int = 30, d: int = 16, max_len: int = 20, empty: bool = True):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0 if empty else 1, max_len, size=n)
    return [
        unit(rng.normal(size=(int(m), d))) if m else np.zeros((0, d), np.float32) for m in lens
    ], rng


# ---------------------------------------------------------------------------------- ragged
def test_ragged_save_open_delete_compact(tmp_path):
    docs, _ = corpus()
    r = RaggedArray.from_list(docs, keys=np.arange(100, 130))
    assert r.lengths().tolist() == [len(d) for d in docs]
    r.save(tmp_path / "t")
    o = RaggedArray.open(tmp_path / "t")
    assert isinstance(o.values, np.memmap)
    assert np.array_equal(o.offsets, r.offsets) and np.array_equal(o.keys, r.keys)
    for i in range(len(docs)):
        np.testing.assert_allclose(o[i], docs[i], atol=1e-3)
    assert o.delete([105, 999, 107]) == 2
    again = RaggedArray.open(tmp_path / "t")
    assert again.deleted.sum() == 2 and again.rows_of([105, 106]).tolist() == [-1, 6]
    c = again.compact()
    assert len(c) == 28 and 105 not in c.keys and 107 not in c.keys
    np.testing.assert_allclose(
        RaggedArray.open(tmp_path / "t")[c.rows_of([110])[0]], docs[10], atol=1e-3
    )


def test_ragged_writer_streams_and_checks_dim(tmp_path):
    docs, _ = corpus(1)
    w = RaggedWriter(tmp_path / "w", dim=16)
    w.append(docs[:10])
    w.append(docs[10:])
    r = w.close()
    assert len(r) == len(docs) and r.values.dtype == np.float16
    with pytest.raises(ValueError, match="mismatched token dimension"):
        RaggedWriter(tmp_path / "x", dim=8).append([np.zeros((3, 16))])
    with pytest.raises(ValueError, match="mismatched token dimension"):
        RaggedArray.from_list([np.zeros((2, 4)), np.zeros((2, 5))], dim=4)


def test_ragged_open_checks_version(tmp_path):
    RaggedArray.from_list([np.ones((1, 2))]).save(tmp_path / "r")
    m = tmp_path / "r" / "manifest.json"
    m.write_text(m.read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(ValueError, match="version 99"):
        RaggedArray.open(tmp_path / "r")


# ---------------------------------------------------------------------------------- MaxSim
def test_maxsim_hand_checkable():
    q = np.array([[1, 0], [0, 1]], np.float32)
    d = np.array([[1, 0], [0.6, 0.8]], np.float32)
    assert maxsim(q, d) == pytest.approx(1.0 + 0.8)


@given(seed=st.integers(0, 10_000), block=st.integers(1, 64))
@settings(max_examples=25, deadline=None)
def test_maxsim_equals_naive_loop(seed, block):
    docs, rng = corpus(seed, n=12, d=8, max_len=9)
    r = RaggedArray.from_list(docs, dtype="float32")
    qs = [unit(rng.normal(size=(int(m), 8))) for m in rng.integers(1, 6, size=4)]
    naive = np.array(
        [
            [sum(max(float(qi @ dj) for dj in d) for qi in q) if len(d) else -np.inf for d in docs]
            for q in qs
        ]
    )
    got = maxsim_batch(qs, r.values, r.offsets, block_tokens=block)
    np.testing.assert_allclose(got, naive, rtol=1e-5, atol=1e-5)
    rows = np.array([3, -1, 0, 11])
    np.testing.assert_allclose(
        maxsim_rerank_rows(qs[0], r, rows, block_tokens=block),
        np.where(rows >= 0, naive[0][rows], -np.inf),
        rtol=1e-5,
        atol=1e-5,
    )
    s, top = exact_maxsim_search(qs, r, 5)
    for i in range(len(qs)):
        ok = top[i] >= 0
        np.testing.assert_allclose(
            s[i][ok], np.sort(naive[i][np.isfinite(naive[i])])[::-1][: ok.sum()], rtol=1e-5
        )


def test_fused_kernel_converts_every_float16_exactly():
    # one 1-d token per document, query [[1]]: each MaxSim is the converted value itself
    bits = np.arange(1 << 16, dtype=np.uint16)
    vals = bits.view(np.float16)
    vals = vals[np.isfinite(vals)].reshape(-1, 1)
    offs = np.arange(len(vals) + 1, dtype=np.int64)
    got = maxsim_batch([np.ones((1, 1), np.float32)], vals, offs, method="numba")[0]
    want = vals[:, 0].astype(np.float32)
    assert np.array_equal(got, want)  # exact, subnormals included (-0 sums to +0)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_fused_kernel_equals_numpy_maxsim(dtype):
    rng = np.random.default_rng(11)
    docs = [
        rng.normal(scale=0.05, size=(int(m), 384)).astype(np.float32)
        for m in rng.integers(0, 40, size=64)
    ]
    docs[3][:, :10] = 3e-6  # float16 subnormals
    r = RaggedArray.from_list(docs, dtype=dtype)
    qs = [unit(rng.normal(size=(m, 384))) for m in (21, 0, 5, 1)]
    fused = maxsim_batch(qs, r.values, r.offsets, method="numba")
    ref = maxsim_batch(qs, r.values, r.offsets, method="numpy")
    assert np.array_equal(np.isinf(fused), np.isinf(ref)) and np.isinf(fused[1]).all()
    fin = np.isfinite(ref)
    np.testing.assert_allclose(fused[fin], ref[fin], rtol=1e-5, atol=1e-5)
    rows = np.array([5, -1, 63, 0, 5, 3])
    for q in qs:
        np.testing.assert_allclose(
            maxsim_rerank_rows(q, r, rows, method="numba"),
            maxsim_rerank_rows(q, r, rows, method="numpy"),
            rtol=1e-5,
            atol=1e-5,
        )
    s1, t1 = exact_maxsim_search(qs, r, 7, method="numba")
    s2, t2 = exact_maxsim_search(qs, r, 7, method="numpy")
    assert np.array_equal(t1, t2)
    with pytest.raises(ValueError, match="method must be one of"):
        maxsim_batch(qs, r.values, r.offsets, method="blas")


def test_maxsim_stage_rerank_and_retrieve():
    docs, rng = corpus(2, empty=False)
    r = RaggedArray.from_list(docs, keys=np.arange(50, 80), dtype="float32")
    qs = [docs[7][:3] + 0.01, docs[20][:2]]
    q = Queries(["a", "b"])
    q.put("tokens", qs)
    full = MaxSim(docs=r).with_depth(5).transform(q)
    assert full.keys[0, 0] == 57 and full.keys[1, 0] == 70
    cand = Results(np.array([[51, 57, 99], [70, 52, -1]]), np.zeros((2, 3), np.float32))
    rr = (MaxSim(docs=r) % 2).compile().transform(q, cand)
    assert rr.keys.tolist()[0][0] == 57 and rr.keys.shape == (2, 2)
    assert 99 not in rr.keys[0][: int(np.isfinite(rr.scores[0]).sum())]
    with pytest.raises(ValueError, match="token dimension"):
        q2 = Queries(["x"])
        q2.put("tokens", [np.ones((2, 3), np.float32)])
        MaxSim(docs=r).transform(q2)


# ---------------------------------------------------------------------------------- MUVERA
def fit_residual(est: np.ndarray, ch: np.ndarray) -> float:
    """Relative error of the best affine fit of ``est`` to the Chamfer scores (scale-free)."""
    a = np.vstack([est.ravel(), np.ones(est.size)]).T
    coef, *_ = np.linalg.lstsq(a, ch.ravel(), rcond=None)
    return float(np.linalg.norm(a @ coef - ch.ravel()) / np.linalg.norm(ch.ravel() - ch.mean()))


@given(seed=st.integers(0, 10_000))
@settings(max_examples=8, deadline=None)
def test_fde_approximates_chamfer_better_with_more_reps(seed):
    rng = np.random.default_rng(seed)
    d = 16
    docs = [unit(rng.normal(size=(int(m), d))) for m in rng.integers(3, 12, size=40)]
    qs = [unit(docs[i][:3] + 0.2 * rng.normal(size=(3, d))) for i in range(8)]
    ch = np.array([[maxsim(q, x) for x in docs] for q in qs])
    errs, devs = [], []
    ref = None
    for r in (1, 8, 64):
        enc = FDEEncoder(dim=d, k_sim=3, d_proj=d, r_reps=r, seed=seed)
        est = enc.encode_queries(qs) @ enc.encode_documents(docs).T / r
        errs.append(fit_residual(est, ch))
        if ref is None:
            big = FDEEncoder(dim=d, k_sim=3, d_proj=d, r_reps=512, seed=seed + 1)
            ref = big.encode_queries(qs) @ big.encode_documents(docs).T / 512
        devs.append(float(np.abs(est - ref).mean()))
    assert errs[2] < errs[0] and errs[2] < 0.75
    assert devs[2] < devs[1] < devs[0]


def test_fde_blocks_are_sums_and_averages_and_fill():
    rng = np.random.default_rng(3)
    x = unit(rng.normal(size=(5, 8)))
    enc = FDEEncoder(dim=8, k_sim=2, d_proj=8, r_reps=1, seed=3)
    codes = ((x @ enc.hyperplanes[0]) > 0) @ np.array([1, 2])
    fd = enc.encode_documents([x])[0].reshape(4, 8)
    fq = enc.encode_queries([x])[0].reshape(4, 8)
    for k in range(4):
        m = codes == k
        if m.any():
            np.testing.assert_allclose(fd[k], x[m].mean(0), atol=1e-6)
            np.testing.assert_allclose(fq[k], x[m].sum(0), atol=1e-6)
        else:
            ham = [bin(int(c) ^ k).count("1") for c in codes]
            np.testing.assert_allclose(fd[k], x[int(np.argmin(ham))], atol=1e-6)
            assert not fq[k].any()
    nofill = (
        FDEEncoder(dim=8, k_sim=2, d_proj=8, r_reps=1, seed=3, fill_empty=False)
        .encode_documents([x])[0]
        .reshape(4, 8)
    )
    assert all(not nofill[k].any() for k in range(4) if not (codes == k).any())


def test_fde_centre_moves_partitions_not_values(tmp_path):
    rng = np.random.default_rng(5)
    x = unit(rng.normal(size=(40, 8)) + 3.0)  # anisotropic: one shared direction
    plain = FDEEncoder(dim=8, k_sim=3, d_proj=8, r_reps=1, seed=1)
    cen = FDEEncoder(dim=8, k_sim=3, d_proj=8, r_reps=1, seed=1).fit_centre(x)
    np.testing.assert_allclose(cen.centre, x.mean(0), atol=1e-6)
    pow2 = np.array([1, 2, 4])
    codes_c = ((x - cen.centre) @ cen.hyperplanes[0] > 0) @ pow2
    codes_p = (x @ plain.hyperplanes[0] > 0) @ pow2
    assert len(np.unique(codes_c)) > len(np.unique(codes_p))  # centring spreads the tokens
    fq = cen.encode_queries([x])[0].reshape(8, 8)
    for k in range(8):
        np.testing.assert_allclose(fq[k], x[codes_c == k].sum(0), atol=1e-5)  # raw-token sums
    cen.save(tmp_path / "c.json")
    back = FDEEncoder.load(tmp_path / "c.json")
    np.testing.assert_array_equal(back.centre, cen.centre)
    np.testing.assert_array_equal(back.encode_documents([x]), cen.encode_documents([x]))
    with pytest.raises(ValueError, match="centre must be"):
        FDEEncoder(dim=8, centre=np.zeros(7), d_proj=8)


@pytest.mark.parametrize("kw", [{"d_proj": 4}, {"d_proj": 16, "k_sim": 2}, {"d_final": 40}])
def test_fde_numba_kernel_equals_numpy_loop(kw):
    docs, rng = corpus(seed=11, n=25, d=16, max_len=30)
    n_tok = sum(len(x) for x in docs)
    w = rng.random(n_tok).astype(np.float32)
    w[rng.random(n_tok) < 0.3] = 0.0
    enc = FDEEncoder(
        dim=16,
        k_sim=kw.get("k_sim", 3),
        r_reps=5,
        seed=2,
        **{k: v for k, v in kw.items() if k != "k_sim"},
    ).fit_centre(np.concatenate(docs))
    for weights in (None, w):
        for fn in (enc.encode_documents, enc.encode_queries):
            a = fn(docs, weights=weights, method="numpy")
            b = fn(docs, weights=weights, method="numba")
            np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="method"):
        enc.encode_documents(docs, method="gpu")


def test_fde_weights_drop_tokens_and_weighted_average():
    rng = np.random.default_rng(4)
    kept = unit(rng.normal(size=(6, 8)))
    extra = unit(rng.normal(size=(5, 8)))
    doc = np.concatenate([kept, extra])
    enc = FDEEncoder(dim=8, k_sim=2, d_proj=8, r_reps=3, seed=4)
    w0 = np.r_[np.ones(6), np.zeros(5)].astype(np.float32)
    # weight-0 tokens are left out entirely: same FDE as the document of kept tokens only
    np.testing.assert_allclose(
        enc.encode_documents([doc], weights=w0), enc.encode_documents([kept]), atol=1e-6
    )
    np.testing.assert_allclose(
        enc.encode_queries([doc], weights=w0), enc.encode_queries([kept]), atol=1e-6
    )
    # weights of 1 are the paper's plain average / sum; all-zero weights fall back to uniform
    ones = np.ones(11, np.float32)
    for w in (ones, np.zeros(11, np.float32)):
        np.testing.assert_allclose(
            enc.encode_documents([doc], weights=w), enc.encode_documents([doc]), atol=1e-6
        )
    # a weighted block is the weighted mean of its tokens
    w = rng.random(11).astype(np.float32) + 0.1
    one = FDEEncoder(dim=8, k_sim=0, d_proj=8, r_reps=1)
    np.testing.assert_allclose(
        one.encode_documents([doc], weights=w)[0], (w[:, None] * doc).sum(0) / w.sum(), atol=1e-6
    )
    with pytest.raises(ValueError, match="one entry per token"):
        enc.encode_documents([doc], weights=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        enc.encode_documents([doc], weights=-ones)


def test_piece_weights_common_pieces_and_idf():
    # piece 7 is in all 4 documents, 1000 + i in document i only
    ids = np.array([7, 1000, 7, 1001, 7, 1002, 1002, 7, 1003])
    lens = np.array([2, 2, 3, 2])
    common = piece_weights(ids, lens, scheme="common-pieces", common_df=0.5, vocab_size=1100)
    assert common.shape == (1100,) and common[7] == 0 and common[1000:1004].all()
    assert common[5] == 1  # never seen: not common
    idf = piece_weights(ids, lens, scheme="idf")
    assert idf[7] == pytest.approx(0.0) and idf[1002] == pytest.approx(np.log(5 / 2))
    with pytest.raises(ValueError, match="scheme"):
        piece_weights(ids, lens, scheme="bm25")
    with pytest.raises(ValueError, match="one id per token"):
        piece_weights(ids, np.array([1]))


def test_fde_spec_flags_build_the_encoder():
    assert parse_spec("4,8,80,c") == {
        "k_sim": 4,
        "d_proj": 8,
        "r_reps": 80,
        "d_final": None,
        "fill_empty": True,
        "centre": True,
        "weights": None,
        "weight_queries": False,
    }
    cfg = parse_spec("5,16,20,2560,e,wq")
    assert cfg["d_final"] == 2560 and not cfg["fill_empty"] and cfg["weights"] == "idf"
    assert cfg["weight_queries"] and not cfg["centre"]
    for bad in ("4,8", "4,8,80,x", "c,4,8,80", "4,8,80,s,w"):
        with pytest.raises(ValueError, match="MUVERA spec"):
            parse_spec(bad)
    docs, _ = corpus(seed=2, n=6, d=8, max_len=6, empty=False)
    r = RaggedArray.from_list(docs, dtype="float32")
    ids = np.arange(r.values.shape[0]) % 3  # piece 0, 1, 2 in (almost) every document
    enc, dw, table = encoder_from_spec("3,8,4,c,s", r, doc_token_ids=ids)
    assert enc.centre is not None and enc.k_sim == 3 and enc.dimension == 4 * 8 * 8
    assert dw.shape == ids.shape and np.array_equal(dw, table[ids])
    with pytest.raises(ValueError, match="doc_token_ids"):
        encoder_from_spec("3,8,4,w", r)


def test_fde_dimensions_projection_and_guards():
    enc = FDEEncoder(dim=32, k_sim=3, d_proj=8, r_reps=4, d_final=50)
    assert enc.inner_dimension == 4 * 8 * 8 and enc.dimension == 50
    out = enc.encode_documents([np.ones((3, 32), np.float32), np.zeros((0, 32), np.float32)])
    assert out.shape == (2, 50) and not out[1].any()
    with pytest.raises(ValueError, match=r"explodes.*1310720.*bytes per document"):
        FDEEncoder(dim=128, k_sim=10, d_proj=32, r_reps=40)
    with pytest.raises(ValueError, match="d_proj"):
        FDEEncoder(dim=8, d_proj=16)
    with pytest.raises(ValueError, match="does not match"):
        enc.encode_queries([np.ones((2, 31), np.float32)])


class NumpyFlat:
    """Exact inner-product scan in numpy (keeps the test free of numba compile time)."""

    def __init__(self, m: np.ndarray) -> None:
        self.m = m

    def search(self, q: np.ndarray, k: int):
        from heron.retrieval.topk import exact_search

        return exact_search(q, self.m, k, method="numpy")


def test_muvera_retriever_finds_exact_top(tmp_path):
    docs, rng = corpus(4, n=60, d=32, max_len=15, empty=True)
    r = RaggedArray.from_list(docs, dtype="float32")
    enc = FDEEncoder(dim=32, k_sim=3, d_proj=16, r_reps=16)
    fdes = enc.encode_documents(r)
    qs = [
        unit(docs[i][:3] + 0.05 * rng.normal(size=(min(3, len(docs[i])), 32)))
        for i in range(60)
        if len(docs[i]) >= 3
    ][:8]
    q = Queries([str(i) for i in range(len(qs))])
    q.put("tokens", qs)
    _, exact = exact_maxsim_search(qs, r, 5)
    got = (
        MuveraRetriever(encoder=enc, doc_fdes=fdes, docs=r, candidates=30, index=NumpyFlat(fdes))
        .with_depth(5)
        .transform(q)
    )
    assert (got.keys[:, 0] == exact[:, 0]).mean() >= 0.75
    enc.save(tmp_path / "fde.json")
    np.testing.assert_allclose(FDEEncoder.load(tmp_path / "fde.json").encode_documents(r), fdes)


# ---------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("method", ["window", "kmeans", "mean"])
def test_pooling_caps_vectors_and_keeps_rows(method):
    docs, rng = corpus(5, n=25, d=16, max_len=30)
    r = RaggedArray.from_list(docs, dtype="float32")
    p = pool_tokens(r, method=method, n_vectors=4)
    assert len(p) == len(r) and (p.lengths() <= (1 if method == "mean" else 4)).all()
    assert ((p.lengths() == 0) == (r.lengths() == 0)).all()
    if method == "mean":
        i = int(np.argmax(r.lengths()))
        np.testing.assert_allclose(p[i][0], unit(r[i].mean(0, keepdims=True))[0], atol=1e-5)
    qs = [docs[i][:2] for i in range(25) if len(docs[i]) >= 2][:3]
    q = Queries(["a"] * len(qs))
    q.put("tokens", qs)
    res = PooledRetriever(pooled=p, docs=r, candidates=10).with_depth(3).transform(q)
    assert res.keys.shape == (len(qs), 3)


def test_window_pooling_is_window_means():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    r = RaggedArray.from_list([x], dtype="float32")
    p = pool_tokens(r, method="window", n_vectors=3, normalize=False)
    np.testing.assert_allclose(p[0], [[1, 2], [5, 6], [9, 10]])


# ---------------------------------------------------------------------------------- token codes
@pytest.mark.parametrize(
    "kw,nbytes,max_err",
    [
        ({}, 1, 0.95),
        ({"residual_bits": 1}, 3, 0.6),
        ({"residual_bits": 2}, 5, 0.4),
        ({"residual_bits": 8}, 17, 0.05),
        ({"residual_pq": 8}, 9, 0.1),
    ],
)
def test_codes_round_trip_and_lut_maxsim(tmp_path, kw, nbytes, max_err):
    docs, rng = corpus(6, n=40, d=16, max_len=25)
    r = RaggedArray.from_list(docs, dtype="float32")
    codec = TokenCodec(n_centroids=32, seed=1, **kw).fit(r)
    assert codec.bytes_per_token == nbytes
    ct = CodedTokens.encode(codec, r)
    dec = codec.decode(ct.codes, ct.residuals)
    codes2, _ = codec.encode(dec)
    assert (codes2 == ct.codes).mean() > 0.97  # encode -> decode -> encode is stable
    assert np.linalg.norm(dec - r.values, axis=1).mean() < max_err
    qs = [unit(rng.normal(size=(3, 16))) for _ in range(4)]
    np.testing.assert_allclose(
        ct.maxsim_batch(qs), maxsim_batch(qs, dec, r.offsets), rtol=1e-4, atol=1e-4
    )
    ct.save(tmp_path / "c")
    back = CodedTokens.open(tmp_path / "c")
    np.testing.assert_array_equal(back.codes, ct.codes)
    np.testing.assert_allclose(back.codec.decode(back.codes, back.residuals), dec)
    rows = np.array([2, -1, 5])
    np.testing.assert_allclose(back.maxsim_rows(qs[0], rows), ct.maxsim_rows(qs[0], rows))


def test_codec_errors():
    with pytest.raises(ValueError, match="1..256"):
        TokenCodec(n_centroids=300)
    with pytest.raises(ValueError, match="not fitted"):
        TokenCodec().encode(np.ones((2, 4)))
    c = TokenCodec(n_centroids=4).fit(unit(np.random.default_rng(0).normal(size=(50, 8))))
    with pytest.raises(ValueError, match="mismatched token dimension"):
        c.encode(np.ones((2, 5)))


def test_salience_pruning_keeps_fraction_and_one_token():
    docs, _ = corpus(7, n=30, d=16, max_len=20)
    r = RaggedArray.from_list(docs, dtype="float32")
    codec = TokenCodec(n_centroids=16).fit(r)
    codes, _ = codec.encode(r.values)
    keep = salience_keep_mask(r, 0.5, codes=codes)
    pr = prune_tokens(r, keep)
    lens = r.lengths()
    assert (pr.lengths() == np.where(lens > 0, np.maximum(1, np.ceil(lens * 0.5)), 0)).all()
    # kept tokens are the rarest centroids of each document
    df = np.bincount(
        np.unique(np.repeat(np.arange(len(r)), lens) * 256 + codes) % 256, minlength=256
    )
    i = int(np.argmax(lens))
    s = slice(r.offsets[i], r.offsets[i + 1])
    assert df[codes[s][keep[s]]].max() <= df[codes[s][~keep[s]]].min()
    with pytest.raises(ValueError, match="fraction"):
        salience_keep_mask(r, 1.0, codes=codes)
    red = salience_keep_mask(r, 0.5, salience="redundancy")
    assert red.sum() == keep.sum()


def test_redundancy_pruning_drops_near_duplicates():
    x = unit(np.array([[1, 0, 0], [1, 0.01, 0], [0, 1, 0], [0, 0, 1]], np.float32))
    keep = salience_keep_mask(
        RaggedArray.from_list([x], dtype="float32"), 0.25, salience="redundancy"
    )
    assert keep.tolist().count(False) == 1 and not (keep[0] and keep[1])


def test_token_idf_pruning_drops_common_word_pieces():
    # word-piece 7 ("the") is in every document, 1000 + i only in document i
    ids, vecs = [], []
    for i in range(6):
        ids += [7, 1000 + i, 7, 2000 + i % 2]
        vecs.append(unit(np.random.default_rng(i).normal(size=(4, 8))))
    r = RaggedArray.from_list(vecs, dtype="float32")
    keep = salience_keep_mask(r, 0.5, salience="token-idf", token_ids=np.array(ids))
    assert keep.reshape(6, 4).tolist() == [[False, True, False, True]] * 6
    with pytest.raises(ValueError, match="token_ids"):
        salience_keep_mask(r, 0.5, salience="token-idf")
    # common-pieces: 7 (in every document, > 60 %) goes first, the rest at random
    common = salience_keep_mask(
        r, 0.25, salience="common-pieces", token_ids=np.array(ids), common_df=0.6
    )
    assert common.reshape(6, 4).sum(axis=1).tolist() == [3] * 6
    assert not common.reshape(6, 4)[:, [0, 2]].all(axis=1).any()
    with pytest.raises(ValueError, match="common_df"):
        salience_keep_mask(r, 0.5, salience="common-pieces", token_ids=np.array(ids), common_df=1.5)
