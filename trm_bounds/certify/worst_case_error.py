r"""A certificate that scales like ``T delta``: the exact worst-case error is a rollout mean
(docs/theory.md §10, Theorem 10.6).

For every pair of policies, **with or without** :math:`\pi_\theta \ll \pi_{\text{roll}}`,

.. math::

    \max_{R \in [0, 1]} |\mathrm{Error}| \;=\; \mathbb E_{\text{roll}}[Y], \qquad
    Y = \max\Big(1 - \prod_t \rho_t,\; \sum_t (1 - \rho_t)\Big),

with :math:`\rho_t` the ratio at the sampled tokens (1 at padding and after the end).  ``Y``
is observable on every logged sequence and bounded above,
:math:`Y \le \max(1, \sum_t(1 - \rho_t)_+) \le \max(1, T_i)`, though not below (``Y`` is very
negative on sequences ``theta`` boosts a lot, which only lowers the mean).  So
:math:`Y' = \max(Y, -\mathrm{clip})` lies in ``[-clip, max(1, T_max)]`` and has
:math:`\mathbb E Y' \ge \mathbb E Y`: an upper confidence bound on :math:`\mathbb E Y'`
(:mod:`trm_bounds.certify.confidence`) certifies :math:`\max_R|\mathrm{Error}|` at its level.

Its mean is the exact worst case, :math:`O(T\delta)` under a per-token KL budget (at most
:math:`\delta\sqrt{T(T-1)/2}(1 + o(1))` with absolute continuity, :math:`T\delta(1 + o(1))`
without: Theorems 10.3, 10.4), where Linear's :math:`\sum_t \bar D_t` is
:math:`O(T\sqrt\delta)`; its confidence slack is about
:math:`\sqrt{2\,\mathrm{Var}(Y)\log(1/\alpha)/N}` with :math:`\mathrm{Var}(Y) \approx 2T\delta`.

>>> import numpy as np
>>> lp = np.log(np.full((2048, 8), 0.5))  # theta = roll: max_R |Error| = 0
>>> out = certify_worst_case_error(lp, lp, np.ones((2048, 8)), T_max=8)
>>> out["estimate"], out["bound"] < 0.05
(0.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_bounds.certify.confidence import upper_confidence_bound
from trm_bounds.certify.linear import ORDER_SEED, check_T_max, unit_order
from trm_bounds.certify.samples import valid_log_ratios

__all__ = ["worst_case_error_terms", "certify_worst_case_error", "DEFAULT_CLIP"]

#: ``Y`` is clipped below at ``-DEFAULT_CLIP`` (needs ``prod rho > 1 + clip`` and
#: ``sum(rho - 1) > clip`` at once, so the clip costs nothing unless theta boosts whole
#: sequences); any ``clip >= 0`` keeps the certificate valid.
DEFAULT_CLIP = 1.0


def worst_case_error_terms(r: np.ndarray, valid: np.ndarray) -> np.ndarray:
    r"""``Y_i = max(1 - prod_t rho_t, sum_t (1 - rho_t))`` per sequence ``(B,)`` (module docstring).

    ``r`` ``(B, T)``: log-ratios, 0 at invalid positions (:func:`valid_log_ratios`).
    ``1 - prod rho = -expm1(sum r)`` and ``1 - rho_t = -expm1(r_t)`` keep their digits when
    ``rho`` is near 1; ``r = -inf`` (``theta`` gives a sampled token 0) gives ``rho = 0``.
    """
    with np.errstate(over="ignore"):
        one_minus_L = -np.expm1(np.sum(r, axis=1))
        deficit = np.sum(np.where(valid, -np.expm1(r), 0.0), axis=1)
    return np.maximum(one_minus_L, deficit)


def certify_worst_case_error(log_probs: Any, rollout_log_probs: Any, mask: Any, *,
                             T_max: Any = None, level: float = 0.95,
                             method: str = "betting", clip: float = DEFAULT_CLIP,
                             order_seed: int | None = ORDER_SEED) -> dict[str, Any]:  # fmt: skip
    r"""Certified upper bound on :math:`\max_R|\mathrm{Error}|` (docs/theory.md §10, Theorem 10.6).

    ``log_probs``, ``rollout_log_probs``, ``mask`` ``(B, T)`` as in
    :func:`trm_bounds.certify.linear.certify_linear` (rows i.i.d. from the rollout policy);
    ``T_max`` (required): the generation limit, known before the data
    (:func:`~trm_bounds.certify.linear.check_T_max`: the longest response in the log is not a
    valid range); ``level = 1 - alpha``; ``method``: a bound of
    :mod:`trm_bounds.certify.confidence`; ``clip >= 0``; ``order_seed``: the order the
    betting bound takes the sequences in, as in :func:`~trm_bounds.certify.linear.certify_sums`.
    Rows without a valid token are not sequences (excluded, counted in ``n_empty_rows``).

    Returns ``level``, ``method``, ``n_sequences``, ``T_max``, ``estimate`` (the sample mean
    of ``Y``, unbiased for :math:`\max_R|\mathrm{Error}|`), ``ucb`` (the level's upper bound on
    the mean of ``max(Y, -clip)``), ``bound`` (the same: it bounds ``|Error|`` for every reward
    in ``[0, 1]``), ``width`` and ``conditions``.
    """
    if not (clip >= 0 and np.isfinite(clip)):
        raise ValueError(f"clip: {clip!r} is not a finite value >= 0")
    r, valid = valid_log_ratios(log_probs, rollout_log_probs, mask)
    T = check_T_max(T_max)
    lengths = valid.sum(axis=1)
    longest = int(lengths.max())
    if T < longest:
        raise ValueError(f"T_max: {T} is shorter than the longest valid sequence "
                         f"({longest})")  # fmt: skip
    keep = lengths > 0  # a row without a valid token is padding, not a sequence
    y = worst_case_error_terms(r[keep], valid[keep])
    top = max(1.0, float(T))
    z = np.maximum(y, -clip) + clip  # in [0, top + clip]
    if method == "betting" and order_seed is not None:  # sequential: a value-free order
        z = z[unit_order(z.shape[0], order_seed)]
    ucb = upper_confidence_bound(z, upper=top + clip, level=level, method=method) - clip
    est = float(np.mean(y))
    ucb = max(ucb, float(np.mean(z)) - clip)
    conditions = [
        "rows are i.i.d. sequences sampled from pi_roll, and rollout_log_probs are the "
        "sampling policy's own log-probabilities",
        "reward R in [0, 1] (scale the bound by the reward range otherwise); the bound holds "
        "for every such reward at once",
        "no absolute continuity needed (docs/theory.md §10, Theorem 10.6)",
        f"holds with probability >= {float(level)} over the sampled sequences ({method} bound "
        f"on the mean of max(Y, -{clip:g}) in [-{clip:g}, {top:g}])",
        f"range uses T_max = {T}, the generation limit given a priori",
        "the mask covers every token sampled from pi_roll, the end-of-sequence token included",
    ]  # fmt: skip
    if method == "betting":
        conditions.append("the betting bound is sequential: " + (
            f"the sequences were put in the random order drawn with seed {order_seed}, fixed "
            "before the data" if order_seed is not None else
            "the sequences were taken in the log's order (order_seed=None), which must not "
            "depend on their values"))
    if not keep.all():
        conditions.append(f"{int((~keep).sum())} rows without a valid token are not sequences "
                          "and were excluded")
    return {
        "level": float(level),
        "method": method,
        "n_sequences": int(y.shape[0]),
        "n_empty_rows": int((~keep).sum()),
        "T_max": T,
        "clip": float(clip),
        "estimate": est,
        "ucb": ucb,
        "bound": ucb,
        "width": ucb - est,
        "conditions": conditions,
    }
