"""Regression tests of issue 13's defects: every bad input a clear error, never a silent wrong answer.

Each test names the defect it covers. Tiny collections (``model="none"``, ``dim=8``) unless a
model is the point; the MiniLM tests share one encoder load.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import heron.limits as limits
from heron.cli.main import main
from heron.collection import Collection, CollectionError
from heron.eval.beir import load_beir
from heron.pipeline import Queries

D = 8


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def q(v: np.ndarray) -> Queries:
    v = np.atleast_2d(v)
    return Queries([f"q{i}" for i in range(len(v))], vectors={"none": v})


@pytest.fixture
def coll(tmp_path):
    c = Collection.create(tmp_path / "c", model="none", dim=D)
    c.add(
        ["alpha one", "beta two", "gamma three", "delta four", "epsilon five"],
        ids=["a", "b", "c", "d", "e"],
        vectors=unit(5),
        metadata=[{"year": 2020 + i, "lang": "en" if i % 2 else "de"} for i in range(5)],
    )
    yield c
    c.close()


def cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heron: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ---------------------------------------------------------------- 1. metadata and filters
def test_nan_metadata_refused_filtered_search_keeps_working(coll):
    for bad in (float("nan"), float("inf"), {"nested": [float("-inf")]}):
        with pytest.raises(ValueError, match="NaN or an infinity"):
            coll.add(["x"], ids=["x"], vectors=unit(1, 1), metadata=[{"score": bad}])
    assert len(coll) == 5 and coll.get("x") == [None]
    res = coll.search(q(unit(1)), 5, retriever="flat", filter={"year": {"$gte": 2022}})
    assert sorted(res.doc_ids()[0]) == ["c", "d", "e"]


@pytest.mark.parametrize("using", ["flat", "dense"])  # native ANN filter / exact fallback
def test_filter_on_legacy_nan_metadata_names_the_documents(coll, using):
    # a collection written by an older heron may hold NaN (invalid JSON) in its metadata
    con = sqlite3.connect(coll.path / "docs.sqlite")
    con.execute("UPDATE docs SET metadata = '{\"score\": NaN}' WHERE id = 'b'")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match=r"\['b'\].*not valid JSON"):
        coll.search(q(unit(1)), 3, using=using, filter={"year": 2021})


@pytest.mark.parametrize("using", ["flat", "dense"])
def test_string_bound_against_integer_field_raises(coll, using):
    with pytest.raises(ValueError, match=r"'year'.*number \(2025, not '2025'\)"):
        coll.search(q(unit(1)), 3, using=using, filter={"year": {"$gte": "2022"}})
    with pytest.raises(ValueError, match="'lang'.*a string"):
        coll.search(q(unit(1)), 3, using=using, filter={"lang": {"$in": [1, 2]}})
    # like with like still works, and so do the match operators on any type
    ok = coll.search(q(unit(1)), 5, using=using, filter={"lang": {"$gte": "e"}})
    assert sorted(ok.doc_ids()[0]) == ["b", "d"]
    for flt in (
        {"year": {"$like": "202_"}},
        {"lang": {"$exists": True}},
        {"year": {"$in": [2021, "x"]}},
    ):
        assert coll.search(q(unit(1)), 5, using=using, filter=flt).counts()[0] >= 1, flt


@pytest.mark.parametrize("using", ["flat", "dense"])
def test_nan_filter_value_refused(coll, using):
    with pytest.raises(ValueError, match="finite number"):
        coll.search(q(unit(1)), 3, using=using, filter={"year": {"$lt": float("nan")}})


# ---------------------------------------------------------------- 2. non-finite vectors
def test_vectors_overflowing_float32_are_refused(coll):
    v = unit(2, 3).astype(np.float64)
    v[1, 4] = 1e39  # finite as float64, inf as float32
    with pytest.raises(ValueError, match=r"vectors\[1\] contains NaN or inf after the cast"):
        coll.add(["x", "y"], ids=["x", "y"], vectors=v)
    assert len(coll) == 5
    assert np.isfinite(np.asarray(coll.snapshot().dense())).all()


def test_finiteness_check_is_exact_per_row():
    from heron.limits import as_finite_vectors

    big = np.full((3, 384), 3.0e38, dtype=np.float32)  # every row's float32 sum overflows
    assert as_finite_vectors(big, dim=384) is big  # finite values: accepted, not copied
    bad = big.copy()
    bad[2, 7], bad[2, 9] = np.inf, -np.inf  # the two cancel in no sum: nan
    with pytest.raises(ValueError, match=r"vectors\[2\] contains NaN or inf .*1 bad row"):
        as_finite_vectors(bad, dim=384)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"vectors\[0\] .*2 bad row"):
        as_finite_vectors(bad, dim=384)


def test_complex_vectors_refused(coll):
    with pytest.raises(TypeError, match="real numeric"):
        coll.add(["x"], ids=["x"], vectors=unit(1).astype(np.complex64))


def test_nan_query_vector_raises(coll):
    bad = unit(2)
    bad[1, 0] = np.nan
    for retriever in ("dense", "flat", "compressed"):
        with pytest.raises(ValueError, match=r"query vectors\[1\] contains NaN"):
            coll.search(q(bad), 3, retriever=retriever)


# ---------------------------------------------------------------- 3. vector reuse by origin
def test_text_only_add_never_reuses_a_supplied_vector(coll):
    # model="none": "alpha one" exists with a user vector; a text-only add must not copy it
    with pytest.raises(ValueError, match="pass vectors="):
        coll.add(["alpha one"], ids=["z"])
    assert coll.get("z") == [None]


@pytest.fixture(scope="module")
def minilm():
    from heron.encoders import load_encoder

    try:
        return load_encoder()
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"MiniLM not installed: {exc}")


def test_encoder_collection_reuses_only_its_own_vectors(tmp_path, minilm):
    c = Collection.create(tmp_path / "m", encoder=minilm)
    user = np.zeros((1, c.dim), np.float32)
    user[0, 0] = 1.0
    c.add(["the same text"], ids=["a"], vectors=user)
    c.add(["the same text"], ids=["b"])  # must be encoded, not copied from a
    assert c.last_encoded == 1
    snap = c.snapshot()
    vb = np.asarray(snap.dense())[list(snap.keys).index(c.get("b")[0].key)]
    assert np.allclose(vb, minilm.encode_documents(["the same text"])[0], atol=1e-5)
    assert not np.allclose(vb, user[0])
    c.add(["the same text"], ids=["c"])  # now reused: the same encoder made b's vector
    assert c.last_encoded == 0
    c.close()


# ---------------------------------------------------------------- 4. k and oversample
def test_k_over_the_limit_raises_and_large_k_is_padded(coll):
    with pytest.raises(ValueError, match="MAX_K"):
        coll.search(q(unit(1)), limits.MAX_K + 1)
    res = coll.search(q(unit(2)), 1000)
    assert res.keys.shape == (2, 1000) and list(res.counts()) == [5, 5]
    assert (res.keys[:, 5:] == -1).all() and np.isneginf(res.scores[:, 5:]).all()


def test_result_size_limit(coll, monkeypatch):
    monkeypatch.setattr(limits, "MAX_RESULT_SIZE", 50)
    with pytest.raises(ValueError, match="MAX_RESULT_SIZE"):
        coll.search(q(unit(6)), 10)


@pytest.mark.parametrize("value", [1e12, float("inf"), float("nan"), -1, "10", True])
def test_oversample_validated(coll, value):
    for retriever in ("compressed", "flat"):
        with pytest.raises((ValueError, TypeError), match="oversample"):
            coll.search(q(unit(1)), 3, retriever=retriever, oversample=value)


def test_largest_oversample_reads_no_more_than_the_collection(coll):
    res = coll.search(q(unit(1)), 3, retriever="compressed", oversample=limits.MAX_OVERSAMPLE)
    exact = coll.search(q(unit(1)), 3)
    assert res.doc_ids() == exact.doc_ids()


@pytest.mark.parametrize(
    ("retriever", "params", "name"),
    [
        ("bm25", {"k1": "abc"}, "k1"),
        ("bm25", {"k1": float("nan")}, "k1"),
        ("bm25", {"b": 2}, "b"),
        ("flat", {"exact_below": float("nan")}, "exact_below"),
        ("dense", {"depth": 0.5}, "k"),
        ("hnsw", {"ef_search": 10**12}, "ef_search"),
        ("ivf", {"nprobe": 2**31}, "nprobe"),
    ],
)
def test_numeric_parameters_validated(coll, retriever, params, name):
    with pytest.raises((ValueError, TypeError), match=name):
        coll.search(q(unit(1)), 3, retriever=retriever, **params)


@pytest.mark.parametrize(("c", "weights"), [(float("nan"), None), (60, [1, float("inf")])])
def test_rrf_parameters_validated(coll, c, weights):
    from heron.pipeline import RRF

    with pytest.raises(ValueError, match="RRF"):
        RRF(coll.retriever("dense"), coll.retriever("bm25"), c=c, weights=weights)


# ---------------------------------------------------------------- 5. BM25 with no terms
def test_bm25_on_empty_collection(tmp_path):
    from heron.collection.artifacts import forget

    c = Collection.create(tmp_path / "e", model="none", dim=D)
    res = c.search("hello", 3, retriever="bm25")
    assert res.keys.shape == (1, 3) and res.counts()[0] == 0
    forget(c.path)  # read the saved (empty) index back from disk
    assert c.search("hello", 3, retriever="bm25").counts()[0] == 0


def test_bm25_on_all_empty_texts(tmp_path):
    from heron.collection.artifacts import forget

    c = Collection.create(tmp_path / "e", model="none", dim=D)
    c.add(["", "  ", "the a of"], vectors=unit(3))  # no indexable term at all
    assert c.search("hello", 3, retriever="bm25").counts()[0] == 0
    forget(c.path)
    stage = c.retriever("dense") % 3 >> c.retriever("bm25")
    assert stage.search(q(unit(1))).keys.shape == (1, 3)


# ---------------------------------------------------------------- 6. one-line errors
def test_corrupt_sqlite_header(coll, capsys):
    path = coll.path
    coll.close()
    db = path / "docs.sqlite"
    data = bytearray(db.read_bytes())
    data[:16] = b"not a database!!"
    db.write_bytes(bytes(data))
    for wal in path.glob("docs.sqlite-*"):
        wal.unlink()
    with pytest.raises(ValueError, match="docs.sqlite"):
        Collection.open(path)
    rc, _, err = cli(capsys, "info", path)
    assert_one_line_error(rc, err, "docs.sqlite", "corrupt")


def beir_folder(root: Path, qrels: str, corpus: str | None = None) -> Path:
    root.mkdir()
    (root / "corpus.jsonl").write_text(
        corpus or '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
    )
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "one?"}\n')
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


@pytest.mark.parametrize("score", ["inf", "1e400", "-inf", "nan"])
def test_qrels_score_not_finite(tmp_path, score):
    root = beir_folder(tmp_path / "ds", f"query-id\tcorpus-id\tscore\nq1\td1\t{score}\n")
    with pytest.raises(ValueError, match=r"test.tsv:2: relevance score .* not a finite grade"):
        load_beir(root)


@pytest.mark.parametrize("strict", [False, True])
def test_qrels_only_header(tmp_path, strict):
    root = beir_folder(tmp_path / "ds", "query-id\tcorpus-id\tscore\n")
    with pytest.raises(ValueError, match="test.tsv holds no judgments"):
        load_beir(root, strict=strict)


@pytest.mark.parametrize("row", ["5", '"just a string"', "[1, 2]", "null"])
def test_corpus_row_not_an_object(tmp_path, row):
    root = beir_folder(
        tmp_path / "ds", "q1\td1\t1\n", corpus=f'{{"_id": "d1", "text": "x"}}\n{row}\n'
    )
    with pytest.raises(ValueError, match=r"corpus.jsonl:2: .*JSON object"):
        load_beir(root)


def test_manifest_dim_not_an_int(coll):
    path = coll.path
    coll.close()
    man = json.loads((path / "heron.json").read_text())
    for bad in ("abc", 0, True, [8]):
        man["dim"] = bad
        (path / "heron.json").write_text(json.dumps(man))
        with pytest.raises(CollectionError, match="dim="):
            Collection.open(path)


def test_truncated_npy_names_the_file(coll):
    seg = next((coll.path / "segments").iterdir())
    f = seg / "dense.npy"
    f.write_bytes(f.read_bytes()[:100])
    c = Collection.open(coll.path)
    with pytest.raises(ValueError, match=r"dense\.npy.*truncated or corrupt"):
        c.search(q(unit(1)), 3)


def test_unknown_model_name(monkeypatch, tmp_path):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="cannot load model 'no-such-org/no-such-model'"):
        Collection.create(tmp_path / "x", model="no-such-org/no-such-model")
    assert not (tmp_path / "x").exists()


def test_cli_index_into_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("docs.jsonl").write_text('{"id": "1", "text": "hello"}\n')
    rc, _, err = cli(capsys, "index", "docs.jsonl", "--collection", "docs.jsonl")
    assert_one_line_error(rc, err, "docs.jsonl", "not a folder")
    assert Path("docs.jsonl").read_text().startswith('{"id"')


def test_cli_index_into_a_non_empty_folder(tmp_path, capsys):
    src = tmp_path / "docs.jsonl"
    src.write_text('{"id": "1", "text": "hello"}\n')
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    rc, _, err = cli(capsys, "index", src, "--collection", busy, "--model", "none")
    assert_one_line_error(rc, err, "not empty")
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]


def test_cli_bad_retriever_parameter(coll, capsys):
    path = coll.path
    rc, _, err = cli(capsys, "search", path, "alpha", "-r", "bm25?k1=abc")
    assert_one_line_error(rc, err, "k1", "'abc'")


def test_cli_traceback_flag_and_debug_env(coll, capsys, monkeypatch):
    with pytest.raises(TypeError, match="k1"):
        main(["search", str(coll.path), "alpha", "-r", "bm25?k1=abc", "--traceback"])
    monkeypatch.setenv("HERON_DEBUG", "1")
    with pytest.raises(TypeError, match="k1"):
        main(["search", str(coll.path), "alpha", "-r", "bm25?k1=abc"])


# ---------------------------------------------------------------- 7. failed index leaves nothing
def test_failed_index_of_missing_path_leaves_no_collection(tmp_path, capsys):
    out = tmp_path / "x.heron"
    rc, _, err = cli(capsys, "index", tmp_path / "missing", "--collection", out)
    assert not out.exists()
    assert_one_line_error(rc, err, "missing")


def test_failed_index_midway_leaves_no_collection(tmp_path, capsys, minilm):
    src = tmp_path / "docs.jsonl"
    src.write_text('{"id": "1", "text": "hello"}\nnot json\n')
    out = tmp_path / "y.heron"
    rc, _, err = cli(capsys, "index", src, "--collection", out)
    assert not out.exists()
    assert_one_line_error(rc, err, "docs.jsonl:2")


# ---------------------------------------------------------------- limits
def test_limits_are_documented_positive_constants():
    names = [n for n in limits.__all__ if n.startswith("MAX_")]
    assert len(names) >= 8
    for n in names:
        v = getattr(limits, n)
        assert v > 0 and n in limits.__doc__, n


def test_id_length_limit(coll):
    with pytest.raises(ValueError, match="MAX_ID_CHARS"):
        coll.add(["x"], ids=["i" * (limits.MAX_ID_CHARS + 1)], vectors=unit(1))
    coll.add(["x"], ids=["i" * limits.MAX_ID_CHARS], vectors=unit(1))


def test_metadata_size_limit(coll):
    big = {"blob": "x" * limits.MAX_METADATA_BYTES}
    with pytest.raises(ValueError, match="MAX_METADATA_BYTES"):
        coll.add(["x"], ids=["x"], vectors=unit(1), metadata=[big])


def test_batch_limit(coll, monkeypatch):
    monkeypatch.setattr(limits, "MAX_BATCH", 2)
    with pytest.raises(ValueError, match="MAX_BATCH"):
        coll.add(["x", "y", "z"], vectors=unit(3))
    assert len(coll) == 5


def test_query_length_and_batch_limits(coll, monkeypatch):
    with pytest.raises(ValueError, match="MAX_QUERY_CHARS"):
        coll.search("w " * limits.MAX_QUERY_CHARS, 3, retriever="bm25")
    monkeypatch.setattr(limits, "MAX_QUERY_BATCH", 2)
    with pytest.raises(ValueError, match="MAX_QUERY_BATCH"):
        coll.search(q(unit(3)), 3)


def test_check_number():
    assert limits.check_number(3, "x", low=0, integer=True) == 3
    assert limits.check_number(0.5, "x", low=0, high=1) == 0.5
    with pytest.raises(ValueError, match="x must be > 0"):
        limits.check_number(0, "x", low=0, low_open=True)
    with pytest.raises(TypeError, match="x must be a number"):
        limits.check_number(None, "x")
    with pytest.raises(ValueError, match="whole number"):
        limits.check_number(2.5, "x", integer=True)


# --- defect 9: a second writer waits with a bound and names the holder --------------------------
_HOLD = """
import sys, time
from heron.collection import Collection
c = Collection.open(sys.argv[1])
with c._writer():
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_lock(path, seconds):
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "holding"
    return p


def test_second_writer_times_out_naming_the_holder(coll, caplog):
    from heron.collection import WriteLockTimeout

    p = _hold_lock(coll.path, 30)
    try:
        coll.lock_timeout = 2.5
        with caplog.at_level("WARNING", logger="heron.collection.writelock"):
            with pytest.raises(WriteLockTimeout, match=rf"pid {p.pid} .*waited 2.5 s.*HERON_LOCK_TIMEOUT"):
                coll.add(["late"], ids=["late"], vectors=unit(1, 9))
        assert any(f"pid {p.pid}" in r.getMessage() for r in caplog.records)  # said while waiting
        assert coll.get(["late"]) == [None]  # nothing written
    finally:
        p.kill()
        p.wait()
    coll.add(["late"], ids=["late"], vectors=unit(1, 9))  # the lock died with its holder
    assert coll.get(["late"])[0].text == "late"


def test_writer_waits_for_a_short_holder(coll, monkeypatch):
    monkeypatch.setenv("HERON_LOCK_TIMEOUT", "60")
    p = _hold_lock(coll.path, 1.0)
    try:
        coll.add(["after"], ids=["after"], vectors=unit(1, 8))  # waits ~1 s, then writes
    finally:
        p.wait()
    assert coll.get(["after"])[0].text == "after"


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "soon", True])
def test_lock_timeout_validated(coll, bad):
    with pytest.raises(ValueError, match="lock_timeout"):
        coll.lock_timeout = bad


def test_cli_lock_timeout_is_one_line(coll, capsys, monkeypatch):
    p = _hold_lock(coll.path, 30)
    try:
        monkeypatch.setenv("HERON_LOCK_TIMEOUT", "0.5")
        rc, _, err = cli(capsys, "delete", coll.path, "a")
        assert_one_line_error(rc, err, "write lock", f"pid {p.pid}")
    finally:
        p.kill()
        p.wait()


# --- defect 11: paths read from a collection's own files stay inside it -------------------------
def test_catalog_row_pointing_outside_is_refused(coll, tmp_path):
    from heron.collection import CorruptionError

    coll.create_index("hnsw", kind="hnsw", M=8)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    con = sqlite3.connect(coll.path / "docs.sqlite")
    for bad in (str(outside), "../../elsewhere"):
        con.execute("UPDATE artifacts SET version = ? WHERE name = 'hnsw'", (bad,))
        con.commit()
        c2 = Collection.open(coll.path)
        with pytest.raises(CorruptionError, match="outside the collection folder"):
            c2.search(unit(1), 3, using="hnsw")
        c2.close()
    con.close()


def test_retired_row_pointing_outside_is_never_deleted(coll, tmp_path, caplog):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    con = sqlite3.connect(coll.path / "docs.sqlite")
    for bad in (str(victim), "../victim", "segments/../../victim", "docs.sqlite"):
        con.execute("INSERT INTO retired(path, retired_at) VALUES (?, 0)", (bad,))
    con.commit()
    con.close()
    with caplog.at_level("ERROR", logger="heron.collection.lifecycle"):
        coll.add(["new"], ids=["new"], vectors=unit(1, 7))  # a write collects garbage first
    assert (victim / "keep.txt").read_text() == "mine"
    assert (coll.path / "docs.sqlite").is_file() and coll.get(["new"])[0].text == "new"
    assert sum("ignoring the retired-files row" in r.getMessage() for r in caplog.records) == 4


def test_checksum_list_naming_a_file_outside_is_corruption(coll):
    """Even a correctly sealed segment.json (a hand-made one) cannot point outside the folder."""
    from heron.collection.integrity import read_sealed, seal
    from heron.collection.repair import check

    seg = next(p for p in (coll.path / "segments").iterdir() if p.is_dir())
    meta = read_sealed(seg / "segment.json")
    entry = next(iter(meta["files"].values()))
    meta["files"]["../../../etc/hostname"] = entry
    meta.pop("checksum", None)
    (seg / "segment.json").write_text(json.dumps(seal(meta)))
    rep = check(coll.path, deep=True)
    assert not rep.ok
    assert any("outside the collection folder" in line for line in rep.lines()), rep.lines()


# --- defect 8: no silent coercion -------------------------------------------------------------
@pytest.mark.parametrize(
    "ids,match",
    [
        ([None], r"ids\[0\] must be a str, got NoneType"),
        ([True], r"ids\[0\] must be a str, got bool"),
        ([1.5], r"ids\[0\] must be a str, got float"),
        ("abc", r"got the string 'abc'; for one document pass ids=\['abc'\]"),
    ],
)
def test_ids_are_strings_never_coerced(coll, ids, match):
    n = 3 if isinstance(ids, str) else 1
    with pytest.raises(TypeError, match=match):
        coll.add(["t"] * n, ids=ids, vectors=unit(n, 3))
    with pytest.raises(TypeError, match=r"must be a str"):
        coll.get([None])
    assert len(coll.snapshot()) == 5  # nothing stored


def test_integer_ids_are_written_out(coll):
    coll.add(["x", "y"], ids=[7, np.int64(8)], vectors=unit(2, 4))
    assert [d.text for d in coll.get(["7", "8"])] == ["x", "y"]


def test_metadata_keys_must_be_strings(coll):
    with pytest.raises(TypeError, match=r"metadata\[0\] has the key 1 \(int\)"):
        coll.add(["t"], ids=["m"], vectors=unit(1, 5), metadata=[{1: "a", "1": "b"}])


def test_dim_bool_refused_and_numpy_int_accepted(tmp_path):
    with pytest.raises(ValueError, match="got True"):
        Collection.create(tmp_path / "b", model="none", dim=True)
    c = Collection.create(tmp_path / "n", model="none", dim=np.int64(4))
    assert c.dim == 4 and type(c.dim) is int
    c.close()


def test_jsonl_null_text_is_an_error(tmp_path, capsys):
    from heron.ingest import iter_documents

    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"id": "j1", "text": None}) + "\n")
    with pytest.raises(ValueError, match=r"t.jsonl:1: 'text' must be a string, got NoneType"):
        list(iter_documents(p))


def test_nested_metadata_keys_must_be_strings(coll):
    """JSON turns ``{1: "a", "1": "b"}`` into one key at any depth, so nested keys are checked too."""
    with pytest.raises(TypeError, match=r"metadata\[0\] has the key 1 \(int\).*nested ones too"):
        coll.add(["t"], ids=["m"], vectors=unit(1, 5), metadata=[{"a": [{1: "a", "1": "b"}]}])
    loop: dict = {"k": "v"}
    loop["self"] = loop  # circular: an error, not a hang
    with pytest.raises((TypeError, ValueError), match=r"metadata\[0\]"):
        coll.add(["t"], ids=["m"], vectors=unit(1, 5), metadata=[loop])
    assert len(coll.snapshot()) == 5


def test_complex_query_vectors_refused(coll):
    """A complex query vector lost its imaginary part (numpy's ComplexWarning) and searched."""
    for bad in (unit(1).astype(np.complex64) + 1j, [[1j] * D], np.array([["1"] * D])):
        with pytest.raises(TypeError, match="query vectors must be a real numeric array"):
            coll.search(bad, 3)


# --- defect 11: file names read from a saved folder's own manifest stay inside it ---------------
def test_state_manifest_naming_a_file_outside_is_refused_and_never_deleted(tmp_path):
    from heron._state import load_state, save_state

    victim = tmp_path / "victim.npy"
    np.save(victim, np.arange(3))
    folder = tmp_path / "state"
    save_state(folder, "K", 1, {}, {"a": np.ones(2)})
    mf = folder / "manifest.json"
    good = json.loads(mf.read_text())
    for bad in (str(victim), "../victim.npy", "sub/../../victim.npy"):
        m = dict(good, files={"a": bad})
        mf.write_text(json.dumps(m))
        with pytest.raises(ValueError, match=r"names .*not a plain name inside that folder"):
            load_state(folder, "K", 1)
        save_state(folder, "K", 1, {}, {"a": np.zeros(2)})  # replaces the tampered manifest ...
        assert victim.is_file()  # ... without deleting the file it named
        assert load_state(folder, "K", 1)[1]["a"].tolist() == [0.0, 0.0]
    (folder / "link.npy").symlink_to(victim)
    mf.write_text(json.dumps(dict(good, files={"a": "link.npy"})))
    with pytest.raises(ValueError, match="not a plain name inside that folder"):
        load_state(folder, "K", 1)


def test_codec_manifest_naming_a_file_outside_is_refused(tmp_path):
    from heron.codecs import load_codec, parse_spec

    codec = parse_spec("int8")
    codec.fit(unit(50, 9))
    folder = codec.save(tmp_path / "codec")
    mf = folder / "codec.json"
    m = json.loads(mf.read_text())
    m["arrays"] = [*m["arrays"], "../../outside"]
    mf.write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"'\.\./\.\./outside\.npy', not a plain name inside that folder"):
        load_codec(folder)


@pytest.mark.parametrize("name", ["", ".", "..", "/etc/passwd", "a/b", "x\x00", 5])
def test_file_in_refuses_anything_but_a_plain_name(tmp_path, name):
    with pytest.raises(ValueError, match="not a plain name inside that folder"):
        limits.file_in(tmp_path, name, what="test")
    assert limits.file_in(tmp_path, "ok.npy", what="test") == str(tmp_path / "ok.npy")


def test_field_names_read_from_the_collection_stay_inside_it(coll, tmp_path):
    """Field names become file names in each segment: a tampered heron.json or a segment asked
    for a field named like a path is refused, never read from elsewhere."""
    from heron.collection import CorruptionError
    from heron.collection.segments import Segment

    np.save(tmp_path / "outside.npy", np.ones((5, D), np.float32))
    seg_dir = next(p for p in (coll.path / "segments").iterdir() if p.is_dir())
    seg = Segment(seg_dir, int(seg_dir.name))
    for bad in ("../../../outside", str(tmp_path / "outside")):
        with pytest.raises(CorruptionError, match="outside the collection folder"):
            seg.dense(bad)
    mf = coll.path / "heron.json"
    m = json.loads(mf.read_text())
    m["fields"]["../../outside"] = dict(m["fields"]["dense"])
    mf.write_text(json.dumps(m))
    with pytest.raises(CollectionError, match=r"field name '\.\./\.\./outside', not an identifier"):
        Collection.open(coll.path)


@pytest.mark.parametrize("using", ["dense", "bm25", "mapped"])
def test_unknown_retriever_parameter_is_a_value_error_naming_it(coll, using):
    """``search(q, using="dense", oversample=2)`` raised Python's bare TypeError about
    ``DenseRetriever.__init__()``; it is a ValueError naming the retriever and the parameter."""
    query = "alpha" if using == "bm25" else unit(1)
    with pytest.raises(ValueError, match=rf"retriever '{using}' takes no parameter 'oversample'"):
        coll.search(query, 2, using=using, oversample=2)


def test_missing_retriever_parameter_is_a_value_error_naming_it(coll, capsys):
    """``search(q, using="cross_encoder")`` without ``model=`` raised a bare TypeError about
    ``cross_encoder()``; it is a ValueError naming the retriever and what to pass, and the CLI
    prints it on one line."""
    from heron.cli.main import main

    with pytest.raises(ValueError, match=r"retriever 'cross_encoder' needs model=\.\.\.; pass it"):
        coll.search(unit(1), 2, using="cross_encoder")
    with pytest.raises(ValueError, match=r"needs model="):
        coll.retriever("cross_encoder", depth=5)
    rc = main(["search", str(coll.path), "alpha", "--retriever", "cross_encoder"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "needs model=" in err[0], err


# --- defect 10: a full disk is named (runs without root; tests/integration/test_diskfull.py uses a real tmpfs)
def test_numpy_short_write_is_reported_as_a_full_disk(coll, capsys, monkeypatch):
    """numpy's ``OSError: 128000 requested and 21472 written`` (a short write on a full disk)
    becomes a DiskFullError saying where, and that the collection is at its last commit."""
    import heron.collection.segments as segments
    from heron.collection import DiskFullError

    def short_write(*args):
        raise OSError("128000 requested and 21472 written")

    gen = coll.snapshot().generation
    monkeypatch.setattr(segments, "_save", short_write)
    monkeypatch.setattr(segments.NpyAppender, "append", short_write)  # segment files
    with pytest.raises(DiskFullError, match=r"disk full while writing to the collection at .*still at its last commit") as e:
        coll.add(["f"], ids=["f"], vectors=unit(1, 11))
    assert str(coll.path) in str(e.value) and f"generation {gen}" in str(e.value)
    assert coll.get(["f"]) == [None] and len(coll.snapshot()) == 5
    coll.delete(["a"])
    rc, _, err = cli(capsys, "compact", coll.path)  # the CLI: one line, exit status 2
    assert_one_line_error(rc, err, "disk full", "last commit")
    monkeypatch.undo()
    coll.add(["f"], ids=["f"], vectors=unit(1, 11))  # space back: the same write succeeds
    assert coll.get(["f"])[0].text == "f"


def test_sharded_manifest_naming_a_folder_outside_is_refused(tmp_path):
    """A sharded collection's shards.json lists its shard folders; one naming another folder
    (absolute, ``..``) would send searches and writes there: refused on open."""
    from heron.scale import ShardedCollection

    ShardedCollection.create(tmp_path / "s", shards=2, model="none", dim=4).close()
    other = Collection.create(tmp_path / "other", model="none", dim=4)
    other.close()
    mf = tmp_path / "s" / "shards.json"
    good = json.loads(mf.read_text())
    for bad in (str(tmp_path / "other"), "../other"):
        mf.write_text(json.dumps(dict(good, shards=[good["shards"][0], bad])))
        with pytest.raises(ValueError, match=r"shards.json shard in .* names .*not a plain name inside that folder"):
            ShardedCollection.open(tmp_path / "s")
    mf.write_text(json.dumps(good))
    ShardedCollection.open(tmp_path / "s").close()
