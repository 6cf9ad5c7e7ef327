"""Checksums, ``heron check`` and ``heron repair``: every file kind, a flipped byte and a truncation."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from heron.cli.main import main
from heron.collection import Collection, CorruptionError
from heron.collection.repair import check, repair
from heron.pipeline import Queries

D = 16
N = 120


def vecs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def q(v: np.ndarray) -> Queries:
    return Queries([f"q{i}" for i in range(len(v))], vectors={"none": v})


X = vecs(N, 0)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integrity") / "c"
    c = Collection.create(root, model="none", dim=D)
    half = N // 2
    c.add([f"document number {i}" for i in range(half)], ids=[f"d{i}" for i in range(half)],
          vectors=X[:half])
    c.add([f"document number {i}" for i in range(half, N)], ids=[f"d{i}" for i in range(half, N)],
          vectors=X[half:])
    c.create_index(kind="hnsw")
    c.create_index(kind="bm25")
    c.create_index(kind="compressed", spec="bin")
    c.close()
    return root


@pytest.fixture
def fresh(template, tmp_path) -> Path:
    dst = tmp_path / "c"
    shutil.copytree(template, dst, ignore=shutil.ignore_patterns("*.lock", "leases*"))
    return dst


def _files(root: Path) -> list[str]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_file() and (rel.startswith("segments/") or rel.startswith("indexes/")) \
                and not p.name.startswith("."):
            out.append(rel)
    return out


def _flip(p: Path, at: int) -> None:
    b = bytearray(p.read_bytes())
    b[at % len(b)] ^= 0x40
    p.write_bytes(bytes(b))


def test_clean_collection_checks_ok(template):
    assert check(template, deep=True).ok
    assert check(template).ok


def test_every_segment_and_artifact_file_is_checksummed(template):
    files = _files(template)
    kinds = {f.split("/")[0] for f in files}
    assert kinds == {"segments", "indexes"}
    assert any(f.endswith("dense.npy") for f in files) and any("hnsw" in f for f in files)
    assert len(files) >= 10


@pytest.mark.parametrize("damage", ["flip-start", "flip-middle", "flip-end", "truncate"])
def test_each_file_damaged_is_detected_and_named(template, tmp_path, damage):
    """The corruption table of docs/reliability.md: every segment and artifact file, four damages."""
    for rel in _files(template):
        root = tmp_path / rel.replace("/", "_")
        shutil.copytree(template, root)
        p = root / rel
        size = p.stat().st_size
        if damage == "truncate":
            p.write_bytes(p.read_bytes()[: size // 2])
        else:
            _flip(p, {"flip-start": 0, "flip-middle": size // 2, "flip-end": size - 1}[damage])
        rep = check(root, deep=True)
        assert [pr.file for pr in rep.problems] == [str(p)], (rel, damage, rep.lines())
        # a search that reads the file raises, naming it, instead of answering wrongly
        using = "dense" if rel.startswith("segments/") else rel.split("/")[1]
        c = Collection.open(root)
        queries = Queries(["document number 3"]) if using == "bm25" else q(X[:3])
        with pytest.raises(CorruptionError, match=p.name.replace(".", r"\.")):
            c.search(queries, 5, using=using)
        c.close()
        shutil.rmtree(root)


def test_small_files_verified_on_open_large_on_first_use(fresh, monkeypatch):
    from heron.collection import integrity, segments

    seg = next((fresh / "segments").iterdir())
    _flip(seg / "dense.npy", 200)
    monkeypatch.setattr(segments, "SMALL_FILE", 0)
    monkeypatch.setattr(integrity, "SMALL_FILE", 0)
    c = Collection.open(fresh)
    # with every file "large", opening a snapshot checks only sizes ...
    snap = c.snapshot()
    # ... and the damaged array is found when first read
    with pytest.raises(CorruptionError, match="dense.npy"):
        snap.dense()
    assert check(fresh).ok  # every file "large": the quick check reads sizes only
    assert [p.file for p in check(fresh, deep=True).problems] == [str(seg / "dense.npy")]


def test_sqlite_document_text_flip_found_by_deep_check(fresh):
    db = fresh / "docs.sqlite"
    raw = db.read_bytes()
    at = raw.find(b"document number 17")
    assert at > 0
    _flip(db, at + 3)
    rep = check(fresh, deep=True)
    assert rep.problems and rep.problems[0].kind == "document" and rep.problems[0].ids == ["d17"]


def test_sqlite_truncated_is_reported(fresh):
    db = fresh / "docs.sqlite"
    db.write_bytes(db.read_bytes()[:5000])
    rep = check(fresh)
    assert rep.problems and rep.problems[0].kind == "database"
    assert "docs.sqlite" in rep.problems[0].file


def test_manifest_truncated_or_dim_changed_is_reported(fresh):
    m = fresh / "heron.json"
    text = m.read_text()
    m.write_text(text.replace(f'"dim": {D}', f'"dim": {D + 1}', 1))
    assert any(p.kind == "manifest" for p in check(fresh, deep=True).problems)
    m.write_text(text[: len(text) // 2])
    rep = check(fresh)
    assert rep.problems[0].kind == "manifest" and "heron.json" in rep.problems[0].file


def test_repair_rebuilds_indexes_keeps_undamaged_segments_and_names_lost_documents(fresh, capsys):
    segs = sorted((fresh / "segments").iterdir())
    (segs[0] / "keys.npy").write_bytes(b"")  # recoverable: keys are in the database
    _flip(segs[1] / "dense.npy", 500)  # model='none': those vectors are lost
    hnsw = next((fresh / "indexes" / "hnsw").glob("g*"))
    _flip(next(p for p in hnsw.rglob("*") if p.is_file() and p.name != "artifact.json"), 100)
    assert main(["check", "--deep", str(fresh)]) == 1
    assert "dense.npy" in capsys.readouterr().out
    assert main(["repair", str(fresh)]) == 1  # documents were lost
    out = capsys.readouterr().out
    assert "lost: 60 documents" in out and "'d60'" in out and "rebuilt: index 'hnsw'" in out
    assert check(fresh, deep=True).ok
    c = Collection.open(fresh)
    assert len(c) == N // 2 and "d0" in c and "d60" not in c
    for using in ("dense", "hnsw", "compressed-bin"):
        res = c.search(q(X[:5]), 1, using=using)
        assert list(res.keys[:, 0]) == [int(k) for k in c.snapshot().keys[:5]], using
    # a new write works after repair
    c.add(["again"], ids=["d60"], vectors=X[60:61])
    assert c.search(q(X[60:61]), 1).keys[0, 0] == c.snapshot().keys[-1]
    assert main(["info", str(fresh)]) == 0 and "integrity: ok" in capsys.readouterr().out


class HashEncoder:
    """A deterministic stand-in encoder (text -> vector by a seeded generator)."""

    name = "hash-encoder-test"
    dim = D

    def encode_documents(self, texts, progress=False):
        return np.stack([vecs(1, sum(t.encode()))[0] for t in texts])

    encode_queries = encode_documents


def test_repair_reencodes_when_the_encoder_is_available(tmp_path):
    enc = HashEncoder()
    c = Collection.create(tmp_path / "c", encoder=enc)
    texts = [f"text {i}" for i in range(20)]
    c.add(texts, ids=[str(i) for i in range(20)])
    before = np.asarray(c.snapshot().dense()).copy()
    c.close()
    seg = next((tmp_path / "c" / "segments").iterdir())
    _flip(seg / "dense.npy", 300)
    rep = repair(tmp_path / "c", encoder=enc)
    assert not rep.lost and rep.reencoded and check(tmp_path / "c", deep=True).ok
    c = Collection.open(tmp_path / "c", encoder=enc)
    np.testing.assert_allclose(np.asarray(c.snapshot().dense()), before, atol=1e-6)


def test_info_reports_damage_and_exits_nonzero(fresh, capsys):
    seg = next((fresh / "segments").iterdir())
    _flip(seg / "segment.json", 20)
    assert main(["info", str(fresh)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "segment.json" in out


def test_unsealed_segments_of_older_collections_still_open(fresh):
    import json

    seg = next((fresh / "segments").iterdir())
    meta = json.loads((seg / "segment.json").read_text())
    meta.pop("checksum"), meta.pop("files")
    (seg / "segment.json").write_text(json.dumps(meta))
    c = Collection.open(fresh)
    assert len(c) == N and check(fresh, deep=True).ok


def test_database_flip_in_unused_page_is_harmless_or_detected(fresh):
    """No silent wrong answers: after a flip anywhere in docs.sqlite either check reports it or
    every document and search result is unchanged."""
    db = fresh / "docs.sqlite"
    c = Collection.open(fresh)
    want = [(d.id, d.text) for d in c.iter_documents()]
    c.close()
    size = db.stat().st_size
    rng = np.random.default_rng(1)
    silent = 0
    for at in rng.integers(100, size, 30):
        backup = db.read_bytes()
        _flip(db, int(at))
        try:
            rep = check(fresh, deep=True)
            if rep.ok:
                c = Collection.open(fresh)
                got = [(d.id, d.text) for d in c.iter_documents()]
                c.close()
                silent += got != want
        except (sqlite3.DatabaseError, ValueError):
            pass
        db.write_bytes(backup)
    assert silent == 0


def test_deep_check_of_an_unsealed_segment_finds_a_truncated_array(fresh):
    import json

    seg = next((fresh / "segments").iterdir())
    meta = json.loads((seg / "segment.json").read_text())
    meta.pop("checksum"), meta.pop("files")
    (seg / "segment.json").write_text(json.dumps(meta))
    (seg / "dense.npy").write_bytes((seg / "dense.npy").read_bytes()[:200])
    rep = check(fresh, deep=True)
    assert [p.segment for p in rep.problems] == [int(seg.name)] and "does not load" in rep.problems[0].message
