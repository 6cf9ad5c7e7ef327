"""Run an app under uvicorn in a background thread on ``127.0.0.1`` and a free port: for
tests, benchmarks and notebooks (``heron serve`` is the way to run a server for real)."""

from __future__ import annotations

import threading
import time
from typing import Any


class ThreadedServer:
    """``with ThreadedServer(app) as srv: httpx.get(srv.url + "/healthz")``.

    Starts uvicorn (port 0: the OS picks a free one) and waits until the app is ready (its
    lifespan has opened every collection); leaving the block shuts it down gracefully.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 300.0) -> None:
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                     lifespan="on", timeout_graceful_shutdown=30)
        self.server = uvicorn.Server(self.config)
        self.timeout = timeout
        self.thread = threading.Thread(target=self.server.run, name="heron-server", daemon=True)
        self.url = ""

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server failed to start; see the log")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server did not start within {self.timeout:g} s")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
