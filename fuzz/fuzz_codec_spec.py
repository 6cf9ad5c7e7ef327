"""atheris: the codec spec grammar (``heron.codecs.spec.parse_spec``, e.g. ``pca192+fp8``).

    python fuzz/fuzz_codec_spec.py -atheris_runs=1000000
"""

import sys

import atheris

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import fuzz  # noqa: E402

with atheris.instrument_imports(include=["heron"]):
    from heron.codecs.spec import parse_spec


def one_input(data: bytes) -> None:
    parse_spec(atheris.FuzzedDataProvider(data).ConsumeUnicode(64))


if __name__ == "__main__":
    fuzz(one_input)
