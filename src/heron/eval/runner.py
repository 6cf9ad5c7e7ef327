"""Evaluate named retrievers (or pipelines) on a BEIR dataset.

``evaluate_dataset("scifact", ["dense", "bm25", "hybrid:dense+bm25"])`` builds (once, cached
under ``$HERON_CACHE/collections``) a collection of the corpus, runs each retriever on the
split's queries and scores the runs with ir-measures.

Retriever specs
---------------
``NAME``                 a registered retriever (``dense``, ``bm25``, ``splade``, ...)
``NAME?key=value&...``   with parameters (numbers parsed), e.g. ``compressed?codec=bin&oversample=10``
``hybrid:A+B+...``       reciprocal-rank fusion of the named retrievers
``fusion:A+B+...``       normalised score fusion, weights fitted on the train split
                         (``?norm=minmax|zscore``; registered by :mod:`heron.eval.fusion`)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heron._plugins import registry_of
from heron.capabilities.spec import parse_spec, stage_from_spec
from heron.eval.beir import BeirDataset, load_beir
from heron.eval.cache import cache_dir, dataset_embeddings, encoder_tag
from heron.eval.metrics import DEFAULT_MEASURES, drop_identical_ids, evaluate
from heron.pipeline import RRF, Queries, Stage

log = logging.getLogger(__name__)

#: builders of pipeline specs by prefix (``hybrid:``, ``fusion:``), entry-point group ``heron.eval``
HYBRID_BUILDERS = registry_of("heron.eval", "pipeline prefix")
#: ``prepare(collection, dataset)`` run before building retriever NAME (e.g. add its field);
#: filled by the same ``heron.eval`` entry points
DATASET_HOOKS: dict[str, Callable[[Any, BeirDataset], None]] = {}


def _load_eval_plugins() -> None:
    HYBRID_BUILDERS.load_entry_points()


def build_stage(
    collection: Any, spec: str, *, depth: int = 1000, dataset: BeirDataset | None = None
) -> Stage:
    """A pipeline stage for a retriever spec over ``collection``."""
    _load_eval_plugins()
    for prefix, builder in HYBRID_BUILDERS.items():
        if prefix != "hybrid:" and spec.startswith(prefix):
            return builder(collection, spec, depth=depth, dataset=dataset)
    if spec.startswith("hybrid:"):
        parts = [p for p in spec[len("hybrid:") :].split("+") if p]
        if len(parts) < 2:
            raise ValueError(
                f"hybrid needs at least two retrievers, e.g. hybrid:dense+bm25; got {spec!r}"
            )
        method, _, _ = spec.partition("?")
        for prefix, builder in HYBRID_BUILDERS.items():
            if spec.startswith(prefix):
                return builder(collection, spec, depth=depth, dataset=dataset)
        return RRF(
            *[build_stage(collection, p, depth=depth, dataset=dataset) for p in parts], depth=depth
        )
    name, _ = parse_spec(spec)
    if dataset is not None and name in DATASET_HOOKS:
        DATASET_HOOKS[name](collection, dataset)
    return stage_from_spec(collection, spec, depth=depth)


def dataset_collection(
    dataset: BeirDataset, *, model: str | None = None, progress: bool = True,
    pooling: str | None = None,
) -> Any:
    """A collection of ``dataset``'s corpus (title + text), built once and cached.

    Dense vectors come from the embedding cache, so they are identical to those the benchmarks use.
    """
    from heron.collection import Collection
    from heron.encoders import DEFAULT_MODEL, load_encoder

    enc = load_encoder(model or DEFAULT_MODEL, **({"pooling": pooling} if pooling else {}))
    import hashlib

    tag = hashlib.sha1(
        "\x1f".join([encoder_tag(enc), str(dataset.path), *dataset.doc_ids]).encode()
    ).hexdigest()[:12]
    root = cache_dir() / "collections" / f"{dataset.name}-{tag}"
    done = root / ".complete"
    if done.exists():
        return Collection.open(root, encoder=enc)
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    emb = dataset_embeddings(dataset, enc, split=next(iter(dataset.qrels)), progress=progress)
    coll = Collection.create(root, encoder=enc)
    coll.add(
        dataset.documents(),
        ids=dataset.doc_ids,
        vectors=emb["doc_emb"],
        metadata=[{"title": t} for t in dataset.titles],
    )
    coll.set_config("sources", [{"dataset": dataset.name, "path": str(dataset.path)}])
    done.write_text("ok")
    return coll


def evaluate_dataset(
    dataset: str | Path | BeirDataset,
    retrievers: Sequence[str] = ("dense",),
    *,
    split: str = "test",
    measures: Sequence[str] = DEFAULT_MEASURES,
    depth: int = 1000,
    model: str | None = None,
    progress: bool = True,
    strict: bool = False,
    ignore_identical_ids: bool | None = None,
    chunking: str | None = None,
    context: str | None = None,
    pooling: str | None = None,
) -> dict[str, Any]:
    """Run and score each retriever; returns a JSON-able report.

    Follows BEIR's conventions (Thakur et al., NeurIPS 2021 Datasets track), as MTEB does:
    qrels rows naming documents missing from the corpus count as misses (``strict=True``
    refuses them, see :func:`~heron.eval.beir.load_beir`), and with ``ignore_identical_ids`` a
    hit whose id equals the query id is removed from the run before scoring. Its default
    ``None`` turns it on when some of the split's query ids are also document ids (logged).
    The report records both (``qrels_missing_docs``, ``ignore_identical_ids``, and per
    retriever ``identical_ids_removed``).

    With ``chunking`` (e.g. ``"sentences:128"``, ``context="title"``) the collection gets the
    situated passages of that spec (:mod:`heron.eval.chunking`, vectors cached) and every
    ``passages`` retriever searches them; the report records the spec and the encoding cost.
    """
    ds = dataset if isinstance(dataset, BeirDataset) else load_beir(dataset, strict=strict)
    qids, qtexts, qrels = ds.split(split)
    shared = set(qids).intersection(ds.doc_ids)
    if ignore_identical_ids is None:
        ignore_identical_ids = bool(shared)
        if shared:
            log.info(
                "%s: %d of %d %s queries are also documents; a hit whose id equals the query id "
                "is ignored, as BEIR and MTEB do (--no-ignore-identical-ids counts it)",
                ds.name,
                len(shared),
                len(qids),
                split,
            )
    coll = dataset_collection(ds, model=model, progress=progress, pooling=pooling)
    enc = coll.encoder
    qvec = dataset_embeddings(ds, enc, split=split, progress=progress)["query_emb"]
    report: dict[str, Any] = {
        "dataset": ds.name,
        "split": split,
        "queries": len(qids),
        "documents": len(coll),
        "model": coll.model,
        **({"pooling": pooling} if pooling else {}),
        "qrels_missing_docs": ds.missing_docs.get(split, 0),
        "ignore_identical_ids": bool(ignore_identical_ids),
        "results": {},
    }
    route = None
    if chunking is not None or context is not None:
        from heron.eval.chunking import ChunkSpec, add_passages, field_name, route_passages

        cspec = ChunkSpec.parse(chunking or "sentences:128", context=context)
        report["chunking"] = {**cspec.as_dict(), **add_passages(coll, ds, cspec, progress=progress)}
        route = (route_passages, field_name(cspec))
    for spec in retrievers:
        built = route[0](spec, route[1]) if route else spec
        stage = build_stage(coll, built, depth=depth, dataset=ds)
        queries = Queries(qtexts, qids, vectors={enc.name: qvec})
        t0 = time.perf_counter()
        res = stage.search(queries, depth)
        elapsed = time.perf_counter() - t0
        run = res.to_run(qids)
        removed = 0
        if ignore_identical_ids:
            run, removed = drop_identical_ids(run)
        scores = evaluate(qrels, run, measures)
        report["results"][spec] = {
            **scores,
            "identical_ids_removed": removed,
            "seconds": elapsed,
            "queries_per_second": len(qids) / max(elapsed, 1e-9),
        }
    return report


def format_table(report: dict[str, Any], measures: Sequence[str] = DEFAULT_MEASURES) -> str:
    """A markdown table of a report."""
    from heron.eval.metrics import LABELS

    head = ["retriever", *[LABELS.get(m, m) for m in measures], "q/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for spec, row in report["results"].items():
        cells = [
            spec,
            *[f"{100 * row[m]:.2f}" for m in measures],
            f"{row['queries_per_second']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``report`` as JSON; returns the path written.

    An existing file is never replaced unless ``overwrite``: the report then goes to the first
    free numbered name beside it (``eval-scifact.json`` -> ``eval-scifact-2.json``, ``-3`` ...),
    created exclusively so two concurrent runs cannot pick the same name.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        report, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)
    )
    if overwrite:
        p.write_text(text)
        return p
    n = 1
    while True:
        cand = p if n == 1 else p.with_name(f"{p.stem}-{n}{p.suffix}")
        try:
            with open(cand, "x", encoding="utf-8") as fh:
                fh.write(text)
            return cand
        except FileExistsError:
            n += 1
