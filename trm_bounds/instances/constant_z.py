r"""The constant-``|Z_T|`` design: the worst case under a per-token KL budget (docs/theory.md §10).

Write ``rho_t - 1 = lambda_t xi_t`` with ``xi_t`` a rollout martingale difference of
conditional variance 1.  To second order ``max_R |Error| = 1/2 E|D_T|`` with
``D_T ~ lambda^2 Z_T``, ``Z_T = sum_{s<t} xi_s xi_t``, and Cauchy-Schwarz caps
``E|Z_T| <= sqrt(T(T-1)/2)``.  The design attains it: with ``g = T - t`` and ``M``, ``Z`` the
prefix sums of ``xi`` and of the pair products, ``xi_t`` takes the two roots ``a > 0 > b`` of

.. math::

    (M^2 + g)\,x^2 + 2M(Z + g)\,x - (M^2 + g) = 0

(their product is ``-1``), with ``pi_roll = (-b, a)/(a - b)`` on tokens ``(0, 1)`` (mean 0,
variance ``-ab = 1``).  Then ``Z_t^2 + (T - t) M_t^2 = c_t`` with ``c_t = c_{t-1} + (T - t)``,
``c_0 = 0``, so ``Z_T^2 = T(T-1)/2`` on every path (:func:`constant_z_invariant` checks it).
``pi_theta(v) = pi_roll(v)(1 + lambda_c xi_v)`` with ``lambda_c > 0`` set per context so
that ``KL(pi_roll || pi_theta) = delta`` exactly (:func:`kl_tilt`).

Two forms: :func:`constant_z`, the tree instance (``V = 2``, every path enumerated, ``T <= 16``),
with the reward ``1[D_T > 0]`` that attains ``max_R |Error|``; and
:func:`constant_z_monte_carlo` for long ``T`` (the exact per-path ``D_T`` on rollout samples,
with its standard error).  Both evaluate ``D_T`` by the cancellation-free recursion
``D_t = D_{t-1} + X_{t-1} eta_t``, ``X_t = prod_{s<=t}(1 + eta_s) - 1`` (``expm1`` of a sum of
``log1p``), ``eta_t = lambda_t xi_t`` (docs/theory.md §10).
"""

from __future__ import annotations

import math

import numpy as np

from trm_bounds.instances.tree import TreeInstance

__all__ = [
    "constant_z",
    "constant_z_roots",
    "kl_tilt",
    "constant_z_monte_carlo",
    "constant_z_invariant",
    "constant_z_leading",
    "MAX_TREE_T",
    "RATIO_FLOOR",
]

#: Largest horizon of the tree form (``2^16`` sequences, ``2^16 - 1`` contexts).
MAX_TREE_T = 16
#: Bisection steps of :func:`kl_tilt` (the bracket ``[0, 40 log 2]`` shrinks below ``1e-17``).
_BISECT = 64
#: Smallest ``pi_theta / pi_roll`` on the negative token (:func:`kl_tilt`).
RATIO_FLOOR = 2.0**-40


def constant_z_roots(M: np.ndarray, Z: np.ndarray, g: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    r"""The roots ``a > 0 > b`` of ``(M^2 + g) x^2 + 2M(Z + g) x - (M^2 + g)`` (docs/theory.md §10).

    Divided by ``M^2 + g`` it is ``x^2 + 2 beta x - 1`` with ``beta = M(Z + g)/(M^2 + g)``, so
    ``a = sqrt(beta^2 + 1) - beta`` (formed as ``1/(beta + sqrt(beta^2 + 1))`` for
    ``beta >= 0``, no cancellation) and ``b = -1/a``.  Where ``M^2 + g = 0`` (the last
    position with ``M = 0``) every ``x`` keeps the invariant and the roots are ``(1, -1)``.

    >>> a, b = constant_z_roots(np.array([0.0]), np.array([0.0]), 3)
    >>> a.tolist(), b.tolist()
    ([1.0], [-1.0])
    """
    M = np.asarray(M, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    den = M * M + g
    safe = den > 0.0
    beta = np.where(safe, M * (Z + g) / np.where(safe, den, 1.0), 0.0)
    s = np.hypot(beta, 1.0)
    a = np.where(beta >= 0.0, 1.0 / (beta + s), s - beta)
    return a, -1.0 / a


def kl_tilt(a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    r"""``(lambda, s)``: the tilt ``lambda >= 0`` with ``KL(pi_roll || pi_theta) = delta`` for the
    two-point pair, and ``s = -log(1 + lambda b)`` (``rho_b = exp(-s)`` with all its digits).

    ``pi_roll = (-b, a)/(a - b)`` on the values ``(a, b)`` of ``xi``, ``pi_theta =
    pi_roll (1 + lambda xi)``, so (docs/theory.md §10, forward KL)

    .. math:: f(\lambda) = -p_a \log(1 + \lambda a) - p_b \log(1 + \lambda b) = \delta,

    increasing on ``[0, 1/|b|)`` from 0 to infinity: vectorised bisection in
    ``s = -log(1 + lambda b)``.  ``lambda`` is capped at ``(1 - RATIO_FLOOR)/|b|``
    (``rho_b >= RATIO_FLOOR``): at a context where ``p_b`` is so small that the budget needs
    ``rho_b`` below that (``rho_b = exp(-delta/p_b)`` roughly), the KL stays below ``delta``
    (the design is then still within the budget).  Since ``-p_a log(1 + lambda a) >= -p_b``
    this happens only where ``p_b (40 log 2 - 1) < delta``, i.e. ``p_b < delta / 26``.

    >>> lam, _ = kl_tilt(np.array([1.0]), np.array([-1.0]), 1e-4)
    >>> round(float(-0.5 * np.log1p(-lam[0] ** 2)) / 1e-4, 12)
    1.0
    """
    if not (delta > 0 and math.isfinite(delta)):
        raise ValueError(f"kl_tilt: delta = {float(delta)!r} is not a finite value > 0")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    pa, pb = -b / (a - b), a / (a - b)

    # solve in s = -log(rho_b) = -log(1 + lambda b): f is smooth there, rho_b keeps its digits
    s_max = -math.log(RATIO_FLOOR)

    def f(s: np.ndarray) -> np.ndarray:
        lam = -np.expm1(-s) / -b
        return -pa * np.log1p(lam * a) + pb * s - delta

    lo = np.zeros_like(a)
    hi = np.full_like(a, s_max)
    capped = f(hi) <= 0.0  # the budget cannot be spent: rho_b = RATIO_FLOOR, KL < delta
    lo = np.where(capped, hi, lo)
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        up = f(mid) > 0.0
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return -np.expm1(-hi) / -b, hi


def constant_z_leading(T: int, delta: float) -> float:
    r"""The design's ``max_R |Error|`` to leading order, ``delta sqrt(T(T-1)/2)``: Cauchy-Schwarz's
    cap on ``1/2 E|D_T|`` with ``lambda^2 = 2 delta`` (docs/theory.md §10, Theorems 10.3, 10.5).

    >>> round(constant_z_leading(4, 1.0) / 4, 5)
    0.61237
    """
    return delta * math.sqrt(T * (T - 1) / 2.0)


def _step(M: np.ndarray, Z: np.ndarray, T: int, t: int, delta: float):
    """At position ``t`` for contexts ``(M, Z)``: ``xi`` ``(n, 2)``, ``pi_roll`` ``(n, 2)``,
    ``eta = rho - 1`` ``(n, 2)`` and ``log rho`` ``(n, 2)`` on tokens ``(0, 1)``."""
    a, b = constant_z_roots(M, Z, T - t)
    lam, s = kl_tilt(a, b, delta)
    p_a = -b / (a - b)
    xi = np.stack([a, b], axis=1)
    pr = np.stack([p_a, a / (a - b)], axis=1)
    eta = np.stack([lam * a, np.expm1(-s)], axis=1)
    log_rho = np.stack([np.log1p(lam * a), -s], axis=1)
    return xi, pr, eta, log_rho


def constant_z(T: int, delta: float) -> TreeInstance:
    r"""The constant-``|Z_T|`` design as a tree instance (module docstring), ``V = 2``, ``T <= 16``.

    Token 0 carries ``xi = a``, token 1 ``xi = b``.  The reward is ``1[D_T > 0]`` with
    ``D_T = prod_t(1 + eta_t) - 1 - sum_t eta_t`` per path, so ``Error = 1/2 E_roll|D_T| =
    max_R |Error|`` (the coefficients of docs/theory.md §2 are ``c = P^roll D_T``);
    ``meta`` records ``max_error`` (that value, computed here from the design, independently
    of the engines), ``Z2`` (``T(T-1)/2``) and ``leading`` (:func:`constant_z_leading`).

    >>> inst = constant_z(3, 1e-3)
    >>> inst.V, inst.T, inst.pi_roll.shape
    (2, 3, (1, 7, 2))
    """
    if not 1 <= T <= MAX_TREE_T:
        raise ValueError(f"constant_z: T = {T} outside 1..{MAX_TREE_T} (tree form); "
                         "use constant_z_monte_carlo for longer horizons")  # fmt: skip
    M = np.zeros(1)
    Z = np.zeros(1)
    lp = np.zeros(1)  # log P^roll(prefix)
    X = np.zeros(1)  # prod (1 + eta) - 1
    L = np.zeros(1)  # sum log1p(eta)
    D = np.zeros(1)  # X - sum eta, by its recursion
    pr_rows, pt_rows = [], []
    for t in range(1, T + 1):
        xi, pr, eta, log_rho = _step(M, Z, T, t, delta)
        pr_rows.append(pr)
        pt_rows.append(pr * np.exp(log_rho))
        Z = (Z[:, None] + M[:, None] * xi).ravel()
        M = (M[:, None] + xi).ravel()
        lp = (lp[:, None] + np.log(pr)).ravel()
        D = (D[:, None] + X[:, None] * eta).ravel()
        L = (L[:, None] + log_rho).ravel()
        X = np.expm1(L)
    pr_all = np.concatenate(pr_rows)[None]
    pt_all = np.concatenate(pt_rows)[None]
    w = np.exp(lp)
    max_error = float(0.5 * np.sum(w * np.abs(D)))
    return TreeInstance.from_arrays(
        p_x=[1.0], pi_roll=pr_all, pi_theta=pt_all, reward=(D > 0.0).astype(np.float64)[None],
        id=f"constant_z(T={T},delta={delta:g})",
        meta={"kind": "constant_z", "delta": delta, "max_error": max_error,
              "Z2": T * (T - 1) / 2.0, "Z2_paths_max_dev": float(np.max(np.abs(Z * Z - T * (T - 1) / 2))),
              "leading": constant_z_leading(T, delta)},
    )  # fmt: skip


def constant_z_invariant(T: int, n_paths: int = 64, seed: int = 0) -> np.ndarray:
    r"""``Z_t^2 + (T - t) M_t^2 - c_t`` ``(n_paths, T)`` on random paths (any choice of roots):
    zero up to rounding, the invariant of the design (docs/theory.md §10)."""
    rng = np.random.default_rng(seed)
    M = np.zeros(n_paths)
    Z = np.zeros(n_paths)
    c = 0.0
    out = np.empty((n_paths, T))
    for t in range(1, T + 1):
        a, b = constant_z_roots(M, Z, T - t)
        xi = np.where(rng.random(n_paths) < 0.5, a, b)
        Z, M = Z + M * xi, M + xi
        c += T - t
        out[:, t - 1] = Z * Z + (T - t) * M * M - c
    return out


def constant_z_monte_carlo(T: int, delta: float, *, n_paths: int = 100_000,
                           seed: int = 0) -> tuple[float, float]:  # fmt: skip
    r"""``max_R |Error| = 1/2 E_roll|D_T|`` of the design for long ``T``, by Monte Carlo.

    ``n_paths`` rollout paths (``numpy`` generator ``seed``), each ``D_T`` exact along its path
    (the recursion of the module docstring).  Returns ``(estimate, standard_error)``, the
    standard error ``std(|D_T|/2)/sqrt(n_paths)``; the reward ``1[D_T > 0]`` attains the
    maximum, so the estimate is of the exact maximum (docs/theory.md §10).

    >>> est, se = constant_z_monte_carlo(4, 1e-5, n_paths=2000)
    >>> abs(est - constant_z(4, 1e-5).meta["max_error"]) < 5 * se
    True
    """
    if T < 1 or n_paths < 2:
        raise ValueError(f"constant_z_monte_carlo: T = {T}, n_paths = {n_paths} (need >= 1, >= 2)")
    rng = np.random.default_rng(seed)
    M = np.zeros(n_paths)
    Z = np.zeros(n_paths)
    X = np.zeros(n_paths)
    L = np.zeros(n_paths)
    D = np.zeros(n_paths)
    for t in range(1, T + 1):
        xi, pr, eta, log_rho = _step(M, Z, T, t, delta)
        pick = (rng.random(n_paths) >= pr[:, 0]).astype(np.intp)[:, None]  # token 1 w.p. p_b
        x, e, lr = (np.take_along_axis(v, pick, 1)[:, 0] for v in (xi, eta, log_rho))
        Z, M = Z + M * x, M + x
        D = D + X * e
        L = L + lr
        X = np.expm1(L)
    half = 0.5 * np.abs(D)
    return float(half.mean()), float(half.std(ddof=1) / math.sqrt(n_paths))
