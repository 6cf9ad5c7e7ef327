"""Folder sync benchmark (issue 17): a 700-file folder of SciFact passages, indexed, re-indexed
unchanged, edited (changed / removed / added files), compacted, and compared with a fresh index.

    python benchmarks/folder_sync.py [--files 700] [--out out/folder_sync]

Every step runs the ``heron`` command as a user would (a new process each time, so the times
include Python's start-up and heron's imports). The files are SciFact corpus passages
(``$HERON_DATA/scifact``) written as ``.txt`` (text), ``.md`` (``# title`` + text) and ``.html``
(``<title>`` + ``<p>``), one in three each. Writes ``results.json`` into ``--out`` and prints a
Markdown table (docs/documents.md quotes it).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def heron(*args: str) -> tuple[dict, float]:
    """Run ``heron ARGS --json``; returns its JSON output and the command's wall time (s)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "heron", *args, "--json"], capture_output=True,
                         text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"heron {' '.join(args)} failed: {out.stderr}")
    return json.loads(out.stdout), wall


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_file(d: Path, n: int, doc_id: str, title: str, text: str) -> Path:
    if n % 3 == 0:
        p, body = d / f"{doc_id}.txt", f"{title}\n\n{text}\n"
    elif n % 3 == 1:
        p, body = d / "md" / f"{doc_id}.md", f"# {title}\n\n{text}\n"
    else:
        p, body = d / "html" / f"{doc_id}.html", (
            f"<html><head><title>{html.escape(title)}</title></head>"
            f"<body><p>{html.escape(text)}</p></body></html>")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(body)
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=700)
    ap.add_argument("--out", default="out/folder_sync")
    args = ap.parse_args()
    from heron.eval import data_root

    corpus = data_root() / "scifact" / "corpus.jsonl"
    rows = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append((r["_id"], r.get("title", ""), r["text"]))
            if len(rows) >= args.files + args.files // 20:
                break
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    folder, coll, fresh = out / "scifact-files", out / "scifact.heron", out / "fresh.heron"
    paths = [write_file(folder, n, *rows[n]) for n in range(args.files)]
    res: dict = {"files": args.files, "folder_bytes": folder_bytes(folder)}

    first, wall = heron("index", str(folder), "--collection", str(coll))
    res["first_index"] = {"wall_s": wall, **first}
    gen, size = first["generation"], folder_bytes(coll)
    walls, inner = [], []
    for _ in range(3):
        again, wall = heron("index", str(folder), "--collection", str(coll))
        assert (again["added"], again["changed"], again["removed"]) == (0, 0, 0), again
        assert again["generation"] == gen and folder_bytes(coll) == size, "a no-op sync wrote"
        walls.append(wall)
        inner.append(again["seconds"])
    res["noop_reindex"] = {"wall_s": min(walls), "wall_s_all": walls, "sync_s": min(inner),
                           "generation_unchanged": True, "bytes_unchanged": True, "bytes": size}

    k = max(1, args.files // 20)  # 5% changed, 10% removed, 5% added
    for p in paths[:k]:
        p.write_text(p.read_text().replace("</p>", "") + "\nRevised abstract, see erratum.\n")
    removed = paths[k : 3 * k]
    removed_ids = [p.relative_to(folder).as_posix() for p in removed]
    for p in removed:
        p.unlink()
    for n in range(args.files, args.files + k):
        write_file(folder, n, *rows[n])
    edit, wall = heron("index", str(folder), "--collection", str(coll))
    res["edited_reindex"] = {"wall_s": wall, **edit}
    before = folder_bytes(coll)

    from heron.collection import Collection

    c = Collection.open(coll)
    queries = [(rows[n][1] + " " + rows[n][2]) for n in range(k, 3 * k)]
    hits = {i for row in c.search(queries, k=10).doc_ids() for i in row}
    res["removed_returned"] = len(hits & set(removed_ids))
    c.close()

    comp, wall = heron("compact", str(coll))
    new, wall_fresh = heron("index", str(folder), "--collection", str(fresh))
    after, fresh_b = folder_bytes(coll), folder_bytes(fresh)
    res["compact"] = {"wall_s": wall, "bytes_before": before, "bytes_after": after,
                      "fresh_bytes": fresh_b, "ratio_to_fresh": after / fresh_b, **comp}
    res["fresh_index"] = {"wall_s": wall_fresh, **new}
    (out / "results.json").write_text(json.dumps(res, indent=1))

    mb = 1e6
    print(f"| step ({args.files} SciFact files) | result |\n|---|---|")
    print(f"| first index | {first['added']} added in {res['first_index']['wall_s']:.1f} s |")
    print(f"| re-index, unchanged | {res['noop_reindex']['wall_s']:.2f} s (sync itself "
          f"{res['noop_reindex']['sync_s']:.2f} s); generation and bytes unchanged |")
    print(f"| re-index after edits | {edit['added']} added, {edit['changed']} changed, "
          f"{edit['removed']} removed, {edit['unchanged']} unchanged in {res['edited_reindex']['wall_s']:.1f} s |")
    print(f"| removed files returned by a search for their own text | {res['removed_returned']} |")
    print(f"| size before / after `heron compact` | {before / mb:.2f} MB / {after / mb:.2f} MB |")
    print(f"| fresh index of the same folder | {fresh_b / mb:.2f} MB (compacted = "
          f"{100 * after / fresh_b:.1f}% of it) |")


if __name__ == "__main__":
    main()
