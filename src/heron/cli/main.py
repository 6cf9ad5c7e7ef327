"""Entry point of the ``heron`` command.

Each command lives in its own module ``heron.cli.<name>`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; :data:`COMMANDS` maps command names to those modules, imported only when
the command runs (so ``heron --help`` stays fast and import-side-effect free).

Errors: the documented error types (:data:`USER_ERRORS`: bad values, missing or existing files,
a corrupt collection) print one line ``heron: error: ...`` on stderr and exit with status 2.
``--traceback`` (anywhere on the command line) or ``HERON_DEBUG=1`` shows the full traceback
instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence

from heron.cli._logging import add_output_flags, configure_logging, verbosity

#: exceptions that mean "bad input or a damaged collection", reported in one line
#: (a heron ``CollectionError`` is a ``ValueError``)
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileExistsError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    TimeoutError,  # another writer holds the collection (heron.collection.WriteLockTimeout)
    sqlite3.DatabaseError,
)
#: exit status of a reported error (argparse uses the same for usage errors)
ERROR_STATUS = 2

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "heron.cli.demo",
        "build a collection of the Python standard library docs and answer questions",
    ),
    "index": (
        "heron.cli.index",
        "build or extend a collection from .txt/.md files, a JSONL file or a BEIR folder",
    ),
    "search": ("heron.cli.search", "search a collection"),
    "info": ("heron.cli.info", "describe a collection"),
    "check": ("heron.cli.check", "find damaged files of a collection (checksums, SQLite); --deep hashes all"),
    "repair": (
        "heron.cli.repair",
        "rebuild damaged segments and every derived index from documents + vectors; report losses",
    ),
    "tune": ("heron.cli.tune", "sweep ANN index parameters: recall@10 vs queries/second"),
    "eval": ("heron.cli.eval", "evaluate retrievers on a BEIR dataset"),
    "limit": (
        "heron.cli.limit",
        "LIMIT-style data generator and the free-embedding critical-n experiment",
    ),
    "bench": (
        "heron.cli.bench",
        "sweep vector codecs x rescoring on a BEIR dataset: quality vs memory",
    ),
    "recommend": (
        "heron.cli.recommend",
        "pick the measured best codec configuration for a memory budget",
    ),
    "migrate": (
        "heron.cli.migrate",
        "serve a new embedding model against an old index (drift map, re-embed)",
    ),
    "bench-multivector": (
        "heron.cli.bench_multivector",
        "late-interaction benchmark: exact MaxSim, MUVERA, pooling, token codes",
    ),
    "delete": ("heron.cli.delete", "delete documents from a collection by id"),
    "compact": (
        "heron.cli.compact",
        "purge deleted documents, merge segments and shrink the database (VACUUM)",
    ),
    "serve": ("heron.cli.serve", "serve collections over HTTP: the API, a search page, metrics"),
    "export": ("heron.cli.export", "write a collection's documents (and vectors) to JSONL or Parquet"),
    "import": ("heron.cli.import_", "add the documents of a JSONL or Parquet export to a collection"),
    "snapshot": ("heron.cli.snapshot", "copy a collection consistently while it is in use"),
    "list": ("heron.cli.list", "list the collections in a folder"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heron", description="heron: a retrieval engine for embedding-based search"
    )
    parser.add_argument("--version", action="version", version=f"heron {_version()}")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--verbose", action="store_true", help="debug output, third-party noise")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        # arguments are added lazily in main() for the chosen command only
    return parser


def _version() -> str:
    from heron import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--traceback" in argv or os.environ.get("HERON_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--traceback"]
    try:
        return _main(argv)
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"heron: error: {one_line(exc)}", file=sys.stderr)
        return ERROR_STATUS
    except OSError as exc:  # a full disk (heron.collection.diskfull.DiskFullError) is no bug
        if debug or exc.errno != errno.ENOSPC:
            raise
        print(f"heron: error: {one_line(exc)}", file=sys.stderr)
        return ERROR_STATUS


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (the type's name when it has none)."""
    msg = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
        msg = f"{msg}: {exc.filename}"
    return msg or type(exc).__name__


def parse_command_args(p: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options and positionals in any order: ``heron search C -r bm25 some words`` gives the
    words to ``QUERY`` (plain ``parse_args`` binds an empty ``nargs="*"`` before the first
    option and then rejects the words). A command with sub-commands parses plainly."""
    if any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
        return p.parse_args(argv)
    return p.parse_intermixed_args(argv)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    # global options before the command: heron [--quiet|--verbose|--version] COMMAND ...
    flags = {"--quiet": False, "--verbose": False}
    while argv and argv[0] in (*flags, "--version"):
        if argv[0] == "--version":
            parser.parse_args(["--version"])  # prints and exits
        flags[argv.pop(0)] = True
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    name = argv[0]
    if name == "bench" and "--multivector" in argv[1:]:
        # `heron bench --multivector DATASET` is the multi-vector sweep
        name, argv = (
            "bench-multivector",
            ["bench-multivector", *[a for a in argv[1:] if a != "--multivector"]],
        )
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    p = argparse.ArgumentParser(prog=f"heron {name}", description=COMMANDS[name][1])
    module.add_arguments(p)
    p.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of an error (or HERON_DEBUG=1)",
    )
    add_output_flags(p)
    args = parse_command_args(p, argv[1:])
    args.quiet = bool(flags["--quiet"] or getattr(args, "quiet", None))
    args.verbose = bool(flags["--verbose"] or getattr(args, "verbose", None))
    configure_logging(verbosity(args.quiet, args.verbose))
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
