"""Chunked evaluation: cached situated passage vectors of a BEIR dataset, and the eval hook that
gives a dataset collection its passages field.

``heron eval scifact --chunk sentences:128 --context title`` evaluates the ``passages`` retriever
(:mod:`heron.capabilities.passages`) on the field named by the chunk spec's tag. Passage vectors
are cached under ``$HERON_CACHE/passages/<dataset>-<model@precision>-<spec tag>-<hash>/`` as
``offsets.npy`` ``(n_docs + 1,)``, ``vectors.npy`` ``(P, d)`` and ``meta.json`` (the passage
count and encoding seconds, the encoding cost reported in docs/chunking.md), so every variant
(aggregation, whole-document vector) reuses one encoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from typing import Any

import numpy as np

from heron.encoders.chunking import ChunkSpec
from heron.encoders.passages import PassageEncoder
from heron.eval.cache import cache_dir, encoder_tag

log = logging.getLogger(__name__)


def field_name(spec: ChunkSpec) -> str:
    """The collection field holding passages of ``spec``: ``passages_sentences128_title``."""
    return "passages_" + spec.tag().replace("-", "_")


def dataset_passages(
    dataset: Any, encoder: Any, spec: ChunkSpec | str, *, progress: bool = True
) -> dict[str, Any]:
    """Cached situated passage vectors of every document of ``dataset``.

    Returns
    -------
    dict with ``offsets`` ``(n_docs + 1,)`` int64, ``vectors`` ``(P, d)`` float32 and ``meta``
    (``passages``, ``seconds`` spent encoding, the spec and the model).
    """
    spec = ChunkSpec.parse(spec)
    key = hashlib.sha1(
        "\x1f".join([json.dumps(spec.as_dict(), sort_keys=True), *dataset.doc_ids]).encode()
    ).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in encoder_tag(encoder))[-60:]
    root = cache_dir() / "passages" / f"{dataset.name}-{safe}-{spec.tag()}-{key}"
    if (root / "meta.json").exists():
        meta = json.loads((root / "meta.json").read_text())
        return {
            "offsets": np.load(root / "offsets.npy"),
            "vectors": np.load(root / "vectors.npy", mmap_mode="r"),
            "meta": meta,
        }
    penc = PassageEncoder(encoder, spec)
    t0 = time.perf_counter()
    offsets, vectors = penc.encode_passages(dataset.documents(), dataset.titles, progress=progress)
    seconds = time.perf_counter() - t0
    meta = {
        "dataset": dataset.name,
        "model": encoder.name,
        "precision": getattr(encoder, "precision", None),
        "chunking": spec.as_dict(),
        "documents": len(dataset.doc_ids),
        "passages": int(len(vectors)),
        "seconds": round(seconds, 1),
    }
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "offsets.npy", offsets)
    np.save(tmp / "vectors.npy", vectors)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, root)
    log.info("%s: %d passages encoded in %.0f s", dataset.name, len(vectors), seconds)
    return {"offsets": offsets, "vectors": vectors, "meta": meta}


def add_passages(collection: Any, dataset: Any, spec: ChunkSpec, *, progress: bool = True) -> dict:
    """Give a dataset collection the passages field of ``spec`` (vectors from the cache).

    Returns the cache's ``meta`` (passage count, encoding seconds).
    """
    import heron.capabilities.passages  # noqa: F401  (registers the "passages" retriever)
    import heron.capabilities.passages_bm25  # noqa: F401  (and "passages_bm25")
    import heron.capabilities.passages_splade  # noqa: F401  (and "passages_splade")
    from heron.collection.fields import PassagesField
    from heron.encoders.precision import field_record

    enc = collection.encoder
    data = dataset_passages(dataset, enc, spec, progress=progress)
    name = field_name(spec)
    if name in collection.fields:
        return data["meta"]
    offsets, vectors = data["offsets"], data["vectors"]
    row = {t: i for i, t in enumerate(dataset.documents())}

    def data_for(texts: list[str]) -> list[np.ndarray]:
        rows = [row[t] for t in texts]
        return [np.asarray(vectors[offsets[i] : offsets[i + 1]], dtype=np.float32) for i in rows]

    spec_dict = PassagesField(chunking=spec, model=enc.name).as_dict()
    spec_dict.update(field_record(enc))
    kind = spec_dict.pop("kind")
    collection.add_field(name, kind=kind, backfill=False, **spec_dict)
    collection.backfill(name, data_for=data_for)
    return data["meta"]


_PASSAGES = re.compile(r"(?<![\w])(passages(?:_bm25|_splade)?)(\?[^+]*)?(?=$|\+)")


def route_passages(spec: str, field: str) -> str:
    """Point every ``passages`` retriever of a spec without a ``field=`` at ``field``:
    ``passages?agg=max`` -> ``passages?agg=max&field=passages_sentences128_title``."""

    def sub(m: re.Match) -> str:
        params = m.group(2) or ""
        if "field=" in params:
            return m.group(0)
        return f"{m.group(1)}{params}{'&' if params else '?'}field={field}"

    return _PASSAGES.sub(sub, spec)
