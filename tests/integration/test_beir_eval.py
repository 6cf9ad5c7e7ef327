"""BEIR loading and evaluation on a tiny hand-made dataset, and its error messages."""

import json

import pytest

from heron.eval import load_beir
from heron.eval.metrics import evaluate


def make_beir(root, *, qrels_rows=None):
    root.mkdir(parents=True, exist_ok=True)
    docs = [
        ("d1", "Cats", "cats purr and sleep"),
        ("d2", "Dogs", "dogs bark loudly"),
        ("d3", "", "fish swim in water"),
    ]
    with open(root / "corpus.jsonl", "w") as f:
        for i, t, x in docs:
            f.write(json.dumps({"_id": i, "title": t, "text": x}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        f.write(json.dumps({"_id": "q1", "text": "which animal purrs"}) + "\n")
        f.write(json.dumps({"_id": "q2", "text": "animals that bark"}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    rows = qrels_rows or [("q1", "d1", 1), ("q2", "d2", 1)]
    with open(root / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
    return root


def test_load_tiny(tmp_path):
    ds = load_beir(make_beir(tmp_path / "tiny"))
    assert ds.doc_ids == ["d1", "d2", "d3"]
    assert (
        ds.documents()[0] == "Cats cats purr and sleep"
        and ds.documents()[2] == "fish swim in water"
    )
    qids, texts, qrels = ds.split("test")
    assert qids == ["q1", "q2"] and qrels["q1"] == {"d1": 1}
    with pytest.raises(ValueError, match="no qrels split 'train'"):
        ds.split("train")


def test_metrics_by_hand():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d1": 2.0, "d2": 1.0}}
    m = evaluate(qrels, run, ["RR@10", "nDCG@10", "R@100"])
    assert m["RR@10"] == pytest.approx((1 + 0.5) / 2)
    assert m["nDCG@10"] == pytest.approx((1 + 1 / 1.5849625) / 2, rel=1e-4)
    assert m["R@100"] == 1.0
    # a query with no results counts as zero
    assert evaluate(qrels, {"q1": {"d1": 1.0}}, ["RR@10"])["RR@10"] == pytest.approx(0.5)


def test_missing_file_and_unknown_doc(tmp_path):
    root = make_beir(tmp_path / "bad")
    (root / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="missing queries.jsonl"):
        load_beir(root)
    root2 = make_beir(tmp_path / "bad2", qrels_rows=[("q1", "nope", 1)])
    with pytest.raises(ValueError, match="unknown document 'nope'"):
        load_beir(root2, strict=True)
    # by default (BEIR's convention) the row is kept: 'nope' counts as a miss
    assert load_beir(root2).qrels["test"] == {"q1": {"nope": 1}}
    with pytest.raises(FileNotFoundError, match="no BEIR dataset folder"):
        load_beir(tmp_path / "does-not-exist")


def test_eval_tiny_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HERON_CACHE", str(tmp_path / "cache"))
    from heron.eval.runner import evaluate_dataset, format_table

    rep = evaluate_dataset(
        make_beir(tmp_path / "tiny"), ["dense", "bm25", "hybrid:dense+bm25"], progress=False
    )
    assert rep["results"]["dense"]["RR@10"] == 1.0
    assert rep["results"]["bm25"]["RR@10"] == 1.0
    assert "hybrid:dense+bm25" in format_table(rep)
