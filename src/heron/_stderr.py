"""A logging handler that writes to ``sys.stderr`` as it is when a record is emitted."""

from __future__ import annotations

import logging
import sys
from typing import Any


class StderrHandler(logging.StreamHandler):
    """Like ``logging.StreamHandler(sys.stderr)``, but looks ``sys.stderr`` up at each record.

    A handler bound to the stream object at creation keeps writing to it after it was replaced
    and closed (pytest's capture, a redirected CLI run), which makes ``logging`` print a
    "Logging error" traceback for every later record (a server thread's access log, say).
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # setStream(); the current stderr is always used
        pass


def stream_handler(stream: Any = None) -> logging.StreamHandler:
    """A handler for ``stream``, or for the current ``sys.stderr`` when none is given."""
    return logging.StreamHandler(stream) if stream is not None else StderrHandler()
