"""API keys with scopes, hashed at rest and compared in constant time.

A key file holds one key per line: ``<sha256 hex of the key> <scope>[,<scope>]`` with scopes
``read`` and ``write`` (``write`` implies ``read``); blank lines and ``#`` comments are skipped.
``heron serve --hash-key KEY`` prints the line for a key. Clients send the key as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. With no keys configured the API is
open, and ``heron serve`` then binds to loopback only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from heron.server.errors import ApiError

SCOPES = ("read", "write")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of ``key``, as the key file stores it."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError("an API key must be a non-empty string")
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def parse_scopes(text: str, where: str = "scope") -> frozenset[str]:
    scopes = {s for s in text.replace(",", " ").split() if s}
    bad = sorted(scopes - set(SCOPES))
    if bad or not scopes:
        raise ValueError(f"{where}: unknown scope(s) {bad or text!r}; use read, write or read,write")
    if "write" in scopes:
        scopes.add("read")
    return frozenset(scopes)


def load_key_file(path: str | os.PathLike) -> dict[str, frozenset[str]]:
    """``{sha256 hex: scopes}`` from a key file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"API key file {str(p)!r} not found")
    keys: dict[str, frozenset[str]] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        digest, _, scopes = line.partition(" ")
        digest = digest.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(
                f"{p}:{n}: expected '<sha256 hex> <scopes>', got {line[:40]!r}; "
                "make the line with heron serve --hash-key KEY"
            )
        keys[digest] = parse_scopes(scopes or "read", f"{p}:{n}")
    if not keys:
        raise ValueError(f"API key file {str(p)!r} holds no keys")
    return keys


def normalise_keys(api_keys: Mapping[str, Iterable[str] | str] | None) -> dict[str, frozenset[str]]:
    """Keys given to :func:`heron.server.create_app`: ``{sha256 hex: scopes}`` (or a key file path)."""
    if api_keys is None:
        return {}
    if isinstance(api_keys, (str, os.PathLike)):
        return load_key_file(api_keys)
    out = {}
    for digest, scopes in api_keys.items():
        if len(digest) != 64:
            raise ValueError("api_keys maps sha256 hex digests (heron.server.auth.hash_key) to scopes")
        out[digest.lower()] = parse_scopes(scopes if isinstance(scopes, str) else ",".join(scopes))
    return out


class KeyChecker:
    """Checks a request's key against the configured digests (constant-time comparison)."""

    def __init__(self, keys: Mapping[str, frozenset[str]]) -> None:
        self.keys = [(d.encode(), s) for d, s in keys.items()]

    @property
    def open(self) -> bool:
        return not self.keys

    def check(self, headers: Mapping[str, str], scope: str) -> None:
        if self.open:
            return
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key", "")
        if not key:
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest().encode()
        scopes = None
        for d, s in self.keys:  # compare against every key: the time does not depend on which
            if hmac.compare_digest(d, digest):
                scopes = s
        if scopes is None:
            raise ApiError(401, "invalid API key")
        if scope not in scopes:
            raise ApiError(403, f"this API key lacks the {scope!r} scope (it has {sorted(scopes)})")
