"""Collection integration of issue 7: drift maps (heron migrate), the 'mapped', 'e2rank',
'rocchio' and 'calibrated' retrievers. Uses the crude hashing encoder as both models."""

import numpy as np
import pytest
from tests._after_fixtures import HashEncoder

import heron.capabilities.mapped as dc
import heron.capabilities.rerank  # noqa: F401  (registers e2rank / rocchio / calibrated)
from heron.capabilities.calibrated import calibrate
from heron.collection import Collection
from heron.drift import DriftMap

WORDS = [f"w{i}" for i in range(40)]


@pytest.fixture()
def coll(tmp_path):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 6)) for _ in range(150)]
    c = Collection.create(tmp_path / "c", encoder=HashEncoder(dim=16, name="old"))
    c.add(texts, ids=[f"d{i}" for i in range(len(texts))])
    return c


def test_migrate_mapped_and_reembed(coll, monkeypatch):
    new = HashEncoder(dim=16, name="new")
    with pytest.raises(ValueError, match="no drift map"):
        coll.retriever("mapped", encoder=new)
    mp = dc.migrate(coll, new, kind="procrustes", sample=120)
    assert coll.config["drift"]["maps"]["new"]["n_pairs"] == 120
    back = dc.load_map(coll, "new")
    assert isinstance(back, DriftMap) and np.array_equal(back.arrays["W"], mp.arrays["W"])
    res = coll.retriever("mapped", encoder=new).search(["w1 w2 w3"], 5)
    assert res.info["mode"] == "drift-map" and res.counts()[0] == 5
    st = dc.reembed(coll, new, chunk=64, max_chunks=1)
    assert st == {
        "model": "new",
        "done": 64,
        "total": 150,
        "complete": False,
        "generation": st["generation"],
    }
    assert coll.retriever("mapped", encoder=new).search(["w1"], 3).info["mode"] == "drift-map"
    assert dc.reembed(coll, new, chunk=64)["complete"]
    res = coll.retriever("mapped", encoder=new).search(["w1 w2 w3"], 5)
    assert res.info["mode"] == "native"
    q = new.encode_queries(["w1 w2 w3"])[0]
    texts = coll.snapshot().texts(res.keys[0])
    assert np.allclose(res.scores[0], new.encode_documents(texts) @ q, atol=1e-5)
    assert len(res.doc_ids()[0]) == 5


def test_migrate_with_knn_correction_is_stored(coll):
    new = HashEncoder(dim=16, name="new")
    mp = dc.migrate(coll, new, kind="procrustes", sample=100, knn_k=5, knn_weight=1.0)
    assert coll.config["drift"]["maps"]["new"]["knn_k"] == 5
    back = dc.load_map(coll, "new")
    assert back.params["knn_k"] == 5 and back.arrays["anchors_source"].shape == (100, 16)
    q = new.encode_queries(["w1 w2 w3", "w4 w5"])
    assert np.array_equal(back.apply(q), mp.apply(q))
    assert coll.retriever("mapped", encoder=new).search(["w1 w2 w3"], 5).counts()[0] == 5


def test_migrate_cli(coll, monkeypatch, capsys):
    from heron.cli.main import main

    monkeypatch.setattr(dc, "load_model", lambda name: HashEncoder(dim=16, name=name))
    path = str(coll.path)
    coll.close()
    assert (
        main(
            [
                "migrate",
                path,
                "--new-model",
                "newer",
                "--sample",
                "100",
                "--reembed",
                "--max-chunks",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "procrustes map newer (16d) -> old (16d) on 100 documents" in out and "re-embedded" in out
    )
    assert main(["migrate", path, "--new-model", "old"]) == 2  # same model: refused


def test_rerank_and_calibrated_retrievers(coll):
    for name in ("e2rank", "rocchio"):
        res = coll.retriever(name, depth=20).search(["w1 w2"], 10)
        assert res.keys.shape == (1, 10) and len(set(res.keys[0].tolist())) == 10
    rng = np.random.default_rng(1)
    qs = [" ".join(rng.choice(WORDS, 3)) for _ in range(60)]
    snap = coll.snapshot()
    ids = snap.ids(snap.keys)
    texts = snap.texts(snap.keys)
    qrels = {
        f"q{i}": {d: 1 for d, t in zip(ids, texts) if len(set(q.split()) & set(t.split())) >= 2}
        or {ids[0]: 1}
        for i, q in enumerate(qs)
    }
    calibrate(coll, qs, [f"q{i}" for i in range(60)], qrels, depth=20)
    hi = coll.retriever("calibrated", min_relevance=0.9, depth=20).search(qs[:5], 20)
    lo = coll.retriever("calibrated", min_relevance=0.0, depth=20).search(qs[:5], 20)
    assert np.all(hi.counts() <= lo.counts()) and np.all(lo.counts() == 20)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        coll.retriever("calibrated", min_relevance=1.5)


class TwistedEncoder(HashEncoder):
    """Another model: the hash encoder bent by a fixed non-linear map (no rotation fits it)."""

    def encode_queries(self, texts, **_):
        x = super().encode_queries(texts)
        rot = np.linalg.qr(np.random.default_rng(5).normal(size=(self.dim, self.dim)))[0]
        y = np.tanh(3 * x @ rot)
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)

    encode_documents = encode_queries


def test_migrate_with_query_texts_and_auto_knn(coll):
    new = TwistedEncoder(dim=16, name="new")
    rng = np.random.default_rng(2)
    queries = [" ".join(rng.choice(WORDS, 2)) for _ in range(40)]
    with pytest.raises(ValueError, match="query_texts"):
        dc.migrate(coll, new, kind="procrustes", sample=100, knn_k="auto")
    with pytest.raises(ValueError, match="'auto'"):
        dc.migrate(coll, new, kind="procrustes", sample=100, knn_k="many")
    mp = dc.migrate(coll, new, kind="procrustes", sample=100, knn_k="auto", query_texts=queries)
    cfg = coll.config["drift"]["maps"]["new"]
    assert cfg["n_pairs"] == 140 and cfg["n_documents"] == 100 and cfg["n_query_texts"] == 40
    ch = cfg["knn_choice"]
    assert (ch["knn_k"], ch["knn_temperature"], ch["knn_weight"]) == (
        mp.params["knn_k"],
        mp.params["knn_temperature"],
        mp.params["knn_weight"],
    )
    assert mp.arrays["anchors_source"].shape == (140, 16)  # the query texts are anchors too
    # a query text is its own nearest anchor: mapped, it lands closer to its old-model vector
    # than the documents-only map puts it
    q = new.encode_queries(queries)
    old = coll.encoder.encode_queries(queries)
    plain = dc.migrate(coll, new, kind="procrustes", sample=100)
    assert (mp.apply(q) * old).sum(1).mean() > (plain.apply(q) * old).sum(1).mean()
    assert coll.retriever("mapped", encoder=new).search(["w1 w2"], 5).counts()[0] == 5


def test_migrate_cli_with_query_file_defaults_to_auto_knn(coll, monkeypatch, capsys, tmp_path):
    import heron.encoders
    from heron.cli.main import main

    monkeypatch.setattr(dc, "load_model", lambda name: TwistedEncoder(dim=16, name=name))
    monkeypatch.setattr(heron.encoders, "load_encoder", lambda name, **kw: HashEncoder(16, name))
    rng = np.random.default_rng(3)
    qfile = tmp_path / "queries.txt"
    qfile.write_text("\n".join(" ".join(rng.choice(WORDS, 2)) for _ in range(30)) + "\n\n")
    path = str(coll.path)
    coll.close()
    args = ["migrate", path, "--new-model", "newer", "--kind", "procrustes", "--sample", "100"]
    assert main([*args, "--queries", str(qfile)]) == 0
    assert "on 130 texts (30 of them query texts)" in capsys.readouterr().out
    back = Collection.open(path)
    cfg = back.config["drift"]["maps"]["newer"]
    assert cfg["knn_k"] == cfg["knn_choice"]["knn_k"] > 0 and cfg["n_query_texts"] == 30
    back.close()
    assert main([*args, "--knn", "several"]) == 2  # refused with a message
