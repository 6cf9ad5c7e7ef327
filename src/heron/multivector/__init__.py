"""Multi-vector late interaction: ragged token storage, exact MaxSim, MUVERA, pooling, token codes.

Importing this package loads nothing heavy; each algorithm lives in its own module.
"""
