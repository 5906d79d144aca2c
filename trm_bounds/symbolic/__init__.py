r"""The bound family of ``docs/theory.md §4`` (and ``§5``, sharp) in sympy.

- :mod:`~trm_bounds.symbolic.expressions`: one expression per entry of the bound registry
  (:data:`trm_bounds.bounds.BOUNDS`), closed forms and their regimes, exponents of ``T``
  computed by a sum sandwich, the Adaptive crossover, a ``lambdify`` reference path;
- :mod:`~trm_bounds.symbolic.proofs`: symbolic proofs of the identities of
  ``docs/theory.md §2, §4, §5, §6``.

>>> leading_exponent("pm_kl", "uniform")
3/2
>>> adaptive_crossover()
delta/(2*eps**2)
"""

from trm_bounds.symbolic import expressions, proofs
from trm_bounds.symbolic.expressions import *  # noqa: F403  (re-exported: see __all__)
from trm_bounds.symbolic.proofs import *  # noqa: F403

__all__ = [*expressions.__all__, *proofs.__all__]
