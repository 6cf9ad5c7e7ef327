"""Real data: SciFact with the bundled all-MiniLM-L6-v2 reproduces the published figures."""

import pytest

pytestmark = pytest.mark.realdata


def test_scifact_dense_bm25_hybrid(scifact, scifact_emb, tmp_path_factory):
    from heron.eval.runner import evaluate_dataset

    rep = evaluate_dataset(scifact, ["dense", "bm25", "hybrid:dense+bm25"], progress=False)
    res = rep["results"]
    assert abs(100 * res["dense"]["nDCG@10"] - 64.51) <= 0.5  # MTEB published figure
    assert abs(100 * res["bm25"]["nDCG@10"] - 68.0) <= 1.0  # bm25s, Lucene k1=1.2 b=0.75
    assert res["hybrid:dense+bm25"]["nDCG@10"] > max(
        res["dense"]["nDCG@10"], res["bm25"]["nDCG@10"]
    )
