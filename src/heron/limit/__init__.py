"""The LIMIT stress test: a generator of LIMIT-style data and the free-embedding experiment.

Weller, Boratko, Naim & Lee, "On the Theoretical Limitations of Embedding-Based Retrieval", 2025.
"""

from heron.limit.free_embedding import critical_n, solve_free_embedding
from heron.limit.generator import generate_limit, write_beir

__all__ = ["critical_n", "generate_limit", "solve_free_embedding", "write_beir"]
