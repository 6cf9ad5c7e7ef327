"""Compression benchmark: sweep codecs x rescoring on a dataset, Pareto frontier, recommendation.

A modular benchmark of storage compression under memory budgets after "Experimental Analysis of
Large-scale Learnable Vector Storage Compression" (Zhang et al., VLDB 2024), which recommends a
method per use case from measurements rather than heuristics.
"""

from heron.bench.pareto import pareto_front
from heron.bench.recommend import Recommendation, parse_bytes, recommend
from heron.bench.sweep import DEFAULT_CODECS, DEFAULT_OVERSAMPLES, run_sweep

__all__ = [
    "DEFAULT_CODECS",
    "DEFAULT_OVERSAMPLES",
    "Recommendation",
    "pareto_front",
    "parse_bytes",
    "recommend",
    "run_sweep",
]
