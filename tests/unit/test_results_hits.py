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
