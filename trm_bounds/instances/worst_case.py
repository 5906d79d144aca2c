r"""Worst-case instance families for the tightness of the bounds in ``T`` (docs/theory.md §10).

Each family is one function ``(T, *, keyword sizes) -> FiniteStateInstance``, so anyone can
rebuild every point of ``trm_bounds/data/results/worst_case.json`` and of figure F9 from the
parameters recorded there.  The largest ``|Error|`` over rewards is then exact by DP
(:func:`trm_bounds.engines.dp.exact_report`, ``error_max_over_rewards``).

=======================  ====================================================================
family                   what it is
=======================  ====================================================================
``tilted_walk``          the walk on ``{-W..W}``, ``pi_roll = (1/2, 1/2)``, theta tilted by
                         ``e`` at the chosen positions (every state): per-token forward KL
                         exactly ``delta``.  The error of *any* reward depends on the path
                         only through the final position ``X`` (below), so the maximum over
                         final-state rewards is the maximum over all rewards.  Non-mixing:
                         nothing is forgotten.
``hidden_regime_walk``   a hidden bit ``h`` drawn by the first token; afterwards theta's tilt
                         points up when ``h = 0`` and down when ``h = 1``: the perturbation
                         correlates with a state that never changes.
``walk_tilt_positions``  where a sparse budget of ``k`` tilted positions goes: the first
                         ``k``, the last ``k``, or spread evenly.
``constant_z``           the adaptive two-point design that keeps ``|Z_T|`` constant on every
                         path (:mod:`trm_bounds.instances.constant_z`): the worst case of
                         docs/theory.md §10 to leading order, ``sqrt(T(T-1)/2) delta``.
=======================  ====================================================================

*The walk in closed form.*  With ``pi_roll = (1/2, 1/2)`` and tilt ``(1/2 - e, 1/2 + e)`` the
ratio is ``rho_t = 1 + 2 e xi_t`` with ``xi_t = +-1`` the step, so for ``W >= T`` (no
reflection)

.. math::

    c(y) = P^{\mathrm{roll}}(y)\Big[\prod_t (1 + 2e\xi_t) - 1 - 2e X\Big], \qquad
    X = \sum_t \xi_t,

depends on ``y`` only through ``X``, and (docs/theory.md §2)

.. math::

    \max_R |\mathrm{Error}| = \tfrac12 \sum_{k=0}^{T} \binom{T}{k} 2^{-T}
    \Big|(1+2e)^k (1-2e)^{T-k} - 1 - 2e(2k - T)\Big|
    = 2\varphi(1)\, \delta\, T\, (1 + o(1)) \quad (T \to \infty,\ T\delta \to 0),

with ``delta = -1/2 log(1 - 4 e^2)`` and ``2 phi(1) = 2/sqrt(2 pi e) = 0.4839``
(:func:`walk_max_error_closed_form`, :func:`walk_max_error_asymptotic`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from trm_bounds.instances.constant_z import constant_z
from trm_bounds.instances.finite import FiniteStateInstance

__all__ = [
    "constant_z",
    "walk_tilt",
    "walk_width",
    "tilted_walk",
    "hidden_regime_walk",
    "walk_tilt_positions",
    "walk_max_error_closed_form",
    "walk_max_error_asymptotic",
    "walk_sequence_tv",
    "PLACEMENTS",
    "WALK_CONSTANT",
]

#: Where a sparse budget of tilted positions can be placed (:func:`walk_tilt_positions`).
PLACEMENTS = ("start", "end", "spread")
#: ``2 phi(1) = 2 / sqrt(2 pi e)``: ``max_R |Error| / (delta T)`` of the walk as ``T delta -> 0``.
WALK_CONSTANT = 2.0 / math.sqrt(2.0 * math.pi * math.e)


def walk_tilt(delta: float) -> float:
    """The tilt ``e`` whose forward ``KL((1/2, 1/2) || (1/2 - e, 1/2 + e)) = -1/2 log(1 - 4e^2)``
    equals ``delta`` exactly: ``e = sqrt(-expm1(-2 delta)) / 2``.

    >>> e = walk_tilt(1e-4)
    >>> round(-0.5 * math.log(1 - 4 * e * e) / 1e-4, 12)
    1.0
    """
    if not delta >= 0 or not math.isfinite(delta):
        raise ValueError(f"walk_tilt: delta = {float(delta)!r} is not a finite value >= 0")
    return math.sqrt(-math.expm1(-2.0 * delta)) / 2.0


def walk_width(T: int, delta: float, *, sigmas: float = 8.0) -> int:
    """Half-width ``W`` of the walk: ``min(T, ceil(2 e T + sigmas sqrt(T)))``.

    With ``W = T`` the walk never reflects (the closed form holds exactly).  Otherwise the
    theta walk (drift ``2 e T``) reaches ``+-W`` with probability below
    ``2 exp(-sigmas^2 / 2)`` (Hoeffding), and the instance is still a valid instance of its
    own: the reported errors are exact for it, whatever the reflection does.

    >>> walk_width(10, 1e-4), walk_width(10**6, 1e-8) < 10**6
    (10, True)
    """
    e = walk_tilt(delta)
    return int(min(T, math.ceil(2.0 * e * T + sigmas * math.sqrt(T))))


def walk_tilt_positions(T: int, k: int, placement: str) -> np.ndarray:
    """``k`` of the positions ``1..T`` (all of them when ``k >= T``), placed at the
    ``"start"``, the ``"end"`` or ``"spread"`` evenly.

    >>> walk_tilt_positions(10, 3, "start").tolist(), walk_tilt_positions(10, 3, "end").tolist()
    ([1, 2, 3], [8, 9, 10])
    >>> walk_tilt_positions(10, 3, "spread").tolist()
    [1, 6, 10]
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"walk_tilt_positions: placement {placement!r} is not one of {PLACEMENTS}")
    if k < 1:
        raise ValueError(f"walk_tilt_positions: k = {k} < 1")
    if k >= T:
        return np.arange(1, T + 1)
    if placement == "start":
        return np.arange(1, k + 1)
    if placement == "end":
        return np.arange(T - k + 1, T + 1)
    return np.unique(np.round(np.linspace(1, T, k)).astype(np.int64))


def tilted_walk(
    T: int, *, delta: float, positions: np.ndarray | None = None, width: int | None = None
) -> FiniteStateInstance:
    r"""The tilted walk (module docstring): the lower-bound family of docs/theory.md §10.

    States ``0..2W`` stand for the positions ``-W..W`` (start ``0``, reflecting at
    ``+-W``); token 0 steps down, token 1 up.  ``positions=None`` (the uniform regime):
    ``V = 2``, ``pi_roll = (1/2, 1/2)`` and ``pi_theta = (1/2 - e, 1/2 + e)`` at every
    context, ``e = walk_tilt(delta)``, so every context has forward KL exactly ``delta``.
    Otherwise (sparse): ``V = 4``; at the tilted ``positions`` (1-based) the policies are as
    above on tokens 0, 1; at every other position both are ``(0, 0, 1/2, 1/2)``: two free
    tokens that do not move the walk, so ``D_KL^seq = len(positions) delta`` and the final
    state keeps the tilted steps unblurred.  ``width`` ``None``: :func:`walk_width` of the
    number ``n`` of tilted positions.  Reward ``1[X^2 > n]``, the reward that maximises
    ``Error`` to second order in ``e`` (``c(X) ~ 2 e^2 (X^2 - n) P(X)``); the exact maximum
    over rewards is the engine's ``error_max_over_rewards``, and without reflection it is
    :func:`walk_max_error_closed_form` (for every ``T`` and every placement).

    >>> inst = tilted_walk(4, delta=0.01)
    >>> inst.S, inst.V, inst.T
    (9, 2, 4)
    """
    if T < 1:
        raise ValueError(f"tilted_walk: T = {T} < 1")
    e = walk_tilt(delta)
    if positions is None:
        n_tilt = T
    else:
        pos = np.unique(np.asarray(positions, dtype=np.int64))
        if pos.size == 0 or pos.min() < 1 or pos.max() > T:
            raise ValueError(f"tilted_walk: positions must lie in 1..{T}, got {pos.tolist()}")
        n_tilt = int(pos.size)
    W = walk_width(n_tilt, delta) if width is None else int(width)
    if W < 1:
        raise ValueError(f"tilted_walk: width = {W} < 1")
    S = 2 * W + 1
    idx = np.arange(S)
    moves = [np.maximum(idx - 1, 0), np.minimum(idx + 1, S - 1)]
    tilt = np.array([0.5 - e, 0.5 + e])
    if positions is None:
        f = np.stack(moves, axis=1)
        pr = np.broadcast_to(np.array([0.5, 0.5]), (T, S, 2))
        pt = np.broadcast_to(tilt, (T, S, 2))
        pos_meta = None
    else:  # tokens 2, 3: free (1 bit each position) and do not move the walk
        f = np.stack(moves + [idx, idx], axis=1)
        free = np.array([0.0, 0.0, 0.5, 0.5])
        pr = np.tile(free, (T, S, 1))
        pt = pr.copy()
        pr[pos - 1] = [0.5, 0.5, 0.0, 0.0]
        pt[pos - 1] = [0.5 - e, 0.5 + e, 0.0, 0.0]
        pos_meta = [int(p) for p in pos]
    x = idx - W
    reward = (x.astype(np.float64) ** 2 > n_tilt).astype(np.float64)
    return FiniteStateInstance(
        np.eye(S)[W], f, pr, pt, reward, name=f"tilted_walk(T={T},delta={delta:g},W={W})",
        meta={"kind": "tilted_walk", "delta": delta, "width": W, "positions": pos_meta},
    )  # fmt: skip


def hidden_regime_walk(T: int, *, delta: float, width: int | None = None) -> FiniteStateInstance:
    r"""A walk whose tilt direction is set by a hidden bit that never changes.

    The first token draws ``h`` (``pi_roll = (1/2, 1/2)``, theta tilted by ``e`` as in
    :func:`tilted_walk`); then the walk of :func:`tilted_walk` runs for ``T - 1`` steps with
    theta's tilt ``(1/2 - e, 1/2 + e)`` if ``h = 1`` and ``(1/2 + e, 1/2 - e)`` if ``h = 0``.
    Every context has forward KL exactly ``delta``.  States: ``0`` the start, then
    ``1 + h (2W + 1) + (X + W)``.  Reward ``1[X^2 > T - 1]``.  This is the "perturbation
    correlated with a slowly varying hidden state" candidate for ``T^{3/2}`` growth; it grows
    like ``T`` (docs/theory.md §10).

    >>> hidden_regime_walk(3, delta=0.01).S
    11
    """
    if T < 2:
        raise ValueError(f"hidden_regime_walk: T = {T} < 2")
    W = walk_width(T - 1, delta) if width is None else int(width)
    n = 2 * W + 1
    S = 1 + 2 * n
    e = walk_tilt(delta)
    f = np.empty((S, 2), dtype=np.int64)
    f[0] = [1 + W, 1 + n + W]  # h = 0 or 1, walk at X = 0
    for h in (0, 1):
        base = 1 + h * n
        idx = np.arange(n)
        f[base + idx, 0] = base + np.maximum(idx - 1, 0)
        f[base + idx, 1] = base + np.minimum(idx + 1, n - 1)
    pr = np.broadcast_to(np.array([0.5, 0.5]), (T, S, 2))
    row = np.empty((S, 2))
    row[0] = [0.5 - e, 0.5 + e]
    row[1 : 1 + n] = [0.5 + e, 0.5 - e]
    row[1 + n :] = [0.5 - e, 0.5 + e]
    pt = np.broadcast_to(row, (T, S, 2))
    x = np.concatenate([[0], np.arange(n) - W, np.arange(n) - W]).astype(np.float64)
    reward = (x**2 > T - 1).astype(np.float64)
    reward[0] = 0.0
    return FiniteStateInstance(
        np.eye(S)[0], f, pr, pt, reward, name=f"hidden_regime_walk(T={T},delta={delta:g},W={W})",
        meta={"kind": "hidden_regime_walk", "delta": delta, "width": W},
    )  # fmt: skip


def walk_max_error_closed_form(T: int, delta: float, *, n_tilted: int | None = None) -> float:
    r"""``max_R |Error|`` of :func:`tilted_walk` without reflection, in closed form.

    With ``n`` tilted positions (``n_tilted``; ``None``: all ``T``) the untilted steps do not
    change ``rho`` and ``c`` depends only on the number ``k`` of up-steps among the tilted
    ones, so

    .. math::

        \max_R|\mathrm{Error}| = \tfrac12 \sum_{k=0}^{n} \binom{n}{k} 2^{-n}
        \big|(1+2e)^k(1-2e)^{n-k} - 1 - 2e(2k - n)\big|,

    summed in log space (``gammaln``).  It depends on ``n`` only, not on where the tilted
    positions are (the walk never forgets, and ``X`` is a sum).

    >>> round(walk_max_error_closed_form(2, 0.1), 12) == round(2 * walk_tilt(0.1) ** 2, 12)
    True
    """
    n = T if n_tilted is None else int(n_tilted)
    e = walk_tilt(delta)
    k = np.arange(n + 1, dtype=np.float64)
    log_binom = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) - n * math.log(2.0)
    with np.errstate(divide="ignore"):
        log_ratio = k * math.log1p(2 * e) + (n - k) * math.log1p(-2 * e)
    # P (ratio - 1 - 2e(2k - n)): expm1 keeps the digits for small e; where the ratio would
    # overflow, the product P * ratio is formed in log space instead
    big = log_ratio > 600.0
    lin = 2.0 * e * (2.0 * k - n)
    small = np.exp(log_binom) * np.abs(np.expm1(np.where(big, 0.0, log_ratio)) - lin)
    large = np.abs(np.exp(log_binom + log_ratio) - np.exp(log_binom) * (1.0 + lin))
    return float(0.5 * np.sum(np.where(big, large, small)))


def walk_max_error_asymptotic(T: int, delta: float) -> float:
    r"""Leading term ``2 phi(1) e^2 ... = WALK_CONSTANT * 2 e^2 T`` of the walk's
    ``max_R |Error|`` for ``T -> infinity`` with ``T delta -> 0`` (``2 e^2 = delta`` to first
    order): ``c(X) = 2 e^2 (X^2 - T) P(X) + ...`` and ``e^2 E|X^2 - T| -> e^2 T E|Z^2 - 1|
    = 4 phi(1) e^2 T``.

    >>> round(walk_max_error_asymptotic(100, 1e-6) / (1e-6 * 100), 3)
    0.484
    """
    e = walk_tilt(delta)
    return WALK_CONSTANT * 2.0 * e * e * T


def walk_sequence_tv(T: int, delta: float) -> float:
    r"""``D_TV^seq`` of :func:`tilted_walk` (uniform, any width: the sequence law ignores
    reflection), in closed form: ``1/2 sum_k C(T, k) 2^{-T} |(1+2e)^k (1-2e)^{T-k} - 1|``.

    >>> round(walk_sequence_tv(1, 0.01), 12) == round(walk_tilt(0.01), 12)
    True
    """
    e = walk_tilt(delta)
    k = np.arange(T + 1, dtype=np.float64)
    log_binom = gammaln(T + 1) - gammaln(k + 1) - gammaln(T - k + 1) - T * math.log(2.0)
    with np.errstate(divide="ignore"):
        log_ratio = k * math.log1p(2 * e) + (T - k) * math.log1p(-2 * e)
    big = log_ratio > 600.0
    small = np.exp(log_binom) * np.abs(np.expm1(np.where(big, 0.0, log_ratio)))
    large = np.abs(np.exp(log_binom + log_ratio) - np.exp(log_binom))
    return float(min(1.0, 0.5 * np.sum(np.where(big, large, small))))

