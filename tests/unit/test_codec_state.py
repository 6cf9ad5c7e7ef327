"""Codec state holds only what the codec needs: no identity rotation for plain PQ / plain binary
(it used to cost d*d*4 bytes and change `heron recommend`'s pick), and OPQ trains silently."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heron.codecs import load_codec, parse_spec

D = 32


def data(n: int = 600, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "spec,rotations",
    [("pq8", 0), ("opq8", 1), ("dpq8", 0), ("dopq8", 2), ("bin-plain", 0), ("bin", 1)],
)
def test_state_bytes_count_only_real_rotations(spec, rotations, tmp_path):
    x = data()
    c = parse_spec(spec)
    c.fit(x, **({"queries": x[:64]} if spec.startswith("d") else {}))
    params, arrays = c._state()
    mats = [k for k, a in arrays.items() if a.shape == (D, D)]
    assert len(mats) == rotations, sorted(arrays)
    others = sum(a.nbytes for k, a in arrays.items() if k not in mats)
    assert c.state_bytes() == others + rotations * D * D * 4
    if spec.endswith("pq8") and rotations == 0:
        assert c.state_bytes() == 8 * 256 * (D // 8) * 4  # the codebooks, nothing else
    # a round trip keeps scores bit-exact and saves no identity
    c.save(tmp_path / spec)
    back = load_codec(tmp_path / spec)
    q = data(5, seed=1)
    codes = c.encode(x)
    np.testing.assert_array_equal(back.score(q, codes), c.score(q, codes))
    assert len(list((tmp_path / spec).glob("*.npy"))) == len(arrays)


@pytest.mark.parametrize("spec", ["pq8", "dpq8", "bin-plain"])
def test_old_saves_with_an_identity_load_without_it(spec, tmp_path):
    x = data()
    c = parse_spec(spec)
    c.fit(x, **({"queries": x[:64]} if spec.startswith("d") else {}))
    folder = c.save(tmp_path / spec)
    # what an earlier heron wrote: an explicit identity R (and Rq for dpq)
    man = json.loads((folder / "codec.json").read_text())
    extra = ["R", "Rq"] if spec == "dpq8" else ["R"]
    for name in extra:
        np.save(folder / f"{name}.npy", np.eye(D, dtype=np.float32))
    man["arrays"] = sorted(set(man["arrays"]) | set(extra))
    (folder / "codec.json").write_text(json.dumps(man))
    back = load_codec(folder)
    assert back.state_bytes() == c.state_bytes()
    q, codes = data(5, seed=1), c.encode(x)
    np.testing.assert_allclose(back.score(q, codes), c.score(q, codes), rtol=1e-6, atol=1e-6)


def test_opq_training_prints_no_faiss_warnings(capfd):
    parse_spec("opq8").fit(data())  # 600 vectors: far fewer than faiss's 39 per centroid
    err = capfd.readouterr().err
    assert "WARNING clustering" not in err, err[:300]
