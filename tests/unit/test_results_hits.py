"""Results.hits() and the HTML snippet: hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pytest

from heron.results import Hit, Results, snippet_html


class Doc:
    def __init__(self, text, metadata):
        self.text, self.metadata = text, metadata


def _res():
    keys = np.array([[2, 0, -1], [1, -1, -1]])
    scores = np.array([[0.9, 0.5, -np.inf], [0.7, -np.inf, -np.inf]], dtype=np.float32)
    table = {0: "a", 1: "b", 2: "c"}
    return Results(keys, scores, lambda ks: [table[int(k)] for k in ks])


def test_hits_with_documents_and_padding_dropped():
    store = {"a": Doc("alpha", {"n": 1}), "c": Doc("gamma", {})}
    res = _res().with_documents(lambda ids: [store.get(i) for i in ids])
    hits = res.hits()
    assert hits[0] == [Hit("c", pytest.approx(0.9), 1, {}, "gamma"), Hit("a", 0.5, 2, {"n": 1}, "alpha")]
    assert hits[1] == [Hit("b", pytest.approx(0.7), 1, {}, None)]  # unknown to the lookup
    assert res.cut(2).hits() == hits  # cut keeps the lookup


def test_hits_without_lookup():
    assert _res().hits()[1] == [Hit("b", pytest.approx(0.7), 1, {}, None)]


def test_snippet_html_marks_and_escapes():
    out = snippet_html("Use <b>gzip</b> & tar to compress files", "compress gzip")
    assert out == "Use &lt;b&gt;<mark>gzip</mark>&lt;/b&gt; &amp; tar to <mark>compress</mark> files"
    assert snippet_html("", "x") == ""
    long = "word " * 100 + "needle here " + "word " * 100
    s = snippet_html(long, "needle", width=60)
    assert "<mark>needle</mark>" in s and s.startswith("…") and s.endswith("…")


def test_doc_ids_of_a_batch_resolve_once_and_match_row_by_row():
    """A batch is resolved in one call (a resolver call per row cost ~5 µs); rows, their order,
    padding and an all-padding row come out as when each row is resolved alone."""
    keys = np.array([[2, 0, -1], [-1, -1, -1], [1, 2, 0], [0, -1, -1]])
    scores = np.where(keys >= 0, 1.0, -np.inf).astype(np.float32)
    table = {0: "a", 1: "b", 2: "c"}
    calls = []

    def resolve(ks):
        calls.append(len(ks))
        return [table[int(k)] for k in ks]

    batch = Results(keys, scores, resolve).doc_ids()
    assert calls == [6]
    rows = [Results(keys[i : i + 1], scores[i : i + 1], resolve).doc_ids()[0] for i in range(4)]
    assert batch == rows == [["c", "a"], [], ["b", "c", "a"], ["a"]]
    empty = Results(np.full((2, 3), -1), np.full((2, 3), -np.inf, np.float32), resolve)
    assert empty.doc_ids() == [[], []]
