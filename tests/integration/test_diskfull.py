"""A full disk during add, compact and index build: a clear error, the last commit intact.

Runs on a size-limited tmpfs, so only as root where ``mount -t tmpfs`` works (skipped elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from heron.collection import Collection
from heron.collection.diskfull import DiskFullError
from heron.collection.repair import check
from heron.pipeline import Queries

D = 64


def vecs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def mnt(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a size-limited tmpfs")
    m = tmp_path / "mnt"
    m.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(m)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield m
    finally:
        if subprocess.run(["umount", str(m)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(m)], capture_output=True)


def _fill(mnt, leave: int):
    """Take all but ``leave`` bytes of the tmpfs with a filler file; returns its path."""
    filler = mnt / "filler"
    free = shutil.disk_usage(mnt).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def _state(c: Collection):
    return len(c), c.generation, sorted(d.id for d in c.iter_documents())


def _assert_at_last_commit(c, before, x):
    """Still at the last commit, and searchable by a reader that already holds its lease file
    (a *new* reader needs a few bytes for one: on a 100 % full disk it gets a DiskFullError)."""
    assert _state(c) == before
    res = c.search(Queries(["a", "b", "c"], vectors={"none": x[:3]}), 1)
    assert res.keys.shape == (3, 1) and (res.keys >= 0).all()
    assert check(c.path).ok


@pytest.fixture
def coll(mnt):
    c = Collection.create(mnt / "c", model="none", dim=D)
    x = vecs(2000, 0)
    c.add([f"doc {i}" for i in range(2000)], ids=[f"d{i}" for i in range(2000)], vectors=x)
    return c, x


def test_add_on_a_full_disk(mnt, coll):
    c, x = coll
    before = _state(c)
    filler = _fill(mnt, 200_000)
    y = vecs(4000, 1)
    with pytest.raises(DiskFullError, match=r"disk full .*mnt/c.*still at its last commit \(generation 1\)"):
        c.add([f"new {i}" for i in range(4000)], ids=[f"n{i}" for i in range(4000)], vectors=y)
    _assert_at_last_commit(c, before, x)
    c.close()
    filler.unlink()
    c = Collection.open(mnt / "c")
    c.add([f"new {i}" for i in range(4000)], ids=[f"n{i}" for i in range(4000)], vectors=y)
    assert len(c) == 6000 and check(mnt / "c", deep=True).ok


def test_compact_on_a_full_disk(mnt, coll):
    c, x = coll
    c.add([f"more {i}" for i in range(1000)], ids=[f"m{i}" for i in range(1000)], vectors=vecs(1000, 2))
    c.delete([f"d{i}" for i in range(0, 2000, 2)])
    before = _state(c)
    filler = _fill(mnt, 100_000)
    with pytest.raises(DiskFullError, match="still at its last commit"):
        c.compact()
    _assert_at_last_commit(c, before, x[1::2])
    c.close()
    filler.unlink()
    c = Collection.open(mnt / "c")
    assert c.compact()["segments_after"] == 1 and _state(c)[2] == before[2]
    assert check(mnt / "c", deep=True).ok


def test_index_build_on_a_full_disk(mnt, coll):
    c, x = coll
    before = _state(c)
    filler = _fill(mnt, 100_000)
    with pytest.raises(DiskFullError, match="still at its last commit"):
        c.create_index(kind="hnsw")
    assert not any((mnt / "c" / "indexes" / "hnsw").glob(".tmp-*"))  # the space is given back
    _assert_at_last_commit(c, before, x)
    c.close()
    filler.unlink()
    c = Collection.open(mnt / "c")
    c.create_index(kind="hnsw")
    res = c.search(Queries(list("abcde"), vectors={"none": x[:5]}), 1, using="hnsw")
    assert list(res.keys[:, 0]) == list(np.asarray(c.snapshot().keys)[:5])
    assert check(mnt / "c", deep=True).ok


def test_a_new_reader_on_a_completely_full_disk_is_told_so(mnt, coll):
    c, x = coll
    c.close()
    _fill(mnt, 0)
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_APPEND)
    try:  # every last byte
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    with pytest.raises(DiskFullError, match="disk full"):
        Collection.open(mnt / "c").search(Queries(["a"], vectors={"none": x[:1]}), 1)
    (mnt / "filler").unlink()
    assert Collection.open(mnt / "c").search(Queries(["a"], vectors={"none": x[:1]}), 1).keys[0, 0] >= 0


def test_cli_reports_a_full_disk_in_one_line(mnt, coll, capsys):
    from heron.cli.main import main

    c, x = coll
    c.delete([f"d{i}" for i in range(0, 2000, 2)])
    c.close()
    _fill(mnt, 50_000)
    assert main(["compact", str(mnt / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("heron: error: disk full") and "\n" not in err
