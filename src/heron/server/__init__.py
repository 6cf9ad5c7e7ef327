"""heron.server: the HTTP API (FastAPI app factory), its search page and operations endpoints.

``create_app(paths)`` builds the application; ``heron serve`` runs it with uvicorn. Nothing is
imported or built at import time (FastAPI is an extra: ``pip install "heron[server]"``).
"""

from __future__ import annotations

from typing import Any


def create_app(paths_or_folder: Any, **kwargs: Any) -> Any:
    """Build the FastAPI app; see :func:`heron.server.app.create_app`."""
    from heron.server.app import create_app as _create

    return _create(paths_or_folder, **kwargs)


__all__ = ["create_app"]
