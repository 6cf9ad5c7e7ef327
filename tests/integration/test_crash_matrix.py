"""Crash matrix: writers SIGKILLed at named points of the commit path and at random moments.

Each trial forks a writer that runs one operation (add, upsert, delete, compact, an index build
or update, migrate) and kills it either at a fault point (:mod:`heron._faults`, ``HERON_FAULT``)
or after a random delay. The parent then reopens the collection and checks:

* every committed batch is present with its vectors and found by an exact search;
* the batch in flight is all or nothing (no half-visible write);
* every index answers, ``check(deep=True)`` is clean, and the next writer succeeds.

The default suite runs a fast subset (~20 kills); the full matrix (``-m slow``, >= 200 kills)
is what docs/reliability.md reports::

    HERON_CRASH_TRIALS=260 pytest -m slow tests/integration/test_crash_matrix.py -s
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from heron.collection import Collection
from heron.collection.repair import check
from heron.pipeline import Queries

D = 16
BATCH = 12
SEED = 60  # documents before the first trial (migrate fits on >= 50)

#: operation -> fault points it passes through (besides random-delay kills)
POINTS = {
    "add": ["segment.file", "segment.file:2", "segment.rename", "write.commit", "write.committed"],
    # two batches into one segment (Collection.bulk): killed between them, or at its commit
    "bulk": ["segment.file", "segment.file:2", "segment.rename", "bulk.commit"],
    "upsert": ["segment.file", "segment.rename", "write.commit", "write.committed"],
    "delete": ["delete.commit"],
    "compact": ["segment.file", "segment.rename", "merge.segment", "merge.commit", "gc.remove"],
    "hnsw": ["artifact.built", "artifact.rename", "artifact.publish", "gc.remove"],
    "hnsw-update": ["artifact.built", "artifact.rename", "artifact.publish"],
    "bm25": ["artifact.built", "artifact.rename", "artifact.publish"],
    "compressed": ["artifact.built", "artifact.rename", "artifact.publish"],
    "migrate": [],  # drift maps are written outside the artifact lifecycle: random delays only
}
OPS = list(POINTS)


def vectors(batch: int, n: int = BATCH) -> np.ndarray:
    x = np.random.default_rng(1000 + batch).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class NewEncoder:
    """A deterministic second 'model' for migrate (vectors from a seeded generator per text)."""

    dim = D

    def __init__(self, name: str) -> None:
        self.name = name

    def encode_documents(self, texts, progress=False):
        return np.stack([vectors(sum(t.encode()), 1)[0] for t in texts])

    encode_queries = encode_documents


def plan(op: str, batch: int, live: dict[str, tuple[int, int]]) -> dict:
    """What the writer of ``batch`` does; ``live`` maps id -> (batch, row) of its vector."""
    if op in ("add", "bulk"):
        return {"op": op, "ids": [f"b{batch}-{j}" for j in range(BATCH)]}
    if op == "upsert":
        old = sorted(live)[: BATCH // 2]
        return {"op": op, "ids": old + [f"b{batch}-{j}" for j in range(BATCH - len(old))]}
    if op == "delete":
        return {"op": op, "ids": sorted(live)[-BATCH // 2:]}
    return {"op": op, "ids": []}


def writer(root: str, step: dict, batch: int, fault: str | None, journal: str) -> None:
    if fault:
        os.environ["HERON_FAULT"] = fault
    c = Collection.open(root)
    op, ids = step["op"], step["ids"]
    texts = [f"text of {i} in batch {batch}" for i in ids]
    if op == "add":
        c.add(texts, ids=ids, vectors=vectors(batch, len(ids)))
    elif op == "bulk":
        import heron.collection.writes as writes

        # the paths a large load takes: rows inserted on their own thread, files synced behind
        writes.THREAD_ROWS, writes.SYNC_BYTES = 1, 0
        v, h = vectors(batch, len(ids)), len(ids) // 2
        with c.bulk() as b:
            b.add(texts[:h], ids=ids[:h], vectors=v[:h])
            b.add(texts[h:], ids=ids[h:], vectors=v[h:])
    elif op == "upsert":
        c.upsert(texts, ids=ids, vectors=vectors(batch, len(ids)))
    elif op == "delete":
        c.delete(ids)
    elif op == "compact":
        c.compact()
    elif op == "hnsw":
        c.create_index(kind="hnsw", M=8)
    elif op == "hnsw-update":
        c.update_index("hnsw")
    elif op == "bm25":
        c.create_index(kind="bm25")
    elif op == "compressed":
        c.create_index(kind="compressed", spec="bin")
    elif op == "migrate":
        c.migrate(NewEncoder(f"new-{batch % 3}"), sample=50)
    with open(journal, "a") as f:  # only after the call returned: committed
        f.write(json.dumps({"batch": batch}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os._exit(0)


def _state(c: Collection) -> dict[str, np.ndarray]:
    snap = c.snapshot()
    by_key = {d.key: d.id for d in c.iter_documents()}
    dense = np.asarray(snap.dense())
    return {by_key[int(k)]: dense[i] for i, k in enumerate(snap.keys)}


def _apply(step: dict, batch: int, live: dict[str, tuple[int, int]]) -> None:
    if step["op"] in ("add", "bulk", "upsert"):
        for j, i in enumerate(step["ids"]):
            live[i] = (batch, j)
    elif step["op"] == "delete":
        for i in step["ids"]:
            live.pop(i, None)


def _matches(state: dict[str, np.ndarray], live: dict[str, tuple[int, int]]) -> bool:
    if set(state) != set(live):
        return False
    return all(np.allclose(state[i], vectors(b, SEED)[r]) for i, (b, r) in live.items())


def run_matrix(root: Path, trials: int, seed: int, *, delay_share: float) -> dict:
    rng = np.random.default_rng(seed)
    # writers fork from a server process that has imported heron but never run a thread pool:
    # forked from this process, after faiss' OpenMP ran here (the HNSW build below, searches),
    # a writer's own HNSW build could wait forever on pool threads that do not exist in it
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["heron", "heron.collection", "heron.index", "numpy"])
    c = Collection.create(root, model="none", dim=D)
    live: dict[str, tuple[int, int]] = {}
    seed_ids = [f"b0-{j}" for j in range(SEED)]
    c.add([f"seed {j}" for j in range(SEED)], ids=seed_ids, vectors=vectors(0, SEED))
    _apply({"op": "add", "ids": seed_ids}, 0, live)
    c.create_index(kind="hnsw", M=8)
    c.close()
    journal = root.parent / f"{root.name}.journal"
    journal.touch()
    stats = {"trials": 0, "kills": 0, "point_kills": 0, "delay_kills": 0, "reopen_ok": 0,
             "committed_lost": 0, "half_visible": 0, "check_failed": 0, "writer_errors": 0,
             "by_op": {}}
    migrated: set[str] = set()
    for t in range(trials):
        batch = t + 1
        op = OPS[t % len(OPS)]
        if op in ("delete", "upsert") and len(live) < BATCH:
            op = "add"
        step = plan(op, batch, live)
        use_delay = not POINTS[op] or rng.random() < delay_share
        fault = None if use_delay else str(rng.choice(POINTS[op]))
        done_before = journal.read_text().count("\n")
        p = ctx.Process(target=writer, args=(str(root), step, batch, fault, str(journal)))
        p.start()
        if use_delay:
            time.sleep(float(rng.uniform(0.0, 0.12)))
            with contextlib.suppress(ProcessLookupError):  # done already (the server reaped it)
                os.kill(p.pid, signal.SIGKILL)
        p.join(60)
        killed = p.exitcode == -signal.SIGKILL
        stats["writer_errors"] += p.exitcode not in (0, -signal.SIGKILL)
        committed = journal.read_text().count("\n") > done_before
        stats["trials"] += 1
        if killed and not committed:
            stats["kills"] += 1
            stats["delay_kills" if use_delay else "point_kills"] += 1
            stats["by_op"][op] = stats["by_op"].get(op, 0) + 1
        # ---- reopen and check
        c = Collection.open(root)
        stats["reopen_ok"] += 1
        state = _state(c)
        if committed:
            _apply(step, batch, live)
        else:  # in flight: all or nothing
            after = dict(live)
            _apply(step, batch, after)
            if _matches(state, after) and not _matches(state, live):
                live = after
            elif not _matches(state, live):
                stats["half_visible"] += 1
        lost = [i for i in live if i not in state]
        stats["committed_lost"] += len(lost)
        assert _matches(state, live), (t, op, fault, lost[:5])
        if op == "migrate" and committed:
            migrated.add(f"new-{batch % 3}")
        from heron.capabilities.mapped import load_map

        for name in migrated:
            load_map(c, name)  # a committed map stays loadable after later killed migrations
        ids = sorted(live)
        if ids:
            pick = ids[:: max(1, len(ids) // 4)]
            qv = np.stack([state[i] for i in pick])
            queries = Queries([f"q{i}" for i in range(len(pick))], vectors={"none": qv})
            res = c.search(queries, 1)
            assert _ids(c, res) == pick, (t, op, fault)
            for using in ("hnsw", "bm25", "compressed-bin"):
                if using in {r["name"] for r in c.indexes()}:
                    q2 = Queries(["text"]) if using == "bm25" else queries
                    assert c.search(q2, 1, using=using).keys.shape[0] == len(q2)
        rep = check(root, deep=True)
        stats["check_failed"] += not rep.ok
        assert rep.ok, (t, op, fault, rep.lines())
        c.close()
    # a new write succeeds after the last kill
    c = Collection.open(root)
    c.add(["after"], ids=["after"], vectors=vectors(10**6, 1))
    assert "after" in c
    c.close()
    return stats


def _ids(c: Collection, res) -> list[str]:
    by_key = {d.key: d.id for d in c.iter_documents()}
    return [by_key[int(k)] for k in res.keys[:, 0]]


def _report(stats: dict) -> None:
    out = os.environ.get("HERON_CRASH_REPORT")
    if out:
        Path(out).write_text(json.dumps(stats, indent=1))
    print("crash matrix:", json.dumps(stats))


def test_crash_matrix_fast(tmp_path):
    stats = run_matrix(tmp_path / "c", trials=24, seed=0, delay_share=0.2)
    _report(stats)
    assert stats["kills"] >= 15
    assert stats["committed_lost"] == 0 and stats["half_visible"] == 0 and stats["writer_errors"] == 0
    assert stats["reopen_ok"] == stats["trials"]


@pytest.mark.slow
def test_crash_matrix_full(tmp_path):
    trials = int(os.environ.get("HERON_CRASH_TRIALS", "260"))
    stats = run_matrix(tmp_path / "c", trials=trials, seed=1, delay_share=0.35)
    _report(stats)
    assert stats["kills"] >= 200
    assert stats["committed_lost"] == 0 and stats["half_visible"] == 0 and stats["writer_errors"] == 0
    assert stats["reopen_ok"] == stats["trials"]
