"""Certified bounds on the surrogate error from sampled logprobs (docs/theory.md §9).

Re-exports; imports neither torch nor matplotlib.
"""

from trm_bounds.certify.confidence import (
    lower_confidence_bound,
    mean_interval,
    upper_confidence_bound,
)
from trm_bounds.certify.error_estimate import estimate_error, estimate_error_sums
from trm_bounds.certify.error_interval import error_intervals
from trm_bounds.certify.linear import certify_linear, certify_sums

__all__ = [
    "certify_linear",
    "certify_sums",
    "estimate_error",
    "estimate_error_sums",
    "error_intervals",
    "upper_confidence_bound",
    "lower_confidence_bound",
    "mean_interval",
]
