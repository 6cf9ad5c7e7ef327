"""Parallel ingest into a sharded collection with Ray Data.

The source (:func:`heron.ingest.iter_documents`: a BEIR folder, a JSONL file or a folder of text
files) is read into a Ray Dataset in blocks; a pool of encoder actors (:class:`EncodeBatch`, the
model loaded once per actor; ``map_batches(..., concurrency=encoders)``) embeds each batch, the
batches sorted by text length so padding stays short; the driver streams the encoded rows,
routes them by id and writes each shard through its shard actor (the shards write in parallel).
Index builds then run per shard, one Ray task per shard actor. This is Ray Data's batch-inference
pattern (https://docs.ray.io/en/latest/data/batch_inference.html).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from heron._deps import require

log = logging.getLogger(__name__)


class EncodeBatch:
    """A Ray Data actor: loads the dense model once, embeds batches of ``text``.

    Parameters
    ----------
    model: the model name or path (:func:`heron.encoders.load_encoder`).
    encoder_kw: extra keyword arguments of ``load_encoder`` (the collection's precision).
    threads: the encoder's threads: the CPUs the actor reserved, so actors do not oversubscribe.

    Each output row also carries ``_t0``/``_t1`` (its batch's encoding start and end, epoch
    seconds) and ``_actor`` (the actor's process id), from which :func:`ingest` reports
    passages/s per actor.
    """

    def __init__(self, model: str, encoder_kw: dict[str, Any] | None = None, threads: int = 1) -> None:
        from heron.encoders import load_encoder

        self.encoder = load_encoder(model, threads=threads, **(encoder_kw or {}))
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.time()
        texts = [str(t) for t in batch["text"]]
        order = np.argsort([len(t) for t in texts], kind="stable")  # batches by length
        vec = np.empty((len(texts), self.encoder.dim), dtype=np.float32)
        if len(texts):
            vec[order] = self.encoder.encode_documents([texts[i] for i in order])
        n = len(texts)
        return {**batch, "vector": vec, "_t0": np.full(n, t0), "_t1": np.full(n, time.time()),
                "_actor": np.full(n, self.pid, dtype=np.int64)}


def ingest(
    source: str | Path,
    collection: Any,
    *,
    encoders: int = 1,
    threads: int = 1,
    batch_size: int = 64,
    block: int = 1024,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode ``source`` with ``encoders`` Ray actors and upsert it into a :class:`ShardedCollection`.

    Each encoder actor reserves ``threads`` CPUs and encodes with that many threads.
    Returns ``{"documents", "seconds", "encoders", "passages_per_s" (wall clock, all of it),
    "encode_passages_per_s" (from the first batch's start to the last batch's end: model loads
    excluded), "per_actor" ({pid: passages/s while busy}), "passages_per_s_per_actor" (mean)}``.
    """
    ray = require("ray", purpose="parallel ingest", extra="ray")
    from heron.ingest import iter_documents

    if not isinstance(encoders, int) or encoders < 1:
        raise ValueError(f"encoders must be a positive int, got {encoders!r}")
    if collection.model == "none":
        raise ValueError("this sharded collection stores precomputed vectors (model='none'); nothing to encode")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    rows = []
    for i, (doc_id, text, meta) in enumerate(iter_documents(source)):
        if limit is not None and i >= limit:
            break
        rows.append({"id": doc_id, "text": text, "metadata": json.dumps(meta)})
    if not rows:
        raise ValueError(f"no documents to index in {str(source)!r}")
    from heron.collection.manifest import read_manifest
    from heron.encoders.precision import encoder_kwargs

    spec = read_manifest(collection.path / collection.manifest["shards"][0])["fields"].get("dense", {})
    data = ray.data
    ctx = data.DataContext.get_current()
    ctx.enable_progress_bars = bool(progress) and sys.stderr.isatty()
    n_blocks = max(1, min(len(rows) // max(batch_size, 1), 4 * encoders * 8))
    ds = data.from_items(rows, override_num_blocks=n_blocks).map_batches(
        EncodeBatch,
        fn_constructor_kwargs={"model": collection.model, "encoder_kw": encoder_kwargs(spec), "threads": threads},
        compute=data.ActorPoolStrategy(size=encoders),
        batch_size=batch_size,
        num_cpus=threads,
        batch_format="numpy",
    )
    t0 = time.perf_counter()
    done = 0
    spans: dict[int, set[tuple[float, float]]] = {}
    rows_of: dict[int, int] = {}
    for b in ds.iter_batches(batch_size=block, batch_format="numpy"):
        ids = [str(x) for x in b["id"]]
        collection.upsert([str(t) for t in b["text"]], ids=ids,
                          metadata=[json.loads(m) for m in b["metadata"]], vectors=np.asarray(b["vector"], np.float32))
        done += len(ids)
        for a, s0, s1 in zip(b["_actor"].tolist(), b["_t0"].tolist(), b["_t1"].tolist()):
            spans.setdefault(a, set()).add((s0, s1))
            rows_of[a] = rows_of.get(a, 0) + 1
        if progress:
            dt = time.perf_counter() - t0
            print(f"\rwritten {done}/{len(rows)} documents ({done / max(dt, 1e-9):.1f}/s)", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    dt = time.perf_counter() - t0
    every = [x for v in spans.values() for x in v]
    enc_wall = max(x[1] for x in every) - min(x[0] for x in every)
    per_actor = {a: rows_of[a] / max(sum(x[1] - x[0] for x in v), 1e-9) for a, v in spans.items()}
    return {"documents": done, "seconds": dt, "encoders": encoders, "threads": threads,
            "passages_per_s": done / dt, "encode_seconds": enc_wall,
            "encode_passages_per_s": done / max(enc_wall, 1e-9), "per_actor": per_actor,
            "passages_per_s_per_actor": float(np.mean(list(per_actor.values())))}


def run_cli(args: Any) -> int:
    """``heron index SOURCE --collection C --shards N --ray [ADDRESS]`` (see :mod:`heron.cli.index`)."""
    from heron.scale import ShardedCollection
    from heron.scale.routing import MANIFEST, check_shards

    if args.shards is not None:
        check_shards(args.shards)
    if isinstance(args.encoders, bool) or not isinstance(args.encoders, int) or args.encoders < 1:
        raise ValueError(f"--encoders must be a positive int, got {args.encoders!r}")
    out = Path(args.collection or (str(Path(args.path).resolve()).rstrip("/") + ".heron"))
    address = None if args.ray in (None, "local") else args.ray
    use_ray = args.ray is not None
    if not use_ray:
        raise ValueError("--shards ingests with Ray Data: add --ray (local) or --ray ADDRESS")
    ray = require("ray", purpose="heron index --ray", extra="ray")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our own progress line instead
    if (out / MANIFEST).exists():
        coll = ShardedCollection.open(out, ray=True)
        if args.shards and args.shards != coll.n_shards:
            raise ValueError(f"{str(out)!r} has {coll.n_shards} shards, not --shards {args.shards}; drop --shards to extend it")
    else:
        coll = ShardedCollection.create(out, shards=args.shards or 1, model=args.model, ray=True)
    try:
        stats = ingest(args.path, coll, encoders=args.encoders, progress=True)
        if args.bm25:
            coll.create_index("bm25", kind="bm25")  # one build per shard, in parallel
        n = len(coll)
    finally:
        coll.close()
    print(f"indexed {stats['documents']} documents into {out} ({coll.n_shards} shards, {n} in the collection) "
          f"in {stats['seconds']:.1f}s: {stats['encode_passages_per_s']:.1f} passages/s encoding with {args.encoders} encoder actor(s)")
    return 0
