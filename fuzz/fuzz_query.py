"""atheris: query strings (any code point, lone surrogates, control characters) through BM25 search.

    python fuzz/fuzz_query.py -atheris_runs=1000000
"""

import sys

import atheris

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import fuzz, tiny_collection  # noqa: E402

with atheris.instrument_imports(include=["heron"]):
    from heron.pipeline import Queries

COLL = tiny_collection()


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    k = fdp.ConsumeIntInRange(-2, 12)
    text = fdp.ConsumeUnicode(256)
    res = COLL.search(Queries([text]), k, using="bm25")
    if res.keys.shape != (1, k):
        raise AssertionError(f"result shape {res.keys.shape} for k={k}")


if __name__ == "__main__":
    fuzz(one_input)
