"""Exact top-k kernels shared by every retriever (numpy + numba)."""
