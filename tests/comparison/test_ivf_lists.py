"""heron's scan of faiss' 8-bit IVF lists against faiss' own search of the same index."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")
pytest.importorskip("numba")

from heron.index import make_index  # noqa: E402

D = 48


def vecs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def idx():
    return make_index("ivf", nlist=64, codec="int8").build(vecs(6000, 0), np.arange(6000) * 3)


def faiss_search(idx, q, nprobe, depth):
    sp = faiss.SearchParametersIVF()
    sp.nprobe = nprobe
    s, lab = idx._index.search(q, depth, params=sp)
    s = np.where(lab >= 0, s, -np.inf).astype(np.float32)
    return s, lab


def check_same(got, want) -> None:
    (gs, gl), (ws, wl) = got, want
    assert gs.shape == ws.shape and gl.shape == wl.shape
    assert np.array_equal(gl < 0, wl < 0)  # the same padding
    np.testing.assert_allclose(gs, ws, rtol=1e-4, atol=1e-5)
    for g, w, sc in zip(gl, wl, ws):
        # the same candidates; the order may differ only between (near-)equal scores
        assert set(g[g >= 0]) == set(w[w >= 0]) or np.sum(g != w) <= 2 and np.ptp(sc[g != w]) < 1e-5


@pytest.mark.parametrize("nq", [1, 7, 20])
@pytest.mark.parametrize(("nprobe", "depth"), [(1, 10), (3, 40), (10, 100), (64, 7)])
def test_same_candidates_and_scores_as_faiss(idx, nq, nprobe, depth) -> None:
    lists = idx._sq8_lists()
    assert lists is not None
    q = vecs(nq, 1 + nq)
    check_same(lists.search(q, nprobe, depth), faiss_search(idx, q, nprobe, depth))


def test_fewer_candidates_than_depth_are_padded(idx) -> None:
    q = vecs(3, 9)
    got = idx._sq8_lists().search(q, 1, 500)  # one list holds ~100 rows
    want = faiss_search(idx, q, 1, 500)
    check_same(got, want)
    assert (got[1] < 0).any() and np.all(got[0][got[1] < 0] == -np.inf)


def test_lists_are_read_again_after_an_add() -> None:
    """faiss reallocates a list it grows: the addresses are taken again after ``add``."""
    ix = make_index("ivf", nlist=16, codec="int8").build(vecs(2000, 2), np.arange(2000))
    before = ix._sq8_lists()
    assert before is not None
    new = vecs(3000, 3)
    ix.add(new, np.arange(2000, 5000))
    after = ix._sq8_lists()
    assert after is not before and after.sizes.sum() == 5000
    q = new[:5]  # each added row finds itself
    s, lab = after.search(q, 16, 10)
    assert np.array_equal(lab[:, 0], np.arange(2000, 2005))
    check_same((s, lab), faiss_search(ix, q, 16, 10))
    keys = ix.search(q, 1, params={"nprobe": 16})[1]
    assert np.array_equal(keys[:, 0], np.arange(2000, 2005))


@pytest.mark.parametrize("codec", ["fp32", "fp16", "int4", "pq8", "bin"])
def test_other_codecs_keep_faiss_scan(codec) -> None:
    ix = make_index("ivf", nlist=8, codec=codec).build(vecs(800, 4), np.arange(800))
    assert ix._sq8_lists() is None
    s, keys, info = ix.search(vecs(2, 5), 5, params={"nprobe": 8})
    assert (keys >= 0).all() and info["index"] == "ivf"


def test_saved_and_loaded_index_scans_its_own_lists(idx, tmp_path) -> None:
    from heron.index import load_index

    idx.save(tmp_path / "ivf")
    back = load_index(tmp_path / "ivf", dim=D)
    q = vecs(4, 11)
    a, b = back._sq8_lists(), idx._sq8_lists()
    assert a is not None and not np.array_equal(a.code_addr, b.code_addr)
    check_same(a.search(q, 5, 30), b.search(q, 5, 30))
    assert np.array_equal(back.search(q, 10)[1], idx.search(q, 10)[1])
