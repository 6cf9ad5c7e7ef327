"""Evaluation on BEIR-format data with ir-measures (trec_eval semantics)."""

from heron.eval.beir import BeirDataset, data_root, load_beir, resolve_dataset

__all__ = ["BeirDataset", "data_root", "load_beir", "resolve_dataset"]
