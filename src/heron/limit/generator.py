"""LIMIT-style data: people who like things, queries "Who likes X?", two relevant people each.

Written from the description in Weller et al., "On the Theoretical Limitations of Embedding-Based
Retrieval", 2025: a *core* of ``n_core`` people is chosen and every pair of them is made the
exact answer set (k = 2) of one query, so the queries realise every top-2 combination of the core
(the "dense" qrel pattern that single-vector embeddings cannot represent once the number of
combinations outgrows the dimension). Each query asks about one attribute; the two relevant people
list it among their likes, and every person's list is filled up with attributes nobody is asked
about. Extra non-core people (``n_people - n_core``) are distractors with filler attributes only.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FIRST = [
    "Ada",
    "Bram",
    "Cleo",
    "Dario",
    "Edda",
    "Femi",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Lars",
    "Mina",
    "Nils",
    "Olga",
    "Pavel",
    "Quinn",
    "Rosa",
    "Sami",
    "Tove",
    "Umar",
    "Vera",
    "Wim",
    "Xena",
    "Yusuf",
    "Zora",
]
_LAST = [
    "Abbott",
    "Brandt",
    "Castillo",
    "Dufresne",
    "Eriksen",
    "Falk",
    "Gallo",
    "Haas",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Sato",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zeller",
]
_A = [
    "Amber",
    "Basalt",
    "Cobalt",
    "Dune",
    "Ember",
    "Fjord",
    "Garnet",
    "Harbor",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lagoon",
    "Marble",
    "Nectar",
    "Obsidian",
    "Prairie",
    "Quartz",
    "Russet",
    "Saffron",
    "Tundra",
    "Umber",
    "Velvet",
    "Willow",
    "Zephyr",
]
_B = [
    "Kites",
    "Lanterns",
    "Puzzles",
    "Orchids",
    "Sonatas",
    "Teapots",
    "Canoes",
    "Mosaics",
    "Ferns",
    "Comets",
    "Quilts",
    "Marimbas",
    "Lighthouses",
    "Origami",
    "Bonsai",
    "Glaciers",
    "Tapestries",
    "Harmonicas",
    "Geodes",
    "Sundials",
]


@dataclass
class LimitData:
    """A generated LIMIT-style dataset (see the module docstring)."""

    doc_ids: list[str]
    texts: list[str]
    likes: list[list[str]]
    query_ids: list[str]
    queries: list[str]
    attributes: list[str]
    qrels: dict[str, dict[str, int]]


def _names(n: int, rng: np.random.Generator) -> list[str]:
    combos = [f"{f} {last}" for f in _FIRST for last in _LAST]
    if n <= len(combos):
        return [combos[i] for i in rng.permutation(len(combos))[:n]]
    return [f"{combos[i % len(combos)]} {i // len(combos) + 1}" for i in rng.permutation(n)]


def _attributes(n: int, rng: np.random.Generator) -> list[str]:
    base = [f"{a} {b}" for a in _A for b in _B]
    if n <= len(base):
        return [base[i] for i in rng.permutation(len(base))[:n]]
    return [f"{base[i % len(base)]} No. {i // len(base) + 1}" for i in range(n)]


def generate_limit(
    *,
    n_people: int = 46,
    n_core: int = 46,
    n_queries: int | None = None,
    likes_per_person: int = 50,
    seed: int = 0,
) -> LimitData:
    """Generate LIMIT-style data.

    Parameters
    ----------
    n_people:
        Documents (people); ``n_core`` of them form the core whose pairs are the answer sets.
    n_core:
        Core size; the queries cover ``min(n_queries, C(n_core, 2))`` distinct pairs.
    n_queries:
        Number of queries (default: every core pair once, ``C(n_core, 2)``).
    likes_per_person:
        Length of each person's list of likes (query attributes first, then fillers); at least
        the number of queries a person answers.
    seed:
        Everything is a function of this seed.
    """
    if not isinstance(n_core, int) or n_core < 2:
        raise ValueError(f"n_core must be an int >= 2, got {n_core!r}")
    if not isinstance(n_people, int) or n_people < n_core:
        raise ValueError(f"n_people must be an int >= n_core ({n_core}), got {n_people!r}")
    pairs_all = list(itertools.combinations(range(n_core), 2))
    if n_queries is None:
        n_queries = len(pairs_all)
    if not isinstance(n_queries, int) or not 1 <= n_queries <= len(pairs_all):
        raise ValueError(
            f"n_queries must be an int in [1, C(n_core, 2) = {len(pairs_all)}], got {n_queries!r}"
        )
    rng = np.random.default_rng(seed)
    pairs = [
        pairs_all[i] for i in sorted(rng.choice(len(pairs_all), size=n_queries, replace=False))
    ]
    per_person = np.zeros(n_people, dtype=np.int64)
    for a, b in pairs:
        per_person[a] += 1
        per_person[b] += 1
    if likes_per_person < per_person.max():
        raise ValueError(
            f"likes_per_person must be >= {int(per_person.max())} (the most queries one person answers), got {likes_per_person}"
        )
    n_fill = int(likes_per_person * n_people - per_person.sum())
    attrs = _attributes(n_queries + max(n_fill, 0), rng)
    q_attrs, fillers = attrs[:n_queries], attrs[n_queries:]
    people = _names(n_people, rng)
    likes: list[list[str]] = [[] for _ in range(n_people)]
    qrels: dict[str, dict[str, int]] = {}
    for qi, ((a, b), attr) in enumerate(zip(pairs, q_attrs)):
        likes[a].append(attr)
        likes[b].append(attr)
        qrels[f"query_{qi}"] = {people[a]: 1, people[b]: 1}
    fi = 0
    for p in range(n_people):
        need = likes_per_person - len(likes[p])
        likes[p].extend(fillers[fi : fi + need])
        fi += need
        order = rng.permutation(len(likes[p]))
        likes[p] = [likes[p][i] for i in order]
    texts = [f"{people[p]} likes " + ", ".join(likes[p]) + "." for p in range(n_people)]
    return LimitData(
        doc_ids=people,
        texts=texts,
        likes=likes,
        query_ids=list(qrels),
        queries=[f"Who likes {a}?" for a in q_attrs],
        attributes=q_attrs,
        qrels=qrels,
    )


def write_beir(data: LimitData, path: str | os.PathLike) -> Path:
    """Write ``data`` as a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``)."""
    root = Path(path)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d, t in zip(data.doc_ids, data.texts):
            f.write(json.dumps({"_id": d, "title": "", "text": t}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for q, t in zip(data.query_ids, data.queries):
            f.write(json.dumps({"_id": q, "text": t}) + "\n")
    with open(root / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, rel in data.qrels.items():
            for d, s in rel.items():
                f.write(f"{q}\t{d}\t{s}\n")
    return root
