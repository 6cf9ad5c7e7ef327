"""A segment written in batches (``SegmentWriter``) is the segment written at once, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from heron.collection.segments import SegmentWriter, write_segment


def _batches(seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = [5, 3, 4]
    out, key = [], 10
    for b, n in enumerate(sizes):
        keys = np.arange(key, key + n)
        key += n + 2  # keys rise across batches, with gaps
        dense = rng.standard_normal((n, 8)).astype(np.float32)
        sparse = sp.random(n, 50, density=0.2, format="csr", dtype=np.float32, random_state=seed + b)
        # the second batch's ragged rows are all empty: its values array has no width
        ragged = [rng.standard_normal((0 if b == 1 else int(rng.integers(0, 4)), 4)).astype(np.float32)
                  for _ in range(n)]
        if b == 1:
            ragged = [np.zeros((0, 0), np.float32) for _ in range(n)]
        ids = [f"doc-{k}-é" if k % 3 == 0 else f"d{k}" for k in keys]  # some non-ASCII ids
        out.append((keys, {"dense": ("dense", dense), "sp": ("sparse", sparse),
                           "tok": ("ragged", ragged)}, ids))
    return out


def test_batches_write_the_bytes_of_one_write(tmp_path) -> None:
    batches = _batches()
    w = SegmentWriter(tmp_path / "a", 1)
    for keys, fields, ids in batches:
        w.append(keys, fields, ids)
    seg_a = w.finish()
    keys = np.concatenate([b[0] for b in batches])
    ids = [i for b in batches for i in b[2]]
    fields = {
        "dense": ("dense", np.concatenate([b[1]["dense"][1] for b in batches])),
        "sp": ("sparse", sp.vstack([b[1]["sp"][1] for b in batches], format="csr")),
        # the same rows; at once, an empty row takes the field's width
        "tok": ("ragged", [r if r.shape[1] else np.zeros((0, 4), np.float32)
                           for b in batches for r in b[1]["tok"][1]]),
    }
    seg_b = write_segment(tmp_path / "b", 1, keys, fields, ids)
    names = sorted(p.name for p in seg_b.iterdir())
    assert sorted(p.name for p in seg_a.iterdir()) == names
    for name in names:
        assert (seg_a / name).read_bytes() == (seg_b / name).read_bytes(), name
    assert not list((tmp_path / "a" / "segments").glob(".*"))  # no temporary left


def test_batches_must_agree(tmp_path) -> None:
    (k1, f1, i1), (k2, f2, i2), _ = _batches()
    w = SegmentWriter(tmp_path, 1)
    w.append(k1, f1, i1)
    with pytest.raises(ValueError, match="fields"):
        w.append(k2, {"dense": f2["dense"]}, i2)
    with pytest.raises(ValueError, match="keys must all follow"):
        w.append(k1, f1, i1)
    with pytest.raises(ValueError, match="ids, or none"):
        w.append(k2, f2, None)
    with pytest.raises(ValueError, match="dense"):
        w.append(k2, {**f2, "dense": ("dense", np.zeros((len(k2), 9), np.float32))}, i2)
    w.abort()
    assert not any((tmp_path / "segments").iterdir())


def test_background_sync_same_bytes_and_its_error_is_raised(tmp_path, monkeypatch) -> None:
    """``start_sync`` after each batch (what a bulk load does) changes no byte; a failed
    background fsync is raised by ``finish`` (a second fsync of the file would not report it),
    and ``abort`` then removes the folder."""
    import os

    batches = _batches(3)
    a, b = SegmentWriter(tmp_path / "a", 1), SegmentWriter(tmp_path / "b", 1)
    for keys, fields, ids in batches:
        a.append(keys, fields, ids)
        b.append(keys, fields, ids)
        b.start_sync()
    seg_a, seg_b = a.finish(), b.finish()
    assert sorted(p.name for p in seg_a.iterdir()) == sorted(p.name for p in seg_b.iterdir())
    for p in seg_a.iterdir():
        assert p.read_bytes() == (seg_b / p.name).read_bytes(), p.name

    def failing(fd):
        raise OSError(5, "Input/output error")

    w = SegmentWriter(tmp_path / "c", 1)
    w.append(*batches[0])
    monkeypatch.setattr(os, "fdatasync", failing)
    w.start_sync()
    w.append(*batches[1])
    with pytest.raises(OSError, match="Input/output"):
        w.finish()
    w.abort()
    assert not list((tmp_path / "c" / "segments").iterdir())


def test_background_sync_waits_for_enough_bytes(tmp_path, monkeypatch) -> None:
    """Small batches do not each pay a disk flush: a sync starts once ``min_bytes`` were written
    since the last one (5,000 one-document batches took 5.9 s instead of 0.4 s without this)."""
    import os

    synced = []
    monkeypatch.setattr(os, "fdatasync", synced.append)
    batches = _batches(4)
    w = SegmentWriter(tmp_path / "a", 1)
    for keys, fields, ids in batches:
        w.append(keys, fields, ids)
        w.start_sync(min_bytes=1 << 20)
    assert synced == []
    w.start_sync(min_bytes=1)
    files = len(w._files)
    w.finish()
    assert len(synced) == files  # one background pass over the files (finish uses fsync)
