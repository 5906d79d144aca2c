r"""The actual surrogate error of a logged run, estimated (docs/theory.md §2, §9).

For sequences sampled from :math:`\pi_{\text{roll}}` with rewards ``R`` and
:math:`S = \sum_t r_t = \log\prod_t\rho_t`:

.. math::

    \mathrm{Error} = \mathbb E_{\text{roll}}\Big[R\Big(\prod_t\rho_t - 1 - \sum_t(\rho_t - 1)\Big)\Big],
    \quad J_\theta - J_{\text{roll}} = \mathbb E_{\text{roll}}[R(\prod_t\rho_t - 1)],
    \quad L' = \mathbb E_{\text{roll}}\Big[R\sum_t(\rho_t - 1)\Big],

each estimated by the sample mean of its per-sequence term (computed with ``expm1``), which is
unbiased under :math:`\pi_\theta \ll \pi_{\text{roll}}`.  These are **estimates**, not
certificates: :math:`\prod_t\rho_t` is heavy-tailed, so the interval
:math:`\hat\mu \pm z_{1-\alpha/2}\,\hat\sigma/\sqrt N` relies on the central limit theorem and
can under-cover badly when the effective sample size
:math:`\mathrm{ESS} = (\sum_i w_i)^2/\sum_i w_i^2`, :math:`w_i = \prod_t\rho_{it}`, is small
(Kish 1965; Owen 2013, §9.3).  Without absolute continuity, sequences that only
:math:`\pi_\theta` can produce are never sampled and :math:`J_\theta` is underestimated.

>>> import numpy as np
>>> lp = np.log(np.full((4, 3), 0.5))
>>> estimate_error(lp, lp, np.ones((4, 3)), np.ones(4))["error"]["estimate"]
0.0
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from trm_bounds.certify.samples import as_float64, valid_log_ratios

__all__ = ["estimate_error", "ESS_WARN_FRACTION"]

#: ESS / N below which the interval is flagged as unreliable.
ESS_WARN_FRACTION = 0.1


def _summary(v: np.ndarray, z: float) -> dict[str, float]:
    """Sample mean, standard error and CLT interval of per-sequence terms ``v`` ``(N,)``."""
    n = v.shape[0]
    mean = float(v.mean())
    se = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return {"estimate": mean, "se": se, "lo": mean - z * se, "hi": mean + z * se}


def estimate_error(log_probs: Any, rollout_log_probs: Any, mask: Any, rewards: Any, *,
                   level: float = 0.95) -> dict[str, Any]:
    r"""Estimates of Error, ``J_theta - J_roll`` and ``L'`` with CLT intervals and the ESS.

    ``log_probs``, ``rollout_log_probs``, ``mask``: ``(B, T)`` as in
    :func:`trm_bounds.certify.certify_linear`; ``rewards``: ``(B,)`` finite.  Returns
    ``level``, ``n_sequences``, ``error``, ``J_diff``, ``L_prime`` (each a dict ``estimate``,
    ``se``, ``lo``, ``hi``), ``ess`` and ``ess_fraction`` of the weights
    :math:`\prod_t\rho_t`, ``warnings`` and ``assumptions`` (lists of strings).
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {float(level)}")
    r, valid = valid_log_ratios(log_probs, rollout_log_probs, mask)
    R = as_float64(rewards, "rewards").reshape(-1)
    if R.shape[0] != r.shape[0]:
        raise ValueError(f"rewards: {R.shape[0]} values for {r.shape[0]} sequences")
    if not np.all(np.isfinite(R)):
        raise ValueError(f"rewards: NaN or inf (value {float(R[~np.isfinite(R)][0])})")
    S = r.sum(axis=1)  # (B,) log prod rho, may be -inf
    with np.errstate(over="ignore"):
        jd = R * np.expm1(S)  # (B,)
    lpr = R * np.where(valid, np.expm1(r), 0.0).sum(axis=1)  # (B,)
    err = jd - lpr
    z = NormalDist().inv_cdf(1.0 - (1.0 - float(level)) / 2.0)
    n = r.shape[0]
    finite = np.isfinite(S)
    # Kish ESS of w = exp(S), scaled by the largest weight (S is finite or -inf, never +inf)
    w = np.exp(S - S[finite].max()) if finite.any() else np.zeros(n)
    ess = float(w.sum() ** 2 / (w**2).sum()) if w.sum() > 0 else 0.0
    warnings = []
    if ess < ESS_WARN_FRACTION * n:
        warnings.append(f"effective sample size of prod_t rho_t is {ess:.3g} of {n} sequences: "
                        "the interval of error and J_diff is unreliable (heavy tails)")
    if not np.isfinite(err).all():
        warnings.append("prod_t rho_t overflows float64 on some sequence: estimates are inf")
    return {
        "level": float(level),
        "n_sequences": n,
        "error": _summary(err, z),
        "J_diff": _summary(jd, z),
        "L_prime": _summary(lpr, z),
        "ess": ess,
        "ess_fraction": ess / n,
        "warnings": warnings,
        "assumptions": [
            "estimates, not certified bounds: intervals are CLT intervals (normal "
            f"approximation at level {float(level)}), which heavy-tailed prod_t rho_t can break",
            "rows are i.i.d. sequences from pi_roll with their rewards",
            "unbiased only under pi_theta << pi_roll (rollouts without top-p/top-k truncation); "
            "otherwise J_theta and Error are underestimated",
        ],
    }
