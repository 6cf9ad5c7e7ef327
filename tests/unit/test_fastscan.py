"""The asymmetric sign-code scan through faiss' fast scan (heron.codecs.fastscan): the top-k it
certifies equals the float table scan of every code, ties included, and the queries it cannot
certify go back to that scan."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("numba")

from heron.codecs import _scan, fastscan, parse_spec  # noqa: E402
from heron.codecs.binary import byte_tables  # noqa: E402

N = fastscan.MIN_ROWS + 1_234  # above the size the fast scan starts at; shards of odd sizes


def _data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, d)).astype(np.float32)
    x = centres[rng.integers(0, 32, n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def corpus():
    x = _data(N, 128)
    codec = parse_spec("bin").fit(x[::4])
    return x, codec, codec.encode(x)


def _both(codec, q, codes, k):
    """(table scan of every code, fast scan of resident codes) for the same queries."""
    codec.fast_scan = False
    ref = codec.topk(q, codes, k)
    codec.fast_scan = True
    codec.topk(q[:1], codes, k)  # first sight: no copy yet
    got = codec.topk(q, codes, k)  # resident: the shards answer
    assert isinstance(codec._resident_of[1], fastscan.SignFastScan)
    return ref, got


@pytest.mark.parametrize("k", [1, 10, 300])
@pytest.mark.parametrize("nq", [1, 7])
def test_fast_scan_equals_the_table_scan(corpus, k, nq):
    x, codec, codes = corpus
    q = _data(nq, 128, seed=k + nq) + x[:nq]
    (rs, rr), (gs, gr) = _both(codec, q, codes, k)
    np.testing.assert_array_equal(gr, rr)
    np.testing.assert_allclose(gs, rs, rtol=0, atol=1e-6)


def test_approximate_scores_stay_within_the_certified_bound(corpus):
    """What the certificate rests on: every score faiss' 8-bit tables give is within ``eps`` of
    the exact one (a faiss that rounded its tables otherwise would fail here first)."""
    x, codec, codes = corpus
    fs = fastscan.SignFastScan(codes, shards=3)
    w = np.ascontiguousarray(codec._rot(x[:20] + 0.05) * codec.scale, dtype=np.float32)
    eps = fs.eps(w)
    exact = w @ (np.unpackbits(codes, axis=1, bitorder="little").astype(np.float32) * 2 - 1).T
    for j, (shard, start) in enumerate(zip(fs.shards, fs.starts)):
        dist, lab = shard.search(w, 500)
        err = np.abs(dist - np.take_along_axis(exact, lab + start, axis=1))
        assert (err <= eps[:, None]).all(), (j, float((err - eps[:, None]).max()))
        assert err.max() > 0  # the tables are approximate: the certificate is doing work


def test_queries_that_do_not_certify_fall_back_to_the_full_scan(corpus, monkeypatch):
    x, codec, codes = corpus
    q = x[100:105] + 0.01
    codec.fast_scan = False
    ref = codec.topk(q, codes, 10)
    codec.fast_scan = True
    codec.topk(q, codes, 10)
    codec.topk(q, codes, 10)
    fs = codec._resident_of[1]
    assert isinstance(fs, fastscan.SignFastScan)
    monkeypatch.setattr(fs, "eps", lambda w: np.full(len(w), 1e9, np.float32))
    w = np.ascontiguousarray(codec._rot(q) * codec.scale, dtype=np.float32)
    _, rows, left = fs.topk(
        w, codes, 10, lambda ww: byte_tables(ww, codec.width), _scan.lut_rows_topk
    )
    assert left.tolist() == [0, 1, 2, 3, 4] and (rows == -1).all()
    got = codec.topk(q, codes, 10)
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(got[0], ref[0])


def test_ties_at_the_boundary_keep_the_lower_rows():
    """Codes drawn from 40 patterns: every score is tied hundreds of times. The rows tied with
    the k-th score are certified only when none was left out, so the top-k is the stable one."""
    rng = np.random.default_rng(3)
    x = _data(N, 64, seed=5)
    codec = parse_spec("bin").fit(x)
    pats = codec.encode(x[:40])
    codes = pats[rng.integers(0, 40, N)]
    q = _data(4, 64, seed=6)
    for k in (5, 700):
        (rs, rr), (gs, gr) = _both(codec, q, codes, k)
        np.testing.assert_array_equal(gr, rr)
        np.testing.assert_array_equal(gs, rs)


def test_candidates_cover_small_shards_whole():
    """A shard smaller than the fetch is returned whole and sets no bound."""
    x = _data(100, 64, seed=8)
    codec = parse_spec("bin").fit(x)
    codes = codec.encode(x)
    fs = fastscan.SignFastScan(codes, shards=2)
    w = np.ascontiguousarray(codec._rot(x[:2]) * codec.scale, dtype=np.float32)
    rows, bound = fs.candidates(w, 64)
    assert np.isneginf(bound).all()
    assert sorted(rows[0][rows[0] >= 0].tolist()) == list(range(100))


def test_small_or_wide_codes_keep_the_table_scan():
    assert not fastscan.usable(fastscan.MIN_ROWS - 1, 48)
    assert fastscan.usable(fastscan.MIN_ROWS, 128)
    assert not fastscan.usable(10**6, 136)  # d = 1088: 8-bit table sums overflow 16 bits


def _child_search(codec, q, codes, k, out):
    out.put(codec.topk(q, codes, k)[1].tolist())


def test_a_forked_child_searches_with_its_own_threads(corpus):
    """A child forked after the shards' threads started still searches, with the same rows (a
    fork copies the pool object but not its threads; the child starts a pool of its own)."""
    import multiprocessing as mp

    x, codec, codes = corpus
    q = x[:2] + 0.02
    (_, ref), _ = _both(codec, q, codes, 10)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=_child_search, args=(codec, q, codes, 10, out))
    p.start()
    try:
        got = out.get(timeout=60)
    finally:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    assert got == ref.tolist() and p.exitcode == 0


@pytest.mark.parametrize("k", [10, 300])
def test_residual_binary_planes_scan_as_one_sign_code(corpus, k):
    """rbin2: both planes, weighted per level, are one 2d-bit sign code to the fast scan; its
    hits equal the table scan's."""
    x, _, _ = corpus
    codec = parse_spec("rbin2").fit(x[::4])
    codes = codec.encode(x)
    assert codes.shape[1] == 2 * codec.width
    q = x[200:203] + 0.03
    (rs, rr), (gs, gr) = _both(codec, q, codes, k)
    np.testing.assert_array_equal(gr, rr)
    np.testing.assert_allclose(gs, rs, rtol=0, atol=1e-6)
    # and the scores are the codec's own asymmetric scores
    ref = codec.score(q, codes)
    np.testing.assert_allclose(gs, np.take_along_axis(ref, gr, axis=1), rtol=1e-4, atol=1e-4)


def test_dimensions_that_do_not_fill_the_code_words():
    """d = 100 packs into 128 bits: the fast scan sees zero weights on the 28 padding bits."""
    x = _data(N, 100, seed=11)
    codec = parse_spec("bin").fit(x[::4])
    codes = codec.encode(x)
    assert codes.shape[1] * 8 == 128
    q = x[:3] + 0.05
    (rs, rr), (gs, gr) = _both(codec, q, codes, 20)
    np.testing.assert_array_equal(gr, rr)
    np.testing.assert_allclose(gs, rs, rtol=0, atol=1e-6)
