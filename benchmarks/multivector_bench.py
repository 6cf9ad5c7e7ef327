"""Multi-vector late interaction benchmark (exact MaxSim, MUVERA, pooled, token codes).

Thin wrapper over :mod:`heron.cli.bench_multivector` (the same code as
``heron bench --multivector DATASET`` / ``heron bench-multivector DATASET``).

Usage::

    python benchmarks/multivector_bench.py scifact --out out/multivector
    python benchmarks/multivector_bench.py nfcorpus --out out/multivector
"""

from __future__ import annotations

import argparse
import sys

from heron.cli import bench_multivector


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_multivector.add_arguments(parser)
    return bench_multivector.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
