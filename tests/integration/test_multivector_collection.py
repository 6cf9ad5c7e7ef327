"""Late-interaction retrievers over a collection's ragged "tokens" field."""

from __future__ import annotations

import numpy as np
import pytest

import heron
from heron.multivector.maxsim import exact_maxsim_search
from heron.multivector.ragged import RaggedArray
from heron.pipeline import Queries


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def coll(tmp_path):
    rng = np.random.default_rng(0)
    d = 16
    c = heron.Collection.create(
        tmp_path / "c", model="none", dim=d, fields={"tokens": {"kind": "ragged", "dim": d}}
    )
    toks = [unit(rng.normal(size=(int(n), d))) for n in rng.integers(2, 12, size=40)]
    dense = unit(np.stack([t.mean(0) for t in toks]))
    c.add(
        [f"doc {i}" for i in range(30)],
        ids=[f"d{i}" for i in range(30)],
        vectors=dense[:30],
        fields={"tokens": [t.astype(np.float16) for t in toks[:30]]},
    )
    c.add(
        [f"doc {i}" for i in range(30, 40)],
        ids=[f"d{i}" for i in range(30, 40)],
        vectors=dense[30:],
        fields={"tokens": [t.astype(np.float16) for t in toks[30:]]},
    )
    return c, toks, dense


def queries_for(toks, dense, picks):
    q = Queries([f"q{i}" for i in picks])
    q.put("tokens", [toks[i][:2] for i in picks])
    q.put("none", dense[picks])
    return q


def test_dense_then_maxsim_pipeline_and_exact_agree(coll):
    c, toks, dense = coll
    picks = [3, 17, 35]
    q = queries_for(toks, dense, picks)
    maxsim = c.retriever("maxsim")
    exact = (maxsim % 5).search(q)
    assert exact.doc_ids()[0][0] == "d3" and exact.doc_ids()[2][0] == "d35"
    pipe = c.retriever("dense") % 40 >> maxsim % 5
    res = pipe.search(q)
    np.testing.assert_array_equal(res.keys, exact.keys)  # reranking every document = exact
    ref = RaggedArray.from_list(toks, dtype="float32")
    _, rows = exact_maxsim_search([toks[i][:2] for i in picks], ref, 5)
    assert [[f"d{r}" for r in row] for row in rows] == exact.doc_ids()


@pytest.mark.parametrize(
    "name,params",
    [
        ("muvera", {"k_sim": 3, "d_proj": 8, "r_reps": 8}),
        ("pooled", {"method": "window", "n_vectors": 4}),
        ("pooled", {"method": "kmeans", "n_vectors": 2}),
    ],
)
def test_first_stage_retrievers_and_deletes(coll, name, params):
    c, toks, dense = coll
    picks = [5, 33]
    r = c.retriever(name, candidates=40, **params)
    res = r.search(queries_for(toks, dense, picks), 3)
    assert res.doc_ids()[0][0] == "d5" and res.doc_ids()[1][0] == "d33"
    assert any(p.name.startswith(name) for p in (c.path / "indexes").iterdir())
    c.delete(["d5"])
    res2 = c.retriever(name, candidates=40, **params).search(queries_for(toks, dense, picks), 3)
    assert "d5" not in res2.doc_ids()[0] and res2.doc_ids()[1][0] == "d33"
    c.add(
        ["late doc"],
        ids=["late"],
        vectors=dense[5:6],
        fields={"tokens": [toks[5].astype(np.float16)]},
    )
    res3 = c.retriever(name, candidates=40, **params).search(queries_for(toks, dense, picks), 3)
    assert res3.doc_ids()[0][0] == "late" and res3.doc_ids()[1][0] == "d33"


def test_missing_field_is_a_clear_error(tmp_path):
    c = heron.Collection.create(tmp_path / "x", model="none", dim=4)
    with pytest.raises(ValueError, match="add_token_field"):
        c.retriever("maxsim")


def test_muvera_guard_through_collection(coll):
    c, _, _ = coll
    with pytest.raises(ValueError, match="explodes"):
        c.retriever("muvera", k_sim=12, d_proj=16, r_reps=40)


@pytest.mark.realdata
def test_token_field_with_minilm(tmp_path):
    from heron.capabilities.multivector import add_token_field

    texts = [
        "Scurvy is caused by a lack of vitamin C in the diet.",
        "The Eiffel Tower is in Paris.",
        "Python is a programming language with dynamic typing.",
        "",
        "Vitamin D is made in the skin when exposed to sunlight.",
    ]
    c = heron.Collection.create(tmp_path / "m")
    c.add(texts, ids=["scurvy", "eiffel", "python", "empty", "vitd"])
    add_token_field(c)
    assert c.fields["tokens"]["kind"] == "ragged"
    c.add(["Lemons and limes prevent scurvy."], ids=["lemons"])  # encoded on add
    pipe = c.retriever("dense") % 6 >> c.retriever("maxsim") % 2
    hits = pipe.search(["what causes scurvy?"]).doc_ids()[0]
    assert hits[0] in ("scurvy", "lemons") and "empty" not in hits
    assert c.retriever("muvera", k_sim=3, d_proj=8, r_reps=4).search(
        ["scurvy vitamin"], 1
    ).doc_ids()[0][0] in ("scurvy", "lemons")
