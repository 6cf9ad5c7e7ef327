"""``heron search``: one query from several words, --query/--queries, --filter, labelled scores,
--json with metadata and snippets; ``heron delete`` / ``heron compact``; --quiet/--verbose/--version."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import heron
from heron.cli._hits import score_label, snippet

LONG = "filler words about nothing in particular " * 200  # ~8,400 characters


def heron_cli(*args, check=True, stdin=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "heron", *args], capture_output=True, text=True, env=env, input=stdin
    )
    if check and out.returncode != 0:
        raise AssertionError(out.stderr)
    return out


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    root = tmp_path_factory.mktemp("search") / "c"
    c = heron.Collection.create(root, model="none", dim=4)
    texts = [
        "the gzip module reads compressed files",
        LONG + "argparse parses command line options " + LONG,
        "json loads strings into python objects",
        "compressed archives with zipfile and tarfile",
        "argparse and optparse compared",
    ]
    meta = [
        {"year": 2019, "tags": ["io"]},
        {"year": 2021, "tags": ["cli", "stdlib"]},
        {"year": 2020, "tags": ["io", "json"]},
        {"year": 2022, "tags": ["io"]},
        {"year": 2018, "tags": ["cli"]},
    ]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    c.add(texts, ids=[f"d{i}" for i in range(5)], metadata=meta, vectors=x)
    c.close()
    return root


def test_unquoted_words_are_one_query(coll):
    out = heron_cli("search", str(coll), "command", "line", "options", "-r", "bm25", "--json")
    data = json.loads(out.stdout)
    assert [r["query"] for r in data["results"]] == ["command line options"]
    hits = data["results"][0]["hits"]
    assert hits[0]["id"] == "d1" and data["score_label"] == "bm25"
    # metadata travels with the hit; a snippet around the terms instead of 16k characters
    assert hits[0]["metadata"] == {"year": 2021, "tags": ["cli", "stdlib"]}
    snip = hits[0]["snippet"]
    assert "argparse parses command line options" in snip and len(snip) <= 202
    assert "text" not in hits[0]
    assert [snip[a:b] for a, b in hits[0]["highlights"]] == ["command", "line", "options"]
    # options first, then the words: the same one query (parsed intermixed)
    first = heron_cli("search", str(coll), "-r", "bm25", "-k", "10", "--json", "command", "line", "options")
    assert json.loads(first.stdout)["results"] == data["results"]
    full = json.loads(
        heron_cli("search", str(coll), "parses", "-r", "bm25", "--json", "--full-text").stdout
    )
    assert len(full["results"][0]["hits"][0]["text"]) > 16000


def test_several_queries_from_flags_and_file(coll, tmp_path):
    qfile = tmp_path / "q.txt"
    qfile.write_text("json objects\n\njson strings\n")
    out = heron_cli(
        "search",
        str(coll),
        "--query",
        "gzip files",
        "--query",
        "zipfile tarfile",
        "--queries",
        str(qfile),
        "-r",
        "bm25",
        "-k",
        "1",
        "--json",
    )
    res = json.loads(out.stdout)["results"]
    assert [r["query"] for r in res] == [
        "gzip files",
        "zipfile tarfile",
        "json objects",
        "json strings",
    ]
    assert [r["hits"][0]["id"] for r in res] == ["d0", "d3", "d2", "d2"]
    out = heron_cli("search", str(coll), "-r", "bm25", check=False)
    assert out.returncode == 2 and "give a query" in out.stderr


def test_filter_is_exact_for_bm25(coll):
    flt = {"tags": {"$contains": "io"}, "year": {"$gte": 2020}}
    out = heron_cli(
        "search",
        str(coll),
        "compressed",
        "files",
        "json",
        "-r",
        "bm25",
        "-k",
        "3",
        "--filter",
        json.dumps(flt),
        "--json",
    )
    got = [h["id"] for h in json.loads(out.stdout)["results"][0]["hits"]]
    # the same ranking by hand: unfiltered bm25 over everything, then keep matching documents
    c = heron.Collection.open(coll)
    res = c.search("compressed files json", 5, retriever="bm25")
    ok = {"d2", "d3"}  # io and year >= 2020
    assert got == [d for d in res.doc_ids()[0] if d in ok][:3] and set(got) == ok
    out = heron_cli(
        "search", str(coll), "x", "-r", "bm25", "--filter", '{"yaer": 2020}', check=False
    )
    assert out.returncode == 2
    assert "'yaer' is not in the metadata" in out.stderr and "'year'" in out.stderr
    out = heron_cli("search", str(coll), "x", "-r", "bm25", "--filter", "{year: 1}", check=False)
    assert out.returncode == 2 and "--filter is not valid JSON" in out.stderr


def test_text_output_labels_scores(coll):
    out = heron_cli("search", str(coll), "gzip", "compressed", "-r", "bm25", "-k", "2")
    lines = out.stdout.splitlines()
    assert lines[1] == "gzip compressed"
    assert lines[2].split()[:2] == ["1.", "bm25"] and lines[2].split()[-1] == "d0"
    assert lines[3].strip() == "the gzip module reads compressed files"
    assert "scores: bm25" in lines[-1]


def test_score_labels_and_snippet():
    assert score_label("dense") == "cosine"
    assert score_label("dense", model="none") == "inner product"
    assert score_label("hnsw?ef_search=64") == "cosine"
    assert score_label("bm25", {"retriever": "bm25"}) == "bm25"
    assert score_label("hybrid:dense+bm25") == "rrf"
    assert score_label("calibrated?min_relevance=0.5") == "probability"
    assert score_label("dense", {"retriever": "dense", "counts": [1]}) == "probability"
    assert score_label("nosuch") == "score"
    assert score_label("passages", {"retriever": "passages"}) == "cosine"
    assert score_label("passages?agg=mean&m=2") == "cosine"
    assert score_label("passages?agg=sum&m=2") == "cosine sum"
    assert score_label("passages_bm25") == "bm25"
    text = "a " * 300 + "needle in the haystack, more needle" + " b" * 300
    s, spans = snippet(text, "Needle haystack", 60)
    assert s.startswith("…") and s.endswith("…") and len(s) <= 62
    assert [s[a:b] for a, b in spans] == ["needle", "haystack", "needle"]
    s, spans = snippet("short text", "absent")
    assert (s, spans) == ("short text", [])


def test_delete_compact_and_flags(tmp_path):
    root = tmp_path / "c"
    c = heron.Collection.create(root, model="none", dim=4)
    rng = np.random.default_rng(1)
    for b in range(3):
        c.add(
            [f"text {b} {i} " + "x" * 400 for i in range(100)],
            ids=[f"d{b}-{i}" for i in range(100)],
            vectors=rng.standard_normal((100, 4)).astype(np.float32),
        )
    c.close()
    out = heron_cli("delete", str(root), "d0-1", "d0-2", "nope")
    assert "deleted 2 document(s)" in out.stdout and "298 left" in out.stdout
    assert "not in the collection, skipped: nope" in out.stderr
    out = heron_cli("delete", str(root), "d0-3", "nope", "--strict", check=False)
    assert out.returncode == 2 and "nothing was deleted" in out.stderr
    ids = "\n".join(f"d1-{i}" for i in range(100))
    out = heron_cli("--quiet", "delete", str(root), "--ids-file", "-", stdin=ids)
    assert out.stdout == "" and out.stderr == ""  # --quiet: warnings and errors only
    # options before the ids (parsed intermixed); --json carries the counts
    out = heron_cli("delete", str(root), "--json", "d2-0", "nope")
    assert json.loads(out.stdout) | {"generation": 0} == {
        "collection": str(root), "deleted": 1, "missing": ["nope"], "documents": 197,
        "generation": 0,
    }
    out = heron_cli("compact", str(root), "--json")
    rep = json.loads(out.stdout)
    assert rep["purged"] == 103 and rep["segments_after"] == 1
    assert rep["bytes_after"] < rep["bytes_before"]
    c = heron.Collection.open(root)
    assert len(c) == 197 and c.info()["deleted_rows"] == 0 and "d0-1" not in c
    c.close()
    out = heron_cli("compact", str(root), "--quiet")
    assert out.stdout == "" and out.stderr == ""
    out = heron_cli("compact", str(root), "--quiet", "--verbose", check=False)
    assert out.returncode == 2 and "exclude each other" in out.stderr
    out = heron_cli("--version")
    assert out.stdout.strip() == f"heron {heron.__version__}"
