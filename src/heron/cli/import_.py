"""``heron import IN.jsonl|IN.parquet --collection C``: add the documents of an export.

Rows with vectors are stored as they are (no encoding); a new collection is created with the
export's model (``--model`` for a file without a header) and the export's dense pooling and
passages (chunk spec, context; passages are encoded on import). Ids already present are replaced.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="an export: .jsonl or .parquet")
    p.add_argument("--collection", "-c", required=True, help="collection folder (created if new)")
    p.add_argument("--model", default=None,
                   help="model of a new collection when the file names none (default all-MiniLM-L6-v2)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")


def field_options(header: dict, model: str | None) -> dict:
    """``Collection.create`` options re-creating the exported collection's fields: the dense
    model's pooling (queries must be pooled as the stored vectors were) and its passages
    (chunk spec and context; the passages are encoded again, as they are not exported)."""
    fields = header.get("fields") or {}
    opts: dict = {}
    pooling = (fields.get("dense") or {}).get("pooling")
    if pooling:
        from heron.encoders import DEFAULT_MODEL, load_encoder

        opts["encoder"] = load_encoder(model or DEFAULT_MODEL, pooling=pooling)
    for name, spec in fields.items():
        if spec.get("encoder") != "passages":
            continue
        if name == "passages":
            opts["chunking"] = spec["chunking"]
        else:
            log.warning("field %r (passages) is not re-created; add it with coll.add_field", name)
    return opts


def check_pooling(coll: object, header: dict) -> None:
    """Vectors pooled one way must not join a collection whose queries are pooled another way."""
    fields = header.get("fields")
    if not (fields and header.get("vectors")):
        return
    theirs = (fields.get("dense") or {}).get("pooling")
    ours = (coll.fields.get("dense") or {}).get("pooling")  # type: ignore[attr-defined]
    if theirs != ours:
        raise ValueError(
            f"the export's vectors were pooled with {theirs or 'the model default'!r} but "
            f"{str(coll.path)!r} pools with {ours or 'the model default'!r}; import into a new "  # type: ignore[attr-defined]
            "--collection (it takes the export's pooling) or export without --vectors"
        )


def run(args: argparse.Namespace) -> int:
    import shutil
    import time

    from tqdm.auto import tqdm

    from heron.collection import Collection
    from heron.collection.manifest import MANIFEST
    from heron.collection.transfer import import_collection, read_header

    try:
        header = read_header(args.input)
    except ImportError as exc:  # the Parquet extra
        raise ValueError(str(exc)) from exc
    out = Path(args.collection)
    fresh = not (out / MANIFEST).exists()
    model = header.get("model") or args.model
    if args.model and header.get("model") and args.model != header["model"] and header.get("vectors"):
        raise ValueError(
            f"--model {args.model!r} differs from the export's model {header['model']!r}, whose "
            "vectors it carries; drop --model (or export without --vectors to re-encode)"
        )
    if fresh and model == "none":
        coll = Collection.create(out, model="none", dim=int(header["dim"]))
    elif fresh:
        coll = Collection.create(out, model=model, **field_options(header, model))
    else:
        coll = Collection.create(out, model=model, exist_ok=True)
        check_pooling(coll, header)
    t0 = time.perf_counter()
    total = header.get("count")
    try:
        with tqdm(total=total, desc="importing", unit="doc",
                  disable=bool(args.quiet or args.json or (total or 0) <= 256)) as bar:
            n = import_collection(coll, args.input, on_rows=bar.update)
    except BaseException:
        if fresh and len(coll) == 0:
            coll.close()
            shutil.rmtree(out, ignore_errors=True)
        raise
    res = {"collection": str(out), "imported": n, "documents": len(coll),
           "vectors": bool(header.get("vectors")), "generation": coll.generation,
           "seconds": round(time.perf_counter() - t0, 3)}
    if args.json:
        print(json.dumps(res))
    elif not args.quiet:
        how = "with their vectors" if res["vectors"] else "encoded"
        print(f"imported {n} documents ({how}) into {out} in {res['seconds']:.1f}s "
              f"({res['documents']} in the collection)")
    return 0
