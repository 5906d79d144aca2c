r"""The bound family of Trust Region Masking (``docs/theory.md §4``; sharp constants ``§5``).

Layout:

- :mod:`~trm_bounds.bounds.formulas` -- the twelve formulas (scalar reference path);
- :mod:`~trm_bounds.bounds.registry` -- one :class:`BoundSpec` per bound (labels, scaling,
  family, plot style), :data:`BOUNDS`, :data:`BOUND_NAMES`, :data:`UNIFIED_MEMBERS`;
- :mod:`~trm_bounds.bounds.prefix` -- the prefix sums every bound is built from;
- :mod:`~trm_bounds.bounds.vectorised` -- the array path over many ``T`` at once;
- :mod:`~trm_bounds.bounds.validate` -- ranges and the relations of ``docs/theory.md §3``;
- :mod:`~trm_bounds.bounds.compute` -- :func:`compute_bounds`, :func:`kl_only`;
- :mod:`~trm_bounds.bounds.plugin` -- :func:`plugin_bounds`, the one rule for estimates;
- :mod:`~trm_bounds.bounds.closed_forms` -- the paper's closed forms and their regimes.
- :mod:`~trm_bounds.bounds.table` -- :func:`format_bounds_table`, the bounds as text.

>>> b = compute_bounds(4096, eps=5e-3, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)
>>> round(b["unified"], 1)
4.1
"""

from trm_bounds.bounds.closed_forms import (
    coupling_closed_form,
    coupling_regime,
    mix_kl_closed_form,
    mix_tv_closed_form,
    pm_kl_closed_form,
    pm_regime,
    pm_tv_closed_form,
)
from trm_bounds.bounds.compute import compute_bounds, kl_only
from trm_bounds.bounds.formulas import (
    adaptive_hybrid,
    adaptive_kl,
    adaptive_tv,
    classical_kl,
    classical_tv,
    coupling,
    linear,
    mix_kl,
    mix_tv,
    pm_kl,
    pm_tv,
    unified,
)
from trm_bounds.bounds.plugin import plugin_bounds
from trm_bounds.bounds.prefix import adaptive_crossover, sum_sqrt
from trm_bounds.bounds.registry import BOUND_NAMES, BOUNDS, DIVERGENCES, UNIFIED_MEMBERS, BoundSpec
from trm_bounds.bounds.table import format_bounds_table
from trm_bounds.bounds.validate import RELATION_TOL, T_MAX, validate

__all__ = [
    "BOUND_NAMES",
    "BOUNDS",
    "BoundSpec",
    "DIVERGENCES",
    "UNIFIED_MEMBERS",
    "compute_bounds",
    "kl_only",
    "plugin_bounds",
    "validate",
    "format_bounds_table",
    "classical_tv",
    "classical_kl",
    "coupling",
    "pm_kl",
    "pm_tv",
    "mix_kl",
    "mix_tv",
    "adaptive_kl",
    "adaptive_tv",
    "adaptive_hybrid",
    "linear",
    "unified",
    "pm_kl_closed_form",
    "pm_tv_closed_form",
    "mix_kl_closed_form",
    "mix_tv_closed_form",
    "coupling_closed_form",
    "pm_regime",
    "coupling_regime",
    "adaptive_crossover",
    "sum_sqrt",
    "RELATION_TOL",
    "T_MAX",
]
