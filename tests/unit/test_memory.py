"""heron._memory.load_resident: .npy files read into (huge-page advised) process memory."""

from __future__ import annotations

import numpy as np
import pytest

from heron._memory import load_resident


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(10_000, dtype=np.float16),
        np.arange(12, dtype=np.uint32).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        np.zeros(0, dtype=np.int64),
        np.array([b"ab", b"cd"]),
    ],
)
def test_round_trip_is_exact_and_writeable(tmp_path, arr):
    np.save(tmp_path / "a.npy", arr)
    back = load_resident(tmp_path / "a.npy")
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert not isinstance(back, np.memmap)
    if back.size:
        assert back.flags.writeable
        back.flat[0] = back.flat[-1]  # a private copy: the file is untouched
        np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), arr)


def test_truncated_file_and_pickled_objects_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(1000, dtype=np.int32))
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_resident(tmp_path / "a.npy")
    np.save(tmp_path / "o.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="never reads pickled"):
        load_resident(tmp_path / "o.npy")


@pytest.mark.parametrize(("n", "block"), [(1, 4), (10, 3), (12, 4), (5, 100)])
def test_save_blocks_writes_what_np_save_writes(tmp_path, n, block):
    from heron._memory import save_blocks

    x = np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)
    for name, make in (("f16", lambda s, e: x[s:e].astype(np.float16)),
                       ("codes", lambda s, e: np.packbits(x[s:e] > 0, axis=1))):
        save_blocks(tmp_path / f"{name}.npy", n, make, block=block)
        np.save(tmp_path / f"{name}-ref.npy", make(0, n))
        assert (tmp_path / f"{name}.npy").read_bytes() == (tmp_path / f"{name}-ref.npy").read_bytes()
