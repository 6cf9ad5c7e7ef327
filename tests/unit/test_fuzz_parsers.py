"""Property tests (hypothesis): the spec parsers, filters and query strings raise only documented errors.

Documented errors are ``ValueError`` and ``TypeError`` (and their subclasses, e.g.
``UnicodeError``); ``KeyError`` for an unknown registered name. Anything else — an
``AttributeError``, ``sqlite3.OperationalError``, ``RecursionError``, ``OverflowError`` — is a bug.
The same parsers are fuzzed by the atheris harnesses in ``fuzz/`` (docs/reliability.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import heron
from heron.capabilities.spec import parse_spec, stage_from_spec
from heron.codecs.spec import parse_spec as parse_codec_spec
from heron.index.filters import compile_filter, matching_keys
from heron.pipeline import Queries

pytestmark = pytest.mark.invariants
DOCUMENTED = (ValueError, TypeError, KeyError)
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: every code point, lone surrogates and control characters included
ANY_CHAR = st.characters(exclude_categories=[])
ANY_TEXT = st.text(ANY_CHAR, max_size=60)
SPEC_TEXT = st.lists(st.sampled_from(list("abhnsw?&=+:._-0123456789 ") + ["dense", "bm25", "hybrid:",
                     "ef_search", "oversample", "nan", "inf", "1e999", "\x00", "\ud800", "é"]), max_size=20)


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    c = heron.Collection.create(tmp_path_factory.mktemp("fz") / "c", model="none", dim=4)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    meta = [{"year": 2020 + i, "tags": ["a", "b"][: i % 3], "title": f"t{i}", "n": {"x": i}} for i in range(6)]
    c.add([f"doc {i} about cats" for i in range(6)], ids=[f"d{i}" for i in range(6)],
          metadata=meta, vectors=x)
    c.create_index(kind="bm25")
    return c


@FAST
@given(st.one_of(ANY_TEXT, SPEC_TEXT.map("".join)))
def test_retriever_spec_parser(spec):
    try:
        name, params = parse_spec(spec)
    except DOCUMENTED:
        return
    assert isinstance(name, str) and isinstance(params, dict)


@FAST
@given(st.one_of(ANY_TEXT, SPEC_TEXT.map("".join)))
def test_retriever_spec_into_a_stage(coll, spec):
    try:
        stage_from_spec(coll, spec, depth=5)
    except DOCUMENTED:
        pass


@FAST
@given(st.one_of(ANY_TEXT, st.lists(st.sampled_from(
    ["pca", "pca0", "pca2", "rbin2", "pq4", "opq2", "dpq", "int8", "int4", "bin", "fp8", "+", "-", "x", "9" * 30]),
    max_size=5).map("".join), st.integers(), st.none()))
def test_codec_spec_parser(spec):
    try:
        parse_codec_spec(spec)
    except DOCUMENTED:
        pass


OPS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$like", "$exists",
       "$and", "$or", "$not", "$bogus"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), ANY_TEXT)
KEYS = st.one_of(st.sampled_from(OPS + ["year", "tags", "title", "n.x", "n", "a.b", "", "$"]), ANY_TEXT,
                 st.integers(), st.none())
FILTERS = st.recursive(SCALARS, lambda ch: st.lists(ch, max_size=4) | st.dictionaries(KEYS, ch, max_size=3),
                       max_leaves=12)


@FAST
@given(FILTERS)
def test_filter_compile_and_match(coll, flt):
    try:
        compile_filter(flt)
        keys = matching_keys(coll, flt)
    except DOCUMENTED:
        return
    assert keys.dtype == np.int64


def test_deeply_nested_filter_is_a_value_error(coll):
    flt: dict = {"year": 2020}
    for _ in range(5000):
        flt = {"$not": flt}
    with pytest.raises(ValueError, match="nested"):
        compile_filter(flt)


QUERY = st.one_of(ANY_TEXT, st.text(st.sampled_from(["\x00", "\x1b", "\ud800", "\udfff", "\u202e", "\ufeff",
                                                     "\n", "🙂", "a", " ", "\t"]), max_size=40),
                  st.integers(90_000, 200_000).map(lambda n: "x " * (n // 2)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(QUERY, st.sampled_from(["bm25", "dense"]))
def test_query_strings(coll, text, using):
    try:
        res = coll.search(Queries([text]), 3, using=using)
    except DOCUMENTED:
        return
    assert res.keys.shape == (1, 3)


@pytest.mark.parametrize("op", ["$not", "$and", "$or"])
def test_filter_nesting_within_the_limit_runs_in_sqlite(coll, op):
    """Found by fuzz/fuzz_filters.py: 14 nested $not overflowed SQLite's parser stack."""
    from heron.index.filters import MAX_FILTER_DEPTH

    flt: dict = {"tags": {"$contains": "a"}}
    for _ in range(MAX_FILTER_DEPTH):
        flt = {"$not": flt} if op == "$not" else {op: [flt, {"tags": {"$contains": "b"}}]}
    assert matching_keys(coll, flt).dtype == np.int64
    with pytest.raises(ValueError, match="nested deeper"):
        matching_keys(coll, {"$not": flt})
