"""`heron eval` shows a progress bar while a large query set is encoded (issue 17: "progress bars
for every step that can take more than a few seconds", query encoding included)."""

from heron.eval.cache import QUERY_PROGRESS_OVER, query_progress


def test_bar_only_for_large_query_sets_and_never_when_off():
    many = ["q"] * (QUERY_PROGRESS_OVER + 1)
    few = ["q"] * QUERY_PROGRESS_OVER
    assert query_progress(True, many) is True
    assert query_progress(True, few) is False  # 300 NFCorpus queries encode in about a second
    assert query_progress(False, many) is False  # --quiet
