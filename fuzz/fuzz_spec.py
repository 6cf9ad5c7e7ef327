"""atheris: the retriever spec grammar (``heron.capabilities.spec``), parsed and built into a stage.

    python fuzz/fuzz_spec.py -atheris_runs=1000000
"""

import sys

import atheris

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import fuzz, tiny_collection  # noqa: E402

with atheris.instrument_imports(include=["heron"]):
    from heron.capabilities.spec import parse_spec, stage_from_spec

COLL = tiny_collection()


def one_input(data: bytes) -> None:
    spec = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(64)
    parse_spec(spec)
    stage_from_spec(COLL, spec, depth=5)


if __name__ == "__main__":
    fuzz(one_input)
