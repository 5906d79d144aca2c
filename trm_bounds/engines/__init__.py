"""Exact engines: each computes the :class:`~trm_bounds.report.ExactReport` of a policy pair.

- :mod:`~trm_bounds.engines.tree`: enumeration of every response of a tree instance;
- :mod:`~trm_bounds.engines.dp`: dynamic programming on a finite-state instance (long ``T``);
- :mod:`~trm_bounds.engines.neural`: enumeration of small transformer pairs (needs torch).

Submodules are imported explicitly (``from trm_bounds.engines.tree import exact_report``),
so this package imports neither torch nor an engine it does not need.
"""
