"""The chunking bar of issue 17 on SciFact and NFCorpus, through the evaluation ``heron eval --chunk``
runs (slow: encodes ~17k / ~13k situated passages once, then they are cached)."""

import pytest

from heron.eval import data_root


@pytest.mark.slow
@pytest.mark.parametrize("name, bar, truncated", [("scifact", 0.675, 0.645), ("nfcorpus", 0.333, 0.316)])
def test_situated_passages_beat_truncation(name, bar, truncated):
    from heron.eval.runner import evaluate_dataset

    if not (data_root() / name).is_dir():
        pytest.skip(f"{name} not found under {data_root()} (set HERON_DATA)")
    report = evaluate_dataset(
        name, ["dense", "passages"], measures=["nDCG@10"], chunking="sentences:128", context="title",
        progress=False,
    )
    dense, passages = (report["results"][r]["nDCG@10"] for r in ("dense", "passages"))
    assert dense == pytest.approx(truncated, abs=0.005)
    assert passages >= bar > dense
