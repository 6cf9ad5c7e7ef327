"""The app factory: :func:`create_app` builds the FastAPI application (nothing at import).

Collections open once in the lifespan (encoders warmed by one query, artifacts resident) and
close when it exits; uvicorn's graceful shutdown lets in-flight requests finish first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from heron.server.catalog import Catalog, ServerLimits

log = logging.getLogger("heron.server")
STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    paths_or_folder: Sequence[str | Path] | str | Path,
    *,
    api_keys: Mapping[str, Any] | str | Path | None = None,
    limits: ServerLimits | None = None,
    cors_origins: Sequence[str] = (),
    encoders: Mapping[str, Any] | None = None,
    ray: bool | str | None = None,
    shard_options: Mapping[str, Any] | None = None,
) -> Any:
    """The heron HTTP API over the collections at ``paths_or_folder``.

    Parameters
    ----------
    paths_or_folder: collection folders and/or folders of collections; each collection is
        served under its folder name without ``.heron``.
    api_keys: ``{sha256 hex: "read" | "write" | "read,write"}`` or a key file path
        (:mod:`heron.server.auth`); ``None``: open (bind it to loopback only).
    limits: per-request limits (default :class:`ServerLimits()`).
    cors_origins: origins allowed by CORS (default none: CORS off).
    encoders: already loaded encoders by model name (shared with the caller; tests and
        benchmarks use it to load a model once), else each model loads once at start-up.
    ray: how sharded collections (folders with a ``shards.json``) host their shards: ``None``/
        ``False`` in this process, ``True`` in Ray actors (joining the running Ray session or
        starting a local one), or a Ray address (``"auto"``, ``"ray://head:10001"``).
    shard_options: more :meth:`heron.scale.ShardedCollection.open` keyword arguments (``wait_s``,
        ``threads``, ``allow_partial`` ...).

    Returns
    -------
    A ``fastapi.FastAPI`` application.
    """
    from heron._deps import require

    fastapi = require("fastapi", extra="server", purpose="heron serve")
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    from heron import __version__
    from heron.server import errors, models
    from heron.server.auth import KeyChecker, normalise_keys
    from heron.server.ops import Metrics, OpsMiddleware
    from heron.server.routes import router

    catalog = Catalog(paths_or_folder, encoders, ray=ray, shard_options=shard_options)
    limits = limits or ServerLimits()
    keys = KeyChecker(normalise_keys(api_keys))
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Any):
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(catalog.open_all)
        app.state.ready = True
        log.info("heron server ready: %d collection(s) %s", len(catalog.open), catalog.names())
        try:
            yield
        finally:
            app.state.ready = False
            catalog.close_all()
            log.info("heron server stopped; collections closed")

    app = fastapi.FastAPI(
        title="heron", version=__version__, lifespan=lifespan,
        description="heron's HTTP API: collections, documents, search, indexes and reports.",
    )
    app.state.catalog, app.state.limits, app.state.keys = catalog, limits, keys
    app.state.metrics, app.state.ready = metrics, False
    errors.install(app)
    app.include_router(router)

    @app.get("/healthz", response_model=models.Health, tags=["operations"])
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=models.Ready, tags=["operations"],
             responses={503: {"model": errors.ErrorBody}})
    def readyz():
        if not app.state.ready:
            return JSONResponse(errors.error_body("unavailable", "starting or stopping"), status_code=503)
        down = catalog.shards_down()  # sharded collections: a shard actor dead or restarting
        if down:
            what = "; ".join(f"collection {n!r}: shard(s) {s}" for n, s in sorted(down.items()))
            body = errors.error_body("unavailable", f"{what} not answering; searches return partial results")
            return JSONResponse({**body, "status": "degraded", "shards_down": down}, status_code=503)
        return {"status": "ready", "collections": len(catalog.open)}

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    def prometheus():
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        page = STATIC / "index.html"
        if not page.is_file():
            return JSONResponse({"name": "heron", "api": "/docs", "collections": catalog.names()})
        return FileResponse(page, media_type="text/html")

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(OpsMiddleware, metrics=metrics, max_body_bytes=limits.max_body_bytes)
    _structured_openapi(app)
    return app


def _structured_openapi(app: Any) -> None:
    """Make the schema's 422 responses the structured error body FastAPI's handler now sends."""
    base = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                for status, resp in op.get("responses", {}).items():
                    if status.startswith(("4", "5")):
                        resp["content"] = {"application/json": {"schema": ref}}
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            comps.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
