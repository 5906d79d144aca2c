r"""Discrete decisions drawn from computed floats, made only far from their thresholds.

A sentence printed from floats (a number rounded to some digits, a fit found or not, a
power-law window, a sign change, "vacuous" or not) must read the same on every CPU.  Floats
computed on two CPUs differ by summation order and library kernels (``exp``, ``log``, BLAS):
in this toolkit's float64 engines by relative amounts of order ``1e-12`` or less
(``docs/theory.md §2``, "How the engines compute it").  Every such decision therefore states a
margin far above that noise, and refuses to decide (:class:`MarginError`) when its input lies
inside the margin, instead of printing a sentence that another CPU would print differently.

The margins (each used where the decision is made):

- :data:`REL_NOISE` ``= 1e-9``: the relative perturbation of every computed input that a
  decision must survive, a thousand times the cross-CPU differences.  The perturbation test
  of ``tests/claims`` multiplies every float of every committed result file by ``1 + u``,
  ``|u| <= REL_NOISE``, and requires ``paper_repro.md`` to read the same.
- :data:`TEXT_GUARD` ``= 1e-8``: a number is printed only when every value within relative
  ``TEXT_GUARD`` of it (plus an absolute tolerance for values near zero, stated by the
  caller) prints the same text, i.e. when it lies at least ``1e-8`` (relative) from a rounding
  boundary: ten times :data:`REL_NOISE`, ten thousand times the cross-CPU differences, and a
  thousandth of the resolution of the longest numbers printed (6 significant digits), so a
  value is refused only when it lies within 0.1% of a unit from a half-unit boundary.
- Thresholds of decisions (a tolerance on local slopes, a floor on a decay): the decision is
  taken twice, with every input moved by its noise against the threshold and towards it
  (:func:`agreed`); it stands only if both agree.

None of these decisions is silent: a value in a margin raises :class:`MarginError` naming
the quantity, so a computation that lands there is seen, not printed differently elsewhere.
The one exception is a figure caption (:func:`stable_number`, margin :data:`CAPTION_MARGIN`):
a caption must be written whatever the numbers, so a value near a rounding midpoint is printed
with one digit less instead of being refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

__all__ = ["REL_NOISE", "TEXT_GUARD", "CAPTION_MARGIN", "MarginError", "text", "agreed",
           "above", "residual", "stable_number"]

#: Relative perturbation of computed inputs every decision must survive (1000x float noise).
REL_NOISE = 1e-9
#: Relative distance a printed number keeps from every rounding boundary (10x REL_NOISE).
TEXT_GUARD = 1e-8

#: Relative margin of a caption's numbers (:func:`stable_number`): a value within
#: ``CAPTION_MARGIN`` (relative) of a rounding midpoint is printed with one digit less (where it
#: lies at least 0.05 units from a midpoint), so rounding never decides on float noise.  1e-6 is
#: 1e10 times double precision and 1e3 times :data:`REL_NOISE`; the text of a value changes
#: under a perturbation ``u`` only where the value lies within ``|u|`` of a point at distance
#: exactly ``CAPTION_MARGIN`` from a midpoint.
CAPTION_MARGIN: float = 1e-6

_T = TypeVar("_T")


class MarginError(ValueError):
    """A decision drawn from floats lies within its margin of a threshold: it could read
    differently on another CPU, so it is not made."""


def _clean(s: str) -> str:
    """``'-0.00'`` -> ``'0.00'``: a zero printed with a sign is the same zero."""
    try:
        return s[1:] if s.startswith("-") and float(s) == 0 else s
    except ValueError:
        return s


def text(x: float, spec: str, *, what: str, rel: float = TEXT_GUARD, atol: float = 0.0) -> str:
    """``format(x, spec)``, provided every value within ``rel |x| + atol`` of ``x`` prints the
    same text (the margin of this module's docstring); else :class:`MarginError`.

    >>> text(0.1234, ".2f", what="slope")
    '0.12'
    >>> text(-1e-17, ".2f", what="slope", atol=1e-6)
    '0.00'
    >>> try:
    ...     text(0.125, ".2f", what="slope")
    ... except MarginError as e:
    ...     print(str(e)[-24:])
    (prints as 0.12 or 0.13)
    """
    x = float(x)
    s = _clean(format(x, spec))
    d = rel * abs(x) + atol
    lo, hi = _clean(format(x - d, spec)), _clean(format(x + d, spec))
    if lo != s or hi != s:
        raise MarginError(f"{what} = {x!r} lies within {d:.2g} of a rounding boundary of "
                          f"{spec!r} (prints as {lo} or {hi})")  # fmt: skip
    return s


def agreed(decide: Callable[[float], _T], *, what: str) -> _T:
    """The outcome of ``decide(slack)`` for ``slack = -1`` and ``+1``, which must agree.

    ``decide`` takes every comparison of its computed inputs against its thresholds with
    the inputs' noise counted ``slack`` times in favour of passing: ``-1`` demands a pass by
    more than the noise, ``+1`` allows a pass within it.  Equal outcomes mean no comparison
    lay within its noise of its threshold; else :class:`MarginError`.

    >>> agreed(lambda s: 0.5 + s * 1e-9 > 0.25, what="x > 0.25")
    True
    """
    strict, lenient = decide(-1.0), decide(1.0)
    if strict != lenient:
        raise MarginError(f"{what}: the outcome changes within the inputs' noise "
                          f"({strict!r} against {lenient!r})")  # fmt: skip
    return strict


def above(x: float, threshold: float, *, what: str, rel: float = TEXT_GUARD,
          atol: float = 0.0) -> bool:  # fmt: skip
    """``x > threshold``, decided only when ``|x - threshold| > rel |threshold| + atol``.

    >>> above(1.01, 1.0, what="B*")
    True
    >>> above(1.0 + 1e-9, 1.0, what="B*")
    Traceback (most recent call last):
    ...
    trm_bounds.margins.MarginError: B* = 1.000000001 lies within 1e-08 of its threshold 1.0
    """
    x, threshold = float(x), float(threshold)
    if abs(x - threshold) <= rel * abs(threshold) + atol:
        raise MarginError(f"{what} = {x!r} lies within {rel * abs(threshold) + atol:.2g} of its "
                          f"threshold {threshold!r}")  # fmt: skip
    return x > threshold


def residual(x: float, tol: float, *, what: str, factor: float = 100.0) -> str:
    """``'< tol'`` for a rounding-level residual ``0 <= x < tol / factor``; a residual within
    a ``factor`` of ``tol`` is too close to call (:class:`MarginError`), and a larger one is
    printed (``'= 3.1e-05'``, itself at :data:`TEXT_GUARD` from a rounding boundary).

    >>> residual(3e-16, 1e-12, what="gap"), residual(0.5, 1e-12, what="gap")
    ('< 1e-12', '= 5.0e-01')
    """
    x = float(x)
    if x < tol / factor:
        return f"< {tol:g}"
    if x <= tol * factor:
        raise MarginError(f"{what} = {x!r} lies within a factor {factor:g} of its tolerance "
                          f"{tol:g}")  # fmt: skip
    return "= " + text(x, ".1e", what=what)


def stable_number(x: float, digits: int = 2, *, fixed: bool = True) -> str:
    """``x`` rounded to ``digits`` decimals (``fixed``) or significant digits; one digit less
    where ``x`` lies within :data:`CAPTION_MARGIN` (relative) of a rounding midpoint.

    >>> stable_number(0.999614), stable_number(829.08, 0), stable_number(2.4500000001, 1)
    ('1.00', '829', '2')
    """
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return f"{x:g}" if not fixed else f"{x:.{digits}f}"
    d = digits if fixed else digits - 1 - math.floor(math.log10(abs(x)))
    scaled = abs(x) * 10.0**d
    if abs(scaled - math.floor(scaled) - 0.5) < CAPTION_MARGIN * scaled:
        d -= 1  # at one digit less the value is 0.05 units or more from a midpoint
    return f"{round(x, d) + 0.0:.{max(d, 0)}f}"
