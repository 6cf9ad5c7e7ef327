import numpy as np
import pytest
from tests._after_fixtures import HashEncoder

from heron.dimsel import (
    CommonDirectionFilter,
    DimensionSelector,
    DimensionSelectRetriever,
    masked_queries,
    mix_importance,
    prf_importance,
)
from heron.pipeline import Queries
from heron.rerank import KeyedVectors
from heron.rerank.vectors import VectorSearch, search_vectors


def corpus(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def labelled(docs, n_q=60, seed=1):
    rng = np.random.default_rng(seed)
    rel = rng.integers(0, len(docs), n_q)
    q = docs[rel] + 0.3 * rng.normal(size=(n_q, docs.shape[1]))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"d{i}" for i in range(len(docs))]
    qids = [f"q{i}" for i in range(n_q)]
    return q, qids, {qid: {ids[r]: 1} for qid, r in zip(qids, rel)}, ids


def test_full_dimension_equals_plain_search_exactly():
    docs = corpus()
    kv = KeyedVectors(np.arange(len(docs)) * 3, docs, model="hash-bow")
    q, qids, qrels, ids = labelled(docs)
    sel = DimensionSelector().fit_labels(q, qids, qrels, docs, ids, model="hash-bow")
    enc = HashEncoder(dim=16)
    texts = ["alpha beta", "gamma delta", "x y z"]
    plain = VectorSearch(kv, enc, depth=20).search(Queries(texts))
    for selector in (sel, None):
        got = DimensionSelectRetriever(
            vectors=kv, encoder=enc, m=16, selector=selector, depth=20
        ).search(Queries(texts))
        assert np.array_equal(got.keys, plain.keys) and np.array_equal(got.scores, plain.scores)
    qv = enc.encode_queries(texts)
    assert masked_queries(qv, sel.importance(qv), 16) is not None
    assert np.array_equal(masked_queries(qv, sel.importance(qv), 99), qv)


def test_mask_keeps_exactly_m_dims():
    q = corpus(5, 16)
    imp = np.abs(q)
    mq = masked_queries(q, imp, 4)
    assert np.all((mq != 0).sum(1) == 4)
    top = np.argsort(-imp, axis=1)[:, :4]
    assert np.array_equal(np.take_along_axis(mq, top, 1), np.take_along_axis(q, top, 1))
    with pytest.raises(ValueError, match="m"):
        masked_queries(q, imp, 0)


def test_prf_importance_is_query_times_centroid():
    docs = corpus()
    kv = KeyedVectors(np.arange(len(docs)), docs)
    q = docs[:2]
    first = search_vectors(q, kv, 3)
    imp = prf_importance(q, first, kv, 3)
    assert np.allclose(imp[0], q[0] * docs[first.keys[0]].mean(0), atol=1e-6)


def test_learned_selector_save_load_and_refusals(tmp_path):
    docs = corpus()
    q, qids, qrels, ids = labelled(docs)
    sel = DimensionSelector(num_negatives=5).fit_labels(q, qids, qrels, docs, ids, model="m")
    sel.save(tmp_path / "sel")
    back = DimensionSelector.load(tmp_path / "sel")
    assert np.array_equal(back.importance(q), sel.importance(q))
    with pytest.raises(ValueError, match="trained for model"):
        sel.importance(q, model="other")
    with pytest.raises(ValueError, match="16-dimensional"):
        sel.importance(q[:, :8])
    with pytest.raises(ValueError, match="at least 20"):
        DimensionSelector().fit_labels(q[:5], qids[:5], qrels, docs, ids)


def test_common_direction_filter():
    rng = np.random.default_rng(0)
    common = rng.normal(size=16)
    x = corpus() + 2 * common / np.linalg.norm(common)
    f = CommonDirectionFilter(num_directions=2).fit(x)
    y = f.transform(x)
    assert y.shape == (len(x), 14) and np.allclose(np.linalg.norm(y, axis=1), 1, atol=1e-5)
    # the dominant common direction is gone: projections of x's top singular vector vanish
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    assert np.abs(vt[0] @ f.basis).max() < 1e-5
    with pytest.raises(ValueError, match="not fitted"):
        CommonDirectionFilter().transform(x)


def test_q2_prior_shrinks_to_magnitude_mask_and_reloads(tmp_path):
    docs = corpus()
    q, qids, qrels, ids = labelled(docs)
    sel = DimensionSelector(prior="q2", l2=1e9, num_negatives=5).fit_labels(
        q, qids, qrels, docs, ids, model="m"
    )
    assert sel.prior_scale > 0
    # with an overwhelming ridge penalty only s * q**2 and the (unpenalised) per-dimension
    # intercept are left: the labels no longer move the selection query by query
    assert np.abs(sel.W[:-1]).max() < 1e-6
    assert np.allclose(sel.importance(q), sel.prior_scale * q * q + sel.W[-1], atol=1e-6)
    sel.save(tmp_path / "sel")
    back = DimensionSelector.load(tmp_path / "sel")
    assert back.prior == "q2" and back.prior_scale == sel.prior_scale
    assert np.array_equal(back.importance(q), sel.importance(q))
    loose = DimensionSelector(prior="q2", l2=1e-3).fit_labels(q, qids, qrels, docs, ids)
    assert not np.array_equal(
        masked_queries(q, loose.importance(q), 8), masked_queries(q, q * q, 8)
    )
    with pytest.raises(ValueError, match="prior"):
        DimensionSelector(prior="q3")


def test_mix_importance_endpoints():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 16)), rng.normal(size=(4, 16))
    for w, ref in ((1.0, a), (0.0, b)):
        top = np.argsort(-mix_importance(a, b, w), axis=1)
        assert np.array_equal(top, np.argsort(-ref, axis=1))
    with pytest.raises(ValueError, match="weight"):
        mix_importance(a, b, 1.5)
