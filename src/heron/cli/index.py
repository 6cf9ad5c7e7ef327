"""``heron index PATH --collection OUT``: build or extend a collection (re-indexing an id replaces it)."""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="folder of .txt/.md files, a .jsonl file, or a BEIR folder")
    p.add_argument(
        "--collection", "-c", default=None, help="collection folder (default: PATH.heron)"
    )
    p.add_argument(
        "--model",
        default=None,
        help="dense model name or path for a new collection (default all-MiniLM-L6-v2)",
    )
    p.add_argument("--batch", type=int, default=2048, help="documents per commit (default 2048)")
    p.add_argument("--bm25", action="store_true", help="also build the BM25 index now")
    p.add_argument(
        "--chunk",
        default=None,
        metavar="METHOD:SIZE[:OVERLAP]",
        help="split documents into passages for a new collection: sentences:128, tokens:200:50 or "
        "markdown:128 (word pieces per passage); search them with --retriever passages",
    )
    p.add_argument(
        "--pooling",
        default=None,
        choices=["mean", "cls", "last", "weighted-mean", "max"],
        help="pooling of a new collection's model (default: the model's own); kept in its manifest",
    )
    p.add_argument(
        "--context",
        default=None,
        choices=["none", "title", "neighbours", "title+neighbours"],
        help="situated context each passage is encoded with (default title; needs --chunk)",
    )


def run(args: argparse.Namespace) -> int:
    import itertools
    import shutil
    from pathlib import Path

    from heron.collection import Collection
    from heron.collection.manifest import MANIFEST
    from heron.ingest import iter_documents
    from heron.limits import MAX_BATCH

    if not 0 < args.batch <= MAX_BATCH:
        raise ValueError(f"--batch must be between 1 and {MAX_BATCH}, got {args.batch}")
    out = Path(args.collection or (str(Path(args.path).resolve()).rstrip("/") + ".heron"))
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(
            f"--collection {str(out)!r} is a file, not a folder; pass a new folder name like docs.heron"
        )
    if out.exists() and out.resolve() == Path(args.path).resolve():
        raise ValueError(
            f"--collection {str(out)!r} is the folder being indexed; pass a new folder for the collection"
        )
    docs = iter_documents(args.path)
    first = list(itertools.islice(docs, 1))  # a bad PATH fails here, before anything is created
    fresh = not (out / MANIFEST).exists()
    chunk = getattr(args, "chunk", None)
    context = getattr(args, "context", None)
    if context is not None and chunk is None:
        raise ValueError("--context needs --chunk (e.g. --chunk sentences:128 --context title)")
    if fresh:
        encoder = None
        if getattr(args, "pooling", None):
            from heron.encoders import DEFAULT_MODEL, load_encoder

            encoder = load_encoder(args.model or DEFAULT_MODEL, pooling=args.pooling)
        coll = Collection.create(
            out, model=args.model, encoder=encoder, chunking=chunk, context=context
        )
    else:
        coll = Collection.open(out)
        _check_chunking(coll, chunk, context)
    t0 = time.perf_counter()
    total = 0
    batch: list[tuple[str, str, dict]] = []

    def flush() -> None:
        nonlocal total
        if batch:
            ids, texts, metas = zip(*batch)
            coll.upsert(list(texts), ids=list(ids), metadata=list(metas), progress=True)
            total += len(batch)
            batch.clear()

    try:
        for doc in itertools.chain(first, docs):
            batch.append(doc)
            if len(batch) >= args.batch:
                flush()
        flush()
        record_source(coll, args.path)
    except BaseException:
        if fresh and total == 0:  # leave no empty collection behind
            coll.close()
            shutil.rmtree(out, ignore_errors=True)
        raise
    if args.bm25:
        from heron.capabilities.bm25 import bm25_index

        bm25_index(coll)
    print(
        f"indexed {total} documents into {out} in {time.perf_counter() - t0:.1f}s ({len(coll)} in the collection)"
    )
    return 0


def record_source(coll: object, path: str) -> None:
    """Add ``{"dataset", "path"}`` of ``path`` to the collection's ``sources`` config (once).

    ``dataset`` is the folder name of a BEIR folder or of a folder of files, or a JSONL file's
    stem: what ``heron bench`` names its measurements by, so ``heron recommend --write`` can
    refuse a configuration measured on another dataset.
    """
    from pathlib import Path

    p = Path(path).resolve()
    entry = {"dataset": p.stem if p.is_file() else p.name, "path": str(p)}
    sources = list(coll.config.get("sources", []))  # type: ignore[attr-defined]
    if entry not in sources:
        coll.set_config("sources", [*sources, entry])  # type: ignore[attr-defined]


def _check_chunking(coll: object, chunk: str | None, context: str | None) -> None:
    """An existing collection keeps its chunking: ``--chunk`` must match it (or be left out)."""
    if chunk is None:
        return
    from heron.encoders.chunking import ChunkSpec

    want = ChunkSpec.parse(chunk, context=context).as_dict()
    have = [
        s.get("chunking") for s in coll.fields.values() if s.get("encoder") == "passages"  # type: ignore[attr-defined]
    ]
    if want not in have:
        raise ValueError(
            f"the collection was made with chunking {have[0] if have else 'off'}, not {chunk!r}; "
            "drop --chunk or index into a new --collection folder"
        )
