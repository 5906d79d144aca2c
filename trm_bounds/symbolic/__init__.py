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

from trm_bounds.symbolic.expressions import (
    ARGS,
    BOUND_NAMES,
    REGIMES,
    UNIFIED_MEMBERS,
    ClosedForm,
    Dbar,
    T,
    adaptive_crossover,
    bound_expr,
    bound_registry,
    closed_forms,
    delta,
    dkl_seq,
    drop_caps,
    dtv_seq,
    eps,
    leading_exponent,
    numeric,
    t,
    worst_case,
)
from trm_bounds.symbolic.proofs import (
    prove_adaptive_equals_pm_kl,
    prove_adaptive_tv_equals_coupling,
    prove_closed_form_equalities,
    prove_coupling_large_upper,
    prove_k3_unbiased,
    prove_pm_closed_forms_upper,
    prove_sharp_is_half,
    prove_telescoping,
    reversal_equal,
)

__all__ = [
    "T",
    "t",
    "eps",
    "delta",
    "dkl_seq",
    "dtv_seq",
    "Dbar",
    "ARGS",
    "BOUND_NAMES",
    "UNIFIED_MEMBERS",
    "REGIMES",
    "ClosedForm",
    "bound_expr",
    "bound_registry",
    "worst_case",
    "drop_caps",
    "closed_forms",
    "leading_exponent",
    "adaptive_crossover",
    "numeric",
    "reversal_equal",
    "prove_telescoping",
    "prove_k3_unbiased",
    "prove_adaptive_equals_pm_kl",
    "prove_adaptive_tv_equals_coupling",
    "prove_sharp_is_half",
    "prove_closed_form_equalities",
    "prove_pm_closed_forms_upper",
    "prove_coupling_large_upper",
]
