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

Every decision here is drawn from computed floats and keeps a margin above their noise
(:mod:`trm_bounds.margins`).  Each value carries the noise ``n_i = REL_NOISE |y_i| + floor``
(``REL_NOISE = 1e-9`` relative, plus the caller's absolute ``floor``: the float64 rounding of a
vanishing quantity, below which a value is treated as zero and never fitted), so ``log y_i`` is
known to ``n_i / y_i`` and a local slope to ``(n_i/y_i + n_{i+1}/y_{i+1}) / log(T_{i+1}/T_i)``.
Each decision (a local slope within ``tol`` of the median, a value above ``floor``, a decay
rate consistent and positive) is taken twice, with that noise counted against it and for it
(a value within a factor 2 of ``floor`` counts as either); the result stands only when both
agree (:func:`trm_bounds.margins.agreed`), else :class:`~trm_bounds.margins.MarginError`.
An exponential decay must moreover fall by at least :data:`MIN_DECAY_FALL` in ``log y`` over
its window: a decay rate below that floor is no decay (a curve flat up to float noise once gave
``exp(-T/3.6e13)`` on one CPU and nothing on another).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_bounds.margins import REL_NOISE, agreed
from trm_bounds.studies._fit import fit_slope

__all__ = ["local_slopes", "power_law_window", "fit_power_law", "sign_changes", "fit_exponential_tail",
           "POWER_LAW_TOL", "MIN_DECADES", "MIN_DECAY_FALL"]  # fmt: skip

#: Local slopes must lie within this distance of their median over a fitted window.
POWER_LAW_TOL = 0.05
#: A fitted window spans at least this many decades of ``T``.
MIN_DECADES = 1.0
#: An exponential tail falls by at least this much in ``log y`` (a factor 2) over its window;
#: float noise moves ``log y`` by about 1e-12, so a flat curve never passes.
MIN_DECAY_FALL = float(np.log(2.0))


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




def _kept(y: np.ndarray, floor: float, slack: float) -> np.ndarray:
    """``y`` where it is above ``floor`` (a factor 2 of slack either way), else 0."""
    return np.where(y > floor * 2.0 ** (-slack), y, 0.0)


def _log_noise(y: np.ndarray, floor: float) -> np.ndarray:
    """Half-width of ``log y_i`` under the noise ``REL_NOISE |y_i| + floor`` (inf where 0)."""
    with np.errstate(divide="ignore"):
        return np.where(y > 0, (REL_NOISE * np.abs(y) + floor) / np.where(y > 0, y, 1.0), np.inf)


def _window(T: np.ndarray, y: np.ndarray, tol: float, min_decades: float, floor: float,
            slack: float) -> tuple[int, int] | None:  # fmt: skip
    """Indices of the widest power-law run, decided with the noise counted ``slack`` times in
    favour of passing (:func:`trm_bounds.margins.agreed`)."""
    y = _kept(y, floor, slack)
    s = local_slopes(T, y)
    ln = _log_noise(y, floor)
    h = (ln[:-1] + ln[1:]) / np.diff(np.log(T))  # half-width of each local slope
    n = s.size
    best: tuple[int, int] | None = None
    for i in range(n):
        for j in range(n, i, -1):  # slopes i..j-1, points i..j
            seg = s[i:j]
            if np.isnan(seg).any():
                continue
            if np.log10(T[j] / T[i]) < min_decades:
                break
            if np.all(np.abs(seg - np.median(seg)) <= tol + slack * (h[i:j] + h[i:j].max())):
                if best is None or (j - i, T[j]) > (best[1] - best[0], T[best[1]]):
                    best = (i, j)
                break
    return best


def power_law_window(
    T: np.ndarray, y: np.ndarray, *, tol: float = POWER_LAW_TOL,
    min_decades: float = MIN_DECADES, floor: float = 0.0,
) -> tuple[float, float] | None:  # fmt: skip
    """The widest run ``[T_lo, T_hi]`` of grid points whose local slopes all lie within
    ``tol`` of their median and which spans at least ``min_decades`` decades (the one reaching
    the largest ``T`` on ties); None if none.  Values ``<= floor`` count as zero; the window is
    the same with the noise of every value counted either way (module docstring), else
    :class:`~trm_bounds.margins.MarginError`.

    >>> T = np.geomspace(1, 1e4, 17)
    >>> power_law_window(T, T**1.5)
    (1.0, 10000.0)
    >>> T = np.geomspace(100, 1e4, 9)
    >>> power_law_window(T, np.exp(-T / 100)) is None     # exponential decay: no power law
    True
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    best = agreed(lambda slack: _window(T, y, tol, min_decades, floor, slack),
                  what="power-law window")  # fmt: skip
    return None if best is None else (float(T[best[0]]), float(T[best[1]]))


def fit_power_law(
    T: np.ndarray, y: np.ndarray, *, tol: float = POWER_LAW_TOL,
    min_decades: float = MIN_DECADES, floor: float = 0.0,
) -> dict[str, Any] | None:  # fmt: skip
    """``{"slope", "window": [T_lo, T_hi]}`` over :func:`power_law_window`, or None.

    >>> T = np.geomspace(10, 1e5, 13)
    >>> r = fit_power_law(T, 2 * T)
    >>> round(r["slope"], 12), r["window"]
    (1.0, [10.0, 100000.0])
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    win = power_law_window(T, y, tol=tol, min_decades=min_decades, floor=floor)
    if win is None:
        return None
    slope = fit_slope(T, _kept(y, floor, 0.0), *win)
    return None if slope is None else {"slope": slope, "window": [win[0], win[1]]}


def sign_changes(T: np.ndarray, y: np.ndarray, *, floor: float = 0.0) -> list[list[float]]:
    """Grid intervals ``[T_i, T_j]`` between neighbouring values of opposite sign, skipping
    values with ``|y| <= floor`` (a value that is 0 up to rounding is not a change of sign;
    within a factor 2 of ``floor`` it is too close to call: module docstring).

    >>> sign_changes(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.0, -1.0, -2.0]))
    [[2.0, 3.0]]
    """
    y = np.asarray(y, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)

    def decide(slack: float) -> list[list[float]]:
        nz = np.flatnonzero(np.abs(y) > floor * 2.0 ** (-slack))
        sg = np.sign(y[nz])
        return [[float(T[nz[i]]), float(T[nz[i + 1]])] for i in np.flatnonzero(sg[:-1] != sg[1:])]

    return agreed(decide, what="sign changes")


def _tail(T: np.ndarray, y: np.ndarray, rtol: float, min_points: int, floor: float,
          slack: float) -> tuple[int, int] | None:  # fmt: skip
    """Indices of the exponential tail of :func:`fit_exponential_tail`, decided with the
    noise counted ``slack`` times in favour of passing."""
    y = _kept(y, floor, slack)
    ok = np.flatnonzero(y > 0)
    if ok.size < min_points:
        return None
    last = ok[-1]
    ln = _log_noise(y, floor)
    best = None
    for i in range(last - min_points + 1, -1, -1):
        if not np.all(y[i : last + 1] > 0):
            break
        dT = np.diff(T[i : last + 1])
        rates = -np.diff(np.log(y[i : last + 1])) / dT
        h = (ln[i:last] + ln[i + 1 : last + 1]) / dT  # half-width of each local rate
        med, hm = np.median(rates), h.max()
        if med + slack * hm <= 0 or np.any(np.abs(rates - med) > rtol * med + slack * (h + hm)):
            break
        best = i
    if best is None:
        return None
    fall = np.log(y[best] / y[last])
    if fall + slack * (ln[best] + ln[last]) < MIN_DECAY_FALL:
        return None  # below the floor on a decay: no decay (module docstring)
    return best, int(last)


def fit_exponential_tail(T: np.ndarray, y: np.ndarray, *, rtol: float = 0.25,
                         min_points: int = 3, floor: float = 0.0) -> dict[str, Any] | None:  # fmt: skip
    r"""``{"rate", "window"}`` if the tail of ``y`` decays exponentially, ``y ~ exp(-rate T)``.

    The semi-log local rates ``-(log y_{i+1} - log y_i) / (T_{i+1} - T_i)`` over the last
    ``min_points`` or more grid points above ``floor`` (the longest such tail) are positive and
    within ``rtol`` (relative) of their median, and ``log y`` falls by at least
    :data:`MIN_DECAY_FALL` over the tail; ``rate`` is the least-squares slope of ``-log y`` on
    ``T`` there.  None otherwise (a power-law decay has local rates falling like ``1/T``; a
    curve flat up to float noise does not fall).  Decided with the margin of the module
    docstring.

    >>> T = np.array([100.0, 200.0, 400.0, 800.0])
    >>> r = fit_exponential_tail(T, np.exp(-T / 50))
    >>> round(r["rate"], 12), r["window"]
    (0.02, [100.0, 800.0])
    >>> fit_exponential_tail(T, T**-2.0) is None
    True
    >>> fit_exponential_tail(T, 5e-5 * (1 - 1e-14 * T)) is None   # flat up to float noise
    True
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    win = agreed(lambda slack: _tail(T, y, rtol, min_points, floor, slack),
                 what="exponential tail")  # fmt: skip
    if win is None:
        return None
    sel = slice(win[0], win[1] + 1)
    rate = -float(np.polyfit(T[sel], np.log(y[sel]), 1)[0])
    return {"rate": rate, "window": [float(T[win[0]]), float(T[win[1]])]}
