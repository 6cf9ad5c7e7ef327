"""The ``/v1`` routes: collections, documents, search, indexes, maintenance and reports.

Endpoints are plain (sync) functions: FastAPI runs them in its threadpool, so a long search or
write never blocks the event loop; writes to one collection are serialised by the collection.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from heron.server import models as m
from heron.server.catalog import is_sharded
from heron.server.errors import ApiError, ErrorBody
from heron.server.search import json_safe, run_search

#: files a report may serve
REPORT_FILES = {".svg", ".png", ".json", ".md", ".csv", ".txt"}


def need(scope: str):
    """A dependency checking the request's API key for ``scope``."""

    def dep(request: Request) -> None:
        request.app.state.keys.check(request.headers, scope)

    return Depends(dep)


def _catalog(request: Request) -> Any:
    return request.app.state.catalog


def _limits(request: Request) -> Any:
    return request.app.state.limits


def _check_docs(request: Request, n: int, field: str = "ids") -> None:
    lim = _limits(request).max_documents
    if n > lim:
        raise ApiError(413, f"{n} documents exceed this server's limit of {lim} per request", field=field)


ERRORS = {s: {"model": ErrorBody} for s in (400, 401, 403, 404, 409, 413, 422, 500, 503)}
router = APIRouter(prefix="/v1", responses=ERRORS)
READ, WRITE = need("read"), need("write")


# ---------------------------------------------------------------------- collections
@router.get("/collections", response_model=m.CollectionList, response_model_exclude_none=True,
            dependencies=[READ])
def list_collections(request: Request):
    cat = _catalog(request)
    out = []
    for name in cat.names():
        c = cat.get(name)
        row = {"name": name, "documents": len(c), "model": c.model, "dim": c.dim,
               "indexes": [r["name"] for r in c.indexes()]} if not is_sharded(c) else _sharded_row(name, c)
        out.append(row)
    return {"collections": out}


def _sharded_row(name: str, c: Any) -> dict[str, Any]:
    """A sharded collection's row: the totals of the shards that answer, ``partial`` if one did not."""
    info = c.info()
    return {"name": name, "documents": info["documents"], "model": c.model, "dim": c.dim,
            "indexes": [r["name"] for r in info["indexes"]], "partial": info["partial"]}


@router.post("/collections", response_model=m.CollectionInfo, status_code=201, dependencies=[WRITE])
def create_collection(request: Request, body: m.CreateCollection):
    if body.model == "none" and body.dim is None:
        raise ApiError(400, "model 'none' needs dim (the vectors' dimension)", field="dim")
    coll = _catalog(request).create(body.name, body.model, body.dim)
    return describe(body.name, coll)


@router.get("/collections/{name}", response_model=m.CollectionInfo, dependencies=[READ])
def collection_info(request: Request, name: str):
    return describe(name, _catalog(request).get(name))


@router.delete("/collections/{name}", response_model=m.DroppedOut, dependencies=[WRITE])
def drop_collection(request: Request, name: str):
    _catalog(request).drop(name)
    return {"dropped": True}


def describe(name: str, coll: Any) -> dict[str, Any]:
    info = json_safe(coll.info())
    info.pop("path", None)
    for shard in info.get("shards", []):  # a sharded collection: each shard's info, paths kept private
        shard.pop("path", None)
    retrievers = ["dense", "bm25", "hybrid:dense+bm25"]
    retrievers += [f for f, spec in coll.fields.items() if spec.get("kind") == "sparse"]
    retrievers += [r["name"] for r in info["indexes"] if r["name"] not in retrievers]
    return {**info, "name": name, "retrievers": retrievers, "metadata_fields": metadata_fields(coll)}


def metadata_fields(coll: Any, sample: int = 500, examples: int = 5) -> list[dict[str, Any]]:
    """Metadata keys of the first ``sample`` documents: a type and a few distinct values."""
    seen: dict[str, dict[str, Any]] = {}
    for i, doc in enumerate(coll.iter_documents(batch=sample)):
        if i >= sample:
            break
        for k, v in doc.metadata.items():
            f = seen.setdefault(k, {"name": k, "types": set(), "examples": []})
            f["types"].add(_type_name(v))
            if len(f["examples"]) < examples and isinstance(v, (str, int, float, bool)) and v not in f["examples"]:
                f["examples"].append(v)
    return [
        {"name": f["name"], "type": "/".join(sorted(f["types"])), "examples": f["examples"]}
        for f in sorted(seen.values(), key=lambda f: f["name"])
    ]


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(v), "null" if v is None else "string")


# ---------------------------------------------------------------------- documents
def _write(request: Request, name: str, body: m.Documents, replace: bool) -> dict[str, Any]:
    coll = _catalog(request).get(name)
    n = len(body.texts)
    _check_docs(request, n, "texts")
    if body.ids is not None and len(body.ids) != n:
        raise ApiError(400, f"got {n} texts for {len(body.ids)} ids; give one text per id", field="texts")
    vectors = None
    if body.vectors is not None:
        if len(body.vectors) != n:
            raise ApiError(400, f"got {len(body.vectors)} vectors for {n} texts", field="vectors")
        if any(len(v) != coll.dim for v in body.vectors):
            raise ApiError(400, f"every vector needs {coll.dim} values (the collection's dim)", field="vectors")
        vectors = np.asarray(body.vectors, dtype=np.float64).reshape(n, coll.dim)
    elif coll.model == "none" and n:
        raise ApiError(400, "this collection has no model (model 'none'): send vectors with the texts", field="vectors")
    if not n:
        return {"count": 0, "keys": []}
    if not replace and body.ids is not None:
        live = [i for i, d in zip(body.ids, coll.get(body.ids)) if d is not None]
        if live:
            raise ApiError(409, f"ids already in the collection: {live[:5]}; use upsert to replace them", field="ids")
    write = coll.upsert if replace else coll.add
    keys = write(list(body.texts), ids=body.ids, metadata=body.metadata, vectors=vectors, progress=False)
    return {"count": int(len(keys)), "keys": [int(x) for x in keys]}


@router.post("/collections/{name}/add", response_model=m.CountOut, dependencies=[WRITE])
def add(request: Request, name: str, body: m.Documents):
    return _write(request, name, body, replace=False)


@router.post("/collections/{name}/upsert", response_model=m.CountOut, dependencies=[WRITE])
def upsert(request: Request, name: str, body: m.Documents):
    return _write(request, name, body, replace=True)


@router.post("/collections/{name}/get", response_model=m.GetOut, dependencies=[READ])
def get(request: Request, name: str, body: m.Ids):
    coll = _catalog(request).get(name)
    _check_docs(request, len(body.ids))
    docs = coll.get(list(body.ids))
    return {"documents": [None if d is None else {"id": d.id, "text": d.text, "metadata": d.metadata} for d in docs]}


@router.post("/collections/{name}/delete", response_model=m.DeletedOut, dependencies=[WRITE])
def delete(request: Request, name: str, body: m.Ids):
    coll = _catalog(request).get(name)
    _check_docs(request, len(body.ids))
    return {"deleted": int(coll.delete(list(body.ids))) if body.ids else 0}


# ---------------------------------------------------------------------- search
@router.post("/collections/{name}/search", response_model=m.SearchResponse, response_model_exclude_none=True,
             dependencies=[READ])
def search(request: Request, name: str, body: m.SearchRequest):
    return run_search(_catalog(request).get(name), body, _limits(request))


# ---------------------------------------------------------------------- maintenance
@router.post("/collections/{name}/compact", response_model=dict[str, int], dependencies=[WRITE])
def compact(request: Request, name: str):
    return _catalog(request).get(name).compact()


@router.get("/collections/{name}/indexes", response_model=m.IndexList, dependencies=[READ])
def indexes(request: Request, name: str):
    return {"indexes": json_safe(_catalog(request).get(name).indexes())}


@router.post("/collections/{name}/indexes", response_model=dict[str, Any], status_code=201, dependencies=[WRITE])
def create_index(request: Request, name: str, body: m.CreateIndex):
    coll = _catalog(request).get(name)
    rec = coll.create_index(body.name, kind=body.kind, on=body.on, build=body.build, progress=False, **(body.params or {}))
    return json_safe(rec)


@router.delete("/collections/{name}/indexes/{index}", response_model=m.DroppedOut, dependencies=[WRITE])
def drop_index(request: Request, name: str, index: str):
    coll = _catalog(request).get(name)
    if not coll.drop_index(index):
        raise ApiError(404, f"no index {index!r} in collection {name!r}", field="index")
    return {"dropped": True}


# ---------------------------------------------------------------------- reports
def _reports_dir(request: Request, name: str) -> Path:
    _catalog(request).get(name)
    return _catalog(request).paths[name] / "reports"


@router.get("/collections/{name}/reports", response_model=m.ReportList, dependencies=[READ])
def reports(request: Request, name: str):
    """Bench/eval reports kept in the collection's ``reports/<report>/`` folders."""
    root = _reports_dir(request, name)
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not d.is_dir():
            continue
        files = sorted(f.name for f in d.iterdir() if f.is_file() and f.suffix in REPORT_FILES)
        plot = next((f for f in files if f.endswith(".svg")), None) or next((f for f in files if f.endswith(".png")), None)
        kind = "eval" if "eval" in d.name else "bench"
        out.append({"name": d.name, "kind": kind, "files": files,
                    "plot": f"/v1/collections/{name}/reports/{d.name}/{plot}" if plot else None})
    return {"reports": out}


@router.get("/collections/{name}/reports/{report}/{file}", dependencies=[READ],
            responses={200: {"content": {"image/svg+xml": {}, "image/png": {}, "application/json": {}}}})
def report_file(request: Request, name: str, report: str, file: str):
    root = _reports_dir(request, name)
    path = root / report / file
    if ("/" in report or "/" in file or report.startswith(".") or file.startswith(".")
            or path.suffix not in REPORT_FILES or not path.is_file()):
        raise ApiError(404, f"no report file {report}/{file} in collection {name!r}")
    return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
