"""Numbers printed from result files (captions, labels): rounded with a stated margin.

A caption that quotes a computed number must read the same on every CPU, so no rounding may
be decided by float noise: :func:`stable_number` prints more digits where a value lies within
:data:`MARGIN` (relative) of a rounding midpoint.
"""

from __future__ import annotations

import math

__all__ = ["MARGIN", "stable_number"]

#: Relative margin of every printed number: a value within ``MARGIN`` (relative) of a
#: rounding midpoint is printed with one digit less (where it lies at least 0.05 units from a
#: midpoint), so rounding never decides on float noise.  1e-6 is 1e10 times double precision
#: and 1e3 times the perturbation of the captions test (1e-9); the text of a value changes
#: under a perturbation ``u`` only where the value lies within ``|u|`` of a point at distance
#: exactly ``MARGIN`` from a midpoint.
MARGIN: float = 1e-6


def stable_number(x: float, digits: int = 2, *, fixed: bool = True) -> str:
    """``x`` rounded to ``digits`` decimals (``fixed``) or significant digits; one digit less
    where ``x`` lies within :data:`MARGIN` (relative) of a rounding midpoint.

    >>> stable_number(0.999614), stable_number(829.08, 0), stable_number(2.4500000001, 1)
    ('1.00', '829', '2')
    """
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return f"{x:g}" if not fixed else f"{x:.{digits}f}"
    d = digits if fixed else digits - 1 - math.floor(math.log10(abs(x)))
    scaled = abs(x) * 10.0**d
    if abs(scaled - math.floor(scaled) - 0.5) < MARGIN * scaled:
        d -= 1  # at one digit less the value is 0.05 units or more from a midpoint
    return f"{round(x, d) + 0.0:.{max(d, 0)}f}"
