"""Folder sync: re-indexing a folder re-embeds only changed files, drops removed ones, writes
nothing when nothing changed, and `heron compact` brings the folder back to a fresh index's size.

The files hold real text: docstrings of the Python standard library, written as .txt, .md and
.html files (60 here; the 700-file figures are in benchmarks/folder_sync.py and docs/documents.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heron.collection import Collection
from heron.collection.sources import sync_folder

N = 60


def heron(*args):
    out = subprocess.run([sys.executable, "-m", "heron", *args], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    return out


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_doc(d: Path, n: int, name: str, text: str) -> str:
    """File ``n`` as .txt, .md or .html (by ``n % 3``); returns its relative path (the doc id)."""
    stem = name.replace(".", "_")
    if n % 3 == 0:
        rel, body = f"txt/{stem}.txt", text
    elif n % 3 == 1:
        rel, body = f"md/{stem}.md", f"# {name}\n\n{text}\n"
    else:
        rel, body = f"{stem}.html", f"<html><head><title>{name}</title></head><body><p>{text}</p></body></html>"
    (d / rel).parent.mkdir(parents=True, exist_ok=True)
    (d / rel).write_text(body)
    return rel


@pytest.fixture(scope="module")
def docs():
    from heron.corpora.stdlib import stdlib_corpus

    ids, texts, _ = stdlib_corpus(limit=N + 10)
    return list(zip(ids, texts))


def test_sync_adds_changes_removes_and_compacts(tmp_path, docs, encoder):
    d = tmp_path / "docs"
    paths = [write_doc(d, n, name, text) for n, (name, text) in enumerate(docs[:N])]
    (d / "image.png").write_bytes(b"\x89PNG")
    coll = Collection.create(tmp_path / "c", encoder=encoder)
    r = sync_folder(coll, d)
    assert (r.added, r.changed, r.removed, r.unchanged) == (N, 0, 0, 0)
    assert r.skipped == {".png": 1} and len(coll) == N
    coll.close()

    # an unchanged folder: nothing written (same generation, same bytes), from the CLI too
    gen, size = r.generation, folder_bytes(tmp_path / "c")
    out = json.loads(heron("index", str(d), "--collection", str(tmp_path / "c"), "--json").stdout)
    assert (out["added"], out["changed"], out["removed"], out["unchanged"]) == (0, 0, 0, N)
    assert out["generation"] == gen and folder_bytes(tmp_path / "c") == size

    # change 3 files, remove 5, empty 1, add 2
    coll = Collection.open(tmp_path / "c", encoder=encoder)
    for rel in paths[:3]:
        (d / rel).write_text((d / rel).read_text().replace("</p>", "") + " Edited: see the changelog.")
    gone = paths[10:15]
    for rel in gone:
        (d / rel).unlink()
    (d / paths[20]).write_text("  ")
    new = [write_doc(d, N + k, name, text) for k, (name, text) in enumerate(docs[N:N + 2])]
    r = sync_folder(coll, d)
    assert (r.added, r.changed, r.removed, r.unchanged) == (2, 3, 6, N - 9)
    assert coll.last_encoded == 5  # only the new and changed files were embedded
    assert len(coll) == N - 6 + 2
    assert coll.get(gone + [paths[20]]) == [None] * 6
    assert "Edited: see the changelog." in coll.get(paths[0])[0].text
    assert all(doc is not None for doc in coll.get(new))
    # a removed file is never returned, not even for a query that is its own text
    removed_texts = [text for (_, text), rel in zip(docs, paths) if rel in gone]
    res = coll.search(removed_texts, k=10)
    assert not set(gone) & {i for row in res.doc_ids() for i in row}
    coll.close()

    # compact (with VACUUM) shrinks the folder back to within 10% of a fresh index
    heron("compact", str(tmp_path / "c"))
    fresh = Collection.create(tmp_path / "fresh", encoder=encoder)
    sync_folder(fresh, d)
    fresh.close()
    a, b = folder_bytes(tmp_path / "c"), folder_bytes(tmp_path / "fresh")
    assert abs(a - b) <= 0.10 * b, (a, b)


def test_other_sources_kept_and_collection_inside_folder_skipped(tmp_path, docs, encoder):
    a, b = tmp_path / "a", tmp_path / "b"
    for n, (_, text) in enumerate(docs[:4]):
        write_doc(a, 0, f"a{n}", text)
        write_doc(b, 0, f"b{n}", text)
    coll = Collection.create(a / "inside.heron", encoder=encoder)
    assert sync_folder(coll, a, exclude=a / "inside.heron").added == 4
    assert sync_folder(coll, b).added == 4
    (a / "txt" / "a0.txt").unlink()
    r = sync_folder(coll, a, exclude=a / "inside.heron")
    assert (r.removed, r.unchanged, r.skipped) == (1, 3, {})
    assert len(coll) == 7
    assert {m.metadata["source"] for m in coll.iter_documents()} == {str(a.resolve()), str(b.resolve())}
    coll.close()


def test_unchanged_jsonl_writes_nothing(tmp_path, encoder):
    from heron.ingest import iter_documents

    f = tmp_path / "docs.jsonl"
    rows = [{"id": "a", "text": "gzip reads compressed files", "metadata": {"year": 2020}},
            {"id": "b", "title": "argparse", "text": "parses command line options"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    coll = Collection.create(tmp_path / "j", encoder=encoder)
    ids, texts, metas = zip(*iter_documents(f))
    coll.upsert(list(texts), ids=list(ids), metadata=list(metas))
    gen = coll.generation
    coll.close()
    out = json.loads(heron("index", str(f), "--collection", str(tmp_path / "j"), "--json").stdout)
    assert (out["indexed"], out["unchanged"], out["generation"]) == (0, 2, gen)
    rows[0]["metadata"]["year"] = 2021  # a metadata edit is a change
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = json.loads(heron("index", str(f), "--collection", str(tmp_path / "j"), "--json").stdout)
    assert (out["indexed"], out["unchanged"], out["generation"]) == (1, 1, gen + 1)


def test_collection_of_an_older_heron_syncs(tmp_path, docs, encoder):
    """Documents indexed before files carried `source`/`sha256` are re-hashed (their vectors
    reused, same text) and removed when their files are gone."""
    d = tmp_path / "docs"
    rels = [write_doc(d, 0, name, text) for name, text in docs[:5]]
    coll = Collection.create(tmp_path / "old", encoder=encoder)
    coll.upsert([(d / r).read_text() for r in rels], ids=rels, metadata=[{"path": r} for r in rels])
    coll.set_config("sources", [{"dataset": "docs", "path": str(d.resolve())}])
    (d / rels[0]).unlink()
    r = sync_folder(coll, d)
    assert (r.added, r.changed, r.removed, r.unchanged) == (0, 4, 1, 0)
    assert coll.last_encoded == 0 and coll.get(rels[0])[0] is None
    assert sync_folder(coll, d).unchanged == 4
    coll.close()
