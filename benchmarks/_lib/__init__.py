"""Code used only by the benchmarks (and the tests that check it), kept out of the ``heron`` package.

* :mod:`_lib.synthetic_sparse` — seeded Zipfian learned-sparse corpora (the 1M Seismic bar).
* :mod:`_lib.pages` — memory touched and freed before a timed build (a VM's first-touch cost).

The adapter over the authors' Rust Seismic is :mod:`heron.sparse.pyseismic` (the default Seismic
backend when installed).

Scripts in ``benchmarks/`` import it as ``_lib`` (their folder is first on ``sys.path``); the
tests add ``benchmarks/`` to ``sys.path`` in ``tests/conftest.py``.
"""
