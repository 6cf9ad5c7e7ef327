"""``heron limit``: LIMIT-style data generation and the free-embedding "critical n" experiment.

    heron limit generate --out data/limit-1k --people 1000 --core 46
    heron limit critical-n --dims 2 3 4 5 6 --out out/limit

Weller et al., "On the Theoretical Limitations of Embedding-Based Retrieval", 2025.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    g = sub.add_parser("generate", help="write a LIMIT-style BEIR folder")
    g.add_argument(
        "--out", required=True, help="folder to write (corpus.jsonl, queries.jsonl, qrels/test.tsv)"
    )
    g.add_argument("--people", type=int, default=46, help="documents (people)")
    g.add_argument(
        "--core", type=int, default=46, help="core people whose pairs are the answer sets"
    )
    g.add_argument("--queries", type=int, default=None, help="queries (default: every core pair)")
    g.add_argument("--likes", type=int, default=50, help="attributes each person likes")
    g.add_argument("--seed", type=int, default=0)
    c = sub.add_parser(
        "critical-n", help="largest n whose every top-2 set free d-dim embeddings realise"
    )
    c.add_argument("--dims", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    c.add_argument("--steps", type=int, default=1000, help="Adam steps per attempt")
    c.add_argument(
        "--seeds", type=int, default=1, help="restarts per (n, d) before declaring failure"
    )
    c.add_argument("--n-max", type=int, default=100)
    c.add_argument("--out", default="out/limit")


def run(args: argparse.Namespace) -> int:
    if args.action == "generate":
        from heron.limit import generate_limit, write_beir

        data = generate_limit(
            n_people=args.people,
            n_core=args.core,
            n_queries=args.queries,
            likes_per_person=args.likes,
            seed=args.seed,
        )
        root = write_beir(data, args.out)
        print(f"wrote {len(data.doc_ids)} documents, {len(data.queries)} queries to {root}")
        return 0
    from heron.limit import critical_n

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = critical_n(args.dims, steps=args.steps, seeds=args.seeds, n_max=args.n_max)
    (out / "critical_n.json").write_text(json.dumps(table, indent=1))
    lines = ["| d | critical n |", "|---|---|"] + [f"| {d} | {n} |" for d, n in table.items()]
    (out / "critical_n.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.plot(list(table), list(table.values()), "o-")
        ax.set_xlabel("embedding dimension d")
        ax.set_ylabel("critical n (all top-2 sets realisable)")
        ax.set_title("free-embedding experiment (k=2)")
        fig.tight_layout()
        fig.savefig(out / "critical_n.png", dpi=110)
    except ImportError:
        pass
    return 0
