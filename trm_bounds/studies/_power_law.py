r"""Where a power law holds, and its exponent: the slope fits of figures F3 and F9.

A log-log slope describes a curve only where the curve is a power law.  The test used here:
the *local slopes* ``s_i = (log y_{i+1} - log y_i) / (log T_{i+1} - log T_i)`` between
neighbouring grid points are stable, i.e. every one of them lies within ``tol`` of their
median, over a window spanning at least ``min_decades`` decades of ``T``.  The window chosen is
the widest such run of consecutive grid points (the one reaching the largest ``T`` on ties);
the exponent is the least-squares slope over it (:func:`trm_bounds.studies._fit.fit_slope`,
the one fit rule).  A curve that changes sign, touches zero, bends (two regimes) or decays
exponentially has no window spanning both sides of the change, so no slope is fitted across
it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_bounds.studies._fit import fit_slope

__all__ = ["local_slopes", "power_law_window", "fit_power_law", "sign_changes", "fit_exponential_tail",
           "POWER_LAW_TOL", "MIN_DECADES"]  # fmt: skip

#: Local slopes must lie within this distance of their median over a fitted window.
POWER_LAW_TOL = 0.05
#: A fitted window spans at least this many decades of ``T``.
MIN_DECADES = 1.0


def local_slopes(T: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slopes of ``log y`` against ``log T`` between neighbours (``nan`` where ``y <= 0``).

    >>> np.round(local_slopes(np.array([1.0, 10.0, 100.0]), np.array([1.0, 10.0, 1e3])), 12).tolist()
    [1.0, 2.0]
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.where(y > 0, np.log(np.where(y > 0, y, 1.0)), np.nan)
        return np.diff(ly) / np.diff(np.log(T))


def power_law_window(
    T: np.ndarray, y: np.ndarray, *, tol: float = POWER_LAW_TOL, min_decades: float = MIN_DECADES
) -> tuple[float, float] | None:
    """The widest run ``[T_lo, T_hi]`` of grid points whose local slopes all lie within
    ``tol`` of their median and which spans at least ``min_decades`` decades; None if none.

    >>> T = np.geomspace(1, 1e4, 17)
    >>> power_law_window(T, T**1.5)
    (1.0, 10000.0)
    >>> T = np.geomspace(100, 1e4, 9)
    >>> power_law_window(T, np.exp(-T / 100)) is None     # exponential decay: no power law
    True
    """
    T = np.asarray(T, dtype=np.float64)
    s = local_slopes(T, y)
    n = s.size
    best: tuple[int, int] | None = None
    for i in range(n):
        for j in range(n, i, -1):  # slopes i..j-1, points i..j
            seg = s[i:j]
            if np.isnan(seg).any():
                continue
            if np.log10(T[j] / T[i]) < min_decades:
                break
            if np.all(np.abs(seg - np.median(seg)) <= tol):
                if best is None or (j - i, T[j]) > (best[1] - best[0], T[best[1]]):
                    best = (i, j)
                break
    return None if best is None else (float(T[best[0]]), float(T[best[1]]))


def fit_power_law(
    T: np.ndarray, y: np.ndarray, *, tol: float = POWER_LAW_TOL, min_decades: float = MIN_DECADES
) -> dict[str, Any] | None:
    """``{"slope", "window": [T_lo, T_hi]}`` over :func:`power_law_window`, or None.

    >>> T = np.geomspace(10, 1e5, 13)
    >>> r = fit_power_law(T, 2 * T)
    >>> round(r["slope"], 12), r["window"]
    (1.0, [10.0, 100000.0])
    """
    win = power_law_window(T, y, tol=tol, min_decades=min_decades)
    if win is None:
        return None
    slope = fit_slope(np.asarray(T, dtype=np.float64), np.asarray(y, dtype=np.float64), *win)
    return None if slope is None else {"slope": slope, "window": [win[0], win[1]]}


def sign_changes(T: np.ndarray, y: np.ndarray) -> list[list[float]]:
    """Grid intervals ``[T_i, T_j]`` between neighbouring non-zero values of opposite sign
    (zeros are skipped: a value that is exactly 0 is not a change of sign).

    >>> sign_changes(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.0, -1.0, -2.0]))
    [[2.0, 3.0]]
    """
    y = np.asarray(y, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    nz = np.flatnonzero(y != 0)
    sg = np.sign(y[nz])
    return [[float(T[nz[i]]), float(T[nz[i + 1]])] for i in np.flatnonzero(sg[:-1] != sg[1:])]


def fit_exponential_tail(T: np.ndarray, y: np.ndarray, *, rtol: float = 0.25,
                         min_points: int = 3) -> dict[str, Any] | None:  # fmt: skip
    r"""``{"rate", "window"}`` if the tail of ``y`` decays exponentially, ``y ~ exp(-rate T)``.

    The semi-log local rates ``-(log y_{i+1} - log y_i) / (T_{i+1} - T_i)`` over the last
    ``min_points`` or more grid points (the longest such tail) are positive and within ``rtol``
    (relative) of their median; ``rate`` is the least-squares slope of ``-log y`` on ``T``
    there.  None otherwise (a power-law decay has local rates falling like ``1/T``).

    >>> T = np.array([100.0, 200.0, 400.0, 800.0])
    >>> r = fit_exponential_tail(T, np.exp(-T / 50))
    >>> round(r["rate"], 12), r["window"]
    (0.02, [100.0, 800.0])
    >>> fit_exponential_tail(T, T**-2.0) is None
    True
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.flatnonzero(y > 0)
    if ok.size < min_points:
        return None
    last = ok[-1]
    best = None
    for i in range(last - min_points + 1, -1, -1):
        if not np.all(y[i : last + 1] > 0):
            break
        rates = -np.diff(np.log(y[i : last + 1])) / np.diff(T[i : last + 1])
        med = np.median(rates)
        if med <= 0 or np.any(np.abs(rates - med) > rtol * med):
            break
        best = i
    if best is None:
        return None
    sel = slice(best, last + 1)
    rate = -float(np.polyfit(T[sel], np.log(y[sel]), 1)[0])
    return {"rate": rate, "window": [float(T[best]), float(T[last])]}
