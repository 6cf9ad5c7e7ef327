"""Checksums of a collection's files: recorded at commit, verified on open or first use.

Every segment file and every file of a published artifact version gets a checksum when it is
written; the segment's ``segment.json`` and the artifact's ``artifact.json`` list them
(``"files": {name: {"size": bytes, "digest": "crc32:..."}}``) and carry a checksum of
themselves (``"checksum"``, over their canonical JSON), so a flipped byte anywhere in a
segment or an artifact — in an array or in its manifest — is found, and so is a truncation.

When files are verified
-----------------------
* sizes: always, when a segment or an artifact is opened (a truncated file never reaches numpy);
* contents of files up to :data:`SMALL_FILE` bytes: when the segment is opened;
* contents of larger files: on their first use in this process (a segment's field array when it
  is first read, an artifact's files when it is first opened), and by ``heron check --deep``.

A verified file is remembered per process by ``(path, size, mtime, inode)``, so reopening a
collection does not hash its large arrays again. ``HERON_VERIFY=sizes`` skips hashing large
files on first use (for a fast first query on a huge collection; ``--deep`` still hashes).

The digest is xxHash3-64 when the optional ``xxhash`` package is installed, else CRC-32 (zlib,
about 1.3 GB/s here), which finds every burst error of up to 32 bits, so any flipped byte
(Castagnoli et al., "Optimization of cyclic redundancy-check codes", 1993).
Digests name their algorithm, so files written with either are verifiable by both setups.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import Any

log = logging.getLogger("heron.integrity")

#: files up to this size (bytes) are hashed when their segment is opened; larger on first use
SMALL_FILE = 4 << 20
_CHUNK = 1 << 20
#: ``HERON_VERIFY=sizes`` skips hashing large files on first use (sizes are still checked;
#: ``heron check --deep`` still hashes everything)
VERIFY_ENV = "HERON_VERIFY"


class CorruptionError(ValueError):
    """A collection file does not match the checksum recorded when it was written.

    ``path`` names the file. Run ``heron check --deep PATH`` to list all damage and
    ``heron repair PATH`` to rebuild what can be rebuilt.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(
            f"{self.path!r} is truncated or corrupt: {problem}; run `heron check --deep` on the collection "
            "to list the damage and `heron repair` to rebuild what can be rebuilt"
        )


def _algorithm() -> str:
    try:
        import xxhash  # noqa: F401
    except ImportError:
        return "crc32"
    return "xxh3_64"


def file_digest(path: str | os.PathLike, algorithm: str | None = None) -> str:
    """``"ALGO:HEX"`` digest of a file's bytes (streamed in 1 MiB chunks)."""
    algorithm = algorithm or _algorithm()
    with open(path, "rb") as f:
        if algorithm == "crc32":
            crc = 0
            while chunk := f.read(_CHUNK):
                crc = zlib.crc32(chunk, crc)
            return f"crc32:{crc:08x}"
        if algorithm == "xxh3_64":
            import xxhash

            h: Any = xxhash.xxh3_64()
        elif algorithm == "blake2b":
            h = hashlib.blake2b(digest_size=16)
        else:
            raise ValueError(f"unknown checksum algorithm {algorithm!r}")
        while chunk := f.read(_CHUNK):
            h.update(chunk)
        return f"{algorithm}:{h.hexdigest()}"


def confined(folder: Path, rel: Any, *, what: str) -> Path:
    """``folder / rel`` for a relative path read from a collection's own files, refused unless
    it stays inside ``folder`` (no absolute path, no ``..``, no link out): a tampered manifest,
    checksum list or catalog row never makes heron read or delete files elsewhere."""
    bad = not isinstance(rel, str) or not rel or "\x00" in rel
    if not bad:
        p = Path(rel)
        bad = p.is_absolute() or ".." in p.parts
    if not bad:
        target = folder / rel
        base = folder.resolve()
        real = target.resolve()
        bad = real != base and base not in real.parents
    if bad:
        raise CorruptionError(folder, f"{what} names {rel!r}, a path outside the collection folder")
    return target


def record(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Checksum entries ``{name: {"size", "digest"}}`` of files ``names`` inside ``folder``."""
    out = {}
    for name in sorted(names):
        p = folder / name
        out[name] = {"size": p.stat().st_size, "digest": file_digest(p)}
        _remember(p)
    return out


# ----------------------------------------------------------------- verification
_VERIFIED: set[tuple[str, int, int, int]] = set()
_VLOCK = threading.Lock()


def _stamp(p: Path) -> tuple[str, int, int, int]:
    st = p.stat()
    return (str(p), st.st_size, st.st_mtime_ns, st.st_ino)


def _remember(p: Path) -> None:
    with _VLOCK:
        _VERIFIED.add(_stamp(p))


def verify_file(
    path: Path, entry: dict[str, Any], *, full: bool = True, fresh: bool = False
) -> None:
    """Raise :class:`CorruptionError` unless ``path`` matches ``entry`` (size; digest if ``full``).

    ``fresh`` hashes the file even if this process verified it before (``heron check --deep``).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptionError(path, "the file is missing") from None
    if size != entry["size"]:
        raise CorruptionError(
            path, f"it has {size:,} bytes, {entry['size']:,} were written (cut short or overwritten)"
        )
    if not full or (not fresh and size > SMALL_FILE and os.environ.get(VERIFY_ENV) == "sizes"):
        return
    stamp = _stamp(path)
    with _VLOCK:
        if stamp in _VERIFIED and not fresh:
            return
    algo = str(entry["digest"]).split(":", 1)[0]
    if algo == "xxh3_64" and _algorithm() != "xxh3_64":
        log.warning("cannot verify %s: written with xxhash, which is not installed", path)
        return
    got = file_digest(path, algo)
    if got != entry["digest"]:
        raise CorruptionError(path, f"checksum {got} differs from {entry['digest']} recorded at commit")
    with _VLOCK:
        _VERIFIED.add(stamp)


def verify_files(
    folder: Path, files: dict[str, dict[str, Any]], *, deep: bool = False
) -> None:
    """Verify every listed file's size, and the contents of small ones (all with ``deep``)."""
    for name, entry in files.items():
        verify_file(
            confined(folder, name, what="the checksum list"),
            entry,
            full=deep or entry["size"] <= SMALL_FILE,
        )


# ----------------------------------------------------------------- sealed JSON
def _canonical(meta: dict[str, Any]) -> bytes:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def seal(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with a ``"checksum"`` of its own canonical JSON (returns a new dict)."""
    return {**meta, "checksum": f"crc32:{zlib.crc32(_canonical(meta)):08x}"}


def read_sealed(path: Path) -> dict[str, Any]:
    """Read a JSON file written with :func:`seal` (unsealed files of older versions pass)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptionError(path, "the file is missing") from None
    except (OSError, ValueError) as exc:
        raise CorruptionError(path, f"it is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise CorruptionError(path, "it does not hold a JSON object")
    check_seal(meta, path)
    return meta


def check_seal(meta: dict[str, Any], path: Path) -> None:
    """Raise :class:`CorruptionError` naming ``path`` if ``meta`` does not match its seal."""
    want = meta.get("checksum")
    if want is not None and want != f"crc32:{zlib.crc32(_canonical(meta)):08x}":
        raise CorruptionError(path, "its contents differ from the checksum recorded at commit")


def verify_artifact(folder: Path, *, deep: bool = True) -> dict[str, Any]:
    """Verify a published artifact version's manifest and files; returns the manifest."""
    meta = read_sealed(folder / "artifact.json")
    files = meta.get("files")
    if files is not None:
        verify_files(folder, files, deep=deep)
    return meta


def artifact_files(folder: Path) -> list[str]:
    """Relative paths of every file under an artifact folder being built (but its manifest)."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name != "artifact.json"
    )


__all__ = [
    "SMALL_FILE",
    "CorruptionError",
    "artifact_files",
    "check_seal",
    "file_digest",
    "read_sealed",
    "record",
    "seal",
    "verify_artifact",
    "verify_file",
    "verify_files",
]
