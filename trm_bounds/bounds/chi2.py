r"""The chi-square martingale bound: ``|Error| = O(T chi)``, not ``T^{3/2}`` (docs/theory.md §10).

A candidate bound, kept out of the registry (it reads the per-position chi-square, which the
paper's inputs do not include).  Symbols:

- ``chi2_t`` ``(T,)``: ``chi_t = max_c chi^2(pi_theta || pi_roll)(c)`` over the contexts at
  position ``t`` that the rollout reaches, ``chi^2(q || p) = sum_v (q_v - p_v)^2 / p_v``
  (needs ``pi_theta << pi_roll``);
- ``dtv_seq``: ``D_TV^seq`` (optional).

.. math::

    |\mathrm{Error}| \le \tfrac12 \sqrt{\textstyle\sum_t \chi_t \big(\prod_{s<t}(1 + \chi_s) - 1\big)},
    \qquad
    |\mathrm{Error}| \le D_{\mathrm{TV}}^{\mathrm{seq}} + \tfrac12 \sqrt{\textstyle\sum_t \chi_t}.

*Proof* (docs/theory.md §10).  With ``L_t = prod_{s<=t} rho_s``, (2.1) reads
``Error = sum_t E_roll[(L_{t-1} - 1) g_t(c_t)]``, and ``g_t(c) = E_roll[(rho_t - 1)(V_{t+1} -
V_t) | c]``, so by Cauchy-Schwarz ``|g_t(c)| <= sqrt(chi_t) sigma_t(c)`` with ``sigma_t(c)^2 =
Var_roll(V_{t+1} | c)``.  Cauchy-Schwarz twice more, ``E_roll (L_{t-1} - 1)^2 <=
prod_{s<t}(1 + chi_s) - 1`` (chi-square tensorises along the sequence) and ``sum_t E sigma_t^2
= E_x Var_roll(R | x) <= 1/4`` (the rollout value is a martingale) give the first bound.  The
second: ``|J(theta) - J(roll)| <= D_TV^seq`` and ``|L'| = |sum_t E_roll g_t| <= 1/2 sqrt(sum_t
chi_t)`` the same way.  Both hold for every reward in ``[0, 1]``; the constant is sharp to
within a factor ``0.684`` (the tilted walk, :mod:`trm_bounds.instances.worst_case`).

For uniform ``chi_t = chi`` and ``T chi <= 1`` the first bound is ``chi T / (2 sqrt 2)`` to
leading order: linear in ``T``.  For bounded log-ratios ``chi ~ 2 delta``, against the
``T^{3/2} delta`` of Pinsker-Marginal.  For large ``T`` the second grows like ``sqrt(T)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["chi2_bound", "chi2_bound_terms", "regularise", "kl_budget_bound", "KAPPA"]

#: ``kappa = 1 / (1 - log 2)``: on ``r = q/p <= 2``, ``(r - 1)^2 <= kappa (r - 1 - log r)``; on
#: ``r > 2``, ``r - 1 <= kappa (r - 1 - log r)`` (both extremes at ``r = 2``).
KAPPA = 1.0 / (1.0 - np.log(2.0))


def chi2_bound_terms(chi2_t: np.ndarray) -> tuple[float, float]:
    r"""The two terms of :func:`chi2_bound` without ``D_TV^seq``:
    ``(1/2 sqrt(sum_t chi_t (prod_{s<t}(1 + chi_s) - 1)), 1/2 sqrt(sum_t chi_t))``.

    ``prod_{s<t}(1 + chi_s) - 1`` is ``expm1`` of a prefix sum of ``log1p(chi_s)`` (no
    cancellation for tiny ``chi``).

    >>> a, b = chi2_bound_terms(np.full(2, 0.04))
    >>> round(a, 12), round(b, 12)
    (0.02, 0.141421356237)
    """
    chi = np.asarray(chi2_t, dtype=np.float64)
    if chi.ndim != 1 or chi.size == 0:
        raise ValueError(f"chi2_t: expected a non-empty 1-d array, got shape {chi.shape}")
    if not np.all(chi >= 0):
        bad = int(np.flatnonzero(~(chi >= 0))[0])
        raise ValueError(f"chi2_t: entry t={bad + 1} = {float(chi[bad])!r} is negative or NaN")
    prefix = np.concatenate([[0.0], np.cumsum(np.log1p(chi))[:-1]])  # sum_{s<t} log(1+chi_s)
    first = 0.5 * float(np.sqrt(np.sum(chi * np.expm1(prefix))))
    second = 0.5 * float(np.sqrt(np.sum(chi)))
    return first, second


def chi2_bound(chi2_t: np.ndarray, *, dtv_seq: float | None = None) -> float:
    r"""The chi-square martingale bound on ``|Error|`` (module docstring, docs/theory.md §10).

    ``min(1/2 sqrt(sum_t chi_t (prod_{s<t}(1+chi_s) - 1)), D_TV^seq + 1/2 sqrt(sum_t chi_t))``,
    the second term only when ``dtv_seq`` is given.  One constant only (it is proved with the
    ``Var R <= 1/4`` of a reward in ``[0, 1]``; no published/sharp pair).

    The tight instance of docs/theory.md §5 (``chi = 4 eps^2`` at both positions):
    ``1/2 sqrt(4 eps^2 * 4 eps^2) = 2 eps^2 = Error``, attained:

    >>> round(chi2_bound(np.full(2, 4 * 0.1**2)), 12)
    0.02
    """
    first, second = chi2_bound_terms(chi2_t)
    if dtv_seq is None:
        return first
    if not 0 <= dtv_seq <= 1:
        raise ValueError(f"dtv_seq = {float(dtv_seq)!r} is outside [0, 1]")
    return min(first, float(dtv_seq) + second)


def regularise(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float]:
    r"""The proof device of the KL-budget theorem (docs/theory.md §10): ``(q', m)``.

    Heavy tokens ``H = {v: q_v > 2 p_v}`` carry excess mass ``m = sum_H (q_v - p_v)``;
    ``q'`` puts ``p_v`` on ``H``, keeps ``q_v`` elsewhere, and spreads ``m`` in proportion to
    ``p``: ``q' = q 1_{H^c} + p 1_H + m p``.  Then ``q' << p`` and, with
    ``KL = KL(p || q)`` forward and ``kappa = KAPPA``,

    .. math::

        \mathrm{TV}(q, q') \le m \le \kappa\,\mathrm{KL}, \qquad
        \chi^2(q' \Vert p) \le 2\kappa\,\mathrm{KL} + 2 m^2 .

    ``p, q (..., V)``: rows of distributions; returns ``q'`` of the same shape and the largest
    ``m`` over rows.

    >>> qp, m = regularise(np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.5, 0.1]))
    >>> qp.tolist(), round(m, 12)
    ([0.45, 0.55, 0.0], 0.1)
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    heavy = q > 2 * p
    m = np.where(heavy, q - p, 0.0).sum(-1, keepdims=True)  # (..., 1)
    qp = np.where(heavy, p, q) + m * p
    return qp, float(m.max()) if m.size else 0.0


def kl_budget_bound(T: int, delta: float) -> float:
    r"""``|Error| = O(T delta)`` under a per-token forward KL budget ``delta`` alone
    (docs/theory.md §10, Theorem 2):

    .. math::

        |\mathrm{Error}| \le B_{\chi}(\chi') + 2\kappa T\delta, \qquad
        \chi' = 2\kappa\delta + 2\kappa^2\delta^2,

    with ``B_chi`` the first term of :func:`chi2_bound` at ``chi_t = chi'`` (or ``1 + 1/2
    sqrt(T chi')``, whichever is smaller) and ``kappa = KAPPA``.  For ``T delta <= 0.1`` this
    is at most ``10.3 T delta``; the tilted walk reaches ``0.484 T delta``.

    >>> b = kl_budget_bound(1000, 1e-6)
    >>> bool(b <= 10.3 * 1000 * 1e-6), bool(b >= 0.484 * 1000 * 1e-6)
    (True, True)
    """
    if T < 1 or not 0 <= delta < np.inf:
        raise ValueError(f"kl_budget_bound: T = {T}, delta = {float(delta)!r} (need T >= 1, delta >= 0)")
    chi = 2 * KAPPA * delta + 2 * KAPPA**2 * delta**2
    first, second = chi2_bound_terms(np.full(int(T), chi))
    return min(first, 1.0 + second) + 2 * KAPPA * T * delta
