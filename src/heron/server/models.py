"""Request and response bodies of the HTTP API (pydantic models; the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from heron import limits as hl

Meta = dict[str, Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateCollection(_Body):
    name: str = Field(min_length=1, max_length=128)
    model: str | None = Field(None, description="dense model name, or 'none' with dim")
    dim: int | None = Field(None, ge=1, le=65536)


class Documents(_Body):
    ids: list[str] | None = Field(None, max_length=hl.MAX_BATCH, description="default (add): new keys as ids")
    texts: list[str] = Field(max_length=hl.MAX_BATCH)
    metadata: list[Meta | None] | None = None
    vectors: list[list[float]] | None = None


class Ids(_Body):
    ids: list[str] = Field(max_length=hl.MAX_BATCH)


class SearchRequest(_Body):
    queries: list[str] | None = Field(None, description="query texts (or give vectors)")
    vectors: list[list[float]] | None = Field(None, description="query vectors (n, dim)")
    k: int = Field(10, ge=1, le=hl.MAX_K)
    using: str = Field("dense", min_length=1, max_length=1000)
    filter: Meta | None = None
    min_relevance: float | None = Field(None, ge=0, le=1)
    params: Meta | None = None
    with_metadata: bool = True
    with_text: bool = False
    snippet: bool = True
    explain: bool = False


class CreateIndex(_Body):
    name: str | None = Field(None, min_length=1, max_length=128)
    kind: str = Field(min_length=1, max_length=64)
    on: str | None = Field(None, min_length=1, max_length=128)
    build: bool = Field(True, description="false: only declare it; the first search that needs it builds it")
    params: Meta | None = None


class Explain(BaseModel):
    parts: dict[str, float | None]
    terms: list[tuple[str, float]] | None = None
    sparse_terms: list[tuple[str, float]] | None = None
    weights: dict[str, float] | None = None


class PassageOut(BaseModel):
    """The passage of a hit that matched (passage retrievers): its index in the document and
    its character span in the document's text."""

    index: int
    start: int
    end: int


class HitOut(BaseModel):
    id: str
    score: float
    rank: int
    metadata: Meta | None = None
    text: str | None = None
    snippet: str | None = None
    passage: PassageOut | None = None
    explain: Explain | None = None


class QueryResult(BaseModel):
    hits: list[HitOut]


class SearchResponse(BaseModel):
    results: list[QueryResult]
    score_kind: str
    using: str
    took_ms: float
    info: Meta


class CountOut(BaseModel):
    count: int
    keys: list[int] = Field(description="the documents' new internal keys")


class DeletedOut(BaseModel):
    deleted: int


class DroppedOut(BaseModel):
    dropped: bool


class DocOut(BaseModel):
    id: str
    text: str
    metadata: Meta


class GetOut(BaseModel):
    documents: list[DocOut | None]


class CollectionSummary(BaseModel):
    name: str
    documents: int
    model: str
    dim: int
    indexes: list[str]
    partial: bool | None = Field(None, description="a sharded collection: some shard did not answer")


class CollectionList(BaseModel):
    collections: list[CollectionSummary]


class MetadataField(BaseModel):
    name: str
    type: str
    examples: list[Any]


class CollectionInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    documents: int
    model: str
    dim: int
    retrievers: list[str]
    metadata_fields: list[MetadataField]
    indexes: list[Meta]


class IndexList(BaseModel):
    indexes: list[Meta]


class Report(BaseModel):
    name: str
    kind: str
    files: list[str]
    plot: str | None


class ReportList(BaseModel):
    reports: list[Report]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    collections: int
