"""Token codes and pruning in ``heron bench --multivector``.

1-byte k-means token codes with optional residuals (ColBERTv2, Santhanam et al., NAACL 2022) and
salience pruning (HPC-ColPali): :func:`fit_code_set` fits the codecs and the pruning masks,
:func:`one_pass_variants` lists what :func:`~heron.cli._bench_mv_scoring.multi_pass` scores, and
:func:`compressed_rows` reports them.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CodeSet", "compressed_rows", "fit_code_set", "one_pass_variants"]

#: Saliences of the pruning masks, in the order they are computed.
MASKS = ("idf", "random", "redundancy", "token-idf", "common-pieces")


@dataclass
class CodeSet:
    """The token codecs and pruning masks of one benchmark run.

    ``codecs``: fitted :class:`~heron.multivector.tokencodes.TokenCodec` by tag (``"0"``,
    ``"1bit"``, ``"pq48"`` ...); ``coded``: the corpus coded with each; ``build``: seconds to fit
    and encode, by ``"codes<tag>"``; ``masks``: ``(n_tokens,)`` keep masks by salience
    (:data:`MASKS`).
    """

    codecs: dict[str, Any]
    coded: dict[str, Any]
    build: dict[str, float]
    masks: dict[str, np.ndarray]

    def label(self, tag: str) -> str:
        """Human label of the codec ``tag``."""
        codecs = self.codecs
        if tag == "0":
            return "1-byte codes (lookup table)"
        kind = (
            f"{tag[:-3]}-bit scalar residuals"
            if tag.endswith("bit")
            else f"{tag[2:]}-byte PQ residuals"
        )
        return f"1-byte codes + {kind} ({codecs[tag].bytes_per_token} B/token)"


def fit_code_set(args: argparse.Namespace, ds: Any, enc: Any, docs: Any) -> CodeSet:
    """Fit the token codecs of ``args`` on ``docs``, encode it, and compute the pruning masks."""
    from tqdm.auto import tqdm

    from heron.eval.cache import cached_token_ids
    from heron.multivector.tokencodes import CodedTokens, TokenCodec, salience_keep_mask

    codecs: dict[str, Any] = {}
    coded: dict[str, Any] = {}
    build: dict[str, float] = {}
    specs = {"0": {}}
    specs.update({f"{b}bit": {"residual_bits": b} for b in args.residual_bits if b})
    specs.update({f"pq{m}": {"residual_pq": m} for m in args.residual_pq if m})
    for tag, kw in tqdm(specs.items(), desc="token codecs", unit="codec"):
        t0 = time.perf_counter()
        codecs[tag] = TokenCodec(n_centroids=256, seed=0, **kw).fit(docs)
        coded[tag] = CodedTokens.encode(codecs[tag], docs)
        build[f"codes{tag}"] = time.perf_counter() - t0

    keep = salience_keep_mask(docs, args.prune, salience="idf", codes=coded["0"].codes)
    keep_rnd = salience_keep_mask(docs, args.prune, salience="random")
    keep_red = salience_keep_mask(docs, args.prune, salience="redundancy")
    tids = cached_token_ids(ds, enc, docs)
    keep_tid = salience_keep_mask(docs, args.prune, salience="token-idf", token_ids=tids)
    keep_com = salience_keep_mask(docs, args.prune, salience="common-pieces", token_ids=tids)
    return CodeSet(
        codecs,
        coded,
        build,
        dict(zip(MASKS, (keep, keep_rnd, keep_red, keep_tid, keep_com))),
    )


def one_pass_variants(args: argparse.Namespace, cs: CodeSet) -> dict[str, dict]:
    """The variants scored by :func:`~heron.cli._bench_mv_scoring.multi_pass` (exact first)."""
    codecs, coded = cs.codecs, cs.coded
    keep, keep_rnd, keep_red, keep_tid, keep_com = (cs.masks[s] for s in MASKS)
    variants: dict[str, dict] = {
        "exact": {"source": "float"},
        "prune-token-idf": {"source": "float", "keep": keep_tid},
        "prune-common-pieces": {"source": "float", "keep": keep_com},
        "prune-idf": {"source": "float", "keep": keep},
        "prune-redundancy": {"source": "float", "keep": keep_red},
        "prune-random": {"source": "float", "keep": keep_rnd},
    }
    for bits in codecs:
        src = "codes" if bits == "0" else "decoded"
        base = {
            "source": src,
            "codec": codecs[bits],
            "codes": coded[bits].codes,
            "residuals": coded[bits].residuals,
        }
        variants[f"codes{bits}"] = base
        masks = {
            "token-idf": keep_tid,
            "common-pieces": keep_com,
            "idf": keep,
            "redundancy": keep_red,
        }
        for sal in args.prune_codes:
            variants[f"prune-{sal}+codes{bits}"] = {**base, "keep": masks[sal]}
    return variants


def compressed_rows(
    args: argparse.Namespace, cs: CodeSet, docs: Any, qt_t: list[np.ndarray], compressed: Any
) -> None:
    """Report the coded, pruned and pruned + coded variants through the ``compressed`` callback.

    ``compressed(label, family, name, bytes_doc, timer=None, **extra)``: the benchmark's reporter
    of the one-pass matrix ``name``; ``timer()`` runs the variant on the timing queries.
    """
    codecs, coded, build, code_label = cs.codecs, cs.coded, cs.build, cs.label
    keep, keep_tid, keep_com, keep_red = (
        cs.masks[s] for s in ("idf", "token-idf", "common-pieces", "redundancy")
    )
    kept = float(keep.sum()) / max(len(docs), 1)
    for bits in codecs:
        c = coded[bits]
        compressed(
            code_label(bits) + ", whole corpus",
            "codes",
            f"codes{bits}",
            c.bytes_per_doc(),
            timer=lambda c=c: [c.maxsim_batch([q]) for q in qt_t],
            build_seconds=round(build[f"codes{bits}"], 1),
        )
    compressed(
        f"prune {args.prune:.0%} of tokens: common word pieces first, then random, float16",
        "pruned",
        "prune-common-pieces",
        float(keep_com.sum()) / max(len(docs), 1) * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens by salience (word-piece IDF), float16",
        "pruned",
        "prune-token-idf",
        float(keep_tid.sum()) / max(len(docs), 1) * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens by salience (centroid IDF), float16",
        "pruned",
        "prune-idf",
        kept * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens by salience (within-document redundancy), float16",
        "pruned",
        "prune-redundancy",
        kept * docs.dim * 2 + 8,
    )
    compressed(
        f"prune {args.prune:.0%} of tokens at random, float16 (baseline)",
        "pruned",
        "prune-random",
        kept * docs.dim * 2 + 8,
    )
    for sal in args.prune_codes:
        kept = float(
            {"token-idf": keep_tid, "common-pieces": keep_com, "idf": keep, "redundancy": keep_red}[
                sal
            ].sum()
        ) / max(len(docs), 1)
        for bits in codecs:
            compressed(
                f"prune {args.prune:.0%} ({sal}) + " + code_label(bits),
                "pruned+codes",
                f"prune-{sal}+codes{bits}",
                kept * codecs[bits].bytes_per_token + 8,
            )
