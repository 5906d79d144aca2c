r"""The Pareto ``k-hat`` tail diagnostic of importance sampling (docs/theory.md §9, PSIS).

Vehtari, Simpson, Gelman, Yao and Gabry, "Pareto Smoothed Importance Sampling", JMLR 25
(2024): fit a generalized Pareto distribution (GPD)

.. math::

    F(z) = 1 - \Big(1 + \frac{k z}{\sigma}\Big)^{-1/k}, \qquad z \ge 0,

to the exceedances :math:`z = v_{(i)} - v_{(S-M)}` of the ``M = ceil(min(S/5, 3 sqrt(S)))``
largest of ``S`` draws over the next one (paper §3, eq. 5).  The shape ``k`` is the number of
finite moments' reciprocal: ``k < 1/2`` finite variance (the central limit theorem applies),
``k >= 1`` not even a finite mean.  The paper's reliability threshold for ``S`` draws is
:math:`k < \min(1 - 1/\log_{10} S,\ 0.7)` (§3.2.4, eq. 13 with the §3.3 cap; a sample-size
dependent bound on the pre-asymptotic convergence); above it a Monte Carlo estimate of the mean
is not trustworthy.

The fit is the empirical-Bayes estimator of Zhang and Stephens (Technometrics 51, 2009), as in
the paper's reference implementation (the ``loo`` R package, ``gpdfit``): a quadrature over the
profile parameter ``theta = -k/sigma`` with weights from the profile likelihood, then the
weakly informative prior of the paper (``k`` shrunk towards 1/2 with weight 10 draws).
``scipy.stats.genpareto.fit`` is a maximum-likelihood fit, which the paper does not use (it is
unstable for ``k`` near 1/2 and small tails), hence this module.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ks = [pareto_khat(rng.pareto(2.0, 4000)) for _ in range(20)]  # Lomax(alpha = 2): k = 1/2
>>> abs(float(np.median(ks)) - 0.5) < 0.05
True
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["gpd_fit", "pareto_khat", "khat_threshold", "tail_length", "MIN_TAIL"]

#: Fewest exceedances a GPD fit is attempted on (the reference implementation's 5).
MIN_TAIL = 5


def tail_length(S: int) -> int:
    """``M = ceil(min(S / 5, 3 sqrt(S)))``, the tail size of the paper (§3, eq. 5);
    docs/theory.md §9."""
    return int(math.ceil(min(0.2 * S, 3.0 * math.sqrt(S))))


def khat_threshold(S: int) -> float:
    r"""Threshold :math:`\min(1 - 1/\log_{10} S,\ 0.7)` for ``S`` draws (paper §3.2.4; docs §9).

    ``S <= 10`` gives ``-inf`` or a negative value: too few draws for any estimate to be trusted.
    """
    if S <= 1:
        return -math.inf
    return min(1.0 - 1.0 / math.log10(S), 0.7)


def gpd_fit(z: ArrayLike) -> tuple[float, float]:
    r"""Zhang-Stephens estimate ``(k, sigma)`` of a GPD from exceedances ``z`` ``(M,)``, ``z > 0``
    (docs/theory.md §9).

    With the paper's prior on ``k`` (``(M k + 10 * 0.5) / (M + 10)``).  Scale equivariant:
    ``gpd_fit(c z) = (k, c sigma)``.
    """
    x = np.sort(np.asarray(z, dtype=np.float64))
    n = x.shape[0]
    if n < MIN_TAIL or not (x[0] > 0 and np.isfinite(x[-1])):
        raise ValueError(f"gpd_fit: need >= {MIN_TAIL} finite exceedances > 0, got {n}")
    m = 30 + int(math.sqrt(n))
    theta = 1.0 - np.sqrt(m / (np.arange(1, m + 1, dtype=np.float64) - 0.5))  # (m,)
    theta = theta / (3.0 * x[int(n / 4 + 0.5) - 1]) + 1.0 / x[-1]
    k = np.log1p(-theta[:, None] * x[None, :]).mean(axis=1)  # (m,) profile k(theta)
    # -theta / k = 1 / sigma; at theta = 0 (k = 0) its limit, the exponential's 1 / mean(x)
    inv_sigma = np.divide(-theta, k, out=np.full(m, 1.0 / x.mean()), where=k != 0)
    loglik = n * (np.log(inv_sigma) - k - 1.0)  # (m,) profile log-likelihood
    with np.errstate(over="ignore"):  # a huge ratio means a negligible weight: 1 / inf = 0
        w = 1.0 / np.exp(loglik[None, :] - loglik[:, None]).sum(axis=1)  # normalised weights
    keep = w >= 10 * np.finfo(np.float64).eps
    w, theta = w[keep] / w[keep].sum(), theta[keep]
    theta_hat = float((theta * w).sum())
    k_hat = float(np.log1p(-theta_hat * x).mean())
    sigma = -k_hat / theta_hat if theta_hat != 0 else float(x.mean())
    return (n * k_hat + 10 * 0.5) / (n + 10), sigma


def pareto_khat(values: ArrayLike) -> float:
    r"""Shape ``k-hat`` of the right tail of ``values`` ``(S,)`` (module docstring).

    The tail is the values strictly above the ``(M+1)``-th largest.  Returns ``+inf`` (no fit:
    not trusted) when the tail holds fewer than 5 distinct values, which includes a largest
    fifth made of one repeated value: on a discrete law that is what a sample looks like when
    it has not yet seen the rare values that carry the mean (docs/theory.md §9); continuous
    draws never tie.  ``+inf`` also for an infinite value.
    """
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    S = v.shape[0]
    if np.isnan(v).any():
        raise ValueError("pareto_khat: NaN in values")
    if S == 0 or v[-1] == np.inf:
        return math.inf
    M = min(tail_length(S), S - 1)
    if M < 1:
        return math.inf
    cut = v[S - M - 1]
    z = v[S - M:] - cut  # (M,) >= 0
    z = z[z > 0]
    if np.unique(z).shape[0] < MIN_TAIL:  # < 5 distinct exceedances: a few atoms, no tail fit
        return math.inf
    return gpd_fit(z)[0]
