r"""The twelve bounds of ``docs/theory.md §4`` (published) and ``§5`` (``sharp=True``).

Every bound caps ``|Error(theta)| = |J(theta) - J(roll) - L'(theta)|`` for a reward in
``[0, 1]`` (``docs/theory.md §2``).  Symbols (``docs/theory.md §3``; KL forward,
``KL(pi_roll || pi_theta)``, in nats):

* ``T`` -- horizon, a positive integer (or an array of them, for the closed-form sums);
* ``eps = D_TV^{tok,max}``, ``delta = D_KL^{tok,max}`` -- the largest per-context TV and KL;
* ``dkl_seq = D_KL^seq``, ``dtv_seq = D_TV^seq`` -- the sequence-level KL and TV;
* ``dbar`` -- ``Dbar_t = E_{c_t ~ d_t^roll} TV(c_t)``, shape ``(T,)``, ``t = 1..T``.

With ``a = min(1, sqrt(delta/2))`` and ``e = min(1, eps)``, the published bounds carry the
leading constant ``c = 4`` (classical: ``2T(T-1)eps^2`` and ``T(T-1)delta``); the sharp
ones carry ``c = 2`` (classical: ``T(T-1)eps^2`` and ``T(T-1)delta/2``), a separate,
labelled choice, never a silent replacement.  The capped sums are the prefix sums of
:mod:`trm_bounds.bounds.prefix`.  Each public function checks the ranges of the inputs it
takes (``T`` a positive integer, divergences finite and ``>= 0``, ``eps``, ``dtv_seq`` and
``Dbar_t`` at most 1) and raises a one-line ``ValueError`` naming the argument; the relations
between inputs (``docs/theory.md §3``) need all of them and are checked by
:func:`trm_bounds.bounds.compute_bounds`, which calls the unchecked formulas
(``fn.__wrapped__``) after validating once.

>>> mix_tv(10, eps=-0.5, dtv_seq=0.3)
Traceback (most recent call last):
...
ValueError: eps must be >= 0, got -0.5

>>> round(float(mix_tv(4096, eps=5e-3, dtv_seq=0.05)), 3)  # docs/theory.md §7, KL+TV column
4.096
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.bounds.prefix import (
    coupling_prefix,
    hybrid_prefix,
    kl_route,
    leading_constant,
    pm_prefix,
    tv_route,
)
from trm_bounds.bounds.validate import _as_div, _as_T

__all__ = [
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
]

Value = float | np.ndarray

_c = leading_constant

#: Upper end of each argument's range (``None``: unbounded above); ``docs/theory.md §3``.
_UPPER = {"eps": 1.0, "delta": None, "dkl_seq": None, "dtv_seq": 1.0, "dbar": 1.0}


def _checked(fn: Callable[..., Value]) -> Callable[..., Value]:
    """``fn`` with the ranges of its arguments checked first (``fn.__wrapped__``: unchecked)."""

    @functools.wraps(fn)
    def checked(T: ArrayLike, **kw: Any) -> Value:
        T_arr = _as_T(T)
        for name, value in kw.items():
            if name in _UPPER and value is not None:
                value = _as_div(name, value, upper=_UPPER[name], shape=None)
                if name == "dbar" and np.shape(value) != (int(T_arr),):
                    raise ValueError(f"dbar must have length T = {T_arr}, got shape "
                                     f"{np.shape(value)}")
        return fn(T, **kw)

    return checked


@_checked
def classical_tv(T: ArrayLike, *, eps: float, sharp: bool = False) -> Value:
    r"""Classical bound, TV form (``docs/theory.md §4``; sharp ``§5``).

    .. math:: B = 2\,T(T-1)\,\varepsilon^2 \quad(\text{sharp: } T(T-1)\,\varepsilon^2)

    No caps; scales as ``T^2``.  Never overflows (``eps <= 1``, ``T <= 2**53``).

    >>> round(float(classical_tv(4096, eps=5e-3)))  # docs/theory.md §7, KL+TV column
    839
    """
    T = np.asarray(T, dtype=np.float64)
    return (1.0 if sharp else 2.0) * T * (T - 1.0) * eps * eps


@_checked
def classical_kl(T: ArrayLike, *, delta: float, sharp: bool = False) -> Value:
    r"""Classical bound, KL form (``docs/theory.md §4``; sharp ``§5``).

    .. math:: B = T(T-1)\,\delta \quad(\text{sharp: } T(T-1)\,\delta/2)

    No caps; scales as ``T^2``.  Returns ``inf`` (no warning) when ``T(T-1) delta``
    exceeds the largest float64, about 1.8e308.

    >>> round(float(classical_kl(4096, delta=1e-4)))  # docs/theory.md §7
    1677
    """
    T = np.asarray(T, dtype=np.float64)
    with np.errstate(over="ignore"):
        return (0.5 if sharp else 1.0) * T * (T - 1.0) * delta


@_checked
def coupling(T: ArrayLike, *, eps: float, sharp: bool = False) -> Value:
    r"""Coupling bound (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4\,e \sum_{t=1}^{T} \min\bigl(1, (t-1)\,\varepsilon\bigr) = 4\,e\,C(T-1)

    Scales as ``T^2`` while ``T eps <= 1``, then as ``T``.

    >>> round(float(coupling(4096, eps=5e-3)), 1)  # docs/theory.md §7, KL+TV column
    79.9
    """
    T = np.asarray(T, dtype=np.float64)
    return _c(sharp) * min(1.0, eps) * coupling_prefix(T - 1.0, eps)


@_checked
def pm_kl(T: ArrayLike, *, delta: float, sharp: bool = False) -> Value:
    r"""Pinsker-Marginal, KL (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4\,a \sum_{t=1}^{T} \min\bigl(1, \sqrt{(t-1)\,\delta/2}\bigr) = 4\,a\,P(T-1)

    Scales as ``T^{3/2}`` while ``delta <= 2/T``.

    >>> round(float(pm_kl(4096, delta=1e-4)), 3)  # docs/theory.md §7 (exact sum; closed form 34.95)
    34.946
    """
    T = np.asarray(T, dtype=np.float64)
    a = min(1.0, math.sqrt(delta / 2.0))
    return _c(sharp) * a * pm_prefix(T - 1.0, delta)


@_checked
def pm_tv(T: ArrayLike, *, eps: float, delta: float, sharp: bool = False) -> Value:
    r"""Pinsker-Marginal, TV (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4\,e \sum_{t=1}^{T} \min\bigl(1, \sqrt{(t-1)\,\delta/2}\bigr) = 4\,e\,P(T-1)

    >>> round(float(pm_tv(4096, eps=5e-3, delta=1e-4)), 1)  # docs/theory.md §7, KL+TV column
    24.7
    """
    T = np.asarray(T, dtype=np.float64)
    return _c(sharp) * min(1.0, eps) * pm_prefix(T - 1.0, delta)


@_checked
def mix_kl(T: ArrayLike, *, delta: float, dkl_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mixed, KL (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4\,T\,a\,\min\bigl(1, \sqrt{D_{KL}^{seq}/2}\bigr)

    Scales as ``T`` with ``D_KL^seq`` fixed, as ``T^{3/2}`` under uniform divergence.

    >>> round(float(mix_kl(4096, delta=1e-4, dkl_seq=0.01)), 1)  # docs/theory.md §7
    8.2
    """
    T = np.asarray(T, dtype=np.float64)
    a = min(1.0, math.sqrt(delta / 2.0))
    return _c(sharp) * T * a * np.minimum(1.0, np.sqrt(np.asarray(dkl_seq, np.float64) / 2.0))


@_checked
def mix_tv(T: ArrayLike, *, eps: float, dtv_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mixed, TV (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4\,T\,e\,\min(1, D_{TV}^{seq})

    >>> round(float(mix_tv(4096, eps=5e-3, dtv_seq=0.05)), 1)  # docs/theory.md §7, KL+TV column
    4.1
    """
    T = np.asarray(T, dtype=np.float64)
    return _c(sharp) * T * min(1.0, eps) * np.minimum(1.0, np.asarray(dtv_seq, np.float64))


def _adaptive(
    T: ArrayLike, route: str, *, eps: float, delta: float, dbar: ArrayLike | None, sharp: bool
) -> Value:
    """``c sum_t Dbar_t w(T - t)`` with the route's weight ``w``; worst case ``Dbar_t = e``."""
    T = np.asarray(T, dtype=np.float64)
    if dbar is None:
        # Index reversal: T - t runs over 0..T-1, so the sum is a prefix sum at T - 1.
        if route == "kl":
            prefix = pm_prefix(T - 1.0, delta)
        elif route == "tv":
            prefix = coupling_prefix(T - 1.0, eps)
        else:
            prefix = hybrid_prefix(T - 1.0, eps, delta)
        return _c(sharp) * min(1.0, eps) * prefix
    dbar = np.asarray(dbar, dtype=np.float64)
    k = float(T) - np.arange(1, dbar.shape[0] + 1, dtype=np.float64)  # T - t
    if route == "kl":
        w = kl_route(k, delta)
    elif route == "tv":
        w = tv_route(k, eps)
    else:
        w = np.minimum(tv_route(k, eps), kl_route(k, delta))
    return _c(sharp) * float(dbar @ w)


@_checked
def adaptive_kl(
    T: ArrayLike, *, eps: float, delta: float, dbar: ArrayLike | None = None, sharp: bool = False
) -> Value:
    r"""Adaptive, KL route (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4 \sum_{t=1}^{T} \bar D_t \min\bigl(1, \sqrt{(T-t)\,\delta/2}\bigr)

    ``dbar=None`` takes the worst case ``Dbar_t = min(1, eps)``.

    >>> round(float(adaptive_kl(4096, eps=0.01 ** 0.5 / 2 ** 0.5, delta=0.01)), 1)  # §7
    1139.5
    """
    return _adaptive(T, "kl", eps=eps, delta=delta, dbar=dbar, sharp=sharp)


@_checked
def adaptive_tv(
    T: ArrayLike, *, eps: float, delta: float, dbar: ArrayLike | None = None, sharp: bool = False
) -> Value:
    r"""Adaptive, TV route (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4 \sum_{t=1}^{T} \bar D_t \min\bigl(1, (T-t)\,\varepsilon\bigr)

    With ``Dbar_t = eps`` (worst case) it equals :func:`coupling` (index reversal).
    """
    return _adaptive(T, "tv", eps=eps, delta=delta, dbar=dbar, sharp=sharp)


@_checked
def adaptive_hybrid(
    T: ArrayLike, *, eps: float, delta: float, dbar: ArrayLike | None = None, sharp: bool = False
) -> Value:
    r"""Adaptive, hybrid (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4 \sum_{t=1}^{T} \bar D_t
              \min\bigl(1, (T-t)\,\varepsilon, \sqrt{(T-t)\,\delta/2}\bigr)

    >>> round(float(adaptive_hybrid(4096, eps=5e-3, delta=1e-4)), 1)  # §7: printed "<= 24.7"
    24.7
    """
    return _adaptive(T, "hybrid", eps=eps, delta=delta, dbar=dbar, sharp=sharp)


@_checked
def linear(T: ArrayLike, *, eps: float, dbar: ArrayLike | None = None, sharp: bool = False) -> Value:
    r"""Linear bound (``docs/theory.md §4``; constant 2 if sharp, ``§5``).

    .. math:: B = 4 \sum_{t=1}^{T} \bar D_t \;\le\; 4\,T\,\varepsilon

    ``dbar=None`` takes the worst case ``4 T min(1, eps)``.

    >>> round(float(linear(4096, eps=0.5 ** 0.5)))  # docs/theory.md §7: 4 T sqrt(delta/2), delta = 1
    11585
    """
    if dbar is None:
        return _c(sharp) * np.asarray(T, dtype=np.float64) * min(1.0, eps)
    return _c(sharp) * float(np.sum(np.asarray(dbar, dtype=np.float64)))


#: Members of the unified bound ``B*`` (``docs/theory.md §4``).
UNIFIED_MEMBERS = ("pm_kl", "pm_tv", "mix_kl", "mix_tv", "coupling", "adaptive_hybrid")


def unified(bounds: dict[str, Value]) -> Value:
    r"""Unified bound (``docs/theory.md §4``): the minimum of its members.

    .. math:: B^* = \min(\text{PM-KL}, \text{PM-TV}, \text{Mix-KL}, \text{Mix-TV},
              \text{Coupling}, \text{Adaptive-hybrid})

    ``bounds`` maps each name of :data:`UNIFIED_MEMBERS` to its value.
    """
    out = bounds[UNIFIED_MEMBERS[0]]
    for name in UNIFIED_MEMBERS[1:]:
        out = np.minimum(out, bounds[name])
    return out
