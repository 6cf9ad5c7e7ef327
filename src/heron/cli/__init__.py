"""Command-line interface: ``heron COMMAND``; one module per command (see :mod:`heron.cli.main`)."""
