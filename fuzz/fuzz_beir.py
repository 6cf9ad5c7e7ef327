"""atheris: the BEIR loader on arbitrary corpus.jsonl / queries.jsonl / qrels/test.tsv bytes.

    python fuzz/fuzz_beir.py -atheris_runs=1000000
"""

import sys

import atheris

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import fuzz, scratch  # noqa: E402

with atheris.instrument_imports(include=["heron"]):
    from heron.eval.beir import load_beir

ROOT = scratch()
(ROOT / "qrels").mkdir()


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    strict = fdp.ConsumeBool()
    (ROOT / "corpus.jsonl").write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400)))
    (ROOT / "queries.jsonl").write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200)))
    (ROOT / "qrels" / "test.tsv").write_bytes(fdp.ConsumeBytes(400))
    load_beir(ROOT, strict=strict)


if __name__ == "__main__":
    fuzz(one_input)
