r"""Confidence intervals for the actual error that hold for every law (docs/theory.md §9,
"The actual error: an interval for every law").

The summands of Error, :math:`J_\theta - J_{\text{roll}}` and :math:`L'` are unbounded (the
weight :math:`w = e^S = \prod_t\rho_t` and :math:`U = \sum_t(\rho_t - 1)` have no upper limit),
so no confidence interval built from their values alone holds for every law: a rare large
value the sample has not met moves the mean (the central-limit interval, even gated by the
Pareto k-hat, covered 28 of 36 times on one instance).  Two known means close the gap: under
:math:`\pi_\theta \ll \pi_{\text{roll}}`, :math:`\mathbb E_{\text{roll}}[w] = 1` and
:math:`\mathbb E_{\text{roll}}[U] = 0`, so what the unseen tail can add is bounded by what the
seen part takes away.  With :math:`\tilde R = (R - l)/(h - l) \in [0, 1]`, a truncation
:math:`u \ge 0`, :math:`I = 1\{U \le u\}`, :math:`J = 1\{w \le e^u\}` and
:math:`f = \tilde R(w - 1 - U)` (Theorem 9.4):

- Error: :math:`Y^- = I(f + U) - (1 - I) \in [-T, e^u - 1]`,
  :math:`Y^+ = I(f + 1 - w) + (1 - I) \in [1 - e^u, T]`;
- :math:`J_\theta - J_{\text{roll}}`: :math:`Y^- = \tilde R(Jw - 1) \in [-1, e^u - 1]`,
  :math:`Y^+ = (1 - \tilde R)(1 - Jw) \in [1 - e^u, 1]`;
- :math:`L'`: :math:`Y^- = I\tilde R U \in [-T, u]`,
  :math:`Y^+ = -I(1 - \tilde R)U \in [-u, T]`;

each quantity being :math:`(h - l)` times the mean of its summand in :math:`\tilde R`,
with :math:`\mathbb E Y^- \le \mathbb E[\text{summand}] \le \mathbb E Y^+` for every law
(``T`` the generation limit; the ranges use :math:`-T_i \le U` and :math:`w \le e^U`, the
inequality of arithmetic and geometric means).  Each side is a mean of a bounded variable: the
betting bound (:mod:`trm_bounds.certify.confidence`) at level :math:`1 - \alpha/2` per side, over
the units in the seeded order of :func:`~trm_bounds.certify.linear.unit_order`, gives an
interval that covers with probability at least ``level`` whatever the law.  The price is width:
the tail is paid with first-order noise, and the range grows with ``T``.

>>> import numpy as np
>>> S = np.zeros(64); U = np.zeros(64); R = np.linspace(0, 1, 64)
>>> iv = error_intervals(S, U, R, T_max=4)
>>> bool(iv["error"][0] <= 0.0 <= iv["error"][1])
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trm_bounds.certify.confidence import upper_confidence_bounds
from trm_bounds.certify.linear import (
    ORDER_SEED,
    check_reward_range,
    check_rewards_in_range,
    check_T_max,
    group_means,
    unit_order,
)
from trm_bounds.certify.samples import as_float64

__all__ = ["error_intervals", "bracket_terms", "TRUNCATION", "MAX_TRUNCATION"]

#: The truncation ``u`` of ``U`` (and ``e^u`` of the weight): fixed before the data, it only
#: trades width between the tail term and the range (docs/theory.md §9); 2 kept the intervals
#: narrowest over the registry's instances at ``T = 4`` and ``N = 256 .. 2048``.
TRUNCATION = 2.0
#: Largest truncation: beyond, ``e^u`` swamps the scaled variables' float64 resolution (the
#: ends cancel to 0 at ``u = 40``).
MAX_TRUNCATION = 20.0
#: Relative slack for rounding of values that lie on a range's end (``w = e^S`` beside
#: ``U = sum expm1``): larger excursions are errors, smaller ones are clipped.
_SLACK = 1e-9


def bracket_terms(S: np.ndarray, U: np.ndarray, Rt: np.ndarray, *, T_max: float,
                  truncation: float = TRUNCATION
                  ) -> dict[str, tuple[np.ndarray, tuple[float, float], np.ndarray,
                                       tuple[float, float]]]:  # fmt: skip
    r"""Per quantity ``(Y_lo, (a_lo, b_lo), Y_hi, (a_hi, b_hi))``, arrays of the shape of
    ``S``: the bracketing variables of the module table (docs/theory.md §9, Theorem 9.4) for
    ``S`` (``-inf`` allowed), ``U >= -T_max``, rewards ``Rt`` in ``[0, 1]``.  Values are
    clipped to their ranges after a check that any excursion is rounding (``ValueError``
    otherwise: a sequence longer than ``T_max`` whose ``U`` falls below ``-T_max``, or ``S``
    above ``U``; a row longer than ``T_max`` with ``U >= -T_max`` is the caller's to catch,
    from the lengths)."""
    u = float(truncation)
    if not (math.isfinite(u) and 0.0 <= u <= MAX_TRUNCATION):
        raise ValueError(f"truncation must lie in [0, {MAX_TRUNCATION:g}], got {u}")
    T = float(T_max)
    eu = math.exp(u)
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.exp(S)  # (n,) inf only where U > u too (w <= e^U)
        inI = U <= u
        inJ = w <= eu
        wI = np.where(inI, w, 0.0)
        wJ = np.where(inJ, w, 0.0)
        UI = np.where(inI, U, 0.0)
        fI = Rt * (wI - 1.0 - UI)  # f on I (w finite there)
    terms = {
        "error": (np.where(inI, fI + UI, -1.0), (-T, eu - 1.0),
                  np.where(inI, fI + 1.0 - wI, 1.0), (1.0 - eu, T)),
        "J_diff": (Rt * (wJ - 1.0), (-1.0, eu - 1.0),
                   1.0 - Rt - (1.0 - Rt) * wJ, (1.0 - eu, 1.0)),
        "L_prime": (Rt * UI, (-T, u), -(1.0 - Rt) * UI, (-u, T)),
    }
    out = {}
    for q, (ylo, rlo, yhi, rhi) in terms.items():
        for y, (a, b), side in ((ylo, rlo, "lower"), (yhi, rhi, "upper")):
            tol = _SLACK * max(1.0, b - a)
            bad = ~((y >= a - tol) & (y <= b + tol))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                why = (f"U = {float(U[i])!r} below -T_max = {-T:g}: a sequence longer than "
                       "T_max" if U[i] < -T else
                       f"S = {float(S[i])!r} above U = {float(U[i])!r}, impossible for one "
                       "sequence's log-ratios")
                raise ValueError(f"{q} ({side} variable): row {i} has {float(y[i])!r} outside "
                                 f"[{a:g}, {b:g}]: {why}")
        out[q] = (np.clip(ylo, *rlo), rlo, np.clip(yhi, *rhi), rhi)
    return out


def error_intervals(S: Any, U: Any, rewards: Any, *, T_max: Any, reward_range: Any = (0.0, 1.0),
                    level: float = 0.95, group_ids: Any = None,
                    truncation: float = TRUNCATION, order_seed: int | None = ORDER_SEED
                    ) -> dict[str, tuple[float, float]]:  # fmt: skip
    r"""Intervals ``(lo, hi)`` for Error, ``J_theta - J_roll`` and ``L'``, each covering with
    probability at least ``level`` for every law of the units (docs/theory.md §9, Theorem 9.4).

    ``S``, ``U``, ``rewards``: per sequence ``(N,)`` (sequences only: rows without a valid
    token removed); ``T_max``: the generation limit, known before the data
    (:func:`~trm_bounds.certify.linear.check_T_max`); rewards must lie in ``reward_range``;
    ``group_ids``: one id per sequence, the units are then the prompt groups (means of the
    bracketing variables); ``order_seed``: the seeded order the betting bound takes the units
    in (``None``: the given order).  Conditions: units independent, each from
    :math:`\pi_{\text{roll}}`, and :math:`\pi_\theta \ll \pi_{\text{roll}}` with the end token
    in the mask (the known means :math:`\mathbb E w = 1`, :math:`\mathbb E U = 0`); without
    absolute continuity the interval of ``J_diff`` still holds, those of Error and ``L'`` when
    the reward range contains 0 (Theorem 9.4 (e)).  An interval can come out empty (``lo > hi``): only
    when the sample contradicts the known means; the caller reports it.
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {float(level)}")
    T = check_T_max(T_max)
    lo, hi = check_reward_range(reward_range)
    S = as_float64(S, "S").reshape(-1)
    Uv = as_float64(U, "U").reshape(-1)
    R = as_float64(rewards, "rewards").reshape(-1)
    n = S.shape[0]
    if n == 0 or Uv.shape[0] != n or R.shape[0] != n:
        raise ValueError(f"S, U, rewards: need the same number >= 1 of sequences, got "
                         f"{n}, {Uv.shape[0]}, {R.shape[0]}")
    # U = +inf is a finite sum of rho_t - 1 beyond float64 (a rho_t above e^709): it only
    # says U > u, which is all the brackets use; -inf and NaN come from no log-ratios
    if np.isnan(S).any() or (S == np.inf).any() or np.isnan(Uv).any() or (Uv == -np.inf).any():
        raise ValueError("S, U: NaN, S = +inf or U = -inf")
    check_rewards_in_range(R, lo, hi)
    terms = bracket_terms(S, Uv, (R - lo) / (hi - lo), T_max=T, truncation=truncation)
    rows, spans = [], []
    for q in terms:  # rows: lower variables reflected (B - x), upper variables as they are
        ylo, (a1, b1), yhi, (a2, b2) = terms[q]
        rows += [(b1 - ylo) / (b1 - a1), (yhi - a2) / (b2 - a2)]
        spans += [(a1, b1), (a2, b2)]
    z = np.stack(rows)  # (6, n) in [0, 1]
    if group_ids is not None:
        ids = np.asarray(group_ids)
        if ids.shape != (n,):
            raise ValueError(f"group_ids: expected one id per sequence ({n}), got {ids.shape}")
        z = np.stack([group_means(r, ids)[0] for r in z])  # (6, G)
    if order_seed is not None:
        z = z[:, unit_order(z.shape[1], order_seed)]
    side = 1.0 - (1.0 - float(level)) / 2.0
    ucb = upper_confidence_bounds(np.clip(z, 0.0, 1.0), upper=1.0, level=side)  # (6,)
    scale = hi - lo
    out = {}
    for j, q in enumerate(terms):
        (a1, b1), (a2, b2) = spans[2 * j], spans[2 * j + 1]
        out[q] = (scale * (b1 - (b1 - a1) * float(ucb[2 * j])),
                  scale * (a2 + (b2 - a2) * float(ucb[2 * j + 1])))
    # J_theta - J_roll = E_theta R - E_roll R lies in [-(hi - lo), hi - lo] whatever the data
    out["J_diff"] = (max(out["J_diff"][0], -scale), min(out["J_diff"][1], scale))
    return out
