"""atheris: metadata filters, built from the input, compiled to SQL and run on a tiny collection.

The input drives a small generator (operators, field names, scalars of every JSON type, nesting
up to 80 levels) rather than being parsed as JSON, so almost every execution is a filter.

    python fuzz/fuzz_filters.py -atheris_runs=1000000
"""

import sys

import atheris

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import fuzz, tiny_collection  # noqa: E402

with atheris.instrument_imports(include=["heron"]):
    from heron.index.filters import compile_filter, matching_keys

COLL = tiny_collection()
OPS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$like", "$exists",
       "$and", "$or", "$not", "$x"]
FIELDS = ["year", "tags", "title", "n", "n.x", "a.b", "", "$", "a..b", "x'); DROP TABLE docs;--"]


def value(fdp, depth: int):
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 80 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(8)
    if kind == 3:
        return fdp.ConsumeFloat()
    if kind in (4, 5):
        return fdp.ConsumeUnicode(12)
    if kind == 6:
        return fdp.PickValueInList(FIELDS)
    if kind == 7:
        return [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return node(fdp, depth + 1)


def node(fdp, depth: int):
    out = {}
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        pick = fdp.ConsumeIntInRange(0, 3)
        key = (fdp.PickValueInList(OPS) if pick == 0 else fdp.PickValueInList(FIELDS) if pick < 3
               else fdp.ConsumeUnicode(6))
        out[key] = value(fdp, depth)
    return out


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    flt = node(fdp, 0)
    compile_filter(flt)
    matching_keys(COLL, flt)


if __name__ == "__main__":
    fuzz(one_input)
