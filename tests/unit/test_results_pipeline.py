"""Tiny hand-checkable tests of the result contract and the composition algebra."""

import numpy as np
import pytest

from heron.pipeline import RRF, FunctionStage, Queries, Stage, fuse_rrf, rescore
from heron.results import Results, check_k


def fixed(keys, scores, name="fixed"):
    res = Results(np.array(keys), np.array(scores, dtype=np.float32))

    class Fixed(Stage):
        def __init__(self, depth=None):
            depth = len(keys[0]) if depth is None else depth
            self.depth = depth
            self.name = name

        def with_depth(self, k):
            return Fixed(k)

        def transform(self, queries, candidates=None):
            return res.cut(self.depth)

    return Fixed()


def test_results_shapes_and_padding():
    r = Results(np.array([[3, 1]]), np.array([[0.9, 0.5]]))
    assert r.keys.dtype == np.int64 and r.scores.dtype == np.float32
    c = r.cut(4)
    assert c.keys.tolist() == [[3, 1, -1, -1]]
    assert np.isneginf(c.scores[0, 2:]).all()
    assert c.counts().tolist() == [2]
    assert r.cut(1).keys.tolist() == [[3]]


def test_results_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same 2-d shape"):
        Results(np.zeros((2, 3)), np.zeros((2, 2)))


@pytest.mark.parametrize("bad", [0, -1])
def test_check_k_value(bad):
    with pytest.raises(ValueError, match="k must be a positive int"):
        check_k(bad)


def test_check_k_type():
    with pytest.raises(TypeError):
        check_k(2.5)
    with pytest.raises(TypeError):
        check_k(True)


def test_rrf_by_hand():
    a = fixed([[1, 2, 3]], [[3, 2, 1]])
    b = fixed([[3, 1, 4]], [[9, 8, 7]])
    res = (a | b).search(["q"], 4)
    # doc 1: 1/61 + 1/62 ; doc 3: 1/63 + 1/61 ; doc 2: 1/62 ; doc 4: 1/63
    expect = {1: 1 / 61 + 1 / 62, 3: 1 / 63 + 1 / 61, 2: 1 / 62, 4: 1 / 63}
    order = sorted(expect, key=lambda d: -expect[d])
    assert res.keys[0].tolist() == order
    np.testing.assert_allclose(res.scores[0], [expect[d] for d in order], rtol=1e-6)


def test_rrf_weights_change_order():
    a = fixed([[1, 2]], [[2, 1]])
    b = fixed([[2, 1]], [[2, 1]])
    assert RRF(a, b, weights=[2, 1]).search(["q"], 2).keys[0].tolist() == [1, 2]
    assert RRF(a, b, weights=[1, 2]).search(["q"], 2).keys[0].tolist() == [2, 1]
    with pytest.raises(ValueError, match="one non-negative weight per stage"):
        RRF(a, b, weights=[1])


def test_cutoff_and_then_compose():
    a = fixed([[5, 6, 7, 8]], [[4, 3, 2, 1]])

    def reverse(queries, cands):
        return rescore(cands, -cands.scores)

    pipe = a % 3 >> FunctionStage(reverse) % 2
    res = pipe.search(["q"])
    assert res.keys.tolist() == [[7, 6]]
    assert "%" in repr(pipe) and ">>" in repr(pipe)


def test_compile_pushes_depth_into_retriever():
    a = fixed([[1, 2, 3, 4]], [[4, 3, 2, 1]])
    compiled = (a % 2).compile()
    assert compiled.inner.depth == 2


def test_rescore_never_drops_or_duplicates():
    rng = np.random.default_rng(0)
    keys = np.array([[4, 9, 2, -1], [1, 2, 3, 5]])
    scores = np.array([[3, 2, 1, -np.inf], [4, 3, 2, 1]], dtype=np.float32)
    out = rescore(Results(keys, scores), rng.standard_normal(keys.shape))
    for row_in, row_out in zip(keys, out.keys):
        assert sorted(row_in.tolist()) == sorted(row_out.tolist())
    assert out.keys[0, -1] == -1


def test_fuse_handles_padding_only_rows():
    r = Results.empty(1, 3)
    out = fuse_rrf([r, r], [1, 1], 60, 3)
    assert (out.keys == -1).all()


def test_queries_validation():
    with pytest.raises(TypeError):
        Queries([1, 2])
    with pytest.raises(ValueError, match="query ids"):
        Queries(["a"], ids=["1", "2"])


def test_tied_ranks_share_the_first_rank():
    from heron.pipeline import tied_ranks

    assert tied_ranks(np.array([0.9, 0.7, 0.7, 0.5, 0.5, 0.5, 0.1])).tolist() == [0, 1, 1, 3, 3, 3, 6]
    assert tied_ranks(np.array([], dtype=np.float32)).tolist() == []


def test_rrf_does_not_depend_on_the_order_of_tied_hits():
    # one engine orders the tie (2, 3) one way, another the other way: the fusion is the same
    dense = Results(np.array([[3, 1, 2]]), np.array([[0.9, 0.8, 0.7]], dtype=np.float32))
    tie_a = Results(np.array([[1, 2, 3, 4]]), np.array([[5.0, 2.0, 2.0, 1.0]], dtype=np.float32))
    tie_b = Results(np.array([[1, 3, 2, 4]]), np.array([[5.0, 2.0, 2.0, 1.0]], dtype=np.float32))
    a, b = fuse_rrf([dense, tie_a], [1, 1], 60, 4), fuse_rrf([dense, tie_b], [1, 1], 60, 4)
    assert a.keys.tolist() == b.keys.tolist()
    np.testing.assert_array_equal(a.scores, b.scores)
    # both tied hits got rank 2 (1-based) of the second run: doc 2 = 1/63 + 1/62, doc 3 = 1/61 + 1/62
    got = dict(zip(a.keys[0].tolist(), a.scores[0].tolist()))
    assert got[2] == pytest.approx(1 / 63 + 1 / 62) and got[3] == pytest.approx(1 / 61 + 1 / 62)
