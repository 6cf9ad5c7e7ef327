"""The parallel top-k scans of ``heron.codecs._scan`` against a numpy argsort reference.

Each kernel splits the rows into chunks (one per thread task) and tiles, keeps a bounded
candidate buffer per chunk behind a running threshold and merges the chunks at the end; the
result must equal a stable argsort of the full score vector (ties go to the smaller row), also
when ``k`` exceeds the number of rows, when many scores tie, and when the number of rows is not a
multiple of the tile or of the chunk count.
"""

from __future__ import annotations

import numpy as np
import pytest

from heron.codecs import _scan

pytestmark = pytest.mark.skipif(not _scan.fast_available(), reason="numba not installed")


def _popcount_rows(q: np.ndarray, db: np.ndarray) -> np.ndarray:
    """``(nq, n)`` Hamming distances of uint64 words, by unpacked bits."""
    x = q[:, None, :] ^ db[None, :, :]
    return np.unpackbits(x.view(np.uint8), axis=-1).sum(-1).astype(np.int64)


def _reference(scores: np.ndarray, k: int, *, ascending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stable top-``k`` rows of each score row (ties: smaller row first), ``-1`` padded."""
    key = scores if ascending else -scores
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    rows = np.full((len(scores), k), -1, dtype=np.int64)
    rows[:, : order.shape[1]] = order
    return np.take_along_axis(scores, order, axis=1), rows


# n chosen so that neither the tile (64..512 rows) nor the chunk count divides it
CASES = [(1, 1, 5), (1, 3, 10), (3, 7, 1), (1, 1001, 10), (2, 4099, 37), (40, 2053, 16)]


@pytest.mark.parametrize("columns", [False, True])
@pytest.mark.parametrize("words", [1, 6, 3])
@pytest.mark.parametrize(("nq", "n", "k"), CASES)
def test_hamming_topk_equals_argsort(words, nq, n, k, columns):
    rng = np.random.default_rng(words * 1000 + n)
    db = rng.integers(0, 2**63, (n, words), dtype=np.int64).view(np.uint64)
    if words == 1:  # few distinct distances: many ties
        db &= np.uint64(0xF)
    q = rng.integers(0, 2**63, (nq, words), dtype=np.int64).view(np.uint64)
    cols = _scan.column_words(db) if columns else None
    dist, rows = _scan.hamming_topk(q, db, k, tile=64, columns=cols)
    ref_d, ref_r = _reference(_popcount_rows(q, db), k, ascending=True)
    m = min(k, n)
    np.testing.assert_array_equal(rows[:, :m], ref_r[:, :m])
    np.testing.assert_array_equal(dist[:, :m], ref_d[:, :m])
    assert (rows[:, m:] == -1).all() and (dist[:, m:] == 64 * words + 1).all()


def test_hamming_topk_large_k_and_tile():
    """``k`` above the rows, several chunks and the default tile: same as the reference."""
    rng = np.random.default_rng(5)
    db = rng.integers(0, 2**63, (70_001, 6), dtype=np.int64).view(np.uint64)
    q = rng.integers(0, 2**63, (2, 6), dtype=np.int64).view(np.uint64)
    blk = _scan.column_words(db)
    for k in (1, 200, 1500):
        ref_d, ref_r = _reference(_popcount_rows(q, db), k, ascending=True)
        for b in (None, blk):
            dist, rows = _scan.hamming_topk(q, db, k, columns=b)
            np.testing.assert_array_equal(rows, ref_r)
            np.testing.assert_array_equal(dist, ref_d)
    tiny = db[:7]
    dist, rows = _scan.hamming_topk(q, tiny, 12)
    ref_d, ref_r = _reference(_popcount_rows(q, tiny), 12, ascending=True)
    np.testing.assert_array_equal(rows[:, :7], ref_r[:, :7])
    assert (rows[:, 7:] == -1).all()


@pytest.mark.parametrize("words", [1, 2, 3, 6, 7, 12])
@pytest.mark.parametrize(("n", "k"), [(0, 3), (1, 1), (33, 40), (1000, 7), (5003, 300), (30_001, 1), (30_001, 64)])
def test_one_query_by_word_equals_argsort(words, n, k):
    """One query over by-word codes (one row chunk per thread, each tile scored in one loop for
    six words, three words at a time otherwise): the same rows as a stable argsort, ``k`` above
    ``n``, codes of 1 to 12 words."""
    rng = np.random.default_rng(words * 7 + n + k)
    db = rng.integers(0, 2**63, (n, words), dtype=np.int64).view(np.uint64)
    q = rng.integers(0, 2**63, (1, words), dtype=np.int64).view(np.uint64)
    dist, rows = _scan.hamming_topk(q, db, k, columns=_scan.column_words(db))
    ref_d, ref_r = _reference(_popcount_rows(q, db), k, ascending=True)
    m = min(k, n)
    np.testing.assert_array_equal(rows[:, :m], ref_r[:, :m])
    np.testing.assert_array_equal(dist[:, :m], ref_d[:, :m])
    assert (rows[:, m:] == -1).all() and (dist[:, m:] == 64 * words + 1).all()


@pytest.mark.parametrize("k", [1, 5, 50, 2000])
def test_one_query_by_word_ties(k):
    """Tied distances everywhere: every tile has the same minimum (all of them are walked), rows
    at the largest distance ``nbits`` (the query's complement), and a cut inside a run of ties."""
    rng = np.random.default_rng(k)
    q = rng.integers(0, 2**63, (1, 6), dtype=np.int64).view(np.uint64)
    patterns = np.stack([q[0], ~q[0], q[0] ^ np.uint64(1), q[0] ^ np.uint64(0xFF)])
    db = patterns[rng.integers(0, 4, 9_001)]
    dist, rows = _scan.hamming_topk(q, db, k, columns=_scan.column_words(db))
    ref_d, ref_r = _reference(_popcount_rows(q, db), k, ascending=True)
    np.testing.assert_array_equal(rows, ref_r)
    np.testing.assert_array_equal(dist, ref_d)
    far = np.repeat(~q, 5, axis=0)  # every row at distance 384, fewer rows than k
    dist, rows = _scan.hamming_topk(q, far, 8, columns=_scan.column_words(far))
    assert rows[0].tolist() == [0, 1, 2, 3, 4, -1, -1, -1]
    assert dist[0].tolist() == [384] * 5 + [385] * 3


@pytest.mark.parametrize(("nq", "n", "k"), CASES)
def test_int8_topk_equals_argsort(nq, n, k):
    rng = np.random.default_rng(n)
    codes = rng.integers(0, 4, (n, 24), dtype=np.uint8)  # small values: many tied scores
    qw = rng.integers(-3, 4, (nq, 24)).astype(np.int16)
    s, rows = _scan.i16u8_topk(qw, codes, k)
    ref_s, ref_r = _reference(qw.astype(np.int64) @ codes.T.astype(np.int64), k, ascending=False)
    m = min(k, n)
    np.testing.assert_array_equal(rows[:, :m], ref_r[:, :m])
    np.testing.assert_array_equal(s[:, :m], ref_s[:, :m])
    assert (rows[:, m:] == -1).all()


@pytest.mark.parametrize(("nq", "n", "k"), CASES)
def test_lut_topk_equals_argsort(nq, n, k):
    rng = np.random.default_rng(n + 1)
    M = 5
    lut = rng.integers(-4, 5, (nq, M, 256)).astype(np.float32)  # integers: exact sums, ties
    codes = rng.integers(0, 256, (n, M), dtype=np.uint8)
    s, rows = _scan.lut_topk(lut, codes, k)
    full = lut[:, np.arange(M)[None, :], codes].sum(-1)  # (nq, n)
    ref_s, ref_r = _reference(full, k, ascending=False)
    m = min(k, n)
    np.testing.assert_array_equal(rows[:, :m], ref_r[:, :m])
    np.testing.assert_array_equal(s[:, :m], ref_s[:, :m])
    assert (rows[:, m:] == -1).all()


@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
def test_merge_of_sorted_runs_equals_a_stable_sort(ascending, dtype):
    """The numba merge of per-chunk runs gives what a stable argsort of their concatenation
    gives: same scores, and on ties the earlier run's row (with padding at the ends)."""
    rng = np.random.default_rng(3)
    k, nruns, nq = 7, 3, 5
    s = rng.integers(0, 4, size=(nq, nruns, k)).astype(dtype)  # many ties across runs
    s[:, 1, 5:] = 99 if ascending else -99  # padding at a run's end
    s = np.sort(s, axis=2) if ascending else -np.sort(-s, axis=2)
    r = np.arange(nq * nruns * k, dtype=np.int64).reshape(nq, nruns, k)
    s, r = s.reshape(nq, -1), r.reshape(nq, -1)
    got_s, got_r = _scan._kernels().merge_runs(s, r, k, nruns, ascending)
    key = s.astype(np.float64) if ascending else -s.astype(np.float64)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(got_s, np.take_along_axis(s, order, 1))
    np.testing.assert_array_equal(got_r, np.take_along_axis(r, order, 1))
    # and merge_chunks (the public entry) takes this path
    ms, mr = _scan.merge_chunks(s, r, k, ascending=ascending)
    np.testing.assert_array_equal(mr, got_r)


def test_hamming_codec_keeps_a_column_copy_of_resident_codes_with_the_same_hits():
    """A codes array seen twice (a collection's resident codes) gets a by-word copy that the
    scan reads from then on; hits are identical to the first (row-major) scan, and a different
    array is never answered from the copy."""
    from heron.codecs import parse_spec

    rng = np.random.default_rng(7)
    x = rng.standard_normal((5000, 128)).astype(np.float32)
    codec = parse_spec("bin-ham")
    codec.fit(x)
    codes = codec.encode(x)
    q = x[:4] + 0.1
    first = codec.topk(q, codes, 50)
    assert codec._resident_of[1] is None
    second = codec.topk(q, codes, 50)
    assert codec._resident_of[1] is not None
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = codes[::-1].copy()
    s, r = codec.topk(q, other, 50)
    ref_s, ref_r = codec.topk(q, other.copy(), 50)
    np.testing.assert_array_equal(r, ref_r)
    assert codec._resident_of[0] is not codes


def test_plan_reads_the_codes_once_per_thread_for_small_batches():
    """Batches are cut into as few blocks of at most 16 queries as the threads allow: 4 queries on
    2 threads are two blocks of 2 (each thread reads the codes once), not four of 1."""
    assert _scan._plan(4, 10**6, 10, 2) == (1, 2)
    assert _scan._plan(8, 10**6, 10, 2) == (1, 4)
    assert _scan._plan(40, 10**6, 10, 2) == (1, 10)
    assert _scan._plan(1000, 10**6, 10, 2) == (1, 16)
    assert _scan._plan(1, 10**6, 10, 2) == (2, 1)
