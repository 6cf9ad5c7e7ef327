"""Where shards run: in this process (:class:`LocalShards`) or in Ray actors (:class:`RayShards`).

Both expose one call, :meth:`call`, that runs a :class:`~heron.scale.worker.ShardWorker` method on
some shards in parallel and returns ``{shard: result}`` plus the shards that did not answer.

Failure (Ray): a shard actor is created with ``max_restarts`` (a dead actor is restarted by Ray
and re-opens its shard folder) and ``max_task_retries`` (calls in flight when it died are
resubmitted). A call waits for each shard at most ``wait_s`` seconds in all, retrying a shard
whose actor died; a shard still missing after that is reported, never silently dropped: reads
return ``Results.info["partial"] = True`` naming ``missing_shards`` (or raise, with
``allow_partial=False``), writes always raise :class:`ShardsUnavailable`. A write that timed out
stays queued on the restarting actor and may still be applied when it is back (``upsert`` is
idempotent; check with ``get`` before re-adding).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from heron._deps import require
from heron.scale.worker import ShardWorker

log = logging.getLogger(__name__)


class ShardsUnavailable(RuntimeError):
    """Some shards did not answer within the wait."""

    def __init__(self, missing: list[int], reason: str) -> None:
        super().__init__(f"shard(s) {missing} did not answer: {reason}")
        self.missing = missing


class LocalShards:
    """Shards opened in this process, called from a thread pool (``threads``; 1 = sequential)."""

    kind = "local"

    def __init__(self, paths: Sequence[str], *, threads: int = 1) -> None:
        self.workers = [ShardWorker(p, i) for i, p in enumerate(paths)]
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def call(
        self, method: str, args: dict[int, tuple] | tuple, *, shards: Sequence[int] | None = None, write: bool = False
    ) -> tuple[dict[int, Any], list[int]]:
        todo = list(range(len(self.workers))) if shards is None else list(shards)
        per = args if isinstance(args, dict) else {s: args for s in todo}
        if self.pool is None:
            return {s: getattr(self.workers[s], method)(*per[s]) for s in todo}, []
        futs = {s: self.pool.submit(getattr(self.workers[s], method), *per[s]) for s in todo}
        return {s: f.result() for s, f in futs.items()}, []

    def down(self, timeout_s: float = 1.0) -> list[int]:
        """In-process shards are never down."""
        return []

    def warm(self, bm25: bool = True) -> None:
        """Every shard searched once (and its BM25 postings built)."""
        for w in self.workers:
            w.warm(bm25)

    def close(self) -> None:
        for w in self.workers:
            w.close()
        if self.pool is not None:
            self.pool.shutdown()


def _actor_class(ray: Any) -> type:
    """:class:`ShardWorker` plus a health probe that runs on its own thread (concurrency group)."""

    class ShardActor(ShardWorker):
        def __init__(self, path: str, index: int) -> None:
            super().__init__(path, index)
            try:  # a (re)started actor answers once its dense kernels are compiled
                self.warm()
            except Exception:  # noqa: BLE001 - a cold shard still serves; its first query pays
                log.exception("shard %d: warm-up search failed", index)

        @ray.method(concurrency_group="health")
        def alive(self) -> bool:
            return True

    return ShardActor


def _thread_env(threads: int) -> dict[str, str]:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    n = str(threads)
    return {"NUMBA_NUM_THREADS": n, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


class RayShards:
    """One Ray actor per shard, holding its collection resident.

    Parameters
    ----------
    paths: shard folders (readable from every node that may host an actor).
    address: a Ray cluster address (``"auto"``, ``"ray://host:10001"``); ``None`` joins the
        running session or starts a local one.
    max_restarts: restarts Ray makes of a dead shard actor (``-1``: unlimited).
    wait_s: how long a call waits for a shard that does not answer. When it has passed, each
        shard still out is probed through a separate health thread of its actor (answered even
        while a long search runs): a live, busy shard gets another ``wait_s`` (up to
        ``timeout_s`` in all); a dead or restarting one is reported missing.
    timeout_s: the most a call waits for live but busy shards.
    allow_partial: reads return what answered, flagged partial, instead of raising.
    num_cpus: CPUs each shard actor reserves (0: actors share the cluster's CPUs).
    threads: compute threads of each shard actor (numba, OpenMP, BLAS). Give a node's shard
        actors about as many threads together as it has cores (unset, one run measured a dense
        query on four shards at 57.5 ms against 5.7 ms with the variables set; ``docs/scale.md``).
    actor_env: more environment variables of the shard actors.
    """

    kind = "ray"

    def __init__(
        self,
        paths: Sequence[str],
        *,
        address: str | None = None,
        max_restarts: int = -1,
        wait_s: float = 10.0,
        timeout_s: float = 600.0,
        allow_partial: bool = True,
        num_cpus: float = 0,
        threads: int = 1,
        actor_env: dict[str, str] | None = None,
    ) -> None:
        ray = require("ray", purpose="sharded collections on Ray", extra="ray")
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.ray = ray
        self.wait_s, self.allow_partial = float(wait_s), bool(allow_partial)
        self.timeout_s = max(float(timeout_s), self.wait_s)
        self.probe_s = min(max(1.0, self.wait_s), 5.0)
        remote = ray.remote(
            concurrency_groups={"health": 1},
            max_restarts=max_restarts, max_task_retries=-1, num_cpus=num_cpus,
            runtime_env={"env_vars": {**_thread_env(threads), **dict(actor_env or {})}},
        )(_actor_class(ray))
        self.actors = [remote.remote(str(p), i) for i, p in enumerate(paths)]
        ray.get([a.ping.remote() for a in self.actors], timeout=max(60.0, self.wait_s))

    def call(
        self, method: str, args: dict[int, tuple] | tuple, *, shards: Sequence[int] | None = None, write: bool = False
    ) -> tuple[dict[int, Any], list[int]]:
        """Run ``method`` on ``shards``; returns ``(answers, missing shards)``."""
        from ray.exceptions import GetTimeoutError, RayActorError

        todo = list(range(len(self.actors))) if shards is None else list(shards)
        per = args if isinstance(args, dict) else {s: args for s in todo}
        start = time.monotonic()
        deadline = start + self.wait_s
        pending = {s: getattr(self.actors[s], method).remote(*per[s]) for s in todo}
        out: dict[int, Any] = {}
        gone: list[int] = []  # shards whose actor does not answer its health thread
        last_error = "timed out"
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                if time.monotonic() - start >= self.timeout_s:
                    break
                for s in self._unresponsive(pending):  # dead or restarting: reported missing
                    gone.append(s)
                    del pending[s]
                deadline = min(time.monotonic() + self.wait_s, start + self.timeout_s)
                continue  # the live, busy ones get another wait

            done, _ = self.ray.wait(list(pending.values()), num_returns=1, timeout=left)
            if not done:
                break
            ref = done[0]
            s = next(i for i, r in pending.items() if r == ref)
            try:
                out[s] = self.ray.get(ref, timeout=0)
                del pending[s]
            except (RayActorError, GetTimeoutError) as exc:  # died / restarting
                last_error = type(exc).__name__
                if write:  # never resubmit a write: Ray's own task retry runs it at most once more
                    break
                log.info("shard %d unavailable (%s); asking again", s, last_error)
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
                pending[s] = getattr(self.actors[s], method).remote(*per[s])
        missing = sorted([*pending, *gone])
        if missing and (write or not self.allow_partial):
            raise ShardsUnavailable(missing, f"{last_error} after {self.wait_s:.1f}s")
        if missing:
            log.warning("shards %s missing after %.1fs (%s): partial results", missing, self.wait_s, last_error)
        return out, missing

    def _unresponsive(self, pending: dict[int, Any]) -> list[int]:
        """The pending shards whose actor does not answer its health thread within ``probe_s``.

        The probe runs in the actor's own ``health`` thread, so a shard busy with a long search
        still answers; on a loaded machine the answer may take a while, hence the generous
        ``probe_s`` (a fixed one second once dropped every shard of a loaded CI box)."""
        probes = {s: self.actors[s].alive.remote() for s in pending}
        done, _ = self.ray.wait(list(probes.values()), num_returns=len(probes), timeout=self.probe_s)
        answered = set(done)
        dead = []
        for s, ref in probes.items():
            if ref not in answered:
                dead.append(s)
                continue
            try:
                self.ray.get(ref, timeout=0)
            except Exception:  # noqa: BLE001 - a probe that raises means the actor is gone
                dead.append(s)
        return dead

    def warm(self, bm25: bool = True) -> None:
        """Every shard searched once and its BM25 postings built, waiting up to ``timeout_s``
        (not the bounded wait of a query: a cold shard is slow, not dead)."""
        self.ray.get([a.warm.remote(bm25) for a in self.actors], timeout=self.timeout_s)

    def down(self, timeout_s: float = 1.0) -> list[int]:
        """Shards whose actor does not answer its health thread within ``timeout_s`` (dead or restarting)."""
        probes = {s: a.alive.remote() for s, a in enumerate(self.actors)}
        done, _ = self.ray.wait(list(probes.values()), num_returns=len(probes), timeout=timeout_s)
        answered, dead = set(done), []
        for s, ref in probes.items():
            try:
                if ref not in answered or not self.ray.get(ref, timeout=0):
                    dead.append(s)
            except Exception:  # noqa: BLE001 - a probe that raises means the actor is gone
                dead.append(s)
        return dead

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a, no_restart=True)
        self.actors = []
