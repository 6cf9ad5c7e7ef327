"""Code used only by the benchmarks (and the tests that check it), kept out of the ``heron`` package.

* :mod:`_lib.synthetic_sparse` — seeded Zipfian learned-sparse corpora (the 1M Seismic bar);
* :mod:`_lib.pyseismic` — an adapter over the authors' Rust Seismic (``pyseismic-lsr``), the
  speed reference of ``seismic_bench.py``.

Scripts in ``benchmarks/`` import it as ``_lib`` (their folder is first on ``sys.path``); the
tests add ``benchmarks/`` to ``sys.path`` in ``tests/conftest.py``.
"""
