"""Structured errors of the HTTP API: ``{"error": {"code", "message", "field"}}``.

Every failure, whether raised by heron (``ValueError``/``TypeError`` -> 400 ``bad_request``),
by the request's validation (FastAPI's own 422, re-labelled ``bad_request`` with the field),
by routing (404/405) or by a bug (500 ``internal``, logged with its traceback), leaves the
server in this one shape, so a client reads one contract.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

log = logging.getLogger("heron.server")

#: HTTP status -> error code
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "too_large",
    415: "bad_request",
    422: "bad_request",
    503: "unavailable",
    507: "disk_full",
}


class ApiError(Exception):
    """An error the API reports as it is: HTTP ``status``, a ``code``, a message, a field."""

    def __init__(self, status: int, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "internal")
        self.message = message
        self.field = field


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def field_path(loc: tuple | list) -> str | None:
    """``("body", "queries", 0)`` -> ``"queries[0]"`` (``None`` for the body itself)."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def install(app: Any) -> None:
    """Register the handlers that turn every exception into the structured error body."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def respond(status: int, code: str, message: str, field: str | None = None, headers=None):
        return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api(request, exc: ApiError):
        return respond(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        field = field_path(first.get("loc", ()))
        msg = f"{field or 'body'}: {first.get('msg', 'invalid value')}"
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more problem(s))"
        return respond(422, "bad_request", msg, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs for the API"
        return respond(exc.status_code, CODES.get(exc.status_code, "internal"), detail, None,
                       getattr(exc, "headers", None))

    @app.exception_handler(ValueError)
    async def _value(request, exc: ValueError):
        return respond(400, "bad_request", str(exc))

    @app.exception_handler(TypeError)
    async def _type(request, exc: TypeError):
        return respond(400, "bad_request", str(exc))

    @app.exception_handler(FileExistsError)
    async def _exists(request, exc: FileExistsError):
        return respond(409, "conflict", str(exc))

    from heron.scale import ShardsUnavailable

    @app.exception_handler(ShardsUnavailable)
    async def _shards(request, exc: ShardsUnavailable):
        # a write (or a read with allow_partial=False) while a shard actor is down or restarting
        return respond(503, "unavailable", f"{exc}; retry when the shard is back (GET /readyz)")

    @app.exception_handler(TimeoutError)
    async def _busy(request, exc: TimeoutError):
        # another process holds the collection's write lock (heron.WriteLockTimeout)
        return respond(503, "unavailable", str(exc), None, {"Retry-After": "5"})

    @app.exception_handler(OSError)
    async def _os(request, exc: OSError):
        import errno

        if exc.errno == errno.ENOSPC:  # heron.DiskFullError: the collection is at its last commit
            return respond(507, "disk_full", str(exc))
        log.exception("internal error on %s %s", request.method, request.url.path)
        return respond(500, "internal", f"internal server error ({type(exc).__name__}); see the server log")

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return respond(500, "internal", f"internal server error ({type(exc).__name__}); see the server log")
