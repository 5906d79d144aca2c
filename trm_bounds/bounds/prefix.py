r"""The prefix sums every bound of ``docs/theory.md §4`` is built from.

Each capped sum over ``t = 1..T`` of ``docs/theory.md §4`` is, after the index shift
``k = t - 1`` (or the reversal ``k = T - t``), one of three prefix sums at ``n = T - 1``:

.. math::

    C(n) = \sum_{k=0}^{n} \min(1, k\varepsilon), \qquad
    P(n) = \sum_{k=0}^{n} \min\bigl(1, \sqrt{k\delta/2}\bigr), \qquad
    H(n) = \sum_{k=0}^{n} \min\bigl(1, k\varepsilon, \sqrt{k\delta/2}\bigr),

with ``eps = D_TV^{tok,max}`` and ``delta = D_KL^{tok,max}`` (forward KL, nats).  They are
evaluated in closed form (piecewise-linear caps by their breakpoints, ``sum sqrt(k)`` by
Euler-Maclaurin), so a scalar or an array of ``n`` costs one vectorised pass.  The
scalar formulas (:mod:`trm_bounds.bounds.formulas`) and the array path
(:mod:`trm_bounds.bounds.vectorised`) both read these.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["sum_sqrt", "coupling_prefix", "pm_prefix", "hybrid_prefix", "adaptive_crossover",
           "kl_route", "tv_route", "leading_constant"]

Value = float | np.ndarray

_NTAB = 64
# Partial sums sum_{k=1}^n sqrt(k) for n < _NTAB, each correctly rounded (math.fsum).
_SQRT_TABLE = np.array([math.fsum(math.sqrt(k) for k in range(1, n + 1)) for n in range(_NTAB)])
# zeta(-1/2), the constant of the Euler-Maclaurin expansion (mpmath.zeta(-0.5), 30 digits).
_ZETA_M_HALF = -0.207886224977354566017306720913
# Euler-Maclaurin coefficients B_2j/(2j)! f^(2j-1)(n) for f = sqrt: n^(-1/2)/24,
# -n^(-5/2)/1920, n^(-9/2)/9216, -(10395/154828800) n^(-13/2).
_EM = (1.0 / 24.0, -1.0 / 1920.0, 1.0 / 9216.0, -10395.0 / 154828800.0)
# Above this n the terms past n^(-1/2)/24 change S(n) by less than 1e-18 relative.
_EM_ONE_TERM = 1000.0


def leading_constant(sharp: bool) -> float:
    """The leading constant of every capped bound: 4 published (§4), 2 sharp (``docs/theory.md §5``)."""
    return 2.0 if sharp else 4.0


def _sum_sqrt_em(n: np.ndarray, terms: int) -> np.ndarray:
    """Euler-Maclaurin for ``S(n)``, ``n >= 64`` (float array), with 1 or 4 correction terms."""
    s = np.sqrt(n)
    out = n * (2.0 / 3.0)
    out += 0.5
    out *= s
    out += _ZETA_M_HALF
    inv_s = np.reciprocal(s, out=s)
    if terms == 1:
        inv_s *= _EM[0]
    else:
        r2 = np.reciprocal(n)
        r2 *= r2
        inv_s *= _EM[0] + r2 * (_EM[1] + r2 * (_EM[2] + r2 * _EM[3]))
    out += inv_s
    return out


def sum_sqrt(n: ArrayLike) -> Value:
    r"""``S(n) = sum_{k=1}^n sqrt(k)`` for integer ``n >= 0`` (scalar or array).

    .. math:: S(n) = \zeta(-\tfrac12) + \tfrac23 n^{3/2} + \tfrac12 n^{1/2}
              + \tfrac1{24} n^{-1/2} - \tfrac1{1920} n^{-5/2} + \dots

    (Euler-Maclaurin; exact table for ``n < 64``; relative error below 1e-15, tested
    against mpmath's Hurwitz zeta.)

    >>> float(sum_sqrt(4)) == 1 + 2 ** 0.5 + 3 ** 0.5 + 2
    True
    """
    n = np.asarray(n, dtype=np.float64)
    if n.ndim == 0:
        if n < _NTAB:
            return float(_SQRT_TABLE[int(n)])
        return float(_sum_sqrt_em(n.reshape(1), 4)[0])
    out = _sum_sqrt_em(np.maximum(n, _EM_ONE_TERM), 1)
    mid = np.flatnonzero(n < _EM_ONE_TERM)
    if mid.size:
        nm = n[mid]
        vals = _sum_sqrt_em(np.maximum(nm, float(_NTAB)), 4)
        small = nm < _NTAB
        vals[small] = _SQRT_TABLE[nm[small].astype(np.int64)]
        out[mid] = vals
    return out


def _count_leq(x: Value, thresh: float) -> Value:
    """``floor(thresh)`` clipped to ``[0, x]``: how many ``k in 1..x`` satisfy ``k <= thresh``."""
    if not math.isfinite(thresh):
        return x
    return np.minimum(x, math.floor(thresh))


def _zeros(n: Value) -> Value:
    return np.zeros_like(n, dtype=np.float64) if isinstance(n, np.ndarray) else 0.0


def pm_prefix(n: Value, delta: float) -> Value:
    r"""``P(n) = sum_{k=0}^n min(1, sqrt(k delta / 2))`` (``docs/theory.md §4``, PM and Adaptive-KL).

    Below ``M = floor(2/delta)`` no cap binds, so ``P(n) = sqrt(delta/2) S(n)``; above it
    every extra term is 1.

    >>> float(pm_prefix(3.0, 2.0))  # 0 + 1 + 1 + 1
    3.0
    """
    if delta <= 0.0:
        return _zeros(n)
    m = _count_leq(n, 2.0 / delta)  # k <= 2/delta  <=>  sqrt(k delta/2) <= 1
    return math.sqrt(delta / 2.0) * sum_sqrt(m) + (n - m)


def coupling_prefix(n: Value, eps: float) -> Value:
    r"""``C(n) = sum_{k=0}^n min(1, k eps)`` (``docs/theory.md §4``, Coupling and Adaptive-TV).

    >>> float(coupling_prefix(4.0, 0.5))  # 0 + 0.5 + 1 + 1 + 1
    3.5
    """
    if eps <= 0.0:
        return _zeros(n)
    m = _count_leq(n, 1.0 / eps)  # k <= 1/eps  <=>  k eps <= 1
    return eps * m * (m + 1.0) / 2.0 + (n - m)


def adaptive_crossover(*, eps: float, delta: float) -> float:
    r"""The Adaptive route crossover (``docs/theory.md §4``): ``(T - t) eps = sqrt((T - t) delta / 2)``
    at ``T - t = delta / (2 eps^2)``; below it the TV route is smaller, above it the KL route.

    >>> adaptive_crossover(eps=5e-3, delta=1e-4)
    2.0
    """
    e2 = eps * eps
    return math.inf if e2 == 0.0 else delta / (2.0 * e2)


def hybrid_prefix(n: Value, eps: float, delta: float) -> Value:
    r"""``H(n) = sum_{k=0}^n min(1, k eps, sqrt(k delta / 2))`` (``docs/theory.md §4``, Adaptive-hybrid).

    ``k eps <= sqrt(k delta/2)`` iff ``k <= delta/(2 eps^2)`` (:func:`adaptive_crossover`), so
    ``H(n) = C(n)`` up to the crossover ``kc`` and ``C(kc) + P(n) - P(kc)`` beyond it.
    """
    if eps <= 0.0 or delta <= 0.0:
        return _zeros(n)
    low = _count_leq(n, adaptive_crossover(eps=eps, delta=delta))
    return coupling_prefix(low, eps) + (pm_prefix(n, delta) - pm_prefix(low, delta))


def kl_route(k: np.ndarray, delta: float) -> np.ndarray:
    """The KL-route weight ``min(1, sqrt(k delta / 2))`` (``docs/theory.md §4``)."""
    return np.minimum(1.0, np.sqrt(k * (delta / 2.0)))


def tv_route(k: np.ndarray, eps: float) -> np.ndarray:
    """The TV-route (coupling) weight ``min(1, k eps)`` (``docs/theory.md §4``)."""
    return np.minimum(1.0, k * eps)
