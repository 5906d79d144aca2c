"""trm-bounds: the error bounds behind Trust Region Masking, computed, verified and applied.

The mathematical specification is THEORY.md (shipped beside the repository in
``shared/THEORY.md``); each public function names the section it implements.
This module re-exports the small public API and imports neither torch nor matplotlib.
"""

from trm_bounds.bounds import BOUND_NAMES, compute_bounds, kl_only
from trm_bounds.divergences import k1, k2, k3, kl, tv

__all__ = [
    "BOUND_NAMES",
    "compute_bounds",
    "kl_only",
    "kl",
    "tv",
    "k1",
    "k2",
    "k3",
]

__version__ = "0.1.0"
