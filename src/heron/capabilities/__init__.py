"""Capabilities: every retrieval method a collection can search with, behind one contract.

Each module registers its retrievers (``register_retriever``) and is declared in the
``heron.capabilities`` entry-point group; nothing imports it by a list of names.
"""

from heron.capabilities.registry import get_retriever, register_retriever, retriever_names

__all__ = ["get_retriever", "register_retriever", "retriever_names"]
