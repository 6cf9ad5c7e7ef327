import numpy as np
import pytest
from tests._after_fixtures import HashEncoder

from heron.calibration import (
    CosineAdapter,
    RelevanceThreshold,
    global_threshold,
    minmax_threshold,
    set_prf,
    topk_cutoff,
)
from heron.calibration.cosine_adapter import check_threshold, threshold_results
from heron.pipeline import Queries
from heron.rerank import KeyedVectors
from heron.rerank.vectors import VectorSearch
from heron.results import Results


def synthetic(n_q=120, k=30, d=8, seed=0):
    """Queries whose relevant candidates have a query-dependent score offset (so raw cosine is
    not comparable across queries, but the query embedding predicts the offset)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n_q, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    shift = 0.3 * q[:, 0]
    base = np.sort(rng.uniform(0.2, 0.6, size=(n_q, k)), axis=1)[:, ::-1] + shift[:, None]
    labels = np.zeros((n_q, k), bool)
    labels[:, :3] = rng.random((n_q, 3)) < 0.7
    scores = np.where(labels, base + 0.15, base)
    order = np.argsort(-scores, axis=1)
    return (
        q,
        np.take_along_axis(scores, order, 1).astype(np.float32),
        np.take_along_axis(labels, order, 1),
    )


@pytest.fixture(scope="module")
def fitted():
    q, s, y = synthetic()
    return CosineAdapter(epochs=200).fit(q, s, y, model="m"), q, s, y


@pytest.mark.parametrize("transform", ["relative", "raw"])
def test_monotone_in_raw_score_for_fixed_query(transform):
    q, s, y = synthetic()
    ad = CosineAdapter(epochs=100, score_transform=transform).fit(q, s, y)
    for i in range(5):
        grid = np.sort(np.linspace(-1, 1, 200))[::-1][None, :].astype(np.float32)
        prof = np.concatenate([s[i : i + 1], grid[:, : 200 - s.shape[1]]], axis=1)
        # same query and profile, probe scores inserted in increasing order
        p = ad.predict(q[i : i + 1], prof)[0]
        order = np.argsort(prof[0])
        assert np.all(np.diff(p[order]) >= 0)
    a, _ = ad.mapping(q, s)
    assert np.all(a > 0)


def test_probabilities_in_unit_interval_and_pads_zero(fitted):
    ad, q, s, _ = fitted
    s2 = s.copy()
    s2[:, -5:] = -np.inf
    p = ad.predict(q, s2)
    assert np.all((p >= 0) & (p <= 1)) and np.all(p[:, -5:] == 0)


def test_save_load_bit_exact(fitted, tmp_path):
    ad, q, s, _ = fitted
    ad.save(tmp_path / "ca")
    back = CosineAdapter.load(tmp_path / "ca")
    assert np.array_equal(back.predict(q, s), ad.predict(q, s))
    for k, v in ad._p.items():
        assert np.array_equal(back._p[k], v)


def test_too_few_pairs_says_how_many():
    q, s, y = synthetic(n_q=5, k=10)
    with pytest.raises(ValueError, match="at least 200 labelled"):
        CosineAdapter().fit(q, s, y)


def test_wrong_model_or_dim_refused(fitted):
    ad, q, s, _ = fitted
    with pytest.raises(ValueError, match="trained for model 'm'"):
        ad.predict(q, s, model="other")
    with pytest.raises(ValueError, match="8-dimensional"):
        ad.predict(q[:, :4], s)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_threshold_outside_unit_interval_rejected(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_threshold(bad)


def test_threshold_stage_variable_length(tmp_path):
    enc = HashEncoder(dim=8, name="m")
    rng = np.random.default_rng(1)
    docs = rng.normal(size=(200, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    kv = KeyedVectors(np.arange(200), docs, model="m")
    q, s, y = synthetic()
    ad = CosineAdapter(epochs=50).fit(q, s, y, model="m")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RelevanceThreshold(adapter=ad, encoder=enc, min_relevance=2)
    with pytest.raises(ValueError, match="trained for model"):
        RelevanceThreshold(adapter=ad, encoder=HashEncoder(dim=8, name="x"))
    texts = ["alpha beta", "gamma", "delta epsilon zeta", "eta"]
    lo = (
        VectorSearch(kv, enc) % 30 >> RelevanceThreshold(adapter=ad, encoder=enc, min_relevance=0.0)
    ).search(Queries(texts))
    hi = (
        VectorSearch(kv, enc) % 30
        >> RelevanceThreshold(adapter=ad, encoder=enc, min_relevance=0.9, min_hits=1)
    ).search(Queries(texts))
    assert np.all(lo.counts() == 30)
    assert np.all(hi.counts() >= 1) and np.all(hi.counts() <= lo.counts())
    for r_lo, r_hi, c in zip(lo.keys, hi.keys, hi.counts()):
        assert r_hi[:c].tolist() == r_lo[:c].tolist()  # a prefix of the ranking


def test_baselines_and_set_metrics():
    keys = np.array([[1, 2, 3, -1], [4, 5, 6, 7]])
    scores = np.array([[0.9, 0.5, 0.1, -np.inf], [0.8, 0.7, 0.6, 0.5]], dtype=np.float32)
    r = Results(keys, scores)
    assert topk_cutoff(r, 2).counts().tolist() == [2, 2]
    assert global_threshold(r, 0.55).counts().tolist() == [1, 3]
    assert minmax_threshold(r, 0.5).counts().tolist() == [2, 2]
    m = set_prf([["a", "b"], []], ["q1", "q2"], {"q1": {"a": 1, "c": 1}, "q2": {"d": 2}})
    assert (
        m["precision"] == pytest.approx(0.25)
        and m["recall"] == pytest.approx(0.25)
        and m["avg_count"] == 1.0
    )
    assert threshold_results(r, np.zeros((2, 4)), 0.5, min_hits=1).counts().tolist() == [1, 1]


def overlapping(n_q=200, k=30, d=8, seed=3):
    """Harder: 1-5 relevant per query (label noise), small score gap, noisy scores."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n_q, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    base = np.sort(rng.uniform(0.2, 0.6, size=(n_q, k)), axis=1)[:, ::-1] + 0.3 * q[:, :1]
    labels = (np.arange(k)[None, :] < rng.integers(1, 6, n_q)[:, None]) & (
        rng.random((n_q, k)) < 0.8
    )
    scores = np.where(labels, base + 0.04, base) + 0.03 * rng.normal(size=base.shape)
    order = np.argsort(-scores, axis=1)
    return (
        q,
        np.take_along_axis(scores, order, 1).astype(np.float32),
        np.take_along_axis(labels, order, 1),
    )


def test_f1_loss_keeps_monotonicity_reloads_and_raises_set_f1(tmp_path):
    q, s, y = overlapping()
    taus = (0.3, 0.5)
    plain = CosineAdapter(epochs=150).fit(q, s, y)
    f1 = CosineAdapter(epochs=150, f1_weight=1.0, f1_thresholds=taus).fit(q, s, y, model="m")
    a, _ = f1.mapping(q, s)
    assert np.all(a > 0)  # still strictly increasing in the raw score for every query
    f1.save(tmp_path / "f1")
    back = CosineAdapter.load(tmp_path / "f1")
    assert back.f1_weight == 1.0 and back.f1_thresholds == taus
    assert np.array_equal(back.predict(q, s), f1.predict(q, s))
    res = Results(np.tile(np.arange(s.shape[1]), (len(s), 1)), s)
    qids = [str(i) for i in range(len(q))]
    qrels = {str(i): {str(j): 1 for j in np.flatnonzero(y[i])} for i in range(len(q))}

    def mean_f1(ad):
        p = ad.predict(q, s)
        return np.mean(
            [
                set_prf(
                    [
                        [str(k) for k in r if k >= 0]
                        for r in threshold_results(res, p, t, min_hits=1).keys
                    ],
                    qids,
                    qrels,
                )["f1"]
                for t in taus
            ]
        )

    assert mean_f1(f1) > mean_f1(plain)


@pytest.mark.parametrize(
    "kw",
    [
        {"f1_weight": -1.0},
        {"f1_weight": 1.0, "f1_thresholds": (0.0, 0.5)},
        {"f1_temperature": 0.0},
        {"f1_min_hits": -1},
    ],
)
def test_bad_f1_settings_refused(kw):
    with pytest.raises(ValueError, match="f1_"):
        CosineAdapter(**kw)
