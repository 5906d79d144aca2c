"""trm-bounds: the error bounds behind Trust Region Masking, computed, verified and applied.

The mathematical specification is ``docs/theory.md``; each public function names the section
(``§N``) it implements.  This module re-exports the small public
API and imports neither torch nor matplotlib (those live in ``trm_bounds.transformer``,
``trm_bounds.masking`` and ``trm_bounds.plot``).
"""

from trm_bounds.bounds import BOUND_NAMES, compute_bounds, kl_only
from trm_bounds.divergences import k1, k2, k3, kl, tv
from trm_bounds.engines.tree import exact_report
from trm_bounds.instances import TreeInstance, load_instances, write_instances

__all__ = [
    "BOUND_NAMES",
    "compute_bounds",
    "kl_only",
    "kl",
    "tv",
    "k1",
    "k2",
    "k3",
    "TreeInstance",
    "exact_report",
    "load_instances",
    "write_instances",
]

__version__ = "0.1.0"
