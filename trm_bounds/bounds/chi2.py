r"""The chi-square martingale bound and the KL-budget bounds: ``|Error| = O(T chi)`` and
``O(T delta)``, not ``T^{3/2}`` (docs/theory.md §10, Theorems 10.1-10.4).

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
chi_t)`` the same way.  Both hold for every reward in ``[0, 1]``, and the first is attained
at every ``T`` as ``delta -> 0`` by the constant-``|Z_T|`` design
(:mod:`trm_bounds.instances.constant_z`; ratio 0.99969 at ``T = 4``): Theorem 10.1.

Under a per-token forward KL budget ``delta`` alone (heavy tokens allowed) the exact worst
case is ``delta sqrt(T(T-1)/2) (1 + o(1))`` as ``T delta -> 0`` under ``pi_theta <<
pi_roll`` (constant ``1/sqrt 2`` as ``T -> infinity``) and ``T delta (1 + o(1))`` without it:
:func:`kl_budget_bound_sharp` (Theorems 10.3, 10.4) proves the upper side, at most
``3.58 T delta`` (``4.83`` without absolute continuity) for ``T delta <= 0.1``;
:func:`kl_budget_bound` (Theorem 10.2) gives ``9.11 T delta`` there.

For uniform ``chi_t = chi`` and ``T chi <= 1`` the first bound is ``chi T / (2 sqrt 2)`` to
leading order: linear in ``T``.  For bounded log-ratios ``chi ~ 2 delta``, against the
``T^{3/2} delta`` of Pinsker-Marginal.  For large ``T`` the second grows like ``sqrt(T)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "chi2_bound",
    "chi2_bound_terms",
    "regularise",
    "kl_budget_bound",
    "kl_budget_bound_sharp",
    "heavy_token_bound_terms",
    "KAPPA",
    "TAU_GRID",
    "ASYMPTOTIC_CONSTANT",
]

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
    r"""The proof device of the KL-budget theorem (docs/theory.md §10, Theorem 10.2): ``(q', m)``.

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
    r"""``|Error| = O(T delta)`` under a per-token forward KL budget ``delta`` alone, under
    ``pi_theta << pi_roll`` (docs/theory.md §10, Theorem 10.2):

    .. math::

        |\mathrm{Error}| \le B_{\chi}(\chi') + 2\kappa T\delta, \qquad
        \chi' = 2\kappa\delta + 2\kappa^2\delta^2,

    with ``B_chi`` the first term of :func:`chi2_bound` at ``chi_t = chi'`` (or ``1 + 1/2
    sqrt(T chi')``, whichever is smaller) and ``kappa = KAPPA``.  For ``T delta <= 0.1`` this
    is at most ``9.11 T delta`` (9.1022 as ``T -> infinity`` at ``T delta = 0.1``);
    :func:`kl_budget_bound_sharp` is sharper, and the constant-``|Z_T|`` design reaches
    ``delta sqrt(T(T-1)/2)``.

    >>> b = kl_budget_bound(1000, 1e-6)
    >>> bool(b <= 9.11 * 1000 * 1e-6), bool(b >= 0.7071 * 1000 * 1e-6)
    (True, True)
    """
    if T < 1 or not 0 <= delta < np.inf:
        raise ValueError(f"kl_budget_bound: T = {T}, delta = {float(delta)!r} (need T >= 1, delta >= 0)")
    chi = 2 * KAPPA * delta + 2 * KAPPA**2 * delta**2
    first, second = chi2_bound_terms(np.full(int(T), chi))
    return min(first, 1.0 + second) + 2 * KAPPA * T * delta


# ------------------------------------------------------------ heavy tokens, truncated at tau
#: Truncation levels ``tau`` over which :func:`kl_budget_bound_sharp` takes its minimum (any
#: ``tau > 0`` gives a valid bound, so the grid only decides how close to the best it gets).
TAU_GRID = np.geomspace(0.01, 20.0, 64)
#: The limits of :func:`kl_budget_bound_sharp` ``/ (T delta)`` as ``T delta -> 0`` (for
#: ``T -> infinity``): ``1/sqrt(2)`` under ``pi_theta << pi_roll``, ``1`` without it; both
#: attained (docs/theory.md §10, Theorems 10.3-10.5).
ASYMPTOTIC_CONSTANT = {True: 1.0 / np.sqrt(2.0), False: 1.0}


def _h(x: np.ndarray) -> np.ndarray:
    """``h(x) = x - log(1 + x)``: the forward KL is ``E_roll h(rho - 1)`` (docs/theory.md §10)."""
    return x - np.log1p(x)


def _tv2(k: np.ndarray, delta: float) -> np.ndarray:
    r"""``w(k)``: a bound on ``E_roll|L_k - 1| = 2 TV`` of ``k``-token prefixes with sequence KL
    ``<= k delta``: ``2 min(sqrt(k delta / 2), sqrt(1 - exp(-k delta)), 1)`` (Pinsker,
    Bretagnolle-Huber; docs/theory.md §3)."""
    x = np.asarray(k, dtype=np.float64) * delta
    return 2.0 * np.minimum(np.minimum(np.sqrt(x / 2.0), np.sqrt(-np.expm1(-x))), 1.0)


def heavy_token_bound_terms(T: int, delta: float, tau: np.ndarray) -> dict[str, np.ndarray]:
    r"""The terms of Theorems 10.3 and 10.4 (docs/theory.md §10) at truncation levels ``tau``.

    With ``h(x) = x - log(1 + x)``, ``phi = h(tau)/tau^2``, the per-context caps
    ``v = delta/phi`` (on ``E[eta^2; eta <= tau]``), ``m = delta tau/h(tau)`` (on
    ``E[eta; eta > tau]``), ``pi = delta/h(tau)`` (on ``P(eta > tau)``), ``w(k)`` of
    :func:`_tv2`, ``u_0 = 0``, ``u_t = (1 + v) u_{t-1} + v + 2 max(v, m) w(t-1)``:

    - ``main``: ``1/2 sqrt(v sum_t u_{t-1})`` (route I, the ``1/sqrt 2`` route);
    - ``light_sum``: ``T v / 2`` (route II's leading term, the ``sum_t E v_t / 2`` route);
    - ``route2_rest``: ``1/2 sqrt(v sum_t e_{t-1})``, ``e_t = 2 v U_t + 2 m^2 (sum_{s<=t}
      (1 + sqrt(u_{s-1})))^2``, ``U_t = sum_{s<=t} u_{s-1}``;
    - ``heavy``: ``(m + (pi + m)/2) sum_t w(t-1) + 1/2 pi sum_s (sqrt((T-s) v) + 2 (T-s) m)``.

    Each is an array over ``tau``.
    """
    taus = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    t = np.arange(1, T + 1, dtype=np.float64)  # (T,)
    w = _tv2(t - 1, delta)  # w(t-1)
    W = float(w.sum())
    k = T - t  # T - s
    rows = [_terms_at(float(x), T, delta, t, w, k) for x in taus]  # one (T,) pass per tau
    out = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    out["W"] = np.full(taus.shape, W)
    return out


def _terms_at(tau: float, T: int, delta: float, t: np.ndarray, w: np.ndarray,
              k: np.ndarray) -> dict[str, float]:  # fmt: skip
    """The terms of :func:`heavy_token_bound_terms` at one ``tau`` (vectorised over ``t``)."""
    h = float(_h(np.float64(tau)))
    v, m, pi = delta * tau**2 / h, delta * tau / h, delta / h
    c = v + 2.0 * max(v, m) * w
    lg = math.log1p(v)
    with np.errstate(over="ignore", invalid="ignore"):
        # u_t = sum_{s<=t} (1+v)^(t-s) c_s, the powers in log space
        u = np.exp(t * lg) * np.cumsum(c * np.exp(-t * lg))
    u_prev = np.concatenate([[0.0], u[:-1]])  # u_{t-1}
    U = np.cumsum(u_prev)  # U_t
    lin = np.cumsum(1.0 + np.sqrt(u_prev))
    e = 2.0 * v * U + 2.0 * m * m * lin**2  # e_t
    e_prev = np.concatenate([[0.0], e[:-1]])
    return {
        "main": 0.5 * math.sqrt(v * U[-1]) if np.isfinite(U[-1]) else math.inf,
        "light_sum": 0.5 * T * v,
        "route2_rest": 0.5 * float(np.sqrt(v * e_prev.sum())),
        "heavy": (m + 0.5 * (pi + m)) * float(w.sum())
        + 0.5 * pi * float(np.sum(np.sqrt(k * v) + 2.0 * k * m)),
    }


def kl_budget_bound_sharp(T: int, delta: float, *, absolutely_continuous: bool = True,
                          tau: np.ndarray | None = None) -> float:  # fmt: skip
    r"""A bound on ``max_R |Error|`` under a per-token forward KL budget ``delta`` alone, heavy
    tokens (unbounded ``rho``) allowed (docs/theory.md §10, Theorems 10.3 and 10.4).  The
    theorems' minimum is over every truncation level ``tau``; this function takes it over
    :data:`TAU_GRID` (``tau >= 0.01``), so as ``T delta -> 0`` (below about ``1e-16``) it
    tends to about ``1.0067`` times the exact constants below, not to them.

    Under ``pi_theta << pi_roll`` (Theorem 10.3) the bound is ``min_tau (main + heavy)``
    (:func:`heavy_token_bound_terms`), and ``/(T delta) -> 1/sqrt(2)`` as ``T delta -> 0``
    (then ``T -> infinity``), the constant the constant-``|Z_T|`` design attains
    (:mod:`trm_bounds.instances.constant_z`).  Without it (Theorem 10.4), with
    ``abar = 1 - exp(-delta)`` (the most ``theta`` may put where ``pi_roll = 0``) and
    ``G = abar (T w(T-1) + abar T (T-1)/2)/2``, the bound is the smaller of
    ``main + heavy + T abar + G`` (route I) and ``light_sum + route2_rest + heavy +
    abar W/4 + G`` (route II), and ``/(T delta) -> 1``, attained by a ``theta`` that moves
    mass ``abar`` off the rollout's support.  Also the minimum with
    :func:`kl_budget_bound` (Theorem 10.2) under absolute continuity.

    ``tau``: truncation levels (default :data:`TAU_GRID`); every ``tau > 0`` gives a valid
    bound.

    >>> b = kl_budget_bound_sharp(1000, 1e-4)
    >>> bool(b <= 3.6 * 1000 * 1e-4), bool(b >= 0.7071 * 1000 * 1e-4)
    (True, True)
    """
    if T < 1 or not 0 < delta < np.inf:
        raise ValueError(f"kl_budget_bound_sharp: T = {T}, delta = {float(delta)!r} "
                         "(need T >= 1, 0 < delta < inf)")  # fmt: skip
    terms = heavy_token_bound_terms(int(T), float(delta), TAU_GRID if tau is None else tau)
    route1 = terms["main"] + terms["heavy"]
    if absolutely_continuous:
        best = np.nanmin(np.where(np.isfinite(route1), route1, np.nan))
        return float(min(best, kl_budget_bound(T, delta)))
    abar = -np.expm1(-delta)
    w_last = float(_tv2(np.array(T - 1.0), delta))
    g = 0.5 * abar * (T * w_last + abar * T * (T - 1) / 2.0)
    r1 = route1 + T * abar + g
    r2 = terms["light_sum"] + terms["route2_rest"] + terms["heavy"] + 0.25 * abar * terms["W"] + g
    both = np.minimum(r1, r2)
    return float(np.nanmin(np.where(np.isfinite(both), both, np.nan)))
