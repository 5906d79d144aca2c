"""The one tolerance pair of the test-suite (STYLE.md habit 8).

Numerical identities between two float64 computations of the same quantity are
asserted with ``np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)``.
Inequalities ``x <= bound`` are asserted as ``x <= bound * (1 + RTOL) + ATOL``.
Comparisons with the paper's printed numbers use the paper's own rounding instead
(half a unit of the last printed digit), stated at each such test.
"""

RTOL = 1e-10
ATOL = 1e-12


def leq(x, bound) -> bool:
    """``x <= bound`` up to the suite's tolerance pair (elementwise, all)."""
    import numpy as np

    return bool(np.all(np.asarray(x) <= np.asarray(bound) * (1 + RTOL) + ATOL))
