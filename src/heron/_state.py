"""Save / load fitted state as ``.npy`` arrays + one JSON manifest (no pickle), version-checked."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def save_state(
    path: str | os.PathLike, kind: str, version: int, params: dict, arrays: dict[str, np.ndarray]
) -> Path:
    """Write ``arrays`` as ``NAME.npy`` and a manifest ``{kind, format_version, params, arrays}``."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    # new array files under fresh names, then the manifest naming them replaces the old one in
    # one rename: a crash at any point leaves the previous state loadable (and orphan files)
    from heron.limits import file_in

    stale = set()
    try:
        prev = json.loads((p / MANIFEST).read_text())
        for n in prev.get("arrays", []):
            try:  # a tampered manifest must never make a save delete files elsewhere
                stale.add(file_in(p, prev.get("files", {}).get(n, f"{n}.npy"), what=f"{MANIFEST} array"))
            except ValueError as exc:
                logger.warning("not removing a previous array: %s", exc)
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    token = os.urandom(4).hex()
    files = {name: f"{name}.{token}.npy" for name in arrays}
    for name, arr in arrays.items():
        with open(p / files[name], "wb") as f:
            np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
    manifest = {"kind": kind, "format_version": version, "params": params,
                "arrays": sorted(arrays), "files": files}
    tmp = p / f"{MANIFEST}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(json.dumps(manifest, indent=1, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p / MANIFEST)
    for old in stale - {os.path.join(os.fspath(p), f) for f in files.values()}:  # previous arrays
        Path(old).unlink(missing_ok=True)
    return p


def load_state(
    path: str | os.PathLike, kind: str, version: int
) -> tuple[dict, dict[str, np.ndarray]]:
    """Read what :func:`save_state` wrote; refuse another kind or format version."""
    p = Path(path)
    mf = p / MANIFEST
    if not mf.is_file():
        raise FileNotFoundError(
            f"no {kind} at {str(p)!r}: {MANIFEST} is missing (was it saved with .save()?)"
        )
    try:
        manifest = json.loads(mf.read_text())
    except ValueError as exc:
        raise ValueError(f"{str(mf)!r} is corrupt ({exc}); refit and save it again") from exc
    if manifest.get("kind") != kind:
        raise ValueError(f"{str(p)!r} holds a {manifest.get('kind')!r}, not a {kind!r}")
    if manifest.get("format_version") != version:
        raise ValueError(
            f"{str(p)!r} has {kind} format version {manifest.get('format_version')!r}; this heron reads version {version}: refit and save it again"
        )
    from heron.limits import file_in, load_npy

    files = manifest.get("files", {})
    arrays = {
        n: load_npy(file_in(p, files.get(n, f"{n}.npy"), what=f"{MANIFEST} array {n!r}"))
        for n in manifest["arrays"]
    }
    return manifest["params"], arrays


def check_query_model(
    what: str, model: str | None, dim: int, encoder_name: str | None, vectors: np.ndarray
) -> None:
    """Refuse queries from another model or of another dimension than ``what`` was trained for."""
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(
            f"{what} was trained for {dim}-dimensional query vectors of {model!r}; got shape {vectors.shape}"
        )
    if model is not None and encoder_name is not None and encoder_name != model:
        raise ValueError(
            f"{what} was trained for model {model!r}, not {encoder_name!r}; train one for {encoder_name!r}"
        )
