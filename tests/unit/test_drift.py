import numpy as np
import pytest
from tests._after_fixtures import HashEncoder

from heron.drift import DriftMap, MappedQueryEncoder, fit_drift_map, heldout_cosine, tune_knn


def pairs(n=400, d=16, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(n, d))
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = b @ rot
    return b.astype(np.float32), a.astype(np.float32), rot


@pytest.mark.parametrize("kind", ["lstsq", "procrustes", "mlp"])
def test_map_recovers_rotation_and_reloads_bit_exactly(kind, tmp_path):
    b, a, _ = pairs()
    mp = fit_drift_map(
        b, a, kind=kind, source_model="new", target_model="old", epochs=30, hidden=32
    )
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    cos = (mp.apply(b, model="new") * an).sum(1)
    assert cos.mean() > (0.98 if kind != "mlp" else 0.9)
    mp.save(tmp_path / kind)
    back = DriftMap.load(tmp_path / kind, source_model="new", target_model="old")
    assert np.array_equal(back.apply(b), mp.apply(b))
    for k, v in mp.arrays.items():
        assert np.array_equal(back.arrays[k], v) and back.arrays[k].dtype == v.dtype
    assert (back.source_dim, back.target_dim, back.kind) == (16, 16, kind)


def test_procrustes_is_orthogonal():
    b, a, rot = pairs()
    mp = fit_drift_map(b, a, kind="procrustes", source_model="new", target_model="old")
    w = mp.arrays["W"]
    gram = w @ w.T
    s2 = gram[0, 0]
    assert np.allclose(gram / s2, np.eye(16), atol=1e-5)  # a scaled rotation
    assert abs(s2 - 1) < 0.05 and np.allclose(w, rot, atol=0.05)


def test_wrong_model_or_dim_refused(tmp_path):
    b, a, _ = pairs()
    mp = fit_drift_map(b, a, source_model="new", target_model="old")
    with pytest.raises(ValueError, match="not 'other'"):
        mp.apply(b, model="other")
    with pytest.raises(ValueError, match="16"):
        mp.apply(b[:, :8])
    mp.save(tmp_path / "m")
    with pytest.raises(ValueError, match="source_model"):
        DriftMap.load(tmp_path / "m", source_model="other")
    with pytest.raises(ValueError, match="at least 50"):
        fit_drift_map(b[:10], a[:10], source_model="new", target_model="old")
    with pytest.raises(ValueError, match="equal dimensions"):
        fit_drift_map(b, a[:, :8], kind="procrustes", source_model="new", target_model="old")
    with pytest.raises(ValueError, match="not a 'CommonDirectionFilter'|holds a"):
        from heron.dimsel import CommonDirectionFilter

        CommonDirectionFilter.load(tmp_path / "m")


def test_mapped_query_encoder():
    new = HashEncoder(dim=16, name="new")
    old = HashEncoder(dim=16, name="old")
    texts = [f"word{i} word{i + 1} common" for i in range(120)]
    mp = fit_drift_map(
        new.encode_documents(texts),
        old.encode_documents(texts),
        source_model="new",
        target_model="old",
    )
    enc = MappedQueryEncoder(new, mp)
    assert enc.name == "old" and enc.encode_queries(["word3 word4"]).shape == (1, 16)
    with pytest.raises(ValueError, match="maps 'new'"):
        MappedQueryEncoder(old, mp)
    with pytest.raises(ValueError, match="only encodes queries"):
        enc.encode_documents(["x"])


def test_knn_correction_reloads_bit_exactly_and_pulls_to_anchor_targets(tmp_path):
    rng = np.random.default_rng(1)
    b, a, _ = pairs()
    a = np.tanh(2 * a) + 0.1 * rng.normal(size=a.shape).astype(np.float32)  # not a rotation
    lin = fit_drift_map(b, a, kind="procrustes", source_model="new", target_model="old")
    mp = fit_drift_map(
        b,
        a,
        kind="procrustes",
        source_model="new",
        target_model="old",
        knn_k=3,
        knn_temperature=0.01,
        knn_weight=0.5,
    )
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    # on the fitting texts themselves the nearest anchor is the text: the correction helps
    assert (mp.apply(b) * an).sum(1).mean() > (lin.apply(b) * an).sum(1).mean() + 0.01
    mp.save(tmp_path / "knn")
    back = DriftMap.load(tmp_path / "knn")
    assert np.array_equal(back.apply(b), mp.apply(b))
    assert back.params["knn_k"] == 3 and back.params["knn_mode"] == "residual"
    # k = 1 on an anchor itself: residual mode with weight 1 adds back exactly what the global
    # map got wrong, target mode with weight 1 returns the anchor's target
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    for mode in ("residual", "target"):
        one = fit_drift_map(
            bn,
            a,
            kind="lstsq",
            source_model="new",
            target_model="old",
            knn_k=1,
            knn_weight=1.0,
            knn_mode=mode,
        )
        assert np.allclose(one.apply(bn[:20]), an[:20], atol=1e-5)


@pytest.mark.parametrize(
    "kw",
    [
        {"knn_k": -1},
        {"knn_k": 2.5},
        {"knn_k": 3, "knn_weight": 1.5, "knn_mode": "target"},
        {"knn_k": 3, "knn_mode": "nearest"},
        {"knn_k": 3, "knn_temperature": 0},
    ],
)
def test_bad_knn_settings_refused(kw):
    b, a, _ = pairs()
    with pytest.raises(ValueError, match="knn"):
        fit_drift_map(b, a, source_model="new", target_model="old", **kw)


def test_tune_knn_matches_fitting_each_grid_point():
    b, a, _ = pairs()
    a = np.tanh(2 * a)  # not a rotation: the correction has something to fix
    fit, ho = slice(0, 150), slice(150, None)
    for mode in ("residual", "target"):
        best, grid = tune_knn(
            b[fit],
            a[fit],
            b[ho],
            a[ho],
            knn_mode=mode,
            ks=(1, 5),
            temperatures=(0.02, 0.1),
            source_model="new",
            target_model="old",
        )
        assert len(grid) == 2 * 2 * (6 if mode == "residual" else 4)
        for (k, t, w), score in grid.items():
            mp = fit_drift_map(
                b[fit],
                a[fit],
                kind="procrustes",
                source_model="new",
                target_model="old",
                knn_k=k,
                knn_temperature=t,
                knn_weight=w,
                knn_mode=mode,
            )
            assert abs(heldout_cosine(mp, b[ho], a[ho]) - score) < 1e-5
        assert best["heldout_cosine"] == max(grid.values()) and best["knn_mode"] == mode


@pytest.mark.parametrize(
    "kw",
    [{"knn_mode": "nearest"}, {"ks": (0,)}, {"temperatures": (0.0,)}, {"weights": ()}],
)
def test_tune_knn_bad_grid_refused(kw):
    b, a, _ = pairs()
    with pytest.raises(ValueError, match="knn_mode|grid|k >= 1"):
        tune_knn(b[:100], a[:100], b[100:], a[100:], source_model="new", target_model="old", **kw)
