"""BEIR conventions of ``heron eval``: missing-document qrels are misses, identical ids are ignored,
reports are never silently replaced. Figures are checked against ir-measures on runs made by hand."""

import json
import logging
import os
import subprocess
import sys

import ir_measures
import pytest

from heron.eval import load_beir

MEASURES = ["nDCG@10", "RR@10", "R@100", "AP"]
DOCS = [
    ("d1", "Cats", "cats purr when they are content"),
    ("d2", "Dogs", "dogs bark at the postman"),
    ("d3", "", "fish swim in cold water"),
    ("d4", "", "parrots can learn to talk"),
    # the two queries are documents too (as in ArguAna, Quora, SciDocs)
    ("q1", "", "why do cats purr"),
    ("q2", "", "why do dogs bark"),
]
QUERIES = [("q1", "why do cats purr"), ("q2", "why do dogs bark"), ("q3", "where do fish swim")]
# 'gone' is not in the corpus (kept as a miss); 'q9' is not a query (dropped)
QRELS = [
    ("q1", "d1", 1),
    ("q1", "gone", 1),
    ("q2", "d2", 1),
    ("q3", "d3", 1),
    ("q9", "d4", 1),
]


def make_beir(root, docs=DOCS, queries=QUERIES, qrels=QRELS):
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i, t, x in docs:
            f.write(json.dumps({"_id": i, "title": t, "text": x}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for i, x in queries:
            f.write(json.dumps({"_id": i, "text": x}) + "\n")
    with open(root / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for r in qrels:
            f.write("\t".join(map(str, r)) + "\n")
    return root


def raw_qrels(root):
    """The qrels file as written (no filtering), minus queries that have no text."""
    known = {q for q, _ in QUERIES}
    out = {}
    for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, s = line.split("\t")
        if q in known:
            out.setdefault(q, {})[d] = int(s)
    return out


def by_hand(qrels, run, ignore_identical):
    if ignore_identical:
        run = {q: {d: s for d, s in hits.items() if d != q} for q, hits in run.items()}
    agg = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in MEASURES], qrels, run)
    return {str(k): v for k, v in agg.items()}


@pytest.fixture()
def dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HERON_CACHE", str(tmp_path / "cache"))
    return make_beir(tmp_path / "selfq")


def test_load_keeps_missing_docs_with_one_notice(dataset, caplog):
    with caplog.at_level(logging.INFO, logger="heron"):
        ds = load_beir(dataset)
    assert ds.qrels["test"]["q1"] == {"d1": 1, "gone": 1}  # kept
    assert "q9" not in ds.qrels["test"]  # a query without text cannot run
    assert ds.missing_docs == {"test": 1} and ds.dropped_queries == {"test": 1}
    notes = [r for r in caplog.records if "missing from corpus.jsonl" in r.getMessage()]
    assert len(notes) == 1 and "1 qrels row(s)" in notes[0].getMessage()
    with pytest.raises(ValueError, match="unknown document 'gone'"):
        load_beir(dataset, strict=True)


@pytest.mark.parametrize("retriever", ["bm25", "dense"])
def test_eval_matches_ir_measures_by_hand(dataset, retriever, caplog):
    from heron.eval.runner import dataset_collection, evaluate_dataset

    with caplog.at_level(logging.INFO, logger="heron"):
        rep = evaluate_dataset(dataset, [retriever], measures=MEASURES, progress=False)
    assert any("are also documents" in r.getMessage() for r in caplog.records)
    assert rep["ignore_identical_ids"] is True and rep["qrels_missing_docs"] == 1
    assert rep["queries"] == 3

    # the run, made here without the report's code path
    ds = load_beir(dataset)
    qids, qtexts, _ = ds.split("test")
    coll = dataset_collection(ds, progress=False)
    run = coll.retriever(retriever, depth=1000).search(qtexts, 1000).to_run(qids)
    # each self-query finds itself first: the convention matters on this data
    assert next(iter(run["q1"])) == "q1" and next(iter(run["q2"])) == "q2"
    qrels = raw_qrels(dataset)
    want = by_hand(qrels, run, ignore_identical=True)
    got = rep["results"][retriever]
    for m in MEASURES:
        assert got[m] == pytest.approx(want[m], abs=1e-9), m
    assert got["identical_ids_removed"] == 2
    # 'gone' is a miss: q1 can reach at most 1/2 recall
    assert got["R@100"] == pytest.approx((0.5 + 1 + 1) / 3)

    off = evaluate_dataset(
        dataset, [retriever], measures=MEASURES, progress=False, ignore_identical_ids=False
    )["results"][retriever]
    want_off = by_hand(qrels, run, ignore_identical=False)
    for m in MEASURES:
        assert off[m] == pytest.approx(want_off[m], abs=1e-9), m
    assert off["nDCG@10"] < got["nDCG@10"] and off["identical_ids_removed"] == 0


def test_no_identical_ids_means_off(tmp_path, monkeypatch):
    from heron.eval.runner import evaluate_dataset

    monkeypatch.setenv("HERON_CACHE", str(tmp_path / "cache"))
    root = make_beir(
        tmp_path / "plain",
        docs=DOCS[:4],
        queries=[("x1", "why do cats purr")],
        qrels=[("x1", "d1", 1)],
    )
    rep = evaluate_dataset(root, ["bm25"], measures=MEASURES, progress=False)
    assert rep["ignore_identical_ids"] is False and rep["qrels_missing_docs"] == 0
    assert rep["results"]["bm25"]["RR@10"] == 1.0


def heron(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "heron", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def test_cli_eval_strict_and_reports_kept(dataset, tmp_path):
    env = {"HERON_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "out" / "eval.json"
    r1 = heron("eval", str(dataset), "-r", "bm25", "--out", str(out), env=env)
    assert r1.returncode == 0, r1.stderr
    assert "1 qrels row(s) name documents missing" in r1.stderr  # the one notice
    assert "are also documents" in r1.stderr
    first = json.loads(out.read_text())
    # the command's figures are the ones checked against ir-measures by hand above
    qrels = raw_qrels(dataset)
    ds = load_beir(dataset)
    qids, qtexts, _ = ds.split("test")
    from heron.eval.runner import dataset_collection

    run = dataset_collection(ds, progress=False).retriever("bm25", depth=1000).search(
        qtexts, 1000
    ).to_run(qids)
    want = by_hand(qrels, run, ignore_identical=True)
    for m in MEASURES:
        assert first["results"]["bm25"][m] == pytest.approx(want[m], abs=1e-9), m
    r2 = heron(
        "eval", str(dataset), "-r", "bm25", "--out", str(out), "--no-ignore-identical-ids", env=env
    )
    assert r2.returncode == 0, r2.stderr
    second = tmp_path / "out" / "eval-2.json"
    assert f"report written to {second}" in r2.stdout and "exists and is kept" in r2.stderr
    assert json.loads(out.read_text()) == first  # the earlier report is untouched
    rep2 = json.loads(second.read_text())
    assert rep2["ignore_identical_ids"] is False
    assert rep2["results"]["bm25"]["nDCG@10"] < first["results"]["bm25"]["nDCG@10"]
    r3 = heron("eval", str(dataset), "-r", "bm25", "--out", str(out), "--overwrite", env=env)
    assert f"report written to {out}" in r3.stdout
    assert not (tmp_path / "out" / "eval-3.json").exists()
    r4 = heron("--quiet", "eval", str(dataset), "-r", "bm25", "--strict", env=env)
    assert r4.returncode == 2
    assert "unknown document 'gone'" in r4.stderr and "Traceback" not in r4.stderr
