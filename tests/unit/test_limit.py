"""LIMIT generator: qrels consistent with the corpus."""

from __future__ import annotations

import itertools

import pytest

from heron.eval import load_beir
from heron.limit import generate_limit, write_beir


def test_generator_qrels_consistent(tmp_path):
    data = generate_limit(n_people=12, n_core=6, likes_per_person=10, seed=1)
    assert len(data.queries) == 15  # every pair of the core
    pairs = set()
    for qid, attr in zip(data.query_ids, data.attributes):
        rel = data.qrels[qid]
        assert len(rel) == 2
        pairs.add(tuple(sorted(rel)))
        for doc in rel:
            assert attr in data.likes[data.doc_ids.index(doc)]
        # nobody else likes it
        assert sum(attr in likes for likes in data.likes) == 2
    core = {d for p in pairs for d in p}
    assert pairs == {tuple(sorted(p)) for p in itertools.combinations(core, 2)}
    ds = load_beir(write_beir(data, tmp_path / "limit"))
    assert len(ds.doc_ids) == 12 and len(ds.qrels["test"]) == 15
    for q, rel in ds.qrels["test"].items():
        attr = dict(zip(ds.query_ids, ds.queries))[q].removeprefix("Who likes ").removesuffix("?")
        for d in rel:
            assert attr in ds.texts[ds.doc_ids.index(d)]


def test_generator_bad_input():
    with pytest.raises(ValueError, match="n_people"):
        generate_limit(n_people=3, n_core=5)
    with pytest.raises(ValueError, match="likes_per_person"):
        generate_limit(n_people=10, n_core=10, likes_per_person=2)
