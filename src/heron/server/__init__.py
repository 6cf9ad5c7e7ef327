"""heron.server: the HTTP API (FastAPI app factory), its search page and operations endpoints."""
