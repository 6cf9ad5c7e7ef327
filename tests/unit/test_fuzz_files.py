"""Property tests (hypothesis): the BEIR loader and JSONL / folder ingestion on arbitrary files.

Only documented errors may escape: ``ValueError`` (a bad row, naming the file and line;
``UnicodeDecodeError`` is one) and ``TypeError``. See docs/reliability.md.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heron.eval.beir import load_beir
from heron.ingest import iter_documents

pytestmark = pytest.mark.invariants
DOCUMENTED = (ValueError, TypeError)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=6), ch, max_size=3),
    max_leaves=8,
)
ROWS = st.dictionaries(st.sampled_from(["_id", "id", "text", "title", "metadata", "x"]), JSON_VALUES, max_size=5)
LINE = st.one_of(
    ROWS.map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
)
RAW = st.binary(max_size=200)


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="heron-fuzz-"))


@FAST
@given(st.lists(LINE, max_size=6), RAW, st.booleans())
def test_jsonl_ingestion(lines, raw, use_raw):
    d = _tmp()
    try:
        f = d / "docs.jsonl"
        f.write_bytes(raw if use_raw else "\n".join(lines).encode("utf-8", "surrogatepass"))
        try:
            for doc_id, text, meta in iter_documents(f):
                assert isinstance(doc_id, str) and isinstance(text, str) and isinstance(meta, dict)
        except DOCUMENTED:
            pass
    finally:
        shutil.rmtree(d)


@FAST
@given(st.lists(st.tuples(st.sampled_from(["a.txt", "b.md", "c.rst", "d.TXT", "sub/e.txt", "f.bin"]), RAW),
                max_size=4))
def test_folder_ingestion(files):
    d = _tmp()
    try:
        for name, data in files:
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(data)
        try:
            docs = list(iter_documents(d))
        except DOCUMENTED:
            return
        assert all(isinstance(t, str) and t.strip() for _, t, _ in docs)
    finally:
        shutil.rmtree(d)


QRELS_LINE = st.one_of(
    st.tuples(st.sampled_from(["q1", "q2", "qx", ""]), st.sampled_from(["d1", "d2", "dx"]),
              st.sampled_from(["0", "1", "2", "-1", "1.5", "inf", "nan", "1e400", "x", ""])).map("\t".join),
    st.text(max_size=20),
)


@FAST
@given(st.lists(LINE, max_size=4), st.lists(LINE, max_size=4), st.lists(QRELS_LINE, max_size=5),
       st.booleans(), st.booleans())
def test_beir_loader(corpus, queries, qrels, header, strict):
    d = _tmp()
    try:
        good_c = [json.dumps({"_id": "d1", "text": "a"}), json.dumps({"_id": "d2", "title": "t", "text": "b"})]
        good_q = [json.dumps({"_id": "q1", "text": "x"}), json.dumps({"_id": "q2", "text": "y"})]
        (d / "corpus.jsonl").write_text("\n".join(good_c + corpus), encoding="utf-8", errors="surrogatepass")
        (d / "queries.jsonl").write_text("\n".join(good_q + queries), encoding="utf-8", errors="surrogatepass")
        (d / "qrels").mkdir()
        rows = (["query-id\tcorpus-id\tscore"] if header else []) + qrels
        (d / "qrels" / "test.tsv").write_text("\n".join(rows), encoding="utf-8", errors="surrogatepass")
        try:
            ds = load_beir(d, strict=strict)
        except DOCUMENTED:
            return
        assert len(ds.doc_ids) == len(ds.texts) and all(isinstance(t, str) for t in ds.texts)
        for split in ds.qrels.values():
            for judged in split.values():
                assert all(isinstance(v, int) for v in judged.values())
    finally:
        shutil.rmtree(d)
