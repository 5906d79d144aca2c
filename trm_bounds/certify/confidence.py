r"""Confidence bounds for the mean of i.i.d. variables in ``[0, upper]`` (docs/theory.md §9).

Three one-sided bounds, each valid for every distribution on ``[0, upper]`` at every ``n``:

- ``"hoeffding"``: :math:`\hat\mu + B\sqrt{\log(1/\alpha)/(2n)}` (Hoeffding 1963).
- ``"bernstein"``: the empirical Bernstein bound of Maurer & Pontil (2009, Thm 4),
  :math:`\hat\mu + \sqrt{2 V_n \log(2/\alpha)/n} + 7B\log(2/\alpha)/(3(n-1))`, with
  :math:`V_n` the unbiased sample variance.
- ``"betting"``: the betting bound of Waudby-Smith & Ramdas (2024, JRSS-B, §4 and
  Remark 1 for the fixed-``n`` tuning).  For a candidate mean ``m`` the capital
  :math:`K_n(m) = \prod_{i\le n}\bigl(1 + \lambda_i (m - x_i/B)\bigr)` with predictable
  bets :math:`\lambda_i = \min\bigl(\sqrt{2\log(1/\alpha)/(n\hat\sigma^2_{i-1})},\,
  3/4\bigr)` is a non-negative supermartingale when the true mean is ``>= m``, so by
  Ville's inequality :math:`P(K_n(\mu) \ge 1/\alpha) \le \alpha`.  The bets do not
  depend on ``m`` and every factor is non-decreasing in ``m``, so ``K_n`` is monotone and
  the bound :math:`\sup\{m: K_n(m) < 1/\alpha\}` is found by bisection (rounded up).
  The truncation at 3/4 (instead of the paper's ``c/(1-m)``) keeps the monotonicity
  exact; it costs nothing while ``m <= 1/4``.

Symbols: ``x`` the samples (shape ``(n,)``, or ``(R, n)`` for ``R`` independent
batches), ``B = upper``, ``alpha = 1 - level``.  Lower bounds come from the reflection
``x -> B - x``.  The betting bound uses the samples in the given order (the bets are
predictable); for i.i.d. samples any fixed order is valid.

>>> import numpy as np
>>> x = np.zeros(100)
>>> round(upper_confidence_bound(x, upper=1.0, level=0.95, method="hoeffding"), 4)
0.1224
>>> upper_confidence_bound(x, upper=1.0, level=0.95, method="betting") < 0.05
True
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["METHODS", "upper_confidence_bound", "lower_confidence_bound", "mean_interval",
           "upper_confidence_bounds"]

#: The implemented methods, tightest first in typical use.
METHODS = ("betting", "bernstein", "hoeffding")

#: Largest bet; keeps every factor >= 1/4 and K_n monotone in m.
_LAMBDA_MAX = 0.75
#: Bisection steps on [0, 1] (2^-50 resolution, rounded up).
_BISECT = 50


def _check(x: ArrayLike, upper: float, level: float, method: str) -> np.ndarray:
    """Validate and return ``x`` as a float64 array of shape (R, n)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {float(level)}")
    if not (math.isfinite(float(upper)) and float(upper) > 0.0):
        raise ValueError(f"upper must be finite and > 0, got {float(upper)}")
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"x must have shape (n,) or (R, n) with n >= 1, got {a.shape}")
    if method == "bernstein" and a.shape[1] < 2:
        raise ValueError("method 'bernstein' needs n >= 2 samples, got 1")
    if not np.all(np.isfinite(a)):
        raise ValueError("x contains NaN or inf")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > float(upper):
        raise ValueError(f"x must lie in [0, upper={float(upper)}], got range [{lo}, {hi}]")
    return a


def _hoeffding(z: np.ndarray, alpha: float) -> np.ndarray:
    """Hoeffding UCB for rows of ``z`` in [0, 1]."""
    n = z.shape[1]
    return z.mean(axis=1) + math.sqrt(math.log(1.0 / alpha) / (2.0 * n))


def _bernstein(z: np.ndarray, alpha: float) -> np.ndarray:
    """Maurer-Pontil empirical Bernstein UCB (their Thm 4) for rows of ``z`` in [0, 1]."""
    n = z.shape[1]
    lg = math.log(2.0 / alpha)
    var = z.var(axis=1, ddof=1)
    return z.mean(axis=1) + np.sqrt(2.0 * var * lg / n) + 7.0 * lg / (3.0 * (n - 1))


def _bets(z: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable bets lambda_i (shape of ``z``), fixed-n tuning of Waudby-Smith & Ramdas."""
    R, n = z.shape
    i = np.arange(1, n + 1, dtype=np.float64)
    mu = (0.5 + np.cumsum(z, axis=1)) / (i + 1.0)  # mu_hat_i, i = 1..n
    mu_prev = np.concatenate([np.full((R, 1), 0.5), mu[:, :-1]], axis=1)
    sig2 = (0.25 + np.cumsum((z - mu_prev) ** 2, axis=1)) / (i + 1.0)
    sig2_prev = np.concatenate([np.full((R, 1), 0.25), sig2[:, :-1]], axis=1)
    lam = np.sqrt(2.0 * math.log(1.0 / alpha) / (n * sig2_prev))
    return np.minimum(lam, _LAMBDA_MAX)


def _betting(z: np.ndarray, alpha: float) -> np.ndarray:
    """Betting UCB for rows of ``z`` in [0, 1]: bisection on the monotone log-capital."""
    lam = _bets(z, alpha)
    thresh = math.log(1.0 / alpha)
    lo = np.zeros(z.shape[0])  # log K(lo) < thresh is not required: lo only moves up
    hi = np.ones(z.shape[0])  # K(1) may be < 1/alpha: then the bound is 1
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        logk = np.log1p(lam * (mid[:, None] - z)).sum(axis=1)
        reject = logk >= thresh
        hi = np.where(reject, mid, hi)
        lo = np.where(reject, lo, mid)
    return hi


def upper_confidence_bounds(x: ArrayLike, *, upper: float, level: float = 0.95,
                            method: str = "betting") -> np.ndarray:
    """Row-wise :func:`upper_confidence_bound` for ``x`` of shape (R, n); returns (R,)."""
    a = _check(x, upper, level, method)
    alpha = 1.0 - float(level)
    z = a / float(upper)
    f = {"hoeffding": _hoeffding, "bernstein": _bernstein, "betting": _betting}[method]
    return np.minimum(f(z, alpha), 1.0) * float(upper)


def upper_confidence_bound(x: ArrayLike, *, upper: float, level: float = 0.95,
                           method: str = "betting") -> float:
    r"""Upper confidence bound ``U`` with :math:`P(\mathbb{E}x \le U) \ge` ``level``.

    ``x``: i.i.d. samples in ``[0, upper]``, shape ``(n,)``.  ``method``: ``"betting"``
    (default, tightest), ``"bernstein"`` or ``"hoeffding"`` (module docstring for the
    formulas).  The result is capped at ``upper``.  docs/theory.md §9.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"x must have shape (n,), got {a.shape}")
    return float(upper_confidence_bounds(a, upper=upper, level=level, method=method)[0])


def lower_confidence_bound(x: ArrayLike, *, upper: float, level: float = 0.95,
                           method: str = "betting") -> float:
    r"""Lower confidence bound ``L`` with :math:`P(\mathbb{E}x \ge L) \ge` ``level``.

    The reflection :math:`L = B - U(B - x)` of :func:`upper_confidence_bound`, floored at 0.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"x must have shape (n,), got {a.shape}")
    _check(a, upper, level, method)
    u = upper_confidence_bound(float(upper) - a, upper=upper, level=level, method=method)
    return max(0.0, float(upper) - u)


def mean_interval(x: ArrayLike, *, upper: float, level: float = 0.95,
                  method: str = "betting") -> tuple[float, float]:
    r"""Two-sided interval ``(L, U)`` covering :math:`\mathbb{E}x` with probability ``>= level``.

    Each side at level ``1 - alpha/2`` (union bound).
    """
    side = 1.0 - (1.0 - float(level)) / 2.0
    return (lower_confidence_bound(x, upper=upper, level=side, method=method),
            upper_confidence_bound(x, upper=upper, level=side, method=method))
