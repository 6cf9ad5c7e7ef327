"""atheris: JSONL ingestion (``heron.ingest.iter_documents``) on arbitrary bytes.

    python fuzz/fuzz_ingest.py -atheris_runs=1000000
"""

import sys

import atheris

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import fuzz, scratch  # noqa: E402

with atheris.instrument_imports(include=["heron"]):
    from heron.ingest import iter_documents

ROOT = scratch()


def one_input(data: bytes) -> None:
    f = ROOT / "docs.jsonl"
    f.write_bytes(data)
    for doc_id, text, meta in iter_documents(f):
        if not (isinstance(doc_id, str) and isinstance(text, str) and isinstance(meta, dict)):
            raise AssertionError(f"bad document {doc_id!r} {text!r} {meta!r}")


if __name__ == "__main__":
    fuzz(one_input)
