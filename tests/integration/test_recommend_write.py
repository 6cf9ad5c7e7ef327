"""``heron recommend --write`` refuses measurements of another dataset or model unless --force."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import heron
from heron.cli.index import record_source


def heron_cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "heron", *args], capture_output=True, text=True, env=env
    )


def bench_report(path, dataset, model):
    rows = [
        {
            "codec": c,
            "oversample": 0,
            "rescore": "none",
            "memory_bytes": m,
            "bytes_per_vector": m // 10,
            "state_bytes": 0,
            "recall10_exact": r,
            "latency_ms": 1.0,
            "n_docs": 10,
            "compression": 1000 / m,
        }
        for c, m, r in (("fp32", 1000, 1.0), ("int8", 250, 0.98))
    ]
    meta = {"dataset": dataset, "model": model, "n_docs": 10, "n_sample": 10}
    path.write_text(json.dumps({"rows": rows, "meta": meta}))
    return path


def beir_folder(root):
    root.mkdir()
    with open(root / "corpus.jsonl", "w") as f:
        for i in range(3):
            f.write(json.dumps({"_id": f"d{i}", "text": f"document number {i}"}) + "\n")
    return root


def test_index_records_source_and_write_checks_it(tmp_path):
    alpha = beir_folder(tmp_path / "alpha")
    coll = tmp_path / "coll"
    out = heron_cli("index", str(alpha), "-c", str(coll))
    assert out.returncode == 0, out.stderr
    c = heron.Collection.open(coll)
    assert c.config["sources"] == [{"dataset": "alpha", "path": str(alpha.resolve())}]
    model = c.model

    other = bench_report(tmp_path / "beta.json", "beta", model)
    args = ["recommend", "beta", "--report", str(other), "--memory", "500", "--write", str(coll)]
    out = heron_cli(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "measured on dataset 'beta'" in out.stderr and "built from 'alpha'" in out.stderr
    assert "--force" in out.stderr
    assert "codec" not in heron.Collection.open(coll).config  # nothing written

    out = heron_cli(*args, "--force")
    assert out.returncode == 0, out.stderr
    assert "writing it anyway (--force)" in out.stderr
    assert heron.Collection.open(coll).config["codec"]["spec"] == "int8"

    same = bench_report(tmp_path / "alpha.json", "alpha", model)
    out = heron_cli(
        "recommend", "alpha", "--report", str(same), "--memory", "5000", "--write", str(coll)
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == "" and heron.Collection.open(coll).config["codec"]["spec"] == "fp32"


@pytest.fixture
def plain(tmp_path):
    c = heron.Collection.create(tmp_path / "p", model="none", dim=4)
    c.add(["a", "b"], ids=["a", "b"], vectors=np.eye(2, 4, dtype=np.float32))
    return c


def test_provenance_rules(plain, tmp_path):
    from heron.bench.recommend import provenance_mismatch

    meta = {"dataset": "alpha", "model": "m1"}
    assert "does not record the dataset" in provenance_mismatch(plain, meta)
    record_source(plain, str(beir_folder(tmp_path / "alpha")))
    record_source(plain, str(tmp_path / "alpha"))  # recorded once
    assert len(plain.config["sources"]) == 1
    assert provenance_mismatch(plain, meta) is None  # model "none": vectors of any model
    assert "does not name the dataset" in provenance_mismatch(plain, {"model": "m1"})
    assert "built from 'alpha'" in provenance_mismatch(plain, {"dataset": "beta"})
    plain.manifest["model"] = "m2"  # as a collection of model m2 would read
    msg = provenance_mismatch(plain, meta)
    assert "model 'm1'" in msg and "'m2'" in msg
