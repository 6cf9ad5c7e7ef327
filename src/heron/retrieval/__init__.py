"""Retrievers over collections: exact dense, BM25, and the registry other packages extend."""

from heron.retrieval.registry import get_retriever, register_retriever, retriever_names

__all__ = ["get_retriever", "register_retriever", "retriever_names"]
