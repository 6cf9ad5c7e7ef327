"""Evaluation hooks of capabilities that need extra data on a BEIR collection.

``heron eval -r splade`` needs the collection's SPLADE field; the vectors come from the
encoding cache so they are computed once per dataset.
"""

from __future__ import annotations

from typing import Any

from heron.eval.runner import DATASET_HOOKS


def prepare_eval_collection(collection: Any, dataset: Any, *, field: str = "splade") -> None:
    """Give an evaluation collection its SPLADE field (``heron eval ... --retriever splade``).

    The vectors come from the encoding cache (:func:`heron.eval.cache.dataset_sparse`), so
    they are computed once per dataset and shared with the benchmarks.
    """
    if field in collection.fields:
        return
    from heron.encoders.splade import DEFAULT_SPARSE_MODEL, SpladeEncoder
    from heron.eval.cache import dataset_sparse

    enc = SpladeEncoder(DEFAULT_SPARSE_MODEL)
    split = next(iter(dataset.qrels))
    vecs = dataset_sparse(dataset, enc, split=split)["doc_vecs"]
    row = {t: i for i, t in enumerate(dataset.documents())}

    def data_for(texts: list[str]):
        return vecs[[row[t] for t in texts]]

    collection.add_field(
        field,
        kind="sparse",
        encoder="splade",
        model=enc.name,
        vocab=enc.vocab_size,
        backfill=False,
    )
    collection.backfill(field, data_for=data_for)


DATASET_HOOKS.setdefault("splade", prepare_eval_collection)
