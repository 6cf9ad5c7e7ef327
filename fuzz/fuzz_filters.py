"""atheris: metadata filters (JSON from the input) compiled to SQL and run on a tiny collection.

    python fuzz/fuzz_filters.py -atheris_runs=1000000
"""

import json
import sys

import atheris

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import fuzz, tiny_collection  # noqa: E402

with atheris.instrument_imports(include=["heron"]):
    from heron.index.filters import compile_filter, matching_keys

COLL = tiny_collection()


def one_input(data: bytes) -> None:
    try:
        flt = json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return  # not JSON: nothing a user could pass as a filter
    compile_filter(flt)
    matching_keys(COLL, flt)


if __name__ == "__main__":
    fuzz(one_input)
