"""MUVERA rows of ``heron bench --multivector``: heron's FDEs and fastembed's MUVERA.

Dhulipala et al., "MUVERA: Multi-Vector Retrieval via Fixed Dimensional Encodings", NeurIPS 2024.
Each configuration is reported through the benchmark's ``staged`` callback (first stage alone,
then with an exact MaxSim rerank of the top candidates).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

__all__ = ["muvera_rows"]


def muvera_rows(
    args: argparse.Namespace,
    ds: Any,
    enc: Any,
    data: dict,
    docs: Any,
    qt: list[np.ndarray],
    staged: Any,
) -> None:
    """Report every ``args.muvera`` spec (and the ``args.fastembed`` ones) through ``staged``.

    ``staged(method, family, first, bytes_doc, **extra)``: the benchmark's reporter, where
    ``first(queries) -> (scores, rows)`` is the first stage.
    """
    from tqdm.auto import tqdm

    from heron.eval.cache import cached_token_ids
    from heron.multivector.muvera import FDEEncoder, encoder_from_spec, parse_spec
    from heron.multivector.tokens import token_ids, vocab_size
    from heron.retrieval.topk import exact_search

    fe_set = {tuple(int(v) for v in c.split(",")) for c in (args.fastembed or [])}
    piece_ids: dict[str, Any] = {}
    for cfg in args.muvera:
        spec = parse_spec(cfg)
        k_sim, d_proj, r_reps, d_final = (spec[k] for k in ("k_sim", "d_proj", "r_reps", "d_final"))
        centred = spec["centre"]
        t0 = time.perf_counter()
        if spec["weights"] is not None and "docs" not in piece_ids:
            piece_ids["docs"] = cached_token_ids(ds, enc, docs)
        fde, doc_w, table = encoder_from_spec(
            cfg,
            docs,
            doc_token_ids=piece_ids.get("docs"),
            vocab_size=vocab_size(enc) if spec["weights"] else None,
        )
        doc_f = fde.encode_documents(docs, weights=doc_w, progress=True)
        b = time.perf_counter() - t0
        q_w: dict[int, np.ndarray] = {}  # query weights by the query array's identity
        if spec["weight_queries"]:
            if "queries" not in piece_ids:
                piece_ids["queries"] = [token_ids([t], enc) for t in data["queries"]]
            for q, tid in zip(qt, piece_ids["queries"]):
                if len(tid) != len(q):
                    raise ValueError("query token ids do not align with the query tokens")
                q_w[id(q)] = table[tid]
        name = (
            f"MUVERA k_sim={k_sim} d_proj={d_proj} r_reps={r_reps}"
            + (f" d_final={d_final}" if d_final else "")
            + (" centred" if centred else "")
            + ("" if spec["fill_empty"] else " unfilled")
            + (f" {spec['weights']} weights" if spec["weights"] else "")
            + (" (queries too)" if spec["weight_queries"] else "")
            + f" ({fde.dimension} dims)"
        )

        def fde_first(
            q: list[np.ndarray], f: FDEEncoder = fde, m: np.ndarray = doc_f, qw: dict = q_w
        ) -> Any:
            w = np.concatenate([qw[id(x)] for x in q]) if qw else None
            return exact_search(f.encode_queries(q, weights=w), m, 100)

        staged(
            name,
            "muvera",
            fde_first,
            fde.dimension * 4,
            dimension=fde.dimension,
            build_seconds=round(b, 1),
            spec=cfg,
        )
        del doc_f
        if (
            (k_sim, d_proj, r_reps) in fe_set
            and d_final is None
            and not centred
            and spec["fill_empty"]
            and spec["weights"] is None
        ):
            from heron._deps import require

            require("fastembed", purpose="the fastembed MUVERA reference")
            from fastembed.postprocess.muvera import Muvera

            mv = Muvera(dim=docs.dim, k_sim=k_sim, dim_proj=d_proj, r_reps=r_reps, random_seed=42)
            t0 = time.perf_counter()
            fe_doc = np.zeros((len(docs), mv.embedding_size), np.float32)
            for i in tqdm(range(len(docs)), desc="fastembed MUVERA docs", unit="doc"):
                x = np.asarray(docs[i], np.float32)
                if len(x):
                    fe_doc[i] = mv.process_document(x)
            b = time.perf_counter() - t0

            def fe_first(q: list[np.ndarray], mv: Any = mv, m: np.ndarray = fe_doc) -> Any:
                qf = np.stack(
                    [mv.process_query(x) if len(x) else np.zeros(mv.embedding_size) for x in q]
                ).astype(np.float32)
                return exact_search(qf, m, 100)

            staged(
                f"fastembed Muvera k_sim={k_sim} dim_proj={d_proj} r_reps={r_reps} ({mv.embedding_size} dims)",
                "fastembed-muvera",
                fe_first,
                mv.embedding_size * 4,
                dimension=mv.embedding_size,
                build_seconds=round(b, 1),
            )
            del fe_doc
