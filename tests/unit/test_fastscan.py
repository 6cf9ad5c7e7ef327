"""The asymmetric sign-code fast scans (heron.codecs.fastscan): heron's own AVX-512 kernel and
faiss' fast scan. The top-k either certifies equals the float table scan of every code, ties
included, and the queries it cannot certify go back to that scan."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("numba")

from heron._numba_ext import lut16_available  # noqa: E402
from heron.codecs import _scan, fastscan, parse_spec  # noqa: E402
from heron.codecs.binary import byte_tables  # noqa: E402

N = fastscan.MIN_ROWS + 1_234  # above the size the fast scan starts at; shards of odd sizes

HERON = pytest.param(
    "heron",
    marks=pytest.mark.skipif(not lut16_available(), reason="no AVX-512 VBMI for heron's kernel"),
)
CLASSES = {"heron": fastscan.SignLutScan, "faiss": fastscan.SignFastScan}


@pytest.fixture(params=[HERON, "faiss"])
def kind(request, monkeypatch):
    """Each fast scan in turn: heron's own (where the CPU has VBMI), then faiss'."""
    monkeypatch.setattr(fastscan, "engine", lambda: request.param)
    return request.param


def _scanner(kind: str, codes: np.ndarray):
    return (
        fastscan.SignLutScan(codes) if kind == "heron" else fastscan.SignFastScan(codes, shards=3)
    )


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
    codec._resident_of = None  # a fresh copy, by the engine under test
    codec.topk(q[:1], codes, k)  # first sight: no copy yet
    got = codec.topk(q, codes, k)  # resident: the fast scan answers
    assert isinstance(codec._resident_of[1], CLASSES[fastscan.engine()])
    return ref, got


@pytest.mark.parametrize("k", [1, 10, 300])
@pytest.mark.parametrize("nq", [1, 7])
def test_fast_scan_equals_the_table_scan(corpus, kind, k, nq):
    x, codec, codes = corpus
    q = _data(nq, 128, seed=k + nq) + x[:nq]
    (rs, rr), (gs, gr) = _both(codec, q, codes, k)
    np.testing.assert_array_equal(gr, rr)
    np.testing.assert_allclose(gs, rs, rtol=0, atol=1e-6)


def test_approximate_scores_stay_within_the_certified_bound(corpus):
    """What the certificate rests on: every score faiss' 8-bit tables give is within ``eps`` of
    the exact one (a faiss that rounded its tables otherwise would fail here first). heron's own
    tables: ``test_own_tables_stay_within_the_certified_bound``."""
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


def test_queries_that_do_not_certify_fall_back_to_the_full_scan(corpus, kind, monkeypatch):
    x, codec, codes = corpus
    q = x[100:105] + 0.01
    codec.fast_scan = False
    ref = codec.topk(q, codes, 10)
    codec.fast_scan = True
    codec._resident_of = None
    codec.topk(q, codes, 10)
    codec.topk(q, codes, 10)
    fs = codec._resident_of[1]
    assert isinstance(fs, CLASSES[kind])
    monkeypatch.setattr(fs, "eps_of", lambda prep, own=fs.eps_of: np.full_like(own(prep), 1e9))
    w = np.ascontiguousarray(codec._rot(q) * codec.scale, dtype=np.float32)
    _, rows, left = fs.topk(w, codes, 10)
    assert left.tolist() == [0, 1, 2, 3, 4] and (rows == -1).all()
    got = codec.topk(q, codes, 10)
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(got[0], ref[0])


def test_ties_at_the_boundary_keep_the_lower_rows(kind):
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


def test_candidates_cover_small_shards_whole(kind):
    """A shard (row chunk) smaller than the fetch is returned whole and sets no bound."""
    x = _data(100, 64, seed=8)
    codec = parse_spec("bin").fit(x)
    codes = codec.encode(x)
    fs = _scanner(kind, codes)
    w = np.ascontiguousarray(codec._rot(x[:2]) * codec.scale, dtype=np.float32)
    rows, bound = fs.candidates(w, 128)
    assert np.isneginf(bound).all()
    assert sorted(rows[0][rows[0] >= 0].tolist()) == list(range(100))


def test_small_or_wide_codes_keep_the_table_scan():
    assert not fastscan.usable(fastscan.MIN_ROWS - 1, 48)
    assert fastscan.usable(fastscan.MIN_ROWS, 128)
    assert not fastscan.usable(10**6, 136)  # d = 1088: 8-bit table sums overflow 16 bits
    assert fastscan.usable(10**6, 128, "heron") and not fastscan.usable(10**6, 136, "heron")
    assert not fastscan.usable(fastscan.MIN_ROWS - 1, 48, "heron")
    assert not fastscan.usable(10**6, 48, None)


def _child_search(codec, q, codes, k, out):
    out.put(codec.topk(q, codes, k)[1].tolist())


def test_a_forked_child_searches_with_its_own_threads(corpus, kind):
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
def test_residual_binary_planes_scan_as_one_sign_code(corpus, kind, k):
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


def test_dimensions_that_do_not_fill_the_code_words(kind):
    """d = 100 packs into 128 bits: the fast scan sees zero weights on the 28 padding bits."""
    x = _data(N, 100, seed=11)
    codec = parse_spec("bin").fit(x[::4])
    codes = codec.encode(x)
    assert codes.shape[1] * 8 == 128
    q = x[:3] + 0.05
    (rs, rr), (gs, gr) = _both(codec, q, codes, 20)
    np.testing.assert_array_equal(gr, rr)
    np.testing.assert_allclose(gs, rs, rtol=0, atol=1e-6)


needs_vbmi = pytest.mark.skipif(not lut16_available(), reason="no AVX-512 VBMI for heron's kernel")


def _table_sums(luts: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(nq, n)`` int64: the kernel's sums computed in numpy from the same 8-bit tables."""
    t = _byte_nibble_tables(luts, codes.shape[1]).astype(np.int64)
    p = np.arange(codes.shape[1])
    lo, hi = codes & 15, codes >> 4
    return np.stack([tq[p, 0, lo].sum(1) + tq[p, 1, hi].sum(1) for tq in t])


def _byte_nibble_tables(luts: np.ndarray, width: int) -> np.ndarray:
    """``(nq, width, 2, 16)``: the low- and high-nibble tables of each code byte, read from the
    kernel's layout (per 4-byte word: the four low-nibble tables, then the four high ones); the
    tables of padding bytes are checked to be zero."""
    nw = -(-width // 4)
    t = luts.reshape(len(luts), nw, 2, 4, 16).transpose(0, 1, 3, 2, 4).reshape(len(luts), 4 * nw, 2, 16)
    assert (t[:, width:] == 0).all()
    return t[:, :width]


@needs_vbmi
@pytest.mark.parametrize("n", [1, 63, 64, 65, 1_000, 4_097])
@pytest.mark.parametrize("width", [6, 8, 48, 128])
def test_own_kernel_sums_every_code(n, width):
    """Asked for every row, heron's kernel returns each row once with the integer sum of its
    table entries (blocks of 64 and a padded last block, one to three row chunks)."""
    from heron.codecs import _fastscan_numba as kern

    rng = np.random.default_rng(n + width)
    codes = rng.integers(0, 256, (n, width), dtype=np.uint8)
    w = rng.standard_normal((3, 8 * width)).astype(np.float32)
    luts, _, _ = kern.sign_tables(w, width)
    ref = _table_sums(luts, codes)
    il = kern.interleave(codes)
    assert il.shape == (-(-n // 64) * -(-width // 4) * 256,)
    pool = ThreadPoolExecutor(2)  # the runs a forked child makes (no OpenMP there)
    for nchunks, qblock, submit in ((1, 3, None), (3, 1, None), (2, 2, None), (3, 2, pool.submit)):
        sums, rows, bound = kern.lut16_topk(
            il, luts, width, n, n, nchunks, qblock, submit=submit, workers=3
        )
        for q in range(3):
            got = rows[q] >= 0
            assert sorted(rows[q][got].tolist()) == list(range(n))
            np.testing.assert_array_equal(sums[q][got], ref[q, rows[q][got]])
        assert (bound == -1).all()  # no row left out


@needs_vbmi
@pytest.mark.parametrize("fetch", [1, 10, 100])
def test_own_kernel_keeps_each_chunks_best_and_bounds_the_rest(fetch):
    from heron.codecs import _fastscan_numba as kern

    rng = np.random.default_rng(fetch)
    n, width = 5_000, 16
    codes = rng.integers(0, 256, (n, width), dtype=np.uint8)
    codes[::7] = codes[3]  # ties across chunks and blocks
    w = rng.standard_normal((2, 8 * width)).astype(np.float32)
    luts, _, _ = kern.sign_tables(w, width)
    ref = _table_sums(luts, codes)
    nchunks = 3
    sums, rows, bound = kern.lut16_topk(kern.interleave(codes), luts, width, n, fetch, nchunks, 1)
    nb = -(-n // 64)
    for q in range(2):
        left = np.ones(n, dtype=bool)
        for c in range(nchunks):
            r0, r1 = c * nb // nchunks * 64, min(n, (c + 1) * nb // nchunks * 64)
            s, r = sums[q, c * fetch : (c + 1) * fetch], rows[q, c * fetch : (c + 1) * fetch]
            assert ((r >= r0) & (r < r1)).all() and (np.diff(s) <= 0).all()
            np.testing.assert_array_equal(s, ref[q, r])
            np.testing.assert_array_equal(s, np.sort(ref[q, r0:r1])[::-1][:fetch])
            left[r] = False
        assert bound[q] >= ref[q, left].max()  # no row left out scores above the bound
        assert bound[q] <= sums[q].max()


@needs_vbmi
def test_own_kernel_sums_reach_the_16_bit_limit_without_overflow():
    """128 bytes whose 256 entries all peak at 255: sums of 65,280 stay exact."""
    from heron.codecs import _fastscan_numba as kern

    width = 128
    w = np.full((1, 8 * width), 0.5, dtype=np.float32)
    luts, a, off = kern.sign_tables(w, width)
    codes = np.full((70, width), 255, dtype=np.uint8)  # every bit set: every table's top entry
    codes[1] = 0
    sums, rows, _ = kern.lut16_topk(kern.interleave(codes), luts, width, 70, 70, 1, 1)
    ref = _table_sums(luts, codes)[0]
    assert ref.max() > 65_000
    np.testing.assert_array_equal(sums[0], ref[rows[0]])
    np.testing.assert_allclose(ref[0] / a[0] + off[0], w.sum(), rtol=1e-6)


@needs_vbmi
def test_own_tables_stay_within_the_certified_bound(corpus):
    """Every code's approximate score from heron's 8-bit tables is within ``eps`` of its exact
    score; the widest table spans 255, every table starts at 0."""
    x, codec, codes = corpus
    fs = fastscan.SignLutScan(codes)
    w = codec.sign_weights(x[:20] + 0.05)
    luts, a, off = fs.tables(w)
    t = _byte_nibble_tables(luts, codec.width).astype(int)
    assert (t.min(axis=3) == 0).all() and (t.max(axis=(1, 2, 3)) == 255).all()
    approx = _table_sums(luts, codes) / a[:, None] + off[:, None]
    exact = w @ (np.unpackbits(codes, axis=1, bitorder="little").astype(np.float32) * 2 - 1).T
    err = np.abs(approx - exact)
    assert (err <= fs.eps(w)[:, None]).all()
    assert err.max() > 0


def test_pruning_keeps_every_candidate_that_can_reach_the_top_k():
    rows = np.arange(8)[None, :].repeat(2, axis=0)
    approx = np.array([[9, 8, 7, 6, 5, 4, 3, 2], [1, 1, 1, 1, 1, 1, 1, 1]], dtype=np.float32)
    got = fastscan._prune(rows, approx, 3, np.array([1.5, 0.0], dtype=np.float32))
    # query 0: the 3rd best is 7, so 5.5 is the least a candidate can score and still rank
    assert got[0].tolist() == [0, 1, 2, 3, -1, -1, -1, -1]
    assert got[1].tolist() == list(range(8))  # all tied: none can be ruled out


def test_the_engine_follows_the_cpu_numba_compiles_for(monkeypatch):
    """A portable numba target (``NUMBA_CPU_NAME``) has no VBMI to count on: faiss' scan runs."""
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "generic")
    assert not lut16_available()
    assert fastscan.engine() == "faiss"


def test_a_named_scan_is_used_and_a_bad_choice_is_refused(corpus):
    x, _, codes = corpus
    codec = parse_spec("bin").fit(x[::4])
    q = x[:2] + 0.02
    ref = codec.topk(q, codes, 10)
    names = ["faiss"] + (["heron"] if lut16_available() else [])
    for name in names + names:  # switching back and forth replaces the resident copy
        codec.fast_scan = fastscan.check_choice(name)
        codec.topk(q, codes, 10)
        got = codec.topk(q, codes, 10)
        assert isinstance(codec._resident_of[1], CLASSES[name])
        np.testing.assert_array_equal(got[1], ref[1])
    with pytest.raises(ValueError, match="fast_scan must be True, False, 'heron' or 'faiss'"):
        fastscan.check_choice("fast")
    with pytest.raises(ValueError, match="fast_scan must be"):
        fastscan.check_choice(1)


def test_heron_scan_refused_where_the_cpu_lacks_vbmi(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "generic")
    with pytest.raises(ValueError, match="AVX-512 VBMI.*pass True"):
        parse_spec("bin").__class__(fast_scan="heron")


@pytest.mark.parametrize("none_below", [0.0, -np.inf])
@pytest.mark.parametrize("nq", [1, 6])
def test_certify_in_one_call_equals_the_numpy_steps(none_below, nq):
    """``certify_topk`` (prune, exact re-scoring, certificate) gives what ``_prune``,
    ``lut_rows_topk`` and the certificate's comparison give step by step, ties, padding and
    bounds below ``none_below`` included; serial and parallel alike."""
    kern = _scan._kernels()
    rng = np.random.default_rng(nq)
    n, width, K, C = 3_000, 6, 7, 40
    codes = rng.integers(0, 256, (n, width), dtype=np.uint8)
    codes[::5] = codes[1]  # ties in the exact scores
    w = rng.standard_normal((nq, 8 * width)).astype(np.float32)
    tb = byte_tables(w, width)
    rows = rng.integers(0, n, (nq, C)).astype(np.int64)
    rows[:, -5:] = -1  # padding
    exact = np.take_along_axis(tb, codes[np.maximum(rows, 0)].transpose(0, 2, 1), 2).sum(1)
    a = rng.uniform(1.0, 3.0, nq)
    off = rng.uniform(-1.0, 1.0, nq)
    eps = rng.uniform(0.05, 0.5, nq).astype(np.float32)
    approx = exact + rng.uniform(-1, 1, exact.shape) * eps[:, None]
    vals = ((approx - off[:, None]) * a[:, None]).astype(np.float32)
    bound = np.where(np.arange(nq) % 3 == 0, -1.0, rng.uniform(-2, 2, nq) * a).astype(np.float32)

    ref_approx = np.where(rows >= 0, vals / a[:, None] + off[:, None], -np.inf).astype(np.float32)
    kept = fastscan._prune(rows, ref_approx, K, 2 * eps)
    assert (kept == -1).sum() > (rows == -1).sum()  # the pruning drops candidates here
    ref_s, ref_r = _scan.lut_rows_topk(tb, codes, kept, K)
    real = np.where(bound >= none_below, bound / a + off, -np.inf).astype(np.float32)
    ref_good = ref_s[:, K - 1] > real + eps
    assert ref_good.any()
    for fn in (kern.certify_topk, kern.certify_topk_par):
        s, r, good = fn(vals, rows, bound, a, off, none_below, eps, w, codes, K)
        np.testing.assert_array_equal(s, ref_s)
        np.testing.assert_array_equal(r, ref_r)
        np.testing.assert_array_equal(good, ref_good)


def test_byte_tables_are_the_signed_sums_of_each_bytes_weights():
    """One table per code byte and byte value: ``+w`` for a set bit, ``-w`` for a clear one;
    the dimensions past ``d`` weigh nothing."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 21)).astype(np.float32)  # 21 dimensions in 3 bytes
    got = byte_tables(w, 3)
    wp = np.zeros((3, 24), np.float32)
    wp[:, :21] = w
    signs = ((np.arange(256)[:, None] >> np.arange(8)) & 1) * 2.0 - 1
    ref = np.einsum("qmt,vt->qmv", wp.reshape(3, 3, 8).astype(np.float64), signs)
    assert got.shape == (3, 3, 256) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_thread_count_follows_numba_setting():
    import numba

    kern = _scan._kernels()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert kern.threads() == 1
        numba.set_num_threads(before)
        assert kern.threads() == before
    finally:
        numba.set_num_threads(before)
