"""Logging and third-party noise for the ``heron`` command (configured here, never at import).

Library modules log to ``logging.getLogger(__name__)`` (children of the ``heron`` logger) and
install no handler, so a program that imports heron keeps full control of its logging. The
command line calls :func:`configure_logging` once, with a verbosity from ``--quiet`` /
``--verbose``:

=========  ==============  ============================================================
verbosity  ``heron`` level  third-party output
=========  ==============  ============================================================
-1 quiet   WARNING         silenced; every progress bar off (``TQDM_DISABLE``)
 0 default INFO            silenced: library loggers at ERROR (any other library's records
                           reach the root logger, which passes errors only), Python warnings from other
                           packages ignored, Hugging Face / transformers progress bars
                           ("Loading weights") off; heron's own progress bars stay
 1 verbose DEBUG           left as the libraries configure it, warnings shown
=========  ==============  ============================================================
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from heron._stderr import stream_handler

LOGGER = "heron"
#: loggers of libraries heron drives; set to ERROR unless --verbose
THIRD_PARTY_LOGGERS = (
    "transformers",
    "sentence_transformers",
    "huggingface_hub",
    "faiss",
    "torch",
    "numba",
    "bm25s",
    "urllib3",
    "filelock",
    "pypdf",
    "markdown_it",
    "ray",
)
_MARK = "_heron_cli_handler"


class _Formatter(logging.Formatter):
    """``heron: message`` for notices, ``heron: warning: ...`` above, the logger name in debug."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and record.levelno <= logging.DEBUG:
            msg += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.ERROR:
            return f"heron: error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"heron: warning: {msg}"
        if record.levelno <= logging.DEBUG:
            return f"heron: debug [{record.name}]: {msg}"
        return f"heron: {msg}"


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` / ``--verbose`` on a command's parser (unless the command defines them)."""
    have = {s for a in parser._actions for s in a.option_strings}
    group = parser.add_argument_group("output")
    if "--quiet" not in have:
        group.add_argument(
            "--quiet",
            action="store_true",
            default=None,
            help="warnings and errors only, no progress bars",
        )
    if "--verbose" not in have:
        group.add_argument(
            "--verbose",
            action="store_true",
            default=None,
            help="debug messages and third-party warnings/progress bars",
        )


def verbosity(quiet: bool | None, verbose: bool | None) -> int:
    """-1, 0 or 1 from the two flags (both given is an error)."""
    if quiet and verbose:
        raise ValueError("--quiet and --verbose exclude each other; pass one of them")
    return -1 if quiet else (1 if verbose else 0)


def configure_logging(level: int = 0, *, stream: object = None) -> logging.Logger:
    """Configure the ``heron`` logger and silence third parties for verbosity ``level``.

    Replaces a handler installed by an earlier call (so repeated ``main()`` calls in one process
    do not duplicate lines). Environment switches are only set when the user has not set them.
    """
    log = logging.getLogger(LOGGER)
    for h in list(log.handlers):
        if getattr(h, _MARK, False):
            log.removeHandler(h)
    handler = stream_handler(stream)
    setattr(handler, _MARK, True)
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.propagate = False
    log.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(level, logging.DEBUG))
    if level >= 1:
        logging.captureWarnings(True)
        return log
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    _root_errors_only(stream)
    # read when transformers / huggingface_hub are imported (after this, by the command)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    _silence_imported()
    # warnings raised from any module outside heron (torch, transformers, faiss's loader ...)
    warnings.filterwarnings("ignore", module=r"(?!heron(\.|$))")
    if level < 0:
        os.environ.setdefault("TQDM_DISABLE", "1")
    return log


def _root_errors_only(stream: object = None) -> None:
    """Records of libraries not listed above (a parser's "EOF marker not found") reach the root
    logger, whose missing handler made Python print them bare: give it one that passes errors
    only, in heron's format."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _MARK, False):
            root.removeHandler(h)
    handler = stream_handler(stream)
    setattr(handler, _MARK, True)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(_Formatter())
    root.addHandler(handler)


def _silence_imported() -> None:
    """The same switches for libraries a caller imported before :func:`configure_logging`."""
    if "transformers" in sys.modules:
        try:
            from transformers.utils import logging as tlog

            tlog.set_verbosity_error()
            tlog.disable_progress_bar()
        except (ImportError, AttributeError):  # pragma: no cover - other transformers layouts
            pass
    if "huggingface_hub" in sys.modules:
        try:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        except ImportError:  # pragma: no cover
            pass
