"""Snapshots, reader leases, derived artifacts and garbage collection of a collection.

Mixed into :class:`~heron.collection.Collection`; see :mod:`heron.collection.artifacts` for the
artifact lifecycle and :mod:`heron.collection.leases` for the guarantee readers get:

    A snapshot stays readable — its segments, its artifacts and the ids of its documents — for
    as long as it is referenced, whatever other threads and processes add, delete, compact or
    rebuild meanwhile. Retired segments and artifact versions are deleted by the next writer
    once no lease in any process holds an epoch older than their retirement.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from typing import Any

import numpy as np

from heron._faults import point
from heron.collection import artifacts as art
from heron.collection.segments import Segment, segment_name
from heron.collection.snapshot import SegmentView, Snapshot
from heron.collection.store import MAX_TRUST_S

log = logging.getLogger(__name__)


def bump(con: Any, *, data: bool = True) -> int:
    """Advance the commit counters inside an open write transaction; returns the new epoch.

    ``generation`` counts data commits (documents, segments); ``epoch`` counts every commit
    (data, artifact publication, retirement), and is what snapshots and leases are keyed on.
    """
    if data:
        con.execute("UPDATE state SET value = value + 1 WHERE name='generation'")
    con.execute("UPDATE state SET value = value + 1 WHERE name='epoch'")
    (e,) = con.execute("SELECT value FROM state WHERE name='epoch'").fetchone()
    return int(e)


class LifecycleMixin:
    """Snapshots, artifacts and garbage collection (needs ``path``, ``store``, ``_writer``)."""

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> Snapshot:
        """The latest committed state (cached until the next commit); holds a reader lease."""
        snap = self._snapshot
        token = self.store.change_token()
        now = time.monotonic()
        if (
            snap is not None
            and token is not None
            and token == snap.change_token
            and now - snap.checked_at < MAX_TRUST_S
        ):
            return snap  # no commit published since this snapshot was found current
        con = self.store.connect()
        (epoch,) = con.execute("SELECT value FROM state WHERE name='epoch'").fetchone()
        if snap is not None and snap.epoch == epoch:
            snap.change_token, snap.checked_at = token, now
            return snap
        try:
            self._leases.announce(int(epoch))
        except OSError as exc:  # a new reader writes a few bytes: its lease file
            from heron.collection.diskfull import disk_full

            full = disk_full(exc, self.path, None)
            if full is not None:
                raise full from exc
            raise
        try:
            con.execute("BEGIN")
            try:
                rows = dict(con.execute("SELECT name, value FROM state").fetchall())
                segs = con.execute("SELECT id FROM segments ORDER BY id").fetchall()
                dead = con.execute("SELECT key FROM docs WHERE deleted = 1").fetchall()
                catalog = art.read_catalog(con)
            finally:
                con.execute("COMMIT")
        except BaseException:
            self._leases.cancel()
            raise
        dead_keys = np.fromiter((k for (k,) in dead), dtype=np.int64, count=len(dead))
        views = []
        for (sid,) in segs:
            seg = self._segments.get(sid)
            if seg is None:
                seg = Segment(self.path / "segments" / segment_name(sid), sid)
                self._segments[sid] = seg
            keys = np.asarray(seg.keys)
            live = ~np.isin(keys, dead_keys) if len(dead_keys) else np.ones(len(keys), dtype=bool)
            views.append(SegmentView(seg, live))
        snap = Snapshot(self, int(rows["generation"]), views, epoch=int(rows["epoch"]),
                        artifacts=catalog)
        snap.change_token, snap.checked_at = token, now
        self._leases.hold(snap, int(epoch))
        with self._snap_lock:
            if self._snapshot is None or self._snapshot.epoch < snap.epoch:
                self._snapshot = snap
        return snap

    # ------------------------------------------------------------------ artifacts
    def indexes(self) -> list[dict[str, Any]]:
        """The collection's indexes: name, kind, field, parameters, built generation."""
        return [r.describe() for _, r in sorted(self.snapshot().artifacts.items())]

    def create_index(
        self,
        name: str | None = None,
        *,
        kind: str,
        on: str | None = None,
        build: bool = True,
        progress: bool | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Create (or rebuild) index ``name`` of ``kind`` over field ``on``; returns its record.

        Parameters
        ----------
        name: the index's name (default: ``kind``, or ``kind-codec`` for a non-float32 codec).
        kind: an index kind: ``"flat"``, ``"ivf"``, ``"hnsw"``, ``"compressed"``, ``"bm25"``,
            ``"seismic"`` (``heron.capabilities.base.ARTIFACT_KINDS.names()`` lists them).
        on: the field it indexes (default: the kind's own, e.g. ``"dense"``; ``"text"`` for BM25).
        build: build now (with a progress bar for large collections); ``False`` only declares it,
            and the first search that needs it builds it.
        **params: build parameters in the papers' names (``M``, ``ef_construction``, ``nlist``,
            ``codec``, ``k1``, ``b``, ...).
        """
        from heron.capabilities.base import artifact_kind

        cap = artifact_kind(kind)
        params = cap.normalise(params)
        field = on or cap.default_field
        name = art.check_name(name or _default_name(kind, params, field))
        if field != "text" and field not in self.fields:
            raise ValueError(
                f"index {name!r}: no field {field!r}; fields are {sorted(self.fields)} (or 'text' for BM25)"
            )
        if field != "text" and self.fields[field]["kind"] != cap.field_kind:
            raise ValueError(
                f"index kind {kind!r} indexes {cap.field_kind} fields; {field!r} is {self.fields[field]['kind']}"
            )
        rec = art.ArtifactRecord(name, kind, field, params)
        if not build:
            self._declare_artifact(rec)
            return rec.describe()
        with art.build_lock(self.path, name):
            rec = art.build(self, self.snapshot(), name, kind, field, params, progress=progress)
        return rec.describe()

    def update_index(self, name: str) -> dict[str, Any]:
        """Fold the documents added and deleted since index ``name`` was built into a new version.

        Kinds that cannot update incrementally are rebuilt. Returns the update's counts
        (``added``, ``tombstoned``, ...) and the generation it now serves.
        """
        snap = self.snapshot()
        rec = snap.artifacts.get(name)
        if rec is None or rec.version is None:
            raise ValueError(
                f"index {name!r} does not exist; build it first (coll.create_index or a search with build='auto')"
            )
        with art.build_lock(self.path, name):
            new = art.build(self, snap, name, rec.kind, rec.field, rec.params, update_from=rec)
        stats = art.read_manifest(new.folder(self.path)).get("update", {})
        return {**stats, "generation": int(new.generation)}

    def migrate(self, new_encoder: Any, **params: Any) -> Any:
        """Fit a drift map so ``new_encoder``'s queries search this collection's vectors.

        Then ``coll.search(q, k, using="mapped", model=new_encoder.name)``; see
        :func:`heron.capabilities.mapped.migrate` for the parameters.
        """
        from heron.capabilities.mapped import migrate

        return migrate(self, new_encoder, **params)

    def drop_index(self, name: str) -> bool:
        """Remove index ``name`` (its files go once no reader holds them); ``False`` if absent."""
        with self._writer():
            con = self.store.connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT version FROM artifacts WHERE name = ?", (name,)).fetchone()
                if row is None:
                    con.execute("ROLLBACK")
                    return False
                con.execute("DELETE FROM artifacts WHERE name = ?", (name,))
                epoch = bump(con, data=False)
                if row[0]:
                    con.execute("INSERT OR REPLACE INTO retired(path, retired_at) VALUES (?, ?)",
                                (f"indexes/{name}/{row[0]}", epoch))
                con.execute("COMMIT")
                self.store.published(epoch)
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            self._collect_garbage()
        return True

    def artifact(
        self,
        name: str,
        *,
        kind: str | None = None,
        field: str | None = None,
        params: dict[str, Any] | None = None,
        build: str = "auto",
        snap: Snapshot | None = None,
    ) -> tuple[art.ArtifactRecord, Any]:
        """The current version of artifact ``name`` and its resident object.

        With ``build="auto"`` a missing, unbuilt, stale or mismatching artifact (another kind,
        or other values of the given build ``params``) is built here once, then published;
        ``build="never"`` raises instead.
        """
        from heron.capabilities.base import artifact_kind

        snap = snap or self.snapshot()
        rec = snap.artifacts.get(name)
        why = _unusable(rec, kind, params, snap)
        if why:
            if build == "never":
                raise ValueError(
                    f"index {name!r} {why}; build it with coll.create_index({name!r}, kind=...) "
                    "or search with build='auto'"
                )
            kind = kind or (rec.kind if rec else None)
            if kind is None:
                raise ValueError(f"no index {name!r}; create it with coll.create_index(...)")
            cap = artifact_kind(kind)
            full = cap.normalise(
                cap.rebuild_params(rec.params if rec and rec.kind == kind else {}, params or {})
            )
            fld = field or (rec.field if rec else cap.default_field)
            with art.build_lock(self.path, name):
                snap = self.snapshot()  # someone may have built it while we waited
                rec = snap.artifacts.get(name)
                if _unusable(rec, kind, params, snap):
                    rec = art.build(self, snap, name, kind, fld, full)
        return rec, art.resident(self, rec)

    def _declare_artifact(self, rec: art.ArtifactRecord) -> None:
        with self._writer():
            con = self.store.connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(
                    "INSERT OR REPLACE INTO artifacts(name, kind, field, params, version, generation, built_at)"
                    " VALUES (?, ?, ?, ?, NULL, NULL, NULL)",
                    (rec.name, rec.kind, rec.field, json.dumps(rec.params, sort_keys=True)),
                )
                epoch = bump(con, data=False)
                con.execute("COMMIT")
                self.store.published(epoch)
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def _publish_artifact(self, rec: art.ArtifactRecord) -> None:

        with self._writer():
            con = self.store.connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                old = con.execute("SELECT version FROM artifacts WHERE name = ?", (rec.name,)).fetchone()
                con.execute(
                    "INSERT OR REPLACE INTO artifacts(name, kind, field, params, version, generation, built_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (rec.name, rec.kind, rec.field, json.dumps(rec.params, sort_keys=True),
                     rec.version, rec.generation, time.time()),
                )
                epoch = bump(con, data=False)
                if old and old[0] and old[0] != rec.version:
                    con.execute("INSERT OR REPLACE INTO retired(path, retired_at) VALUES (?, ?)",
                                (f"indexes/{rec.name}/{old[0]}", epoch))
                point("artifact.publish")
                con.execute("COMMIT")
                self.store.published(epoch)
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            self._collect_garbage()

    # ------------------------------------------------------------------ garbage collection
    def collect_garbage(self) -> int:
        """Delete retired segments and index versions that no open snapshot (any process) holds.

        Every write does this too; returns how many folders were removed.
        """
        import gc

        gc.collect()  # snapshots caught in reference cycles release their leases
        with self._writer():
            return self._collect_garbage()

    def _collect_garbage(self) -> int:
        """Delete retired segments / artifact versions no lease can read (writer lock held)."""
        con = self.store.connect()
        rows = con.execute("SELECT path, retired_at FROM retired").fetchall()
        if not rows:
            return 0
        oldest = self._leases.oldest_held()
        done = 0
        for path, at in rows:
            if oldest is not None and oldest < at:
                continue
            target = _retired_target(self.path, path)
            if target is not None:
                shutil.rmtree(target, ignore_errors=True)
            point("gc.remove")
            con.execute("BEGIN IMMEDIATE")
            try:
                if target is not None and path.startswith("segments/"):
                    sid = int(path.split("/")[1])
                    con.execute("DELETE FROM docs WHERE deleted = 1 AND segment = ?", (sid,))
                    self._segments.pop(sid, None)
                    # per-segment derived arrays (multi-vector FDEs, pooled vectors) go with it
                    for p in self.path.glob(f"indexes/*/{path.split('/')[1]}.*npy"):
                        p.unlink(missing_ok=True)
                con.execute("DELETE FROM retired WHERE path = ?", (path,))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            done += 1
        return done


def _default_name(kind: str, params: dict[str, Any], field: str) -> str:
    """The name the retrievers of a kind look for (``hnsw``, ``ivf-int8``, ``compressed-bin``, ``seismic-splade``)."""
    if kind == "compressed":
        return f"compressed-{params['spec']}"
    if kind == "seismic":
        return f"seismic-{field}"
    codec = str(params.get("codec", "fp32")).lower()
    return kind if codec == "fp32" else f"{kind}-{codec}"


def _unusable(rec: Any, kind: str | None, params: dict[str, Any] | None, snap: Snapshot) -> str:
    """Why ``rec`` cannot serve ``snap`` ('' when it can)."""
    from heron.capabilities.base import artifact_kind

    if rec is None:
        return "does not exist"
    if rec.version is None:
        return "is declared but not built"
    if kind is not None and rec.kind != kind:
        return f"is a {rec.kind!r} index, not {kind!r}"
    for p, want in (params or {}).items():
        if want is not None and rec.params.get(p) != want:
            return f"was built with {p}={rec.params.get(p)!r}, not {want!r}"
    if not artifact_kind(rec.kind).fresh(rec, snap):
        return f"was built at generation {rec.generation} and this method cannot fold in later changes"
    return ""


_RETIRED = re.compile(r"(segments/[0-9]+|indexes/[^/]+/[^/]+)")


def _retired_target(root: Any, path: Any) -> Any:
    """The folder a ``retired`` row names, or ``None`` (logged) for a row that names anything but
    a segment or an index version inside the collection: garbage collection never deletes
    elsewhere, whatever the database says."""
    from heron.collection.integrity import CorruptionError, confined

    if isinstance(path, str) and _RETIRED.fullmatch(path):
        try:
            return confined(root, path, what="a retired-files row")
        except CorruptionError:
            pass
    log.error("collection %s: ignoring the retired-files row %r (not a segment or index version "
              "inside the collection); nothing deleted", root, path)
    return None
