"""Normalised score fusion: hand-checkable fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from heron.fusion import fuse_scores, weight_grid
from heron.results import Results


def test_minmax_fusion_by_hand():
    a = Results(np.array([[1, 2, 3]]), np.array([[10.0, 5.0, 0.0]]))
    b = Results(np.array([[3, 4, -1]]), np.array([[2.0, 1.0, -np.inf]]))
    r = fuse_scores([a, b], [0.5, 0.5], norm="minmax", depth=4)
    # a: 1->1, 2->.5, 3->0 ; b: 3->1, 4->0 ; missing -> 0
    assert r.keys[0].tolist() == [1, 3, 2, 4]
    np.testing.assert_allclose(r.scores[0], [0.5, 0.5, 0.25, 0.0])


def test_weight_grid_and_errors():
    g = weight_grid(3, 0.5)
    assert all(abs(sum(w) - 1) < 1e-9 for w in g) and len(g) == 6
    a = Results(np.array([[1]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="norm"):
        fuse_scores([a, a], [1, 1], norm="nope")
