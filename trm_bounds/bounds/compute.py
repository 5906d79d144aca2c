r"""The entry point: every bound of ``docs/theory.md §4`` (``§5`` if ``sharp``) from one call.

>>> b = compute_bounds(4096, eps=5e-3, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)
>>> round(b["mix_tv"], 3), round(b["classical_tv"])
(4.096, 839)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.bounds.formulas import unified
from trm_bounds.bounds.registry import BOUND_NAMES, BOUNDS
from trm_bounds.bounds.validate import _as_div, validate
from trm_bounds.bounds.vectorised import compute_array

__all__ = ["compute_bounds", "kl_only"]


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
    r"""Every bound of ``docs/theory.md §4`` (``sharp=True``: ``§5``), keyed by ``BOUND_NAMES``.

    Parameters
    ----------
    T : int or 1-D int array
        Horizon, at most ``2**53``.  For an array every entry of the result is a read-only
        array over ``T`` (one vectorised pass, :mod:`trm_bounds.bounds.vectorised`;
        ``dkl_seq``/``dtv_seq`` may then be arrays of the same shape).
    eps, delta : float
        ``D_TV^{tok,max}`` and ``D_KL^{tok,max}`` (forward KL, nats).
    dkl_seq, dtv_seq : float or array
        ``D_KL^seq`` (nats) and ``D_TV^seq``.
    dbar : sequence of length T, optional
        ``Dbar_t``; ``None`` takes the worst case ``Dbar_t = min(1, eps)`` for the
        Adaptive and Linear entries (as the paper's table does).  Scalar ``T`` only.
    sharp : bool
        Leading constant 2 instead of 4 (``docs/theory.md §5``); never the default.

    Raises a one-line ``ValueError`` on invalid input or a violated relation of
    ``docs/theory.md §3`` (:func:`~trm_bounds.bounds.validate`).  For estimated inputs,
    :func:`~trm_bounds.bounds.plugin_bounds` makes them consistent first.

    >>> b = compute_bounds(4096, eps=(1e-4 / 2) ** 0.5, delta=1e-4, dkl_seq=0.01,
    ...                    dtv_seq=(0.01 / 2) ** 0.5)
    >>> round(float(b["classical_kl"])), round(float(b["coupling"]), 1), round(float(b["mix_kl"]), 1)
    (1677, 113.8, 8.2)
    """
    T_arr, eps, delta, dkl_seq, dtv_seq, dbar_arr = validate(
        T, eps=eps, delta=delta, dkl_seq=dkl_seq, dtv_seq=dtv_seq, dbar=dbar
    )
    if T_arr.ndim == 1:
        return compute_array(T_arr, eps, delta, dkl_seq, dtv_seq, sharp)
    params = {"eps": eps, "delta": delta, "dkl_seq": dkl_seq, "dtv_seq": dtv_seq, "dbar": dbar_arr}
    out: dict[str, Any] = {}
    for name, spec in BOUNDS.items():
        if spec.fn is not None:  # validated above: the unchecked formula (formulas._checked)
            fn = getattr(spec.fn, "__wrapped__", spec.fn)
            out[name] = float(fn(int(T_arr), **{k: params[k] for k in spec.needs}, sharp=sharp))
    out["unified"] = float(unified(out))
    return {name: out[name] for name in BOUND_NAMES}


def kl_only(delta: float, dkl_seq: ArrayLike) -> tuple[float, Any]:
    r"""The paper's "KL-only" setting (``docs/theory.md §7``): ``eps = min(1, sqrt(delta/2))``,
    ``dtv_seq = min(1, sqrt(dkl_seq/2))`` (Pinsker, the largest values the KL inputs allow).

    ``delta`` (a float) and ``dkl_seq`` (a float or an array) are forward KL divergences in
    nats: finite and ``>= 0``, else a one-line ``ValueError`` naming the argument and value.

    >>> kl_only(2.0, 8.0)
    (1.0, 1.0)
    >>> kl_only(-1.0, 0.01)
    Traceback (most recent call last):
    ...
    ValueError: delta must be >= 0, got -1.0
    """
    delta = _as_div("delta", delta)
    dkl_seq = _as_div("dkl_seq", dkl_seq, shape=None)
    eps = min(1.0, math.sqrt(delta / 2.0))
    d = np.minimum(1.0, np.sqrt(np.asarray(dkl_seq) / 2.0))
    return eps, (float(d) if d.ndim == 0 else d)
