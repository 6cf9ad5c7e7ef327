"""Exact top-k search against a naive argsort oracle, for the numba and numpy strategies."""

from __future__ import annotations

import numpy as np
import pytest

from heron._deps import has
from heron.retrieval import topk
from heron.retrieval.topk import exact_search

METHODS = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not has("numba"), reason="numba not installed")),
]


#: A query count that takes the blocked (BLAS + heap) strategy; fewer take the fused scan.
MANY = topk.SCAN_MAX_QUERIES + 4


def oracle(queries: np.ndarray, matrix: np.ndarray, k: int, valid: np.ndarray | None = None):
    """Full sort of every score: descending, ties to the smaller row, -inf/NaN/masked dropped."""
    scores = queries.astype(np.float64) @ matrix.astype(np.float64).T
    if valid is not None:
        scores[:, ~valid] = -np.inf
    out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(queries), k), -1, dtype=np.int64)
    rows = np.arange(matrix.shape[0])
    for a, s in enumerate(scores):
        order = np.lexsort((rows, -s))
        order = order[np.isfinite(s[order])][:k]
        out_s[a, : len(order)] = s[order]
        out_i[a, : len(order)] = order
    return out_s, out_i


def integer_data(n: int, d: int, nq: int, seed: int = 0):
    """Small-integer vectors: every dot product is exact in float32 and ties are frequent."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(-2, 3, size=(nq, d)).astype(np.float32),
        rng.integers(-2, 3, size=(n, d)).astype(np.float32),
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nq", [1, 3, MANY])  # scan strategy (few queries) and blocked strategy
@pytest.mark.parametrize("k", [1, 10, 257])
def test_matches_oracle_with_ties(method, nq, k):
    q, m = integer_data(3000, 12, nq)
    s, i = exact_search(q, m, k, method=method, block_size=700)
    os_, oi = oracle(q, m, k)
    np.testing.assert_array_equal(i, oi)
    np.testing.assert_array_equal(s, os_)
    assert s.dtype == np.float32 and i.dtype == np.int64 and s.shape == i.shape == (nq, k)


def test_hand_checked_ties_go_to_smaller_row():
    m = np.array([[1.0], [3.0], [2.0], [3.0], [3.0]], dtype=np.float32)
    for nq in (1, MANY):
        s, i = exact_search(np.ones((nq, 1), dtype=np.float32), m, 4)
        assert i[0].tolist() == [1, 3, 4, 2]
        assert s[0].tolist() == [3.0, 3.0, 3.0, 2.0]
        s, i = exact_search(np.ones((nq, 1), dtype=np.float32), m, 4, method="numpy", block_size=2)
        assert i[0].tolist() == [1, 3, 4, 2]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nq", [2, MANY])
def test_float_data_matches_oracle(method, nq):
    rng = np.random.default_rng(1)
    m = rng.standard_normal((5000, 64), dtype=np.float32)
    q = rng.standard_normal((nq, 64), dtype=np.float32)
    s, i = exact_search(q, m, 20, method=method, block_size=1024)
    os_, oi = oracle(q, m, 20)
    np.testing.assert_array_equal(i, oi)
    np.testing.assert_allclose(s, os_, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nq", [1, MANY])
def test_valid_mask(method, nq):
    q, m = integer_data(2000, 8, nq, seed=2)
    valid = np.random.default_rng(3).random(2000) < 0.3
    s, i = exact_search(q, m, 15, valid=valid, method=method, block_size=333)
    os_, oi = oracle(q, m, 15, valid)
    np.testing.assert_array_equal(i, oi)
    np.testing.assert_array_equal(s, os_)
    assert valid[i[i >= 0]].all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nq", [1, MANY])
def test_k_larger_than_n_and_all_masked(method, nq):
    q, m = integer_data(5, 4, nq, seed=4)
    s, i = exact_search(q, m, 8, method=method)
    assert (i[:, 5:] == -1).all() and np.isneginf(s[:, 5:]).all()
    assert sorted(i[0, :5].tolist()) == [0, 1, 2, 3, 4]
    valid = np.array([False, True, False, False, True])
    s, i = exact_search(q, m, 8, valid=valid, method=method)
    assert (i[:, 2:] == -1).all() and sorted(i[0, :2].tolist()) == [1, 4]
    s, i = exact_search(q, m, 3, valid=np.zeros(5, dtype=bool), method=method)
    assert (i == -1).all() and np.isneginf(s).all()


@pytest.mark.parametrize("method", METHODS)
def test_empty_inputs(method):
    s, i = exact_search(np.zeros((0, 4), np.float32), np.ones((3, 4), np.float32), 2, method=method)
    assert s.shape == i.shape == (0, 2)
    s, i = exact_search(np.ones((2, 4), np.float32), np.zeros((0, 4), np.float32), 2, method=method)
    assert (i == -1).all() and np.isneginf(s).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nq", [1, MANY])
def test_nan_rows_never_returned(method, nq):
    q, m = integer_data(100, 4, nq, seed=5)
    m[[3, 50]] = np.nan
    s, i = exact_search(q, m, 100, method=method)
    assert not np.isin(i, [3, 50]).any() and (i[:, -2:] == -1).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nq", [1, MANY])
def test_float16_matrix(method, nq):
    q, m = integer_data(1500, 16, nq, seed=6)
    m16 = m.astype(np.float16)
    s, i = exact_search(q, m16, 10, method=method, block_size=400)
    os_, oi = oracle(q, m, 10)
    np.testing.assert_array_equal(i, oi)
    np.testing.assert_array_equal(s, os_)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("nq", [1, MANY])
def test_memmap_matrix(tmp_path, dtype, nq):
    q, m = integer_data(2500, 16, nq, seed=7)
    path = tmp_path / "m.npy"
    np.save(path, m.astype(dtype))
    mm = np.load(path, mmap_mode="r")
    assert isinstance(mm, np.memmap)
    valid = np.arange(2500) % 3 != 0
    s, i = exact_search(q, mm, 10, valid=valid, block_size=1000)
    os_, oi = oracle(q, m, 10, valid)
    np.testing.assert_array_equal(i, oi)
    np.testing.assert_array_equal(s, os_)


def test_non_contiguous_matrix_and_queries():
    q, m = integer_data(1000, 16, MANY, seed=8)
    s, i = exact_search(q[:, ::2], m[:, ::2], 5)
    os_, oi = oracle(np.ascontiguousarray(q[:, ::2]), np.ascontiguousarray(m[:, ::2]), 5)
    np.testing.assert_array_equal(i, oi)
    s, i = exact_search(q[:1, ::2], m[:, ::2], 5)
    np.testing.assert_array_equal(i, oi[:1])


def test_methods_agree_across_scan_threshold():
    q, m = integer_data(4000, 8, topk.SCAN_MAX_QUERIES + 1, seed=9)
    a = exact_search(q, m, 30)
    b = exact_search(q[: topk.SCAN_MAX_QUERIES], m, 30)
    np.testing.assert_array_equal(a[1][:-1], b[1])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"k": 0}, ValueError, "k must be a positive int"),
        ({"k": 2.5}, ValueError, "k must be a positive int"),
        ({"method": "gpu"}, ValueError, "method must be one of"),
        ({"block_size": 0}, ValueError, "block_size"),
        ({"valid": np.ones(3, dtype=bool)}, ValueError, "valid must be a boolean mask of shape"),
        ({"valid": np.ones(10, dtype=np.int8)}, ValueError, "valid must be a boolean mask"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = {"queries": np.ones((2, 4), np.float32), "matrix": np.ones((10, 4), np.float32), "k": 3}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        exact_search(args.pop("queries"), args.pop("matrix"), args.pop("k"), **args)


def test_bad_shapes_and_dtypes():
    m = np.ones((10, 4), np.float32)
    with pytest.raises(ValueError, match="dimension mismatch"):
        exact_search(np.ones((2, 5), np.float32), m, 3)
    with pytest.raises(ValueError, match="queries must be 2-D"):
        exact_search(np.ones(4, np.float32), m, 3)
    with pytest.raises(TypeError, match="float32 or float16"):
        exact_search(np.ones((2, 4), np.float32), m.astype(np.float64), 3)
    with pytest.raises(ValueError, match="2-D numpy array"):
        exact_search(np.ones((2, 4), np.float32), [[1.0] * 4], 3)


# ------------------------------------------------------------------ the shared primitives
def row_oracle(scores: np.ndarray, k: int):
    """Full sort of every row: descending, ties to the smaller column, NaN/-inf dropped."""
    out_s = np.full((len(scores), k), -np.inf, dtype=np.float32)
    out_c = np.full((len(scores), k), -1, dtype=np.int64)
    cols = np.arange(scores.shape[1])
    for a, s in enumerate(scores.astype(np.float64)):
        keep = s > -np.inf
        order = cols[keep][np.lexsort((cols[keep], -s[keep]))][:k]
        out_s[a, : len(order)] = s[order]
        out_c[a, : len(order)] = order
    return out_s, out_c


@pytest.mark.parametrize("k", [0, 1, 3, 7, 12, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("width", [12, 600])  # a whole sort below topk._SMALL_ROWS, partition above
def test_topk_rows_matches_oracle_with_ties_nan_and_inf(k, dtype, width):
    rng = np.random.default_rng(k)
    s = rng.integers(-3, 4, size=(9, width)).astype(dtype)  # many ties at the k-th score
    if np.issubdtype(dtype, np.floating):
        s[0, :] = -np.inf  # a row with nothing
        s[1, 5:] = np.nan  # NaN must never be returned, nor push real hits out
        s[2, ::2] = -np.inf
    ts, tc = topk.topk_rows(s, k)
    os_, oc = row_oracle(s, k)
    assert ts.shape == tc.shape == (9, k) and ts.dtype == np.float32 and tc.dtype == np.int64
    np.testing.assert_array_equal(tc, oc)
    np.testing.assert_array_equal(ts, os_)


def test_topk_rows_hand_checked():
    s = np.array([[1.0, 3.0, 2.0, 3.0, np.nan, -np.inf]], dtype=np.float32)
    ts, tc = topk.topk_rows(s, 5)
    assert tc[0].tolist() == [1, 3, 2, 0, -1]
    assert ts[0].tolist() == [3.0, 3.0, 2.0, 1.0, -np.inf]
    ts, tc = topk.topk_rows(np.zeros((2, 0), np.float32), 3)
    assert (tc == -1).all() and np.isneginf(ts).all()
    with pytest.raises(ValueError, match="k must be a non-negative int"):
        topk.topk_rows(s, -1)
    with pytest.raises(ValueError, match="2-D"):
        topk.topk_rows(s[0], 2)


def test_topk_candidates_and_merge_and_pad():
    rng = np.random.default_rng(11)
    dense = rng.integers(0, 5, size=(6, 30)).astype(np.float32)
    dense[dense == 0] = -np.inf  # absent candidates
    r, c = np.nonzero(dense > -np.inf)
    perm = rng.permutation(len(r))  # any order
    ts, tc = topk.topk_candidates(r[perm], c[perm], dense[r, c][perm], 6, 8)
    os_, oc = row_oracle(dense, 8)
    np.testing.assert_array_equal(tc, oc)
    np.testing.assert_array_equal(ts, os_)
    # merging two sorted lists of ids: ties go to the earlier column (the smaller ids first)
    a_s, a_i = np.array([[5.0, 3.0, -np.inf]]), np.array([[10, 11, -1]])
    b_s, b_i = np.array([[5.0, 4.0]]), np.array([[20, 21]])
    ms, mi = topk.merge_topk(np.hstack([a_s, b_s]), np.hstack([a_i, b_i]), 6)
    assert mi[0].tolist() == [10, 20, 21, 11, -1, -1]
    assert ms[0].tolist() == [5.0, 5.0, 4.0, 3.0, -np.inf, -np.inf]
    two_s, two_i = topk.merge_topk(np.vstack([np.hstack([a_s, b_s])] * 2), np.vstack([np.hstack([a_i, b_i])] * 2), 6)
    assert two_i.tolist() == [mi[0].tolist()] * 2 and two_s.tolist() == [ms[0].tolist()] * 2
    ps, pi = topk.pad_topk(ms[:, :2], mi[:, :2], 4)
    assert pi[0].tolist() == [10, 20, -1, -1] and np.isneginf(ps[0, 2:]).all()
    ps, pi = topk.pad_topk(ms, mi, 2)
    assert pi.shape == (1, 2) and pi[0].tolist() == [10, 20]
    with pytest.raises(ValueError, match="1-D of one length"):
        topk.topk_candidates(r, c[:-1], dense[r, c], 6, 3)


@pytest.mark.skipif(not has("numba"), reason="numba not installed")
@pytest.mark.parametrize("k", [1, 5, 16])
def test_numba_heap_push_replace_sort(k):
    """The shared heap keeps the k best (score desc, id asc) of a stream, as the oracle does."""
    import numba as nb

    from heron.retrieval import _topk_numba as kern

    @nb.njit
    def stream(scores, k):
        hs = np.empty(k, np.float32)
        hi = np.empty(k, np.int64)
        size = 0
        for i in range(scores.shape[0]):
            s = scores[i]
            if size < k:
                kern.heap_push(hs, hi, size, s, i)
                size += 1
            elif kern.heap_worse(hs[0], hi[0], s, i):
                kern.heap_replace_top(hs, hi, size, s, i)
        kern.heap_sort(hs, hi, size)
        return hs[:size], hi[:size]

    rng = np.random.default_rng(k)
    for n in (3, 50, 400):
        scores = rng.integers(0, 6, size=n).astype(np.float32)  # ties everywhere
        hs, hi = stream(scores[::-1].copy(), k)  # reversed: ties arrive larger id first
        os_, oc = row_oracle(scores[::-1][None, :], min(k, n))
        np.testing.assert_array_equal(hi, oc[0])
        np.testing.assert_array_equal(hs, os_[0])


@pytest.mark.skipif(not has("numba"), reason="numba not installed")
def test_numba_threshold_buffer_keeps_ties_in_row_order():
    from heron.retrieval import _topk_numba as kern

    bs = np.array([1.0, 4.0, 2.0, 4.0, 3.0, 2.0, 4.0, 0.5], dtype=np.float32)
    bi = np.arange(8, dtype=np.int64)
    n, kth = kern.buffer_compact(bs, bi, 8, 4)
    # better than the k-th first, then the k-th ties, each group in row order
    assert n == 4 and kth == 3.0 and bi[:4].tolist() == [1, 3, 6, 4]
    out_s, out_i = np.empty(6, np.float32), np.empty(6, np.int64)
    kern.buffer_emit(bs, bi, n, 6, out_s, out_i, -np.inf, False)
    assert out_i.tolist() == [1, 3, 6, 4, -1, -1]
    bd = np.array([3, 1, 2, 1, 0, 2], dtype=np.int32)
    bi = np.arange(6, dtype=np.int64)
    n, bound = kern.buffer_compact_small(bd, bi, 6, 3, 8)
    assert n == 3 and bound == 1 and bi[:3].tolist() == [4, 1, 3]
    out_d, out_i = np.empty(4, np.int32), np.empty(4, np.int64)
    kern.buffer_emit(bd, bi, n, 4, out_d, out_i, 9, True)
    assert out_i.tolist() == [4, 1, 3, -1] and out_d.tolist() == [0, 1, 1, 9]


@pytest.mark.parametrize("threaded", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_threaded_and_single_pool_blocked_strategies_agree(monkeypatch, threaded, dtype):
    """The blocked strategy splits rows over worker threads (BLAS at one thread each) when
    threadpoolctl is there, and runs one threaded BLAS product per block otherwise: same hits."""
    if not threaded:
        monkeypatch.setattr(topk, "_LIMITER", [None])
    elif topk._blas_limiter() is None:
        pytest.skip("threadpoolctl is not installed")
    q, m = integer_data(5003, 16, MANY, seed=4)
    valid = np.random.default_rng(5).random(5003) < 0.6
    s, i = exact_search(q, m.astype(dtype), 12, valid=valid, block_size=500)
    os_, oi = oracle(q, m, 12, valid)
    np.testing.assert_array_equal(i, oi)
    np.testing.assert_array_equal(s, os_)
