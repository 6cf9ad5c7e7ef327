"""heron.scale: sharded collections on Ray (scatter-gather search, parallel ingest)."""
