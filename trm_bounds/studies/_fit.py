"""Grids and log-log slope fits shared by the studies (one definition each)."""

from __future__ import annotations

import numpy as np

__all__ = ["log_grid", "fit_slope"]


def log_grid(lo: int, hi: int, n: int) -> np.ndarray:
    """About ``n`` distinct integers log-spaced on ``[lo, hi]`` (both included).

    >>> log_grid(1, 100, 3).tolist()
    [1, 10, 100]
    """
    return np.unique(np.round(np.geomspace(lo, hi, n)).astype(np.int64))


def fit_slope(T: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float | None:
    """Least-squares slope of ``log y`` on ``log T`` over the window ``lo <= T <= hi``.

    None when the window holds fewer than two points or a value ``y <= 0`` (a log-log slope
    of a curve that touches zero in the window would describe only part of it).

    >>> T = np.array([1.0, 2.0, 4.0, 8.0])
    >>> round(fit_slope(T, T**1.5, 1, 8), 12)
    1.5
    >>> fit_slope(T, T - 1, 1, 8) is None
    True
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sel = (T >= lo) & (T <= hi)
    if sel.sum() < 2 or not np.all(y[sel] > 0):
        return None
    return float(np.polyfit(np.log(T[sel]), np.log(y[sel]), 1)[0])
