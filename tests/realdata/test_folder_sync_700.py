"""The folder-sync bar on 700 SciFact passages written as files (slow: two full encodings).

Runs benchmarks/folder_sync.py and checks: a no-op re-index writes nothing and takes < 2 s
(a new `heron` process), removed files are never returned, and `heron compact` brings the
collection within 10% of a fresh index of the same folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_folder_sync_700_files(tmp_path, scifact):
    out = tmp_path / "bench"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "folder_sync.py"), "--files", "700",
                    "--out", str(out)], check=True, capture_output=True, text=True)
    r = json.loads((out / "results.json").read_text())
    assert r["first_index"]["added"] == 700
    noop = r["noop_reindex"]
    assert noop["generation_unchanged"] and noop["bytes_unchanged"] and noop["wall_s"] < 2.0
    edit = r["edited_reindex"]
    assert (edit["added"], edit["changed"], edit["removed"]) == (35, 35, 70)
    assert r["removed_returned"] == 0
    assert abs(r["compact"]["ratio_to_fresh"] - 1) <= 0.10
