r"""The one rule for bounds from *estimated* divergences (``docs/theory.md §3, §6``).

Sampled or observed divergences (Monte Carlo means, maxima over logged tokens) need not
satisfy the relations of ``docs/theory.md §3`` that :func:`~trm_bounds.bounds.validate`
enforces: a sampled ``dtv_seq`` can exceed ``sqrt(dkl_seq/2)``, an observed ``eps`` can
exceed ``sqrt(delta/2)``.  :func:`plugin_bounds` makes them consistent by **raising** inputs,
never lowering them.  Every bound is non-decreasing in each divergence (tested over the
registry), so a raised input can only raise a bound: the adjustment is conservative.
Lowering (as clipping ``eps`` to ``sqrt(delta/2)`` would) could turn an optimistic estimate
into a smaller bound.

The rule (each step the smallest raise that restores one relation; repeated to a fixed point,
which two passes reach):

- a total variation above 1 (``eps``, ``dtv_seq``, ``Dbar_t``) is set to 1, its true value's
  upper limit (the only step that lowers, and it never goes below the truth);
- ``dtv_seq := max(dtv_seq, Dbar_1)`` (data processing);
- if ``sum_t Dbar_t < dtv_seq``, every ``Dbar_t`` is raised by ``(dtv_seq - sum_t Dbar_t) / T``
  (hybrid coupling);
- ``eps := max(eps, max_t Dbar_t, 1 - (1 - dtv_seq)^{1/T})`` (``Dbar_t <= eps``; token-wise
  coupling ``dtv_seq <= 1 - (1 - eps)^T``);
- ``delta := max(delta, 2 eps^2)`` (Pinsker);
- ``dkl_seq := max(dkl_seq, 2 dtv_seq^2, 2 sum_t Dbar_t^2)`` (Pinsker, and Pinsker with Jensen);
- ``delta := max(delta, dkl_seq / T)`` (chain rule);
- zero rules: a zero that the other inputs contradict is raised to the *largest* value the
  others allow -- ``eps := min(1, sqrt(delta/2))`` when ``eps = 0 < delta``,
  ``dtv_seq := min(1, sqrt(dkl_seq/2), 1 - (1 - eps)^T, sum_t Dbar_t)`` when
  ``dtv_seq = 0 < dkl_seq`` -- since nothing bounds them from below.

The result says which inputs moved and why; the bounds are then plug-in *estimates*
conditional on the inputs, not certified upper bounds (the maxima ``eps``, ``delta`` are
not estimable from samples, ``docs/theory.md §6``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.bounds.compute import compute_bounds
from trm_bounds.bounds.validate import RELATION_TOL, _as_div, _as_T, coupling_tv_cap

__all__ = ["plugin_bounds"]


class _Inputs:
    """The working set of inputs and the log of every raise."""

    def __init__(self, T: int, vals: dict[str, Any]) -> None:
        self.T = T
        self.vals = vals
        self.orig = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vals.items()}
        self.why: dict[str, list[str]] = {}

    def raise_to(self, name: str, value: Any, relation: str) -> bool:
        old = self.vals[name]
        if name == "dbar":
            if not np.any(value > old):
                return False
            self.vals[name] = np.maximum(old, value)
        else:
            value = float(value)
            if not value > old:
                return False
            self.vals[name] = value
        reasons = self.why.setdefault(name, [])
        if relation not in reasons:
            reasons.append(relation)
        return True

    def adjusted(self) -> list[dict[str, Any]]:
        out = []
        for name, reasons in self.why.items():
            before, after = self.orig[name], self.vals[name]
            if name == "dbar":
                before, after = float(np.sum(before)), float(np.sum(after))
                name = "dbar (sum over t)"
            out.append({"input": name, "from": float(before), "to": float(after),
                        "relations": reasons})
        return out


_TINY = math.ulp(0.0)  # the smallest positive float64


def _pos(value: float, source: float) -> float:
    """``value``, kept positive when its positive ``source`` underflows it to 0 (zero rules)."""
    return value if value > 0.0 or source == 0.0 else _TINY


def _one_pass(s: _Inputs) -> bool:
    """One sweep over the rules; each fires only where :func:`validate` would refuse."""
    v, T, tol = s.vals, s.T, RELATION_TOL
    moved = False
    d = v["dbar"]
    if d is not None:
        if d[0] > v["dtv_seq"] + tol:
            moved |= s.raise_to("dtv_seq", d[0], "Dbar_1 <= dtv_seq (data processing)")
        total = float(np.sum(d))
        if v["dtv_seq"] > total * (1 + tol) + tol or (total == 0.0 and v["dtv_seq"] > 0.0):
            gap = _pos((v["dtv_seq"] - total) / T, v["dtv_seq"])
            moved |= s.raise_to("dbar", np.minimum(1.0, d + gap),
                                "dtv_seq <= sum_t Dbar_t (hybrid coupling)")
            d = v["dbar"]
        top = float(np.max(d))
        if top > v["eps"] + tol or (v["eps"] == 0.0 and top > 0.0):
            moved |= s.raise_to("eps", top, "Dbar_t <= eps")
    dtv = v["dtv_seq"]
    if dtv > float(coupling_tv_cap(T, v["eps"])) + tol or (v["eps"] == 0.0 and dtv > 0.0):
        need = 1.0 if dtv >= 1.0 else -math.expm1(math.log1p(-dtv) / T)
        moved |= s.raise_to("eps", _pos(min(1.0, need), dtv),
                            "dtv_seq <= 1 - (1 - eps)^T (token-wise coupling)")
    if v["delta"] == 0.0 and v["dkl_seq"] > 0.0:
        moved |= s.raise_to("delta", _pos(v["dkl_seq"] / T, v["dkl_seq"]),
                            "dkl_seq <= T delta (chain rule)")
    if v["eps"] == 0.0 and v["delta"] > 0.0:
        moved |= s.raise_to("eps", _pos(min(1.0, math.sqrt(v["delta"] / 2.0)), v["delta"]),
                            "eps = 0 <=> delta = 0 (eps raised to the largest value delta allows)")
    if v["eps"] > math.sqrt(v["delta"] / 2.0) + tol or (v["delta"] == 0.0 and v["eps"] > 0.0):
        moved |= s.raise_to("delta", _pos(2.0 * v["eps"] ** 2, v["eps"]),
                            "eps <= sqrt(delta/2) (Pinsker)")
    dtv = v["dtv_seq"]
    if dtv - math.sqrt(v["dkl_seq"] / 2.0) > tol or (v["dkl_seq"] == 0.0 and dtv > 0.0):
        moved |= s.raise_to("dkl_seq", _pos(2.0 * dtv**2, dtv),
                            "dtv_seq <= sqrt(dkl_seq/2) (Pinsker)")
    if d is not None:
        sq = _pos(2.0 * float(d @ d), float(np.max(d)))
        if sq > v["dkl_seq"] * (1 + tol) + tol:
            moved |= s.raise_to("dkl_seq", sq, "2 sum_t Dbar_t^2 <= dkl_seq (Pinsker and Jensen)")
    if v["dkl_seq"] > T * v["delta"] * (1 + tol) + tol:
        moved |= s.raise_to("delta", v["dkl_seq"] / T, "dkl_seq <= T delta (chain rule)")
    if v["dtv_seq"] == 0.0 and (v["dkl_seq"] > 0.0 or (d is not None and np.any(d > 0.0))):
        cap = min(1.0, math.sqrt(v["dkl_seq"] / 2.0), float(coupling_tv_cap(T, v["eps"])))
        if d is not None:
            cap = min(cap, float(np.sum(d)))
        moved |= s.raise_to("dtv_seq", _pos(cap, 1.0), "dtv_seq = 0 <=> dkl_seq = 0 (dtv_seq "
                            "raised to the largest value the other inputs allow)")
    return moved


def plugin_bounds(
    T: int,
    *,
    eps: float,
    delta: float,
    dkl_seq: float,
    dtv_seq: float,
    dbar: ArrayLike | None = None,
    sharp: bool = False,
) -> dict[str, Any]:
    r"""Bounds of ``docs/theory.md §4`` (``§5`` if ``sharp``) at estimated divergences, made
    consistent by raising inputs only (module docstring).

    Parameters
    ----------
    T : int
        Horizon.
    eps, delta, dkl_seq, dtv_seq : float
        Estimates of ``D_TV^{tok,max}``, ``D_KL^{tok,max}`` (forward KL, nats), ``D_KL^seq``
        (nats) and ``D_TV^seq``; finite and ``>= 0``.
    dbar : sequence of length T, optional
        Estimates of ``Dbar_t``; ``None`` takes the worst case ``Dbar_t = min(1, eps)``.
    sharp : bool
        Leading constant 2 instead of 4 (``docs/theory.md §5``).

    Returns
    -------
    dict
        ``inputs``: ``T, eps, delta, dkl_seq, dtv_seq, dbar`` (a list or ``None``) as used, and
        ``adjusted``: one entry per raised input, ``{"input", "from", "to", "relations"}``;
        ``bounds``: :func:`~trm_bounds.bounds.compute_bounds` at those inputs (floats).

    A sampled ``dtv_seq`` above Pinsker raises ``dkl_seq`` (and nothing is lowered):

    >>> r = plugin_bounds(100, eps=5e-3, delta=1e-4, dkl_seq=1e-3, dtv_seq=0.05)
    >>> r["inputs"]["dkl_seq"], [a["input"] for a in r["inputs"]["adjusted"]]
    (0.005000000000000001, ['dkl_seq'])
    """
    T_arr = _as_T(T)
    if T_arr.ndim != 0:
        raise ValueError("plugin_bounds needs a scalar T")
    T_int = int(T_arr)
    vals: dict[str, Any] = {
        "eps": _as_div("eps", eps),
        "delta": _as_div("delta", delta),
        "dkl_seq": _as_div("dkl_seq", dkl_seq),
        "dtv_seq": _as_div("dtv_seq", dtv_seq),
        "dbar": None,
    }
    for name in ("eps", "delta", "dkl_seq", "dtv_seq"):
        if isinstance(vals[name], np.ndarray):
            raise ValueError(f"{name} must be a scalar in plugin_bounds")
    if dbar is not None:
        d = np.array(dbar, dtype=np.float64)
        if d.shape != (T_int,):
            raise ValueError(f"dbar must have length T = {T_int}, got shape {d.shape}")
        bad = ~np.isfinite(d) | (d < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"dbar must be finite and >= 0, got dbar[{i}] (t = {i + 1}) = "
                             f"{float(d[i])!r}")
        vals["dbar"] = d
    s = _Inputs(T_int, vals)
    # A total variation is at most 1: capping an estimate there never goes below the truth.
    capped = []
    for name in ("eps", "dtv_seq"):
        if vals[name] > 1.0:
            capped.append({"input": name, "from": vals[name], "to": 1.0,
                           "relations": [f"{name} <= 1 (a total variation)"]})
            vals[name] = 1.0
    if vals["dbar"] is not None and np.any(vals["dbar"] > 1.0):
        capped.append({"input": "dbar (sum over t)", "from": float(np.sum(vals["dbar"])),
                       "to": float(np.sum(np.minimum(vals["dbar"], 1.0))),
                       "relations": ["Dbar_t <= 1 (a total variation)"]})
        vals["dbar"] = np.minimum(vals["dbar"], 1.0)
    s.orig.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vals.items()})
    for _ in range(20):
        if not _one_pass(s):
            break
    v = s.vals
    bounds = compute_bounds(T_int, eps=v["eps"], delta=v["delta"], dkl_seq=v["dkl_seq"],
                            dtv_seq=v["dtv_seq"], dbar=v["dbar"], sharp=sharp)
    inputs = {
        "T": T_int,
        "eps": v["eps"],
        "delta": v["delta"],
        "dkl_seq": v["dkl_seq"],
        "dtv_seq": v["dtv_seq"],
        "dbar": None if v["dbar"] is None else v["dbar"].tolist(),
        "adjusted": capped + s.adjusted(),
    }
    return {"inputs": inputs, "bounds": {k: float(b) for k, b in bounds.items()}}
