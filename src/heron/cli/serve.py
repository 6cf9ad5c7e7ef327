"""``heron serve PATH...``: serve collections over HTTP (FastAPI + uvicorn).

Without ``--api-key-file`` the API is open, so it binds to loopback only (a non-loopback
``--host`` is refused unless ``--insecure``). ``heron serve --hash-key KEY`` prints the key
file line of a key (its SHA-256, with scopes ``--scopes``). Stop it with Ctrl-C (SIGINT) or
SIGTERM: uvicorn stops accepting, lets in-flight requests finish, then the collections close.
A sharded collection folder (``shards.json``) is served as one collection; ``--ray [ADDRESS]``
hosts its shards in Ray actors (a local Ray, or the cluster at ADDRESS).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from pathlib import Path

log = logging.getLogger("heron.server")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="collection folders and/or folders of collections")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key-file", help="file of '<sha256 hex> <scopes>' lines (read, write)")
    p.add_argument("--hash-key", metavar="KEY", help="print the key file line for KEY and exit")
    p.add_argument("--scopes", default="read", help="scopes for --hash-key (read, write or read,write)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback host without API keys")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow cross-origin requests from ORIGIN (repeatable; default: CORS off)")
    p.add_argument("--max-k", type=int, default=1000, help="most hits per query (default 1000)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="host the shards of sharded collections in Ray actors (a local Ray, or the cluster at "
                        "ADDRESS); put it after the paths")
    p.add_argument("--log-json", action="store_true",
                   help="log each request as one JSON line (method, path, route, status, latency_ms)")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body in MB (default 32)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from heron.server.auth import hash_key, parse_scopes

    if args.hash_key is not None:
        print(f"{hash_key(args.hash_key)} {','.join(sorted(parse_scopes(args.scopes)))}")
        return 0
    if args.ray not in (None, "local") and Path(args.ray).exists() and "://" not in args.ray:
        args.paths, args.ray = [args.ray, *args.paths], "local"  # "--ray PATH": a path, not an address
    if not args.paths:
        raise ValueError("heron serve needs a collection folder or a folder of collections")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0..65535, got {args.port}")
    keys = None
    if args.api_key_file:
        from heron.server.auth import load_key_file

        keys = load_key_file(args.api_key_file)
    elif not is_loopback(args.host) and not args.insecure:
        raise ValueError(
            f"refusing to serve without API keys on {args.host!r}: bind 127.0.0.1, give "
            "--api-key-file, or pass --insecure to expose an open API"
        )
    from heron._deps import require

    uvicorn = require("uvicorn", extra="server", purpose="heron serve")
    from heron.server import create_app
    from heron.server.catalog import ServerLimits

    limits = ServerLimits(max_k=args.max_k, max_body_bytes=int(args.max_body_mb * 1024 * 1024))
    app = create_app(args.paths, api_keys=keys, limits=limits, cors_origins=args.cors, ray=args.ray)
    if args.log_json:
        from heron.server.ops import log_json

        log_json()
    sock = _bind(args.host, args.port)  # bound here, so --port 0 can say which port it got
    port = sock.getsockname()[1]
    if keys is None:
        log.warning("no API keys: the API is open to anyone who can reach %s:%s%s", args.host, port,
                    " (loopback only)" if is_loopback(args.host) else "")
    else:
        log.info("API keys loaded: %d key(s)", len(keys))
    log.info("listening on http://%s:%d (docs at /docs, search page at /)", _url_host(args.host), port)
    config = uvicorn.Config(app, host=args.host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=30)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``0``: a free port); a clear error when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port, or 0 for a free one") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
