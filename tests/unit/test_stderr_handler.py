"""heron's log handlers follow ``sys.stderr``: a replaced and closed stream is never written."""

from __future__ import annotations

import io
import logging
import sys

from heron._stderr import stream_handler
from heron.cli._logging import configure_logging


def test_handler_writes_to_the_current_stderr_after_the_old_one_closed(monkeypatch):
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log = configure_logging(0)
    first.close()  # e.g. pytest's capture of an earlier test, or a finished redirect
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    errors = []
    monkeypatch.setattr(logging.Handler, "handleError", lambda self, record: errors.append(record))
    log.info("served %s", "a request")
    assert errors == []
    assert "served a request" in second.getvalue()


def test_an_explicit_stream_is_kept():
    buf = io.StringIO()
    h = stream_handler(buf)
    h.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "to the buffer", None, None))
    assert "to the buffer" in buf.getvalue()
