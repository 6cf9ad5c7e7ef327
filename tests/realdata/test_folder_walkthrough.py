"""Issue 17 as a new user meets it: a folder of 30 SciFact abstracts as .txt/.md/.html/.pdf files,
indexed with situated passages and kept in sync, searched, compacted, exported and imported, all
through the ``heron`` command (in this process, so the model loads once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _pdf import write_pdf
from heron.cli.main import main

N = 30


def cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def folder_bytes(path: Path) -> dict[str, object]:
    """Size of every file under ``path`` but SQLite's, and the database's content.

    SQLite's files change without a write: the last connection to close checkpoints the
    write-ahead log into ``docs.sqlite`` and removes it (when that is depends on when the
    collections opened earlier in this process are garbage-collected). So the database is
    compared by what it holds: every row of every table.
    """
    import sqlite3

    out: dict[str, object] = {}
    for f in sorted(path.rglob("*")):
        if not f.is_file() or f.name.startswith("docs.sqlite"):
            continue
        out[str(f.relative_to(path))] = f.stat().st_size
    con = sqlite3.connect(f"file:{path / 'docs.sqlite'}?mode=ro", uri=True)
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in sorted(tables):
            out[f"docs.sqlite:{t}"] = con.execute(f'SELECT * FROM "{t}"').fetchall()
    finally:
        con.close()
    return out


@pytest.fixture()
def folder(tmp_path, scifact):
    docs = tmp_path / "docs"
    docs.mkdir()
    ids = scifact.doc_ids[:N]
    titles = dict(zip(scifact.doc_ids, scifact.titles))
    texts = dict(zip(scifact.doc_ids, scifact.texts))
    for i in ids[:27]:
        (docs / f"{i}.txt").write_text(f"{titles[i]}\n\n{texts[i]}")
    md, html, pdf = ids[27:30]
    (docs / "notes.md").write_text(
        f"# Reading notes\n\n## {titles[md]}\n\n{texts[md]}\n\n## Volcanic ash\n\n"
        "Volcanic ash from the eruption grounded flights across northern Europe.\n"
    )
    (docs / "page.html").write_text(
        f"<html><head><title>{titles[html]}</title><script>var hidden = 1;</script></head>"
        f"<body><h1>{titles[html]}</h1><p>{texts[html]}</p></body></html>"
    )
    body = texts[pdf].encode("ascii", "replace").decode()
    write_pdf(docs / "paper.pdf", [[titles[pdf][:90]], [body[:90], body[90:180]]], title="A PDF")
    return docs, ids, titles


def test_folder_of_real_files_end_to_end(tmp_path, folder, capsys):
    docs, ids, titles = folder
    coll = tmp_path / "docs.heron"
    rc, out, err = cli(capsys, "index", docs, "-c", coll, "--chunk", "sentences:128", "--json")
    assert rc == 0 and json.loads(out)["added"] == N, err

    # one unquoted multi-word query after the options; hits carry metadata and name a passage
    rc, out, _ = cli(capsys, "search", coll, "-r", "passages", "-k", "3", "--json",
                     "volcanic", "ash", "flights")
    doc = json.loads(out)
    hit = doc["results"][0]["hits"][0]
    assert [r["query"] for r in doc["results"]] == ["volcanic ash flights"]
    assert doc["score_label"] == "cosine" and hit["id"] == "notes.md"
    assert hit["metadata"]["format"] == "markdown" and hit["metadata"]["title"] == "Reading notes"
    assert "Volcanic ash" in hit["snippet"] and "passage" in hit
    # filters from the command line: $like, $contains, $exists, and an unknown field is an error
    for flt, want in (({"path": {"$like": "%.html"}}, ["page.html"]),
                      ({"title": {"$contains": "PDF"}}, ["paper.pdf"]),
                      ({"pages": {"$exists": True}}, ["paper.pdf"])):
        rc, out, _ = cli(capsys, "search", coll, "-k", "5", "--json", "--filter", json.dumps(flt), "cells")
        assert [h["id"] for h in json.loads(out)["results"][0]["hits"]] == want, flt
    rc, _, err = cli(capsys, "search", coll, "--filter", '{"yeer": 2020}', "cells")
    assert rc == 2 and "'yeer' is not in the metadata" in err

    # re-indexing the unchanged folder writes nothing and says so
    before = folder_bytes(coll)
    rc, out, _ = cli(capsys, "index", docs, "-c", coll)
    assert rc == 0 and f"0 added, 0 changed, 0 removed, {N} unchanged" in out
    assert folder_bytes(coll) == before

    # a removed file is never returned afterwards, by any retriever
    gone = ids[0]
    (docs / f"{gone}.txt").unlink()
    rc, out, _ = cli(capsys, "index", docs, "-c", coll, "--quiet")
    assert rc == 0 and out == ""
    for r in ("dense", "bm25", "passages", "passages_bm25"):
        rc, out, _ = cli(capsys, "search", coll, "-r", r, "-k", str(N), "--json", titles[gone])
        assert f"{gone}.txt" not in [h["id"] for h in json.loads(out)["results"][0]["hits"]], r

    rc, out, _ = cli(capsys, "compact", coll, "--json")
    assert json.loads(out)["purged"] >= 1

    # export with vectors and import (Parquet): the same hits, passages included
    rc, out, _ = cli(capsys, "search", coll, "-r", "passages", "-k", "5", "--json", "stem", "cells")
    want = [(h["id"], h["passage"]["index"]) for h in json.loads(out)["results"][0]["hits"]]
    cli(capsys, "export", coll, tmp_path / "e.parquet", "--vectors", "--quiet")
    rc, out, _ = cli(capsys, "import", tmp_path / "e.parquet", "-c", tmp_path / "copy.heron", "--json")
    assert rc == 0 and json.loads(out)["imported"] == N - 1
    rc, out, _ = cli(capsys, "search", tmp_path / "copy.heron", "-r", "passages", "-k", "5", "--json",
                     "stem", "cells")
    assert [(h["id"], h["passage"]["index"]) for h in json.loads(out)["results"][0]["hits"]] == want
