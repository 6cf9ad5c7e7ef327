"""Operations: request logging with latency, Prometheus metrics per route template, the
request-body size limit (413), ``/healthz``, ``/readyz`` and ``/metrics``.

The middleware is plain ASGI (no ``BaseHTTPMiddleware``), so it adds microseconds, not
milliseconds, to a request.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger("heron.server.access")


class JsonLines(logging.Formatter):
    """One JSON object per log record: ``time``, ``level``, ``logger``, ``message`` and, for an
    access record, ``method``, ``path``, ``route``, ``status`` and ``latency_ms`` (``heron serve --log-json``)."""

    FIELDS = ("method", "path", "route", "status", "latency_ms")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
            "logger": record.name, "message": record.getMessage(),
        }
        out.update({f: getattr(record, f) for f in self.FIELDS if hasattr(record, f)})
        return json.dumps(out)


def log_json(stream: Any = None) -> logging.Handler:
    """Write the access log as JSON lines to ``stream`` (stderr) instead of through ``heron``'s handler."""
    from heron._stderr import stream_handler

    handler = stream_handler(stream)
    handler.setFormatter(JsonLines())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


class Metrics:
    """Request counts and latency histograms, per method, route template and status."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "heron_http_requests", "HTTP requests served", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "heron_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class OpsMiddleware:
    """Times, logs and counts every HTTP request; refuses bodies over ``max_body_bytes``."""

    def __init__(self, app: Any, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await self._too_large(send_wrapped)
            else:
                await self.app(scope, self._limited(receive), send_wrapped)
        finally:
            dt = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            method = scope.get("method", "?")
            self.metrics.requests.labels(method, route, str(status[0])).inc()
            self.metrics.latency.labels(method, route).observe(dt)
            log.info("%s %s %d %.2fms", method, scope.get("path"), status[0], dt * 1000.0,
                     extra={"method": method, "path": scope.get("path"), "route": route,
                            "status": status[0], "latency_ms": round(dt * 1000.0, 3)})

    def _limited(self, receive: Any) -> Any:
        seen = [0]

        async def wrapped() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max_body:  # a chunked body: FastAPI re-raises HTTPException
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"request body over this server's limit of {self.max_body:,} bytes")
            return message

        return wrapped

    async def _too_large(self, send: Any) -> None:
        body = json.dumps({"error": {"code": "too_large", "field": None, "message":
                           f"request body over this server's limit of {self.max_body:,} bytes"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
