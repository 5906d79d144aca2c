r"""Threshold planning: the largest per-token KL threshold ``delta`` for which the unified
bound ``B*`` meets a target, and the number of sequences a certified bound needs
(``docs/theory.md §4``, ``§5``, ``§9``).

**The parametrisation (uniform worst case).** A TRM threshold ``delta`` caps the per-token
forward KL (nats) at every context.  The largest divergences that cap allows are

.. math::

    \varepsilon = \min(1, \sqrt{\delta/2}), \quad
    D_{KL}^{seq} = \delta \cdot \mathbb E[T_i] \ (\text{or a given value}), \quad
    D_{TV}^{seq} = \min\big(1, \sqrt{D_{KL}^{seq}/2}, 1 - (1-\varepsilon)^T\big), \quad
    \bar D_t = \varepsilon \Pr(T_i \ge t),

with ``T`` the horizon (the longest response).  With no length distribution every response
has length ``T``: ``D_KL^seq = T delta`` and ``Dbar_t = eps``, the issue's "uniform worst
case".  ``D_TV^seq`` is Pinsker's value, capped by relation 6 of
:mod:`trm_bounds.bounds.validate` (the cap binds only for ``T <= 3`` or large ``delta``).
With a length distribution (the absorbing end token of ``docs/theory.md §1``) a position
after the end carries no divergence, so ``D_KL^seq <= delta E[T_i]`` and
``Dbar_t <= eps Pr(T_i >= t)``; these use the *logged* lengths as the rollout's length
law, an estimate, labelled so in the plan.

**Monotonicity (why bisection finds the largest delta).**  Each input above is a
non-decreasing function of ``delta`` (``sqrt``, ``min`` with constants, multiplication by
non-negative constants, and ``1 - (1 - eps)^T`` non-decreasing in ``eps``).  Every bound of
``docs/theory.md §4`` is non-decreasing in each divergence it reads (§4, "Every bound is
non-decreasing in T and in each divergence it reads"), a composition of non-decreasing maps
is non-decreasing, and ``B*`` is a minimum of non-decreasing functions, hence
non-decreasing.  So ``{delta: B*(delta) <= target}`` is an interval ``[0, delta*]`` (or
``[0, delta*)``), and bisection on ``log delta`` converges to ``delta*`` without
continuity being needed.  Above ``delta = 2`` every cap binds (``eps = 1``,
``D_TV^seq = 1``), so ``B*`` is constant there: if ``B*(2) <= target`` every ``delta``
meets the target and the plan says ``inf``.

>>> p = plan(4096, 1.0)
>>> f"{p['delta_published']:.1e}", f"{p['delta_sharp']:.1e}"   # issue 13: 2.9e-6, 5.7e-6
('2.9e-06', '5.7e-06')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.bounds import compute_bounds
from trm_bounds.bounds.validate import coupling_tv_cap

__all__ = [
    "plan_inputs",
    "unified_at",
    "largest_delta",
    "plan",
    "sequences_for_width",
    "required_sample_size",
    "format_sample_size",
    "format_plan",
    "QUANTILES",
]

#: Length quantiles for which :func:`plan` also reports a threshold.
QUANTILES = (0.5, 0.9, 0.99)
#: Relative precision of the bisection on ``delta``.
_RTOL = 1e-10
#: Above this delta every cap binds and B* no longer grows (module docstring).
_SATURATION = 2.0


def _survival(lengths: ArrayLike, T: int) -> tuple[np.ndarray, float]:
    """``Pr(T_i >= t)`` for ``t = 1..T`` and ``E[T_i]`` of the empirical length law."""
    L = np.asarray(lengths, dtype=np.int64)
    counts = np.bincount(np.minimum(L, T), minlength=T + 1)
    # survival at t: fraction with length >= t
    surv = 1.0 - np.cumsum(counts)[:-1] / L.shape[0]
    return surv[:T].astype(np.float64), float(L.mean())


def plan_inputs(
    T: int,
    delta: float,
    *,
    dkl_seq: float | None = None,
    lengths: ArrayLike | None = None,
) -> dict[str, Any]:
    """The divergences a per-token KL threshold ``delta`` allows (module docstring).

    ``dkl_seq`` fixes ``D_KL^seq`` (it must not exceed ``T delta``, relation 3);
    ``lengths`` (positive integers ``<= T``) gives ``D_KL^seq = delta mean(lengths)`` and
    ``Dbar_t = eps Pr(T_i >= t)``.  Returns the keyword arguments of
    :func:`~trm_bounds.bounds.compute_bounds`.

    >>> plan_inputs(4, 0.02)["dkl_seq"], plan_inputs(4, 0.02)["eps"]
    (0.08, 0.1)
    """
    eps = min(1.0, math.sqrt(delta / 2.0))
    dbar = None
    if lengths is not None:
        surv, mean = _survival(lengths, T)
        dbar = eps * surv
        dkl = delta * mean if dkl_seq is None else dkl_seq
    else:
        dkl = T * delta if dkl_seq is None else dkl_seq
    dtv = min(1.0, math.sqrt(dkl / 2.0), float(coupling_tv_cap(T, eps)))
    if dbar is not None:
        dtv = min(dtv, float(dbar.sum()))
    return {"eps": eps, "delta": delta, "dkl_seq": dkl, "dtv_seq": dtv, "dbar": dbar}


def unified_at(
    T: int,
    delta: float,
    *,
    dkl_seq: float | None = None,
    lengths: ArrayLike | None = None,
    sharp: bool = False,
) -> float:
    """``B*`` (``docs/theory.md §4``; ``§5`` if ``sharp``) at the inputs of :func:`plan_inputs`.

    >>> round(unified_at(4096, 1e-4), 3)   # D_KL^seq = T delta: PM-KL's exact sum (§7)
    34.946
    """
    kw = plan_inputs(T, delta, dkl_seq=dkl_seq, lengths=lengths)
    return float(compute_bounds(T, **kw, sharp=sharp)["unified"])


def largest_delta(
    T: int,
    target: float,
    *,
    dkl_seq: float | None = None,
    lengths: ArrayLike | None = None,
    sharp: bool = False,
) -> float:
    r"""``sup {delta : B*(delta) <= target}`` under :func:`plan_inputs` (``inf`` if every
    ``delta`` meets the target, ``0.0`` if none does).

    Bisection on ``log delta`` (``B*`` is non-decreasing in ``delta``, module docstring) to
    relative precision ``1e-10``; the returned ``delta`` always meets the target.  With a
    fixed ``dkl_seq`` the search starts at ``dkl_seq / T`` (relation 3).

    >>> d = largest_delta(4096, 1.0)
    >>> unified_at(4096, d) <= 1.0 < unified_at(4096, d * (1 + 1e-6))
    True
    """
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a finite positive number, got {float(target)!r}")
    if dkl_seq is not None and not (math.isfinite(dkl_seq) and dkl_seq >= 0):
        raise ValueError(f"dkl_seq must be finite and >= 0, got {float(dkl_seq)!r}")

    def B(d: float) -> float:
        return unified_at(T, d, dkl_seq=dkl_seq, lengths=lengths, sharp=sharp)

    floor = 0.0 if dkl_seq is None else dkl_seq / T
    hi = max(_SATURATION, floor)
    if B(hi) <= target:
        return math.inf
    if floor > 0:
        lo = floor
        if B(lo) > target:
            return 0.0
    else:
        lo = hi
        while B(lo) > target:  # B* -> 0 as delta -> 0 (every bound is O(delta^{1/2}) or less)
            lo /= 16.0
            if lo < 1e-300:
                return 0.0
        hi = lo * 16.0
    while hi - lo > _RTOL * lo:
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if B(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo


def plan(
    T: int | None,
    target: float,
    *,
    dkl_seq: float | None = None,
    lengths: ArrayLike | None = None,
    quantiles: Sequence[float] = QUANTILES,
) -> dict[str, Any]:
    """The threshold plan: ``delta_published`` and ``delta_sharp`` (largest ``delta`` with
    ``B* <= target``), the assumptions, and with ``lengths`` one row per length quantile.

    ``T``: the horizon; with ``lengths`` it defaults to their maximum (a given ``T`` must not
    be smaller).  The per-quantile rows answer "what threshold would suffice if responses
    were cut at the ``q``-quantile length ``T_q``": the horizon is ``T_q`` and the lengths
    are truncated at ``T_q``.  Only the row at the maximum (the plan itself) covers every
    logged response; a quantile row is a guarantee for a run whose responses are truncated
    at ``T_q``, not for the sequences beyond it.

    >>> p = plan(None, 1.0, lengths=[1024] * 3 + [4096])
    >>> p["T"], p["delta_sharp"] > plan(4096, 1.0)["delta_sharp"]
    (4096, True)
    """
    if lengths is not None:
        L = np.asarray(lengths)
        if L.ndim != 1 or L.shape[0] == 0:
            raise ValueError("lengths must be a non-empty list of response lengths")
        if not np.all(np.isfinite(L.astype(np.float64))) or np.any(L < 1) or np.any(L != np.round(L)):
            bad = L[~((L >= 1) & (L == np.round(L)))][0]
            raise ValueError(f"lengths must be positive integers, got {float(bad)!r}")
        L = L.astype(np.int64)
        if T is None:
            T = int(L.max())
        elif T < int(L.max()):
            raise ValueError(f"T = {T} is below the longest logged length {int(L.max())}")
        lengths = L
    if T is None or isinstance(T, bool) or int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    T = int(T)
    kw = {"dkl_seq": dkl_seq, "lengths": lengths}
    out: dict[str, Any] = {
        "T": T,
        "target": float(target),
        "delta_published": largest_delta(T, target, **kw),
        "delta_sharp": largest_delta(T, target, sharp=True, **kw),
        "assumptions": _assumptions(dkl_seq, lengths),
    }
    for key in ("published", "sharp"):
        d = out[f"delta_{key}"]
        out[f"unified_{key}"] = (
            unified_at(T, d, sharp=key == "sharp", **kw) if 0 < d < math.inf else None
        )
    if lengths is not None:
        out["mean_length"] = float(np.mean(lengths))
        rows = []
        for q in quantiles:
            Tq = int(np.quantile(lengths, q, method="inverted_cdf"))
            Lq = np.minimum(lengths, Tq)
            rows.append({
                "quantile": float(q), "T": Tq,
                "delta_published": largest_delta(Tq, target, dkl_seq=dkl_seq, lengths=Lq),
                "delta_sharp": largest_delta(Tq, target, dkl_seq=dkl_seq, lengths=Lq, sharp=True),
            })  # fmt: skip
        out["quantiles"] = rows
    return out


def _assumptions(dkl_seq: float | None, lengths: Any) -> list[str]:
    a = ["eps = min(1, sqrt(delta/2)) (Pinsker: the largest TV a KL cap delta allows)"]
    if dkl_seq is not None:
        a.append(f"D_KL^seq = {dkl_seq:g} as given (needs D_KL^seq <= T delta)")
    elif lengths is not None:
        a.append("D_KL^seq = delta * mean logged length (every token at the cap; absorbing end)")
    else:
        a.append("D_KL^seq = T delta (uniform worst case: every token at the cap)")
    a.append("D_TV^seq = min(1, sqrt(D_KL^seq/2), 1 - (1 - eps)^T) (Pinsker, coupling cap)")
    if lengths is not None:
        a.append("Dbar_t = eps Pr(T_i >= t), with the logged lengths taken as the rollout's "
                 "length law (an estimate); horizon T = longest logged length")
    else:
        a.append("Dbar_t = eps (worst case)")
    a.append("B* valid under pi_theta << pi_roll (docs/theory.md §2) and the threshold being "
             "a true maximum over every reachable context")
    return a


def sequences_for_width(
    width: float,
    *,
    T_max: int,
    level: float = 0.95,
    method: str = "hoeffding",
    sharp: bool = False,
    constant: float | None = None,
    variance: float | None = None,
) -> dict[str, Any]:
    r"""Sequences ``N`` needed so that the certified Linear bound's width ``c (UCB - mean)``
    is at most ``width`` at confidence ``level`` (``docs/theory.md §9``).

    ``X_i = sum_t (1 - rho_t)_+`` lies in ``[0, B]``, ``B = T_max``; ``c = 4`` published,
    ``2`` sharp, or ``constant``.  Let ``w = width / c`` and ``alpha = 1 - level``.

    * ``"hoeffding"`` (a guarantee: the width is deterministic)

      .. math:: B\sqrt{\log(1/\alpha)/(2N)} \le w \iff N \ge \frac{B^2 \log(1/\alpha)}{2 w^2}.

    * ``"bernstein"`` (Maurer and Pontil 2009, Thm 4; a planning figure, since the sample
      variance is random): ``sqrt(2 V log(2/alpha) / N) + 7 B log(2/alpha) / (3 (N - 1))
      <= w`` with ``V = variance`` (default ``B^2/4``, the largest variance on ``[0, B]``),
      solved for the smallest integer ``N`` by bisection (the left side decreases in ``N``).

    The betting bound (the default certificate) has no closed-form width; it is not wider
    than Hoeffding in the worst case in Waudby-Smith and Ramdas' experiments, but that is
    not a theorem, so ``"betting"`` is refused here: plan with ``"hoeffding"`` (a guarantee)
    or ``"bernstein"`` with a variance guess.

    >>> sequences_for_width(0.1 * 4 * 100, T_max=100, level=0.95)["n_sequences"]   # w = 0.1 B
    150
    """
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a finite positive number, got {float(width)!r}")
    if not (0 < level < 1):
        raise ValueError(f"level must lie in (0, 1), got {float(level)!r}")
    if isinstance(T_max, bool) or int(T_max) != T_max or T_max < 1:
        raise ValueError(f"T_max must be a positive integer, got {T_max!r}")
    c = float(constant) if constant is not None else (2.0 if sharp else 4.0)
    B, alpha, w = float(T_max), 1.0 - level, width / c
    if method == "hoeffding":
        n = math.ceil(B * B * math.log(1.0 / alpha) / (2.0 * w * w) - 1e-9)
        kind = "guarantee: the Hoeffding width is deterministic"
    elif method == "bernstein":
        V = B * B / 4.0 if variance is None else float(variance)
        if not (0 <= V <= B * B / 4.0):
            raise ValueError(f"variance must lie in [0, T_max^2/4], got {V!r}")
        lg = math.log(2.0 / alpha)

        def half(n: int) -> float:
            return math.sqrt(2.0 * V * lg / n) + 7.0 * B * lg / (3.0 * (n - 1))

        lo, hi = 2, 4
        while half(hi) > w:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if half(mid) > w else (lo, mid)
        n = hi
        kind = "planning figure: the empirical Bernstein width uses the sample variance"
    else:
        raise ValueError(f"method must be 'hoeffding' or 'bernstein', got {method!r}")
    return {"n_sequences": max(int(n), 1), "method": method, "level": level, "constant": c,
            "T_max": int(T_max), "width": float(width), "kind": kind}  # fmt: skip


def required_sample_size(target: float, *, T_max: int, level: float = 0.95,
                         method: str = "betting", sharp: bool = False,
                         reward_range: Sequence[float] = (0.0, 1.0),
                         constant: float | None = None) -> dict[str, Any]:
    r"""Sequences (or groups) ``N`` for a certified bound ``<= target`` (docs/theory.md §9).

    The certificate is ``bound = ((hi - lo) c + dist(0, [lo, hi])) U`` with ``U`` the
    ``method``'s upper confidence bound on the mean of ``X in [0, T_max]`` over ``N`` units
    (:func:`trm_bounds.certify.certify_sums`), so it needs ``U <= u = target / ((hi - lo) c +
    dist(0, [lo, hi]))``.

    * ``n_units``: the smallest ``N`` whose **best case** meets the target: every ``X_i = 0``
      observed (``theta = roll`` on every sampled token), ``U`` computed by the library's own
      confidence bound, so exact for the method; more divergence needs more units.  Found by
      doubling and bisection and checked at the answer (``N`` meets the target, ``N - 1``
      does not).
    * ``lower_limit``: no bound valid for every law on ``[0, T_max]`` does better: under the
      law ``X = T_max`` with probability ``p`` (else 0), all ``N`` draws are 0 with probability
      ``(1 - p)^N``, so validity forces ``U(0, ..., 0) >= T_max (1 - alpha^{1/N})``, i.e.
      ``N >= log(1/alpha) / -log1p(-u / T_max)``, about ``T_max log(1/alpha) / u``
      (``lower_limit_approx``).

    >>> r = required_sample_size(1.0, T_max=100, method="hoeffding", constant=1.0)
    >>> r["n_units"], r["lower_limit"]       # Hoeffding: 100^2 log 20 / 2
    (14979, 299)
    """
    from trm_bounds.certify.confidence import METHODS, upper_confidence_bound
    from trm_bounds.certify.linear import check_reward_range, check_T_max

    T = check_T_max(T_max)
    lo, hi = check_reward_range(reward_range)
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a finite positive number, got {float(target)!r}")
    if not (0 < level < 1):
        raise ValueError(f"level must lie in (0, 1), got {float(level)!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    c = float(constant) if constant is not None else (2.0 if sharp else 4.0)
    factor = (hi - lo) * c + max(lo, -hi, 0.0)
    u, alpha = target / factor, 1.0 - level
    lower = math.log(1.0 / alpha) / -math.log1p(-u / T) if u < T else 1.0

    def meets(n: int) -> bool:
        return n >= (2 if method == "bernstein" else 1) and upper_confidence_bound(
            np.zeros(n), upper=float(T), level=level, method=method) <= u

    # below the lower limit no valid bound meets the target, so the search starts just under it
    lo_n, hi_n = max(0, math.floor(lower) - 1), max(1, math.ceil(lower))
    while not meets(hi_n):
        lo_n, hi_n = hi_n, 2 * hi_n
    while hi_n - lo_n > 1:  # invariant: meets(hi_n) and not meets(lo_n) (meets(0) is False)
        mid = (lo_n + hi_n) // 2
        lo_n, hi_n = (lo_n, mid) if meets(mid) else (mid, hi_n)
    return {"n_units": hi_n, "target": float(target), "T_max": T, "level": float(level),
            "method": method, "constant": c, "reward_range": [lo, hi], "ucb_needed": u,
            "lower_limit": max(1, math.ceil(lower - 1e-9)),
            "lower_limit_approx": T * math.log(1.0 / alpha) / u,
            "checked": {"meets_at_n": meets(hi_n), "meets_at_n_minus_1": meets(hi_n - 1)},
            "kind": "best case: every X_i = 0 observed; the bound of a run with divergence "
                    "is larger, so this many units are necessary, not sufficient"}


def format_sample_size(r: dict[str, Any]) -> str:
    """One sentence for :func:`required_sample_size` (what ``trm-bounds plan`` prints)."""
    return (f"A certified bound <= {r['target']:g} at generation limit T_max = {r['T_max']} and "
            f"level {r['level']:g} ({r['method']}, constant {r['constant']:g}, rewards in "
            f"[{r['reward_range'][0]:g}, {r['reward_range'][1]:g}]) needs N >= {r['n_units']} "
            f"sequences (or prompt groups) in the best case, every X_i = 0 observed (more with "
            f"any divergence). With fewer than {r['lower_limit']} units, any confidence bound "
            f"on sum_t Dbar_t valid for every law on [0, T_max] stays above u = "
            f"{r['ucb_needed']:.4g} (the target / the constant {r['constant']:g}) even on a log "
            f"where every X_i = 0 (about T_max log(1/alpha) / u = "
            f"{r['lower_limit_approx']:.4g}).")


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return "inf (every threshold meets the target)" if x == math.inf else (
        "none (no threshold meets the target)" if x == 0 else f"{x:.3g}")


def format_plan(p: dict[str, Any]) -> str:
    """The plan as text (what ``trm-bounds plan`` prints)."""
    lines = [
        f"Largest per-token KL threshold delta (nats) with B* <= {p['target']:g} at T = {p['T']}:",
        f"  published (constant 4): delta <= {_num(p['delta_published'])}",
        f"  sharp     (constant 2): delta <= {_num(p['delta_sharp'])}",
    ] if "target" in p else []
    if "quantiles" in p:
        lines.append(f"Mean logged length {p['mean_length']:.1f}. If responses were cut at a "
                     "length quantile T_q (a guarantee only for the cut run):")
        lines.append("  quantile  T_q  delta_published  delta_sharp")
        lines += [f"  {r['quantile']:<8g}  {r['T']:<4d} {_num(r['delta_published']):<16} "
                  f"{_num(r['delta_sharp'])}" for r in p["quantiles"]]  # fmt: skip
    for variant, c in p.get("certified", {}).items():  # one row per constant of Linear
        lines.append(f"Sequences for a certified Linear bound of width {c['width']:g} at level "
                     f"{c['level']:g} ({c['method']}, {variant}, constant {c['constant']:g}): "
                     f"N >= {c['n_sequences']} ({c['kind']})")
    lines += [f"{v}: {format_sample_size(r)}" for v, r in p.get("sample_size", {}).items()]
    if "assumptions" in p:
        lines.append("Assumptions: " + "; ".join(p["assumptions"]) + ".")
    return "\n".join(lines)
