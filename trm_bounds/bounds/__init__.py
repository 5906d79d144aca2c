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

from trm_bounds.bounds import closed_forms, compute, formulas, plugin, registry
from trm_bounds.bounds import validate as _validate
from trm_bounds.bounds.closed_forms import *  # noqa: F403  (re-exported: see __all__)
from trm_bounds.bounds.compute import *  # noqa: F403
from trm_bounds.bounds.formulas import *  # noqa: F403
from trm_bounds.bounds.plugin import *  # noqa: F403
from trm_bounds.bounds.prefix import sum_sqrt
from trm_bounds.bounds.registry import *  # noqa: F403
from trm_bounds.bounds.table import format_bounds_table
from trm_bounds.bounds.validate import *  # noqa: F403

__all__ = [
    *registry.__all__, *compute.__all__, *plugin.__all__, *_validate.__all__,
    *formulas.__all__, *closed_forms.__all__, "format_bounds_table", "sum_sqrt",
]  # fmt: skip
