"""Confidence intervals of a binomial proportion (numpy only).

The figures draw the acceptance rates of the masking criteria (docs/theory.md §6) with these
intervals, and the length-bias study reports them; both import them from here, so the
figure code never imports a study.
"""

from __future__ import annotations

import numpy as np

__all__ = ["wilson"]


def wilson(k: np.ndarray | float, n: int | np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``k / n`` (default ``z``: 95%), clipped to
    [0, 1]; elementwise over arrays.  The rates are the acceptance rates of docs/theory.md §6.

    >>> lo, hi = wilson(5, 10)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.2366, 0.7634)
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    ph = k / n
    c = z * z / n
    centre = (ph + c / 2) / (1 + c)
    half = z * np.sqrt(ph * (1 - ph) / n + c / (4 * n)) / (1 + c)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
