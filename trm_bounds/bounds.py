r"""The bound family of Trust Region Masking (THEORY.md sections 4 and 5).

Every bound caps ``|Error(theta)| = |J(theta) - J(roll) - L'(theta)|`` for a reward in
``[0, 1]``.  Symbols follow THEORY.md:

* ``T`` -- horizon (response length), a positive integer or a 1-D integer array;
* ``eps = D_TV^{tok,max}`` -- the largest per-context total variation;
* ``delta = D_KL^{tok,max}`` -- the largest per-context KL(roll || theta), in nats;
* ``dkl_seq = D_KL^seq`` -- the sequence-level KL(roll || theta), in nats;
* ``dtv_seq = D_TV^seq`` -- the sequence-level TV;
* ``dbar`` -- ``Dbar_t = E_{c_t ~ d_t^roll} TV(c_t)``, ``t = 1..T``.

With ``a = min(1, sqrt(delta/2))`` and ``e = min(1, eps)``, the published bounds carry a
leading constant 4 (classical: ``2T(T-1)eps^2`` and ``T(T-1)delta``).  The sharp
variants (THEORY.md section 5, ``sharp=True``) carry 2 (classical: ``T(T-1)eps^2`` and
``T(T-1)delta/2``); they are a separate, labelled choice, never a silent replacement.

Sums over ``t`` are evaluated in closed form, so an array of ``T`` costs one vectorised
pass: ``sum_{k=1}^n sqrt(k)`` by Euler-Maclaurin (exact table below 64, relative error
below 1e-15 above), piecewise-linear caps by their breakpoints.

>>> b = compute_bounds(4096, eps=5e-3, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)
>>> round(b["mix_tv"], 3), round(b["classical_tv"])
(4.096, 839)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BOUND_NAMES",
    "BOUNDS",
    "BoundSpec",
    "compute_bounds",
    "kl_only",
    "validate",
    "classical_tv",
    "classical_kl",
    "coupling",
    "pm_kl",
    "pm_tv",
    "mix_kl",
    "mix_tv",
    "adaptive_kl",
    "adaptive_tv",
    "adaptive_hybrid",
    "linear",
    "unified",
    "pm_kl_closed_form",
    "pm_tv_closed_form",
    "mix_kl_closed_form",
    "mix_tv_closed_form",
    "coupling_closed_form",
    "pm_regime",
    "coupling_regime",
    "adaptive_crossover",
    "sum_sqrt",
    "RELATION_TOL",
]

#: Absolute tolerance on the section-3 relations checked by :func:`validate`.
RELATION_TOL = 1e-12

Array = np.ndarray
Value = float | np.ndarray

# --------------------------------------------------------------------------- sums


_NTAB = 64
# Partial sums sum_{k=1}^n sqrt(k) for n < _NTAB, each correctly rounded (math.fsum).
_SQRT_TABLE = np.array([math.fsum(math.sqrt(k) for k in range(1, n + 1)) for n in range(_NTAB)])
# zeta(-1/2), the constant of the Euler-Maclaurin expansion (mpmath.zeta(-0.5), 30 digits).
_ZETA_M_HALF = -0.207886224977354566017306720913
# Euler-Maclaurin coefficients B_2j/(2j)! f^(2j-1)(n) for f = sqrt: n^(-1/2)/24,
# -n^(-5/2)/1920, n^(-9/2)/9216, -(10395/154828800) n^(-13/2).
_EM = (1.0 / 24.0, -1.0 / 1920.0, 1.0 / 9216.0, -10395.0 / 154828800.0)


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


# Above this n the terms past n^(-1/2)/24 change S(n) by less than 1e-18 relative.
_EM_ONE_TERM = 1000.0


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


def _pm_prefix(n: Value, delta: float) -> Value:
    """``P(n) = sum_{k=0}^n min(1, sqrt(k delta / 2))``."""
    if delta <= 0.0:
        return np.zeros_like(n, dtype=np.float64) if isinstance(n, np.ndarray) else 0.0
    m = _count_leq(n, 2.0 / delta)  # k <= 2/delta  <=>  sqrt(k delta/2) <= 1
    return math.sqrt(delta / 2.0) * sum_sqrt(m) + (n - m)


def _coupling_prefix(n: Value, eps: float) -> Value:
    """``C(n) = sum_{k=0}^n min(1, k eps)``."""
    if eps <= 0.0:
        return np.zeros_like(n, dtype=np.float64) if isinstance(n, np.ndarray) else 0.0
    m = _count_leq(n, 1.0 / eps)  # k <= 1/eps  <=>  k eps <= 1
    return eps * m * (m + 1.0) / 2.0 + (n - m)


def _hybrid_prefix(n: Value, eps: float, delta: float) -> Value:
    """``H(n) = sum_{k=0}^n min(1, k eps, sqrt(k delta / 2))``.

    ``k eps <= sqrt(k delta/2)`` iff ``k <= delta/(2 eps^2)`` (the Adaptive crossover).
    """
    if eps <= 0.0 or delta <= 0.0:
        return np.zeros_like(n, dtype=np.float64) if isinstance(n, np.ndarray) else 0.0
    low = _count_leq(n, adaptive_crossover(eps=eps, delta=delta))
    return _coupling_prefix(low, eps) + (_pm_prefix(n, delta) - _pm_prefix(low, delta))


# --------------------------------------------------------------------------- weights


def _kl_route(k: Array, delta: float) -> Array:
    return np.minimum(1.0, np.sqrt(k * (delta / 2.0)))


def _tv_route(k: Array, eps: float) -> Array:
    return np.minimum(1.0, k * eps)


def _c(sharp: bool) -> float:
    return 2.0 if sharp else 4.0


# --------------------------------------------------------------------------- bounds


def classical_tv(T: ArrayLike, *, eps: float, sharp: bool = False) -> Value:
    r"""Classical bound, TV form (THEORY.md s.4; s.5 sharp): ``2 T (T-1) eps^2`` (sharp ``T(T-1) eps^2``).

    No caps; scales as ``T^2``.
    """
    T = np.asarray(T, dtype=np.float64)
    return (1.0 if sharp else 2.0) * T * (T - 1.0) * eps * eps


def classical_kl(T: ArrayLike, *, delta: float, sharp: bool = False) -> Value:
    r"""Classical bound, KL form (THEORY.md s.4; s.5 sharp): ``T (T-1) delta`` (sharp ``T(T-1) delta / 2``)."""
    T = np.asarray(T, dtype=np.float64)
    return (0.5 if sharp else 1.0) * T * (T - 1.0) * delta


def coupling(T: ArrayLike, *, eps: float, sharp: bool = False) -> Value:
    r"""Coupling bound (THEORY.md s.4): ``4 e sum_t min(1, (t-1) eps)``, ``e = min(1, eps)`` (sharp: 2)."""
    T = np.asarray(T, dtype=np.float64)
    return _c(sharp) * min(1.0, eps) * _coupling_prefix(T - 1.0, eps)


def pm_kl(T: ArrayLike, *, delta: float, sharp: bool = False) -> Value:
    r"""Pinsker-Marginal, KL (THEORY.md s.4): ``4 a sum_t min(1, sqrt((t-1) delta/2))`` (sharp: 2).

    ``a = min(1, sqrt(delta/2))``; scales as ``T^{3/2}`` while ``delta <= 2/T``.
    """
    T = np.asarray(T, dtype=np.float64)
    a = min(1.0, math.sqrt(delta / 2.0))
    return _c(sharp) * a * _pm_prefix(T - 1.0, delta)


def pm_tv(T: ArrayLike, *, eps: float, delta: float, sharp: bool = False) -> Value:
    r"""Pinsker-Marginal, TV (THEORY.md s.4): ``4 e sum_t min(1, sqrt((t-1) delta/2))`` (sharp: 2)."""
    T = np.asarray(T, dtype=np.float64)
    return _c(sharp) * min(1.0, eps) * _pm_prefix(T - 1.0, delta)


def mix_kl(T: ArrayLike, *, delta: float, dkl_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mixed, KL (THEORY.md s.4): ``4 T a min(1, sqrt(D_KL^seq / 2))`` (sharp: 2)."""
    T = np.asarray(T, dtype=np.float64)
    a = min(1.0, math.sqrt(delta / 2.0))
    return _c(sharp) * T * a * np.minimum(1.0, np.sqrt(np.asarray(dkl_seq, np.float64) / 2.0))


def mix_tv(T: ArrayLike, *, eps: float, dtv_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mixed, TV (THEORY.md s.4): ``4 T e min(1, D_TV^seq)`` (sharp: 2)."""
    T = np.asarray(T, dtype=np.float64)
    return _c(sharp) * T * min(1.0, eps) * np.minimum(1.0, np.asarray(dtv_seq, np.float64))


def _adaptive(
    T: ArrayLike, route: str, *, eps: float, delta: float, dbar: ArrayLike | None, sharp: bool
) -> Value:
    """``c sum_t Dbar_t w(T - t)`` with the route's weight ``w``; worst case ``Dbar_t = e``."""
    T = np.asarray(T, dtype=np.float64)
    if dbar is None:
        # Index reversal: T - t runs over 0..T-1, so the sum is a prefix sum at T - 1.
        prefix = {"kl": lambda n: _pm_prefix(n, delta),
                  "tv": lambda n: _coupling_prefix(n, eps),
                  "hybrid": lambda n: _hybrid_prefix(n, eps, delta)}[route]
        return _c(sharp) * min(1.0, eps) * prefix(T - 1.0)
    dbar = np.asarray(dbar, dtype=np.float64)
    k = float(T) - np.arange(1, dbar.shape[0] + 1, dtype=np.float64)  # T - t
    if route == "kl":
        w = _kl_route(k, delta)
    elif route == "tv":
        w = _tv_route(k, eps)
    else:
        w = np.minimum(_tv_route(k, eps), _kl_route(k, delta))
    return _c(sharp) * float(dbar @ w)


def adaptive_kl(
    T: ArrayLike, *, eps: float, delta: float, dbar: ArrayLike | None = None, sharp: bool = False
) -> Value:
    r"""Adaptive, KL route (THEORY.md s.4): ``4 sum_t Dbar_t min(1, sqrt((T-t) delta/2))``.

    ``dbar=None`` takes the worst case ``Dbar_t = min(1, eps)``.
    """
    return _adaptive(T, "kl", eps=eps, delta=delta, dbar=dbar, sharp=sharp)


def adaptive_tv(
    T: ArrayLike, *, eps: float, delta: float, dbar: ArrayLike | None = None, sharp: bool = False
) -> Value:
    r"""Adaptive, TV route (THEORY.md s.4): ``4 sum_t Dbar_t min(1, (T-t) eps)``."""
    return _adaptive(T, "tv", eps=eps, delta=delta, dbar=dbar, sharp=sharp)


def adaptive_hybrid(
    T: ArrayLike, *, eps: float, delta: float, dbar: ArrayLike | None = None, sharp: bool = False
) -> Value:
    r"""Adaptive, hybrid (THEORY.md s.4): ``4 sum_t Dbar_t min(1, (T-t) eps, sqrt((T-t) delta/2))``."""
    return _adaptive(T, "hybrid", eps=eps, delta=delta, dbar=dbar, sharp=sharp)


def linear(T: ArrayLike, *, eps: float, dbar: ArrayLike | None = None, sharp: bool = False) -> Value:
    r"""Linear bound (THEORY.md s.4): ``4 sum_t Dbar_t`` (``<= 4 T eps``; worst case ``4 T min(1, eps)``)."""
    if dbar is None:
        return _c(sharp) * np.asarray(T, dtype=np.float64) * min(1.0, eps)
    return _c(sharp) * float(np.sum(np.asarray(dbar, dtype=np.float64)))


#: Members of the unified bound ``B*`` (THEORY.md s.4).
UNIFIED_MEMBERS = ("pm_kl", "pm_tv", "mix_kl", "mix_tv", "coupling", "adaptive_hybrid")


def unified(bounds: dict[str, Value]) -> Value:
    r"""Unified bound ``B* = min(PM-KL, PM-TV, Mix-KL, Mix-TV, Coupling, Adaptive-hybrid)`` (THEORY.md s.4)."""
    out = bounds[UNIFIED_MEMBERS[0]]
    for name in UNIFIED_MEMBERS[1:]:
        out = np.minimum(out, bounds[name])
    return out


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class BoundSpec:
    """One entry of the bound registry: the function, what it reads, and how it scales."""

    name: str
    label: str
    fn: Callable[..., Value] | None
    args: tuple[str, ...]
    family: str
    route: str
    scaling: str
    theory: str


BOUNDS: dict[str, BoundSpec] = {
    s.name: s
    for s in (
        BoundSpec("classical_tv", "Classical (TV)", classical_tv, ("eps",), "classical",
                  "TV", "T^2", "s.4 row 1"),
        BoundSpec("classical_kl", "Classical (KL)", classical_kl, ("delta",), "classical",
                  "KL", "T^2", "s.4 row 2"),
        BoundSpec("coupling", "Coupling", coupling, ("eps",), "coupling",
                  "TV", "T^2; T once T eps > 1", "s.4 row 3"),
        BoundSpec("pm_kl", "Pinsker-Marginal (KL)", pm_kl, ("delta",), "pinsker-marginal",
                  "KL", "T^{3/2}", "s.4 row 4"),
        BoundSpec("pm_tv", "Pinsker-Marginal (TV)", pm_tv, ("eps", "delta"), "pinsker-marginal",
                  "TV x KL", "T^{3/2}", "s.4 row 5"),
        BoundSpec("mix_kl", "Mixed (KL)", mix_kl, ("delta", "dkl_seq"), "mixed",
                  "KL x seq-KL", "T (D_KL^seq fixed)", "s.4 row 6"),
        BoundSpec("mix_tv", "Mixed (TV)", mix_tv, ("eps", "dtv_seq"), "mixed",
                  "TV x seq-TV", "T (D_TV^seq fixed)", "s.4 row 7"),
        BoundSpec("adaptive_kl", "Adaptive (KL)", adaptive_kl, ("eps", "delta", "dbar"),
                  "adaptive", "Dbar x KL", "data-dependent", "s.4 row 8"),
        BoundSpec("adaptive_tv", "Adaptive (TV)", adaptive_tv, ("eps", "delta", "dbar"),
                  "adaptive", "Dbar x TV", "data-dependent", "s.4 row 9"),
        BoundSpec("adaptive_hybrid", "Adaptive (hybrid)", adaptive_hybrid,
                  ("eps", "delta", "dbar"), "adaptive", "Dbar x min(TV, KL)",
                  "data-dependent", "s.4 row 10"),
        BoundSpec("linear", "Linear", linear, ("eps", "dbar"), "linear", "Dbar", "T",
                  "s.4 row 11"),
        BoundSpec("unified", "Unified B*", None, (), "unified", "min of six", "-",
                  "s.4 row 12"),
    )
}

#: The twelve bound names, in the order of THEORY.md section 4.
BOUND_NAMES: tuple[str, ...] = tuple(BOUNDS)


# --------------------------------------------------------------------------- validation


def _as_T(T: ArrayLike) -> np.ndarray:
    arr = np.asarray(T)
    if arr.dtype == bool or arr.ndim > 1:
        raise ValueError(f"T must be a positive integer or a 1-D integer array, got {T!r}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"T must be a positive integer, got {T!r}")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"T must be a positive integer or a 1-D integer array, got {T!r}")
    if arr.size == 0:
        raise ValueError("T must not be empty")
    lo = arr.min()
    if lo < 1:
        raise ValueError(f"T must be a positive integer, got T = {int(lo)}")
    return arr.astype(np.int64, copy=False)


def _as_div(name: str, x: ArrayLike, *, upper: float | None = None, shape=()) -> Any:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape != shape):
        raise ValueError(f"{name} must be a scalar or match the shape of T {shape}, got {arr.shape}")
    lo, hi = float(arr.min()), float(arr.max())  # NaN propagates into both
    if lo >= 0.0 and hi < math.inf and (upper is None or hi <= upper + RELATION_TOL):
        return float(arr) if arr.ndim == 0 else arr
    where = "" if arr.ndim == 0 else " at position {}"
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad.ravel()))
        raise ValueError(f"{name} must be finite, got {float(arr.ravel()[i])!r}{where.format(i)}")
    if lo < 0.0:
        i = int(np.argmin(arr.ravel()))
        raise ValueError(f"{name} must be >= 0, got {lo!r}{where.format(i)}")
    i = int(np.argmax(arr.ravel()))
    raise ValueError(f"{name} must be <= {upper} (a total variation), got {hi!r}{where.format(i)}")


def _entry(x: Any, i: int) -> float:
    """Entry ``i`` of a scalar-or-array argument, for error messages."""
    return float(x) if np.ndim(x) == 0 else float(np.ravel(x)[i])


def validate(
    T: ArrayLike,
    *,
    eps: float,
    delta: float,
    dkl_seq: ArrayLike,
    dtv_seq: ArrayLike,
    dbar: ArrayLike | None = None,
) -> tuple[np.ndarray, float, float, Any, Any, np.ndarray | None]:
    """Check ranges and the section-3 relations (THEORY.md s.3) up to ``RELATION_TOL``.

    Relations: ``eps <= sqrt(delta/2)``, ``dtv_seq <= sqrt(dkl_seq/2)``,
    ``dkl_seq <= T delta``, ``0 <= dbar_t <= eps``.  Raises ``ValueError`` naming the
    relation and the values; returns the converted arguments.
    """
    T_arr = _as_T(T)
    shape = T_arr.shape
    eps = _as_div("eps", eps, upper=1.0)
    delta = _as_div("delta", delta)
    if isinstance(eps, np.ndarray) or isinstance(delta, np.ndarray):
        raise ValueError("eps and delta must be scalars")
    dkl_seq = _as_div("dkl_seq", dkl_seq, shape=shape)
    dtv_seq = _as_div("dtv_seq", dtv_seq, upper=1.0, shape=shape)
    if eps > math.sqrt(delta / 2.0) + RELATION_TOL:
        raise ValueError(
            f"relation eps <= sqrt(delta/2) (Pinsker) violated: eps = {eps!r}, "
            f"sqrt(delta/2) = {math.sqrt(delta / 2.0)!r} (delta = {delta!r})"
        )
    if np.ndim(dtv_seq) == 0 and np.ndim(dkl_seq) == 0:
        bad_pinsker = dtv_seq - math.sqrt(dkl_seq / 2.0) > RELATION_TOL
        bad_chain = dkl_seq > T_arr.min() * delta * (1 + RELATION_TOL) + RELATION_TOL
        i = j = 0
    else:  # one scratch buffer: at 10^6 entries fresh memory is the cost
        buf = np.empty(shape)
        np.multiply(dkl_seq, 0.5, out=buf)
        np.sqrt(buf, out=buf)
        np.subtract(dtv_seq, buf, out=buf)
        bad = buf > RELATION_TOL
        bad_pinsker = bool(bad.any())
        j = int(np.argmax(bad)) if bad_pinsker else 0
        np.multiply(T_arr, delta * (1 + RELATION_TOL), out=buf)
        buf += RELATION_TOL
        bad_chain_arr = np.greater(dkl_seq, buf, out=bad)
        bad_chain = bool(bad_chain_arr.any())
        i = int(np.argmax(bad_chain_arr)) if bad_chain else 0
    if bad_pinsker:
        at = "" if T_arr.ndim == 0 else f" at T = {int(T_arr[j])}"
        raise ValueError(
            f"relation dtv_seq <= sqrt(dkl_seq/2) (Pinsker) violated{at}: "
            f"dtv_seq = {_entry(dtv_seq, j)!r}, dkl_seq = {_entry(dkl_seq, j)!r}"
        )
    if bad_chain:
        T_i = int(np.ravel(T_arr)[i]) if np.ndim(dkl_seq) else int(T_arr.min())
        raise ValueError(
            "relation dkl_seq <= T delta violated: "
            f"dkl_seq = {_entry(dkl_seq, i)!r}, T = {T_i}, delta = {delta!r}"
        )
    dbar_arr = None
    if dbar is not None:
        if T_arr.ndim != 0:
            raise ValueError("dbar is a length-T sequence and needs a scalar T")
        dbar_arr = np.asarray(dbar, dtype=np.float64)
        if dbar_arr.shape != (int(T_arr),):
            raise ValueError(f"dbar must have length T = {int(T_arr)}, got shape {dbar_arr.shape}")
        if not np.all(np.isfinite(dbar_arr)):
            i = int(np.argmin(np.isfinite(dbar_arr)))
            raise ValueError(f"dbar must be finite, got dbar[{i}] (t = {i + 1}) = {dbar_arr[i]!r}")
        if np.any(dbar_arr < 0):
            i = int(np.argmin(dbar_arr))
            raise ValueError(f"dbar must be >= 0, got dbar[{i}] (t = {i + 1}) = {dbar_arr[i]!r}")
        if np.any(dbar_arr > eps + RELATION_TOL):
            i = int(np.argmax(dbar_arr))
            raise ValueError(
                f"relation Dbar_t <= eps violated at t = {i + 1}: Dbar_t = {dbar_arr[i]!r}, "
                f"eps = {eps!r}"
            )
    return T_arr, eps, delta, dkl_seq, dtv_seq, dbar_arr


# --------------------------------------------------------------------------- entry point


def compute_bounds(
    T: ArrayLike,
    *,
    eps: float,
    delta: float,
    dkl_seq: ArrayLike,
    dtv_seq: ArrayLike,
    dbar: ArrayLike | None = None,
    sharp: bool = False,
) -> dict[str, float | np.ndarray]:
    r"""Every bound of THEORY.md section 4 (``sharp=True``: section 5), keyed by ``BOUND_NAMES``.

    Parameters
    ----------
    T : int or 1-D int array
        Horizon. For an array every entry of the result is an array over ``T``
        (one vectorised pass; ``dkl_seq``/``dtv_seq`` may then be arrays of the same shape).
    eps, delta : float
        ``D_TV^{tok,max}`` and ``D_KL^{tok,max}`` (forward KL, nats).
    dkl_seq, dtv_seq : float or array
        ``D_KL^seq`` (nats) and ``D_TV^seq``.
    dbar : sequence of length T, optional
        ``Dbar_t``; ``None`` takes the worst case ``Dbar_t = min(1, eps)`` for the
        Adaptive and Linear entries (as the paper's table does). Scalar ``T`` only.
    sharp : bool
        Leading constant 2 instead of 4 (THEORY.md s.5); never the default.

    Raises ``ValueError`` on invalid input or a violated section-3 relation.

    >>> b = compute_bounds(4096, eps=(1e-4 / 2) ** 0.5, delta=1e-4, dkl_seq=0.01,
    ...                    dtv_seq=(0.01 / 2) ** 0.5)
    >>> round(float(b["classical_kl"])), round(float(b["coupling"]), 1), round(float(b["mix_kl"]), 1)
    (1677, 113.8, 8.2)
    """
    T_arr, eps, delta, dkl_seq, dtv_seq, dbar_arr = validate(
        T, eps=eps, delta=delta, dkl_seq=dkl_seq, dtv_seq=dtv_seq, dbar=dbar
    )
    if T_arr.ndim == 1:
        return _compute_array(T_arr, eps, delta, dkl_seq, dtv_seq, sharp)
    params = {"eps": eps, "delta": delta, "dkl_seq": dkl_seq, "dtv_seq": dtv_seq, "dbar": dbar_arr}
    out: dict[str, Any] = {}
    for name, spec in BOUNDS.items():
        if spec.fn is not None:
            out[name] = float(spec.fn(int(T_arr), **{k: params[k] for k in spec.args}, sharp=sharp))
    out["unified"] = float(unified(out))
    return {name: out[name] for name in BOUND_NAMES}


def _compute_array(
    T: np.ndarray, eps: float, delta: float, dkl_seq: Any, dtv_seq: Any, sharp: bool
) -> dict[str, np.ndarray]:
    """All twelve bounds over an array of ``T`` in one pass (worst-case ``Dbar_t``).

    Shares the prefix sums between bounds -- ``T(T-1)`` (classical), ``C(T-1)`` (Coupling,
    Adaptive-TV), ``P(T-1)`` (PM, Adaptive-KL), ``H(T-1)`` (Adaptive-hybrid) -- and works
    in place: at ``10^6`` entries the cost is dominated by touching fresh memory, so each
    result is computed into its own output array with masked ufuncs instead of
    ``np.where`` temporaries.  Entries that are equal by THEORY.md s.4 (Adaptive-KL and
    PM-TV, Adaptive-TV and Coupling under the worst case ``Dbar_t = e``) share one
    read-only array.
    """
    c = _c(sharp)
    e = min(1.0, eps)
    a = min(1.0, math.sqrt(delta / 2.0))
    ce = c * e
    # All results live in the rows of one block: a single large allocation costs far fewer
    # page faults than ten separate ones (measured: about 2x at 10^6 entries).
    rows = iter(np.empty((10, T.shape[0])))
    n = np.subtract(T, 1.0, out=next(rows), casting="unsafe")  # n = T - 1
    n_max = float(n.max())

    # Coupling = c e C(n); C(n) = eps n(n+1)/2 for n <= M = floor(1/eps), else C(M) + n - M.
    coup = np.add(n, 1.0, out=next(rows))
    coup *= n  # T (T - 1)
    classical_tv = np.multiply(coup, (1.0 if sharp else 2.0) * eps * eps, out=next(rows))
    classical_kl = np.multiply(coup, (0.5 if sharp else 1.0) * delta, out=next(rows))
    if eps > 0.0 and 1.0 / eps < n_max:
        m_c = float(math.floor(1.0 / eps))
        above = n > m_c
        np.multiply(coup, ce * eps / 2.0, out=coup, where=~above)
        np.add(n, eps * m_c * (m_c + 1.0) / 2.0 - m_c, out=coup, where=above)
        np.multiply(coup, ce, out=coup, where=above)
    else:
        coup *= ce * eps / 2.0

    # PM-TV = c e P(n); P(n) = a S(n) for n <= M = floor(2/delta), else P(M) + n - M.
    pm = next(rows)
    if delta <= 0.0:
        pm[:] = 0.0
    elif 2.0 / delta < n_max:
        m_p = float(math.floor(2.0 / delta))
        np.add(n, _pm_prefix(m_p, delta) - m_p, out=pm)
        pm *= ce
        low = np.flatnonzero(n <= m_p)
        pm[low] = (ce * math.sqrt(delta / 2.0)) * sum_sqrt(n[low])
    else:
        np.multiply(sum_sqrt(n), ce * math.sqrt(delta / 2.0), out=pm)

    # Hybrid = c e H(n); H(n) = C(n) for n <= kc = floor(delta/(2 eps^2)), else
    # C(kc) + P(n) - P(kc).
    kc_real = adaptive_crossover(eps=eps, delta=delta)
    if eps > 0.0 and kc_real < n_max:
        kc = float(math.floor(kc_real))
        hyb = np.add(pm, ce * (_coupling_prefix(kc, eps) - _pm_prefix(kc, delta)),
                     out=next(rows))
        np.copyto(hyb, coup, where=n <= kc)
    else:
        hyb = coup  # H = C on the whole range: shared below

    out: dict[str, np.ndarray] = {"classical_tv": classical_tv, "classical_kl": classical_kl}
    out["coupling"] = coup
    if e > 0.0:
        out["pm_kl"] = np.multiply(pm, a / e, out=next(rows))
    else:  # pm = c e P vanishes with eps: PM-KL = c a P(T-1) from the scalar prefix
        out["pm_kl"] = np.multiply(_pm_prefix(n, delta), c * a, out=next(rows))
    out["pm_tv"] = pm
    n += 1.0  # n = T from here on
    if np.ndim(dkl_seq) == 0:
        out["mix_kl"] = np.multiply(n, c * a * min(1.0, math.sqrt(dkl_seq / 2.0)), out=next(rows))
    else:
        mk = np.multiply(dkl_seq, 0.5, out=next(rows))
        np.sqrt(mk, out=mk)
        np.minimum(mk, 1.0, out=mk)
        mk *= n
        mk *= c * a
        out["mix_kl"] = mk
    if np.ndim(dtv_seq) == 0:
        out["mix_tv"] = np.multiply(n, ce * min(1.0, dtv_seq), out=next(rows))
    else:
        mt = np.minimum(dtv_seq, 1.0, out=next(rows))
        mt *= n
        mt *= ce
        out["mix_tv"] = mt
    out["adaptive_kl"] = pm  # c e P(T-1): identical to PM-TV under Dbar_t = e
    out["adaptive_tv"] = coup  # c e C(T-1): identical to Coupling under Dbar_t = e
    out["adaptive_hybrid"] = hyb
    n *= ce
    out["linear"] = n
    scalar_seq = np.ndim(dkl_seq) == 0 and np.ndim(dtv_seq) == 0
    out["unified"] = _unified_array(out, e <= a, scalar_seq, next(rows))
    for arr in out.values():
        arr.flags.writeable = False
    return {name: out[name] for name in BOUND_NAMES}


def _unified_array(
    out: dict[str, np.ndarray], e_le_a: bool, scalar_seq: bool, uni: np.ndarray
) -> np.ndarray:
    """``B*`` over an array of ``T``, skipping members that are provably not smaller.

    Under the worst case ``Dbar_t = e``, Adaptive-hybrid ``c e H`` is at most Coupling
    ``c e C`` and PM-TV ``c e P`` (``H <= C, P`` termwise), and PM-TV is at most PM-KL when
    ``e <= a`` (Pinsker); with scalar sequence divergences the two Mixed bounds are ``T``
    times constants, so their minimum is one of them.  Anything else takes every member.
    """
    if not e_le_a:
        np.minimum(out["pm_kl"], out["pm_tv"], out=uni)
        for name in UNIFIED_MEMBERS[2:]:
            np.minimum(uni, out[name], out=uni)
        return uni
    if scalar_seq:
        mix = out["mix_kl"] if out["mix_kl"][-1] <= out["mix_tv"][-1] else out["mix_tv"]
        np.minimum(out["adaptive_hybrid"], mix, out=uni)
    else:
        np.minimum(out["adaptive_hybrid"], out["mix_kl"], out=uni)
        np.minimum(uni, out["mix_tv"], out=uni)
    # H <= C and H <= P hold termwise in exact arithmetic; guard the last ulp.
    np.minimum(uni, out["coupling"], out=uni)
    return uni


def kl_only(delta: float, dkl_seq: ArrayLike) -> tuple[float, Any]:
    r"""The paper's "KL-only" setting (THEORY.md s.7): ``eps = min(1, sqrt(delta/2))``,
    ``dtv_seq = min(1, sqrt(dkl_seq/2))`` (Pinsker).

    >>> kl_only(2.0, 8.0)
    (1.0, 1.0)
    """
    eps = min(1.0, math.sqrt(delta / 2.0))
    d = np.minimum(1.0, np.sqrt(np.asarray(dkl_seq, dtype=np.float64) / 2.0))
    return eps, (float(d) if d.ndim == 0 else d)


# --------------------------------------------------------------------------- closed forms


def pm_kl_closed_form(T: ArrayLike, *, delta: float, sharp: bool = False) -> Value:
    r"""PM-KL closed form (THEORY.md s.4): ``(4/3) T^{3/2} delta``; an upper bound of
    :func:`pm_kl` when ``delta <= 2/T`` (sharp: ``(2/3) T^{3/2} delta``)."""
    T = np.asarray(T, dtype=np.float64)
    return (_c(sharp) / 3.0) * T**1.5 * delta


def pm_tv_closed_form(T: ArrayLike, *, eps: float, delta: float, sharp: bool = False) -> Value:
    r"""PM-TV closed form (THEORY.md s.4): ``(8/3) T^{3/2} eps sqrt(delta/2)``; an upper bound of
    :func:`pm_tv` when ``delta <= 2/T``."""
    T = np.asarray(T, dtype=np.float64)
    return (2.0 * _c(sharp) / 3.0) * T**1.5 * eps * math.sqrt(delta / 2.0)


def mix_kl_closed_form(T: ArrayLike, *, delta: float, dkl_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mix-KL closed form (THEORY.md s.4): ``2 T sqrt(delta D_KL^seq)``; equals :func:`mix_kl`
    when both caps are inactive (``delta <= 2``, ``dkl_seq <= 2``)."""
    T = np.asarray(T, dtype=np.float64)
    return (_c(sharp) / 2.0) * T * np.sqrt(delta * np.asarray(dkl_seq, np.float64))


def mix_tv_closed_form(T: ArrayLike, *, eps: float, dtv_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mix-TV closed form (THEORY.md s.4): ``4 T eps D_TV^seq``; equals :func:`mix_tv` (TVs are <= 1)."""
    T = np.asarray(T, dtype=np.float64)
    return _c(sharp) * T * eps * np.asarray(dtv_seq, np.float64)


def coupling_closed_form(T: ArrayLike, *, eps: float, sharp: bool = False) -> Value:
    r"""Coupling closed form (THEORY.md s.4): ``2 T (T-1) eps^2`` when ``T eps <= 1`` (equality),
    else ``4 T eps - 2`` (an upper bound; the paper prints ``4 T eps + 2``). Sharp: halved."""
    T = np.asarray(T, dtype=np.float64)
    quad = (_c(sharp) / 2.0) * T * (T - 1.0) * eps * eps
    lin = (_c(sharp) / 4.0) * (4.0 * T * eps - 2.0)
    return np.where(coupling_regime(T, eps=eps), quad, lin)[()]


def pm_regime(T: ArrayLike, *, delta: float) -> Any:
    """The PM closed-form regime ``delta <= 2/T`` (no cap binds: ``(T-1) delta/2 <= 1``)."""
    return np.asarray(T, dtype=np.float64) * delta <= 2.0


def coupling_regime(T: ArrayLike, *, eps: float) -> Any:
    """The quadratic Coupling regime ``T eps <= 1`` (no cap binds)."""
    return np.asarray(T, dtype=np.float64) * eps <= 1.0


def adaptive_crossover(*, eps: float, delta: float) -> float:
    r"""The Adaptive route crossover (THEORY.md s.4): ``(T - t) eps = sqrt((T - t) delta / 2)``
    at ``T - t = delta / (2 eps^2)``; below it the TV route is smaller, above it the KL route.

    >>> adaptive_crossover(eps=5e-3, delta=1e-4)
    2.0
    """
    e2 = eps * eps
    return math.inf if e2 == 0.0 else delta / (2.0 * e2)
