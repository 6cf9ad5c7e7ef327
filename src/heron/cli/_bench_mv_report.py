"""The report of ``heron bench --multivector``: ``multivector-DATASET.json``, ``.md`` and ``.png``."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_report"]


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"multivector-{report['dataset']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    head = [
        "method",
        "nDCG@10",
        "R(exact top-10) in candidates",
        "R(exact top-10)@10",
        "bytes/doc",
        "qps",
        "speed-up vs exact",
    ]
    lines = [
        f"# Multi-vector late interaction on {report['dataset']} ({report['queries']} queries, {report['documents']} docs, "
        f"{report['token_stats']['mean_tokens']:.0f} tokens/doc)",
        "",
        f"Reproduce: `{report['command']}`",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in report["rows"]:
        lines.append(
            "| "
            + " | ".join(
                str(x)
                for x in [
                    r["method"],
                    f"{r['nDCG@10']:.4f}",
                    r.get("recall_top10_in_candidates", ""),
                    r.get("recall_top10_at10", ""),
                    f"{r['bytes_per_doc']:.0f}",
                    r.get("qps", ""),
                    r.get("speedup", ""),
                ]
            )
            + " |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    colors = {
        "single-vector": "gray",
        "exact": "black",
        "muvera": "tab:blue",
        "fastembed-muvera": "tab:cyan",
        "pooled": "tab:green",
        "codes": "tab:red",
        "pruned": "tab:orange",
        "pruned+codes": "tab:purple",
    }
    for r in report["rows"]:
        c = colors.get(r["family"], "k")
        marker = (
            "o"
            if "rerank" in r["method"]
            or r["family"] in ("exact", "codes", "pruned", "pruned+codes", "single-vector")
            else "x"
        )
        axes[0].scatter(r["bytes_per_doc"], r["nDCG@10"], color=c, marker=marker)
        if r.get("speedup"):
            axes[1].scatter(r["speedup"], r["nDCG@10"], color=c, marker=marker)
    for ax, xl in zip(axes, ["bytes per document (log)", "speed-up over exact MaxSim (log)"]):
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("nDCG@10")
        ax.grid(alpha=0.3)
    for fam, c in colors.items():
        axes[0].scatter([], [], color=c, label=fam)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['dataset']}: late interaction (o = final ranking, x = first stage only)")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    plt.close(fig)
