r"""The paper's closed forms of the bounds and the regimes where they hold (``docs/theory.md §4``).

Each closed form is an equality or an *upper bound* of the exact sum in its regime; the
regimes are the conditions under which no cap binds.  Proven symbolically by
:mod:`trm_bounds.symbolic` and checked numerically in ``tests/bounds/test_formulas.py``.

>>> round(float(pm_kl_closed_form(4096, delta=1e-4)), 2)  # docs/theory.md §7: 34.95
34.95
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.bounds.prefix import adaptive_crossover, leading_constant

__all__ = [
    "pm_kl_closed_form",
    "pm_tv_closed_form",
    "mix_kl_closed_form",
    "mix_tv_closed_form",
    "coupling_closed_form",
    "pm_regime",
    "coupling_regime",
    "adaptive_crossover",
]

Value = float | np.ndarray



def pm_kl_closed_form(T: ArrayLike, *, delta: float, sharp: bool = False) -> Value:
    r"""PM-KL closed form (``docs/theory.md §4``): ``(4/3) T^{3/2} delta``; an upper bound of
    :func:`pm_kl` when ``delta <= 2/T`` (sharp: ``(2/3) T^{3/2} delta``)."""
    T = np.asarray(T, dtype=np.float64)
    return (leading_constant(sharp) / 3.0) * T**1.5 * delta


def pm_tv_closed_form(T: ArrayLike, *, eps: float, delta: float, sharp: bool = False) -> Value:
    r"""PM-TV closed form (``docs/theory.md §4``): ``(8/3) T^{3/2} eps sqrt(delta/2)``; an upper bound of
    :func:`pm_tv` when ``delta <= 2/T``."""
    T = np.asarray(T, dtype=np.float64)
    return (2.0 * leading_constant(sharp) / 3.0) * T**1.5 * eps * math.sqrt(delta / 2.0)


def mix_kl_closed_form(T: ArrayLike, *, delta: float, dkl_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mix-KL closed form (``docs/theory.md §4``): ``2 T sqrt(delta D_KL^seq)``; equals :func:`mix_kl`
    when both caps are inactive (``delta <= 2``, ``dkl_seq <= 2``)."""
    T = np.asarray(T, dtype=np.float64)
    return (leading_constant(sharp) / 2.0) * T * np.sqrt(delta * np.asarray(dkl_seq, np.float64))


def mix_tv_closed_form(T: ArrayLike, *, eps: float, dtv_seq: ArrayLike, sharp: bool = False) -> Value:
    r"""Mix-TV closed form (``docs/theory.md §4``): ``4 T eps D_TV^seq``; equals :func:`mix_tv` (TVs are <= 1)."""
    T = np.asarray(T, dtype=np.float64)
    return leading_constant(sharp) * T * eps * np.asarray(dtv_seq, np.float64)


def coupling_closed_form(T: ArrayLike, *, eps: float, sharp: bool = False) -> Value:
    r"""Coupling closed form (``docs/theory.md §4``): ``2 T (T-1) eps^2`` when ``T eps <= 1`` (equality),
    else ``4 T eps - 2`` (an upper bound; the paper prints ``4 T eps + 2``). Sharp: halved."""
    T = np.asarray(T, dtype=np.float64)
    quad = (leading_constant(sharp) / 2.0) * T * (T - 1.0) * eps * eps
    lin = (leading_constant(sharp) / 4.0) * (4.0 * T * eps - 2.0)
    return np.where(coupling_regime(T, eps=eps), quad, lin)[()]


def pm_regime(T: ArrayLike, *, delta: float) -> Any:
    """The PM closed-form regime ``delta <= 2/T`` (no cap binds: ``(T-1) delta/2 <= 1``)."""
    return np.asarray(T, dtype=np.float64) * delta <= 2.0


def coupling_regime(T: ArrayLike, *, eps: float) -> Any:
    """The quadratic Coupling regime ``T eps <= 1`` (no cap binds)."""
    return np.asarray(T, dtype=np.float64) * eps <= 1.0
