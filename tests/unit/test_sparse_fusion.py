"""Normalised score fusion: hand-checkable fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from heron.fusion import fuse_scores, weight_grid
from heron.results import Results


def test_minmax_fusion_by_hand():
    a = Results(np.array([[1, 2, 3]]), np.array([[10.0, 5.0, 0.0]]))
    b = Results(np.array([[3, 4, -1]]), np.array([[2.0, 1.0, -np.inf]]))
    r = fuse_scores([a, b], [0.5, 0.5], norm="minmax", depth=4)
    # a: 1->1, 2->.5, 3->0 ; b: 3->1, 4->0 ; missing -> 0
    assert r.keys[0].tolist() == [1, 3, 2, 4]
    np.testing.assert_allclose(r.scores[0], [0.5, 0.5, 0.25, 0.0])


def test_weight_grid_and_errors():
    g = weight_grid(3, 0.5)
    assert all(abs(sum(w) - 1) < 1e-9 for w in g) and len(g) == 6
    a = Results(np.array([[1]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="norm"):
        fuse_scores([a, a], [1, 1], norm="nope")


@pytest.mark.slow  # ~30 s idle, 106 s at load 9: MiniLM + bm25 + three eval runs
@pytest.mark.realdata
def test_eval_fusion_spec_fits_on_train_only(tmp_path, monkeypatch, capsys):
    """``fusion:`` specs dispatch to the fitted builder; weights come from the train split."""
    import shutil

    pytest.importorskip("bm25s")
    from heron.eval.runner import evaluate_dataset
    from heron.limit import generate_limit, write_beir

    monkeypatch.setenv("HERON_CACHE", str(tmp_path / "cache"))
    folder = write_beir(
        generate_limit(n_people=12, n_core=6, likes_per_person=10, seed=1), tmp_path / "d"
    )
    rep = evaluate_dataset(
        folder, ["fusion:dense+bm25", "hybrid:dense+bm25"], measures=["R@2"], progress=False
    )
    assert set(rep["results"]) == {"fusion:dense+bm25", "hybrid:dense+bm25"}
    assert "no 'train' split" in capsys.readouterr().err
    # with a train split the weights are fitted (on it) and reported
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "train.tsv")
    rep = evaluate_dataset(
        folder, ["fusion:dense+bm25?norm=zscore"], measures=["R@2"], progress=False
    )
    assert "fitted on 15 train queries" in capsys.readouterr().err
    with pytest.raises(ValueError, match="norm must be one of"):
        evaluate_dataset(folder, ["fusion:dense+bm25?norm=bad"], progress=False)


def test_fit_fusion_weights_prefers_the_run_that_finds_the_judged_documents():
    pytest.importorskip("ir_measures")
    from heron.eval.fusion import fit_fusion_weights

    # run a ranks the relevant document 7 first for both queries; run b ranks it last
    a = Results(np.array([[7, 1, 2], [7, 3, 4]]), np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]))
    b = Results(np.array([[1, 2, 7], [3, 4, 7]]), np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]))
    qrels = {"q1": {"d7": 1}, "q2": {"d7": 1}}
    best, table = fit_fusion_weights(
        [a, b], qrels, ["q1", "q2"], step=0.5,
        doc_ids=lambda r: [[f"d{k}" for k in row] for row in r.keys],
    )
    assert len(table) == 3 and best == (1.0, 0.0)
    assert dict(table)[(1.0, 0.0)] == pytest.approx(1.0)
    assert dict(table)[(0.0, 1.0)] < 1.0
