"""Metadata filters: $contains / $like / $exists against a Python oracle, unknown fields, post-filter."""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest

import heron
from heron.index.filters import check_fields, compile_filter, matching_keys

META = [
    {"title": "Cats and dogs", "tags": ["pets", "ml"], "year": 2020},
    {"title": "Deep learning for cats", "tags": ["ml"], "year": 2021, "summary": None},
    {"title": "Gardening", "tags": [], "year": 2019, "summary": "plants"},
    {"title": "The dog days", "year": 2018, "path": "docs/a.md"},
    {"title": "CATALOGUE", "tags": ["shop", 3], "path": "docs/b.txt"},
    {"tags": "ml", "path": "notes/c.md"},  # a string where others have a list
]


@pytest.fixture
def coll(tmp_path):
    c = heron.Collection.create(tmp_path / "c", model="none", dim=4)
    x = np.random.default_rng(0).standard_normal((len(META), 4)).astype(np.float32)
    c.add(
        [f"doc {i}" for i in range(len(META))],
        ids=[f"d{i}" for i in range(len(META))],
        metadata=META,
        vectors=x,
    )
    yield c
    c.close()


def contains(v, w) -> bool:
    if isinstance(v, list):
        return w in v
    return isinstance(v, str) and isinstance(w, str) and w in v


def like(v, pattern) -> bool:  # SQLite LIKE: % and _, ASCII case-insensitive
    if not isinstance(v, str):
        return False
    glob = pattern.replace("*", "[*]").replace("?", "[?]").replace("%", "*").replace("_", "?")
    return fnmatch.fnmatchcase(v.lower(), glob.lower())


CASES = [
    ({"title": {"$contains": "cat"}}, lambda m: contains(m.get("title"), "cat")),
    ({"title": {"$contains": "CAT"}}, lambda m: contains(m.get("title"), "CAT")),
    ({"tags": {"$contains": "ml"}}, lambda m: contains(m.get("tags"), "ml")),
    ({"tags": {"$contains": 3}}, lambda m: isinstance(m.get("tags"), list) and 3 in m["tags"]),
    ({"title": {"$like": "%cat%"}}, lambda m: like(m.get("title"), "%cat%")),
    ({"path": {"$like": "docs/%.md"}}, lambda m: like(m.get("path"), "docs/%.md")),
    ({"title": {"$like": "The do_ %"}}, lambda m: like(m.get("title"), "The do_ %")),
    ({"summary": {"$exists": True}}, lambda m: "summary" in m),
    ({"summary": {"$exists": False}}, lambda m: "summary" not in m),
    ({"$not": {"tags": {"$contains": "ml"}}}, lambda m: not contains(m.get("tags"), "ml")),
    (
        {"$or": [{"tags": {"$contains": "shop"}}, {"year": {"$gte": 2021}}]},
        lambda m: contains(m.get("tags"), "shop") or (m.get("year") or 0) >= 2021,
    ),
]


@pytest.mark.parametrize("flt,want", CASES)
def test_match_operators_equal_oracle(coll, flt, want) -> None:
    got = set(matching_keys(coll, flt).tolist())
    keys = coll.snapshot().keys
    expect = {int(keys[i]) for i, m in enumerate(META) if want(m)}
    assert got == expect, flt
    assert 0 < len(expect) < len(META) or flt == {"title": {"$contains": "CAT"}}


def test_like_is_case_insensitive_and_contains_is_not(coll) -> None:
    keys = coll.snapshot().keys
    assert set(matching_keys(coll, {"title": {"$like": "cat%"}}).tolist()) == {
        int(keys[0]),
        int(keys[4]),
    }
    assert set(matching_keys(coll, {"title": {"$contains": "CAT"}}).tolist()) == {int(keys[4])}


def test_bad_match_values() -> None:
    with pytest.raises(TypeError, match=r"\$exists for field 'a' needs true or false"):
        compile_filter({"a": {"$exists": 1}})
    with pytest.raises(TypeError, match=r"\$like for field 'a' needs a pattern string"):
        compile_filter({"a": {"$like": 3}})
    with pytest.raises(TypeError, match=r"use \$in"):
        compile_filter({"a": {"$contains": ["x", "y"]}})
    with pytest.raises(ValueError, match=r"\$contains"):  # listed among the valid operators
        compile_filter({"a": {"$regex": "x"}})


def test_unknown_field_is_an_error_naming_known_fields(coll) -> None:
    with pytest.raises(ValueError, match=r"filter field 'yaer' is not in the metadata.*'year'"):
        matching_keys(coll, {"yaer": {"$gte": 2020}})
    with pytest.raises(ValueError, match="'nope'"):
        matching_keys(coll, {"$or": [{"year": 2020}, {"nope.x": 1}]})
    # a field only some documents have is fine; so is asking whether an unknown one exists
    check_fields(coll, {"summary": "plants", "tags.x": 1})
    assert len(matching_keys(coll, {"never": {"$exists": False}})) == len(META)
    assert len(matching_keys(coll, {"yaer": 1}, check=False)) == 0
    # the ANN retrievers raise it too
    q = heron.Queries(["q"], vectors={"none": np.ones((1, 4), np.float32)})
    with pytest.raises(ValueError, match="known fields"):
        coll.search(q, 2, retriever="flat", filter={"yaer": 2020})


