"""A chunked collection end to end with the bundled model: passage hits name their passage, and
delete / upsert / compact act on a document's passages with it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import heron.capabilities.passages  # noqa: F401  (registers "passages" with a stale install)
import heron.capabilities.passages_bm25  # noqa: F401
import heron.capabilities.passages_splade  # noqa: F401
from heron.capabilities.passages import passage_spans
from heron.collection import Collection
from heron.collection.fields import PassagesField

MEETING = (
    "The committee met on Tuesday to review the annual budget. "
    "Members discussed staffing plans for the coming year. "
    "Volcanic ash from the eruption in Iceland grounded flights across northern Europe for six days. "
    "The treasurer presented the audited accounts. "
    "The minutes of the previous meeting were approved without amendment."
)
QUERY = "volcanic eruption cancelled flights in Europe"
OTHERS = [
    "Cats sleep for most of the day and hunt at dusk.",
    "Paris is the capital and largest city of France.",
    "Photosynthesis converts light energy into chemical energy in plants.",
]


@pytest.fixture()
def coll(tmp_path, encoder):
    c = Collection.create(tmp_path / "c", encoder=encoder, chunking="sentences:16")
    c.add(
        [MEETING, *OTHERS],
        ids=["meeting", "cats", "paris", "plants"],
        metadata=[{"title": "Committee minutes", "kind": "meeting"}, {"kind": "cats"},
                  {"kind": "paris"}, {"kind": "plants"}],
    )
    yield c
    c.close()


def test_query_matching_the_third_passage_finds_and_names_it(coll):
    offsets, values = coll.snapshot().field("passages")
    assert np.diff(offsets).tolist()[0] == 5  # one passage per sentence at 16 word pieces
    res = coll.retriever("passages").search([QUERY], 2)
    assert res.doc_ids()[0][0] == "meeting"
    assert res.info["passages"][0, 0] == 2
    (start, end) = passage_spans(coll, res)[0][0]
    assert MEETING[start:end].startswith("Volcanic ash")
    assert MEETING[start:end].endswith("six days.")
    # the passage vector was encoded with the title as context, the span is the passage alone
    assert "Committee" not in MEETING[start:end]
    # Python hits name it too, through the public search
    hit = coll.search(QUERY, 2, using="passages").hits()[0][0]
    assert (hit.id, hit.passage) == ("meeting", 2)
    assert coll.search(QUERY, 2, using="dense").hits()[0][0].passage is None


def test_bm25_on_the_same_passages(coll):
    res = coll.retriever("passages_bm25").search(["volcanic ash flights"], 3)
    assert res.doc_ids()[0] == ["meeting"]  # no other document shares a term
    assert res.info["passages"][0, 0] == 2
    coll.delete("meeting")
    assert coll.retriever("passages_bm25").search(["volcanic ash"], 3).doc_ids()[0] == []


def test_splade_on_the_same_passages_equals_scoring_by_hand(coll):
    """SPLADE ranks the same situated passages: each document scores as its best passage's
    sparse dot product with the query (checked against the passages encoded here)."""
    from heron.encoders.splade import load_sparse_encoder

    res = coll.retriever("passages_splade").search([QUERY], 4)
    assert res.doc_ids()[0][0] == "meeting" and res.info["passages"][0, 0] == 2
    assert res.info["retriever"] == "passages_splade"
    splade = load_sparse_encoder()
    docs = coll.get(["meeting", "cats", "paris", "plants"])
    offsets, passages = coll.field_encoder("passages").chunk(
        [d.text for d in docs], [str(d.metadata.get("title") or "") for d in docs]
    )
    scores = (splade.encode_documents([p.encoded for p in passages])
              @ splade.encode_queries([QUERY]).T).toarray()[:, 0]
    best = {d.id: scores[offsets[i]:offsets[i + 1]].max() for i, d in enumerate(docs)}
    got = dict(zip(res.doc_ids()[0], res.scores[0]))
    for doc_id, s in got.items():
        assert s == pytest.approx(best[doc_id], rel=1e-5, abs=1e-6), doc_id
    assert set(got) == {d for d, s in best.items() if s > 0}  # no shared term: no hit
    # fused with the dense passages: one hybrid over the same units
    fused = coll.search([QUERY], 2, using="hybrid:passages+passages_splade")
    assert fused.doc_ids()[0][0] == "meeting"


@pytest.mark.parametrize("name", ["passages", "passages_bm25", "passages_splade"])
def test_filtered_passage_hits_still_name_their_passage(coll, name):
    """filter= keeps each hit's passage index aligned with the hit (it was left at the inner
    search's depth and order, so hits named other documents' passages)."""
    full = coll.search([QUERY], 4, using=name)
    want = {d: int(p) for d, p in zip(full.doc_ids()[0], full.info["passages"][0])}
    for doc in ("meeting", "plants"):
        got = coll.search([QUERY], 3, using=name, filter={"kind": doc})
        assert got.info["passages"].shape == got.keys.shape == (1, 3)
        if doc in want:
            assert got.doc_ids()[0] == [doc] and int(got.info["passages"][0, 0]) == want[doc]
        assert got.info["passages"][0, 1:].tolist() == [-1, -1]  # padding names no passage


def test_aggregations_and_passage_hits(coll):
    top2 = coll.retriever("passages", agg="mean", m=2, whole=True).search([QUERY], 4)
    assert top2.doc_ids()[0][0] == "meeting"
    hits = coll.retriever("passages", unit="passages").search([QUERY], 6)
    ids = hits.doc_ids()[0]
    assert ids[0] == "meeting" and hits.info["passages"][0, 0] == 2
    assert ids.count("meeting") >= 2  # passage hits: a document may appear several times
    assert np.all(np.diff(hits.scores[0]) <= 0)
    with pytest.raises(ValueError, match="agg"):
        coll.retriever("passages", agg="median")


def test_delete_upsert_compact_move_passages_with_their_document(coll):
    assert coll.delete("meeting") == 1
    res = coll.retriever("passages").search([QUERY], 4)
    assert "meeting" not in res.doc_ids()[0]
    offsets, _ = coll.snapshot().field("passages")
    assert len(offsets) - 1 == 3 and offsets[-1] == 3  # the meeting's five passages are gone
    coll.upsert(["Volcanic ash grounded flights."], ids=["cats"])  # replace a short document
    res = coll.retriever("passages").search([QUERY], 1)
    assert res.doc_ids()[0] == ["cats"] and res.info["passages"][0, 0] == 0
    coll.compact()
    offsets, values = coll.snapshot().field("passages")
    assert len(offsets) - 1 == 3 and len(values) == offsets[-1] == 3
    assert coll.retriever("passages").search([QUERY], 1).doc_ids()[0] == ["cats"]


def test_field_spec_and_manifest(tmp_path, encoder):
    c = Collection.create(
        tmp_path / "m", encoder=encoder, fields={"passages": PassagesField(chunking="tokens:8:2")}
    )
    spec = json.loads((tmp_path / "m" / "heron.json").read_text())["fields"]["passages"]
    assert spec["chunking"]["method"] == "tokens" and spec["chunking"]["overlap"] == 2
    assert spec["model"] == encoder.name and spec["precision"] == encoder.precision
    c.add([" ".join(f"w{i}" for i in range(20))], ids=["a"])
    offsets, _ = c.snapshot().field("passages")
    assert offsets[-1] >= 3
    c.close()
    with pytest.raises(ValueError, match="no passages"):
        Collection.create(tmp_path / "plain", encoder=encoder).retriever("passages")


def test_cli_index_with_chunks(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "meeting.txt").write_text(MEETING)
    (docs / "cats.txt").write_text(OTHERS[0])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = [sys.executable, "-m", "heron", "index", str(docs), "-c", str(tmp_path / "c")]
    out = subprocess.run([*run, "--chunk", "sentences:16", "--context", "none"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    c = Collection.open(tmp_path / "c")
    assert c.fields["passages"]["chunking"]["context"] == "none"
    res = c.retriever("passages").search([QUERY], 1)
    assert res.doc_ids()[0] == ["meeting.txt"] and res.info["passages"][0, 0] == 2
    c.close()
    # heron search: the hit's snippet is the passage that matched, and the record names it
    # options before the unquoted words: still one query; the score is labelled as a cosine
    found = subprocess.run([sys.executable, "-m", "heron", "search", str(tmp_path / "c"), "-r", "passages",
                            "-k", "1", "--json", *QUERY.split()], capture_output=True, text=True, env=env)
    assert found.returncode == 0, found.stderr
    doc = json.loads(found.stdout)
    assert [r["query"] for r in doc["results"]] == [QUERY] and doc["score_label"] == "cosine"
    hit = doc["results"][0]["hits"][0]
    assert hit["id"] == "meeting.txt" and hit["passage"]["index"] == 2
    assert hit["snippet"].startswith("Volcanic ash") and "committee" not in hit["snippet"]
    assert MEETING[hit["passage"]["start"] : hit["passage"]["end"]] == hit["snippet"]
    bad = subprocess.run([*run, "--chunk", "tokens:32"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "chunking" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([*run[:-2], "-c", str(tmp_path / "x"), "--chunk", "pages:3"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "chunk method" in bad.stderr and "Traceback" not in bad.stderr


def test_export_import_keeps_pooling_and_passages(tmp_path, encoder):
    """An export names the collection's fields; `heron import` re-creates the dense pooling (so
    queries are pooled as the imported vectors were) and the passages (encoded again)."""
    from heron.collection.transfer import export_collection, read_header
    from heron.encoders import load_encoder

    src = Collection.create(tmp_path / "src", encoder=load_encoder(pooling="cls"),
                            chunking="sentences:16", context="none")
    src.add([MEETING, *OTHERS], ids=["meeting", "cats", "paris", "plants"])
    want = src.retriever("passages").search([QUERY], 4)
    head = export_collection(src, tmp_path / "e.jsonl", vectors=True)
    export_collection(src, tmp_path / "e.parquet", vectors=True)
    src.close()
    assert read_header(tmp_path / "e.jsonl")["fields"] == read_header(tmp_path / "e.parquet")["fields"]
    assert head["fields"]["dense"]["pooling"] == "cls"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "heron", "import", str(tmp_path / "e.parquet"), "-c",
                          str(tmp_path / "dst")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    dst = Collection.open(tmp_path / "dst")
    assert dst.encoder.pooling == "cls"
    assert dst.fields["passages"]["chunking"] == head["fields"]["passages"]["chunking"]
    got = dst.retriever("passages").search([QUERY], 4)
    assert got.doc_ids() == want.doc_ids() and got.info["passages"][0, 0] == 2
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
    dst.close()
    # cls-pooled vectors into a mean-pooled collection: refused, nothing imported
    Collection.create(tmp_path / "mean", encoder=encoder).close()
    out = subprocess.run([sys.executable, "-m", "heron", "import", str(tmp_path / "e.jsonl"), "-c",
                          str(tmp_path / "mean")], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "pooled with 'cls'" in out.stderr and "Traceback" not in out.stderr
    assert len(Collection.open(tmp_path / "mean")) == 0


def test_add_passages_to_an_existing_collection_uses_titles(tmp_path, encoder):
    c = Collection.create(tmp_path / "b", encoder=encoder)
    c.add([MEETING, OTHERS[0]], ids=["meeting", "cats"], metadata=[{"title": "Committee minutes"}, {}])
    c.add_field("passages", PassagesField(chunking="sentences:16", model=encoder.name))
    offsets, values = c.snapshot().field("passages")
    assert np.diff(offsets).tolist() == [5, 1]
    enc = c.field_encoder("passages")
    _, ps = enc.chunk([MEETING], ["Committee minutes"])
    want = encoder.encode_documents([ps[2].encoded])[0]
    assert float(values[2] @ want) > 0.99  # encoded with its title, as on add
    res = c.retriever("passages").search([QUERY], 1)
    assert res.doc_ids()[0] == ["meeting"] and res.info["passages"][0, 0] == 2
    c.close()


def test_eval_with_chunks_finds_text_past_the_truncation(tmp_path):
    """A document whose answer lies past the model's 256 word pieces: truncation misses it,
    its passages find it (through evaluate_dataset, as ``heron eval --chunk`` runs it)."""
    from heron.eval.runner import evaluate_dataset

    filler = " ".join(
        f"The council reviewed budget line {i} for road maintenance and approved it." for i in range(40)
    )
    docs = [
        ("long", "Council minutes", filler + " Volcanic ash from the eruption grounded all flights for six days."),
        ("air", "Airline timetables", "Airlines publish seasonal timetables of departures and arrivals."),
        ("cats", "Cats", "Cats sleep for most of the day."),
    ]
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs)
    )
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "volcanic ash grounded flights"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tlong\t1\n")
    report = evaluate_dataset(
        root, ["dense", "passages", "passages?agg=mean&m=2&whole=1"], measures=["RR@10"],
        chunking="sentences:64", context="title", progress=False,
    )
    assert report["chunking"]["passages"] >= 8 and report["chunking"]["context"] == "title"
    assert report["results"]["dense"]["RR@10"] < 1.0
    assert report["results"]["passages"]["RR@10"] == 1.0
    assert report["results"]["passages?agg=mean&m=2&whole=1"]["RR@10"] > report["results"]["dense"]["RR@10"]


def test_pooling_is_kept_in_the_manifest_and_used_for_queries(tmp_path):
    from heron.encoders import load_encoder

    cls = load_encoder(pooling="cls")
    assert cls.pooling == "cls"
    c = Collection.create(tmp_path / "p", encoder=cls)
    c.add(OTHERS, ids=["cats", "paris", "plants"])
    c.close()
    spec = json.loads((tmp_path / "p" / "heron.json").read_text())["fields"]["dense"]
    assert spec["pooling"] == "cls"
    again = Collection.open(tmp_path / "p")
    assert again.encoder.pooling == "cls"  # queries are pooled as the documents were
    stored = again.snapshot().dense()[0]
    assert float(np.asarray(stored, np.float32) @ again.encoder.encode_documents([OTHERS[0]])[0]) > 0.99
    mean = load_encoder().encode_documents([OTHERS[0]])[0]
    assert float(np.asarray(stored, np.float32) @ mean) < 0.95  # cls differs from mean
    again.close()
    with pytest.raises(ValueError, match="pooling must be one of"):
        load_encoder(pooling="average")


def test_server_hit_names_the_matched_passage(coll, encoder):
    pytest.importorskip("fastapi")
    import httpx

    from heron.server import create_app
    from heron.server.threaded import ThreadedServer

    app = create_app([coll.path], encoders={encoder.name: encoder})
    with ThreadedServer(app) as srv:
        name = httpx.get(srv.url + "/v1/collections", timeout=60).json()["collections"][0]["name"]
        body = {"queries": [QUERY], "k": 2, "using": "passages", "with_text": True}
        r = httpx.post(f"{srv.url}/v1/collections/{name}/search", json=body, timeout=60)
        assert r.status_code == 200, r.text
        hit = r.json()["results"][0]["hits"][0]
        assert hit["id"] == "meeting" and hit["passage"]["index"] == 2
        start, end = hit["passage"]["start"], hit["passage"]["end"]
        assert hit["text"][start:end].startswith("Volcanic ash")
        assert "<mark>" in hit["snippet"] and "committee" not in hit["snippet"].lower()
        plain = httpx.post(f"{srv.url}/v1/collections/{name}/search", json={**body, "using": "dense"}, timeout=60)
        assert "passage" not in plain.json()["results"][0]["hits"][0] or plain.json()["results"][0]["hits"][0]["passage"] is None
