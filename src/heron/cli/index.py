"""``heron index PATH --collection OUT``: build or extend a collection (re-indexing an id replaces it).

A folder of files is kept in sync (:mod:`heron.collection.sources`): run again, only new and
changed files are parsed and embedded, documents of removed files are deleted, and one line
reports ``added / changed / removed / unchanged``. One progress bar runs across all commits.
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="folder of files (.txt .md .rst .html .pdf), a .jsonl file, or a BEIR folder")
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
    p.add_argument("--shards", type=int, default=None, help="a sharded collection of N shards (with --ray)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="encode with Ray Data and write the shards from Ray actors (a local Ray, or ADDRESS)")
    p.add_argument("--encoders", type=int, default=1, help="encoder actors with --ray (default 1)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
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

    from heron.collection.manifest import MANIFEST
    from heron.ingest import iter_documents
    from heron.limits import MAX_BATCH

    if args.shards is not None or args.ray is not None:
        from heron.scale.ingest import run_cli

        return run_cli(args)
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
    if _is_file_folder(args.path):
        return run_sync(args, out)
    docs = iter_documents(args.path)
    first = list(itertools.islice(docs, 1))  # a bad PATH fails here, before anything is created
    fresh = not (out / MANIFEST).exists()
    coll = _open_or_create(args, out, fresh)
    t0 = time.perf_counter()
    total = unchanged = 0
    batch: list[tuple[str, str, dict]] = []
    n_rows = _count_rows(args.path)
    bar, inner = progress_bars(n_rows, args)

    def flush() -> None:
        nonlocal total, unchanged
        if batch:
            todo = list(batch) if fresh else changed_rows(coll, batch)
            if todo:
                ids, texts, metas = zip(*todo)
                coll.upsert(list(texts), ids=list(ids), metadata=list(metas), progress=inner)
            total += len(todo)
            unchanged += len(batch) - len(todo)
            bar.update(len(batch))
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
    finally:
        bar.close()
    if args.bm25:
        build_bm25(coll, args)
    seconds = time.perf_counter() - t0
    if args.json:
        import json

        print(json.dumps({"collection": str(out), "indexed": total, "unchanged": unchanged,
                          "documents": len(coll), "generation": coll.generation,
                          "seconds": round(seconds, 3)}))
    elif not args.quiet:
        same = f", {unchanged} unchanged" if unchanged else ""
        print(f"indexed {total} documents into {out} in {seconds:.1f}s{same} ({len(coll)} in the collection)")
    return 0


def changed_rows(coll: Any, rows: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    """The rows whose id is new or whose text or metadata differ from the stored document's
    (re-indexing an unchanged JSONL file or BEIR folder writes nothing)."""
    stored = coll.get([r[0] for r in rows])
    return [r for r, d in zip(rows, stored) if d is None or d.text != r[1] or d.metadata != r[2]]


def _is_file_folder(path: str) -> bool:
    """A folder of files (not a BEIR folder, which holds ``corpus.jsonl``)."""
    from pathlib import Path

    p = Path(path)
    return p.is_dir() and not (p / "corpus.jsonl").is_file()


def _count_rows(path: str) -> int | None:
    """Rows of a JSONL file or BEIR corpus (a progress bar's total; ``None`` if unknown)."""
    from pathlib import Path

    p = Path(path)
    f = p / "corpus.jsonl" if p.is_dir() else p
    if not f.is_file():
        return None
    with open(f, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def progress_bar(total: int | None, args: argparse.Namespace) -> Any:
    """One bar of documents written across every commit (off with ``--quiet``/``--json`` or few docs)."""
    from tqdm.auto import tqdm

    off = bool(args.quiet or args.json) or (total is not None and total <= 256)
    return tqdm(total=total, desc="indexing", unit="doc", disable=off, smoothing=0.1)


def progress_bars(total: int | None, args: argparse.Namespace) -> tuple[Any, bool | None]:
    """The bar of an index run: ``(across_commits, encoder_bar)``.

    Documents that fit one commit (``--batch``) show the encoder's own bar, which moves while
    they are encoded (a bar of commits would jump from 0 to the end); more show one bar of
    documents written across every commit. ``--quiet``/``--json`` show none.
    """
    off = bool(args.quiet or args.json)
    one_commit = total is not None and total <= args.batch
    bar = progress_bar(total, args) if not one_commit else progress_bar(0, args)
    return bar, (False if off or not one_commit else None)


def build_bm25(coll: Any, args: argparse.Namespace) -> None:
    """Build the BM25 index unless it is current (with a progress bar past 2,000 documents)."""
    snap = coll.snapshot()
    rec = snap.artifacts.get("bm25")
    if rec is not None and rec.version is not None and rec.generation == snap.generation:
        return
    show = not (args.quiet or args.json) and len(snap) > 2000
    coll.create_index("bm25", kind="bm25", progress=show)


def run_sync(args: argparse.Namespace, out: Any) -> int:
    """Index a folder of files, or bring its collection in sync (see module docstring)."""
    import json
    import shutil

    from heron.collection.manifest import MANIFEST
    from heron.collection.sources import apply_sync, plan_sync

    fresh = not (out / MANIFEST).exists()
    coll = _open_or_create(args, out, fresh)
    try:
        plan = plan_sync(coll, args.path, exclude=out)
        if fresh and not plan.todo:
            from heron.ingest.parsers import PARSERS

            raise ValueError(
                f"folder {args.path!r} holds no files heron reads with text in them "
                f"({' '.join(sorted(PARSERS))})"
            )
        bar, inner = progress_bars(len(plan.todo), args)
        try:
            report = apply_sync(coll, plan, batch=args.batch, on_write=bar.update, progress=inner)
        finally:
            bar.close()
        if report.written or fresh:
            record_source(coll, args.path)
    except BaseException:
        if fresh and len(coll) == 0:  # leave no empty collection behind
            coll.close()
            shutil.rmtree(out, ignore_errors=True)
        raise
    if args.bm25:
        build_bm25(coll, args)
    if args.json:
        print(json.dumps({"collection": str(out), **report.as_dict()}))
    elif not args.quiet:
        print(f"indexed {report.added + report.changed} documents from {args.path} into {out} "
              f"in {report.seconds:.1f}s: {report.line()} ({report.documents} in the collection)")
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


def _open_or_create(args: argparse.Namespace, out: Any, fresh: bool) -> Any:
    """Create the collection (with --chunk/--context/--pooling) or open it and check they match."""
    from heron.collection import Collection

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
    return coll
