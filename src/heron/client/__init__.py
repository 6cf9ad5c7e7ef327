"""heron.client: a Python client (sync and async) for the heron HTTP server."""
