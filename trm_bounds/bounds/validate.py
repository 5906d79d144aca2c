r"""Input checks of :func:`trm_bounds.bounds.compute_bounds`: ranges and the relations of §3.

The inputs ``eps, delta, dkl_seq, dtv_seq, Dbar_t`` are not free: they are divergences of
one pair of policies (``docs/theory.md §3``), and an inconsistent set can yield a *false
certificate* (``eps = 0`` with ``delta > 0`` makes the unified bound 0).  :func:`validate`
refuses every set that violates one of the relations below, naming the relation and the
values in one line.  Every relation is checked up to :data:`RELATION_TOL` (rounding in
exact engines): a zero rule fails when one side is exactly 0 and the other exceeds it.

Relations and why they hold (KL forward, nats; ``d_t = d_t^roll``):

1. ``eps <= sqrt(delta/2)`` -- Pinsker ``TV(c) <= sqrt(KL(c)/2)`` at every context, then
   the maximum over contexts on both sides.
2. ``dtv_seq <= sqrt(dkl_seq/2)`` -- Pinsker for each prompt's sequence distributions, then
   Jensen (``sqrt`` is concave) over ``P(x)``.
3. ``dkl_seq <= T delta`` -- chain rule ``dkl_seq = sum_t E_{d_t} KL(c_t)``, each term
   at most ``delta``.
4. ``Dbar_t <= eps`` -- an average of ``TV(c_t)`` over reached contexts, each at most eps.
5. ``dtv_seq <= sum_t Dbar_t`` -- hybrids ``H_k`` (first ``k`` tokens from roll, the rest
   from theta) telescope ``H_T = roll`` to ``H_0 = theta``; ``H_k`` and ``H_{k-1}`` differ
   only in the kernel of token ``k`` at contexts ``c_k ~ d_k``, so their TV is at most
   ``Dbar_k`` (data processing), and the triangle inequality sums them.
6. ``dtv_seq <= 1 - (1 - eps)^T`` (hence ``<= min(1, T eps)``, the union bound) -- couple
   the two policies token by token with a maximal coupling at the shared context: each
   step disagrees with probability ``TV(c) <= eps``, so both sequences agree with
   probability at least ``(1 - eps)^T``.
7. ``2 sum_t Dbar_t^2 <= dkl_seq`` -- Pinsker at each context and Jensen per position:
   ``Dbar_t = E TV(c_t) <= E sqrt(KL(c_t)/2) <= sqrt(E KL(c_t) / 2)``; square, sum, chain rule.
8. ``Dbar_1 <= dtv_seq`` -- the first token's distribution is a function of the sequence
   (data processing), and ``Dbar_1 = E_x TV(pi_roll(.|x), pi_theta(.|x))``.
9. Zero rules (exact).  ``TV(c) = 0`` iff ``KL(c) = 0`` iff the two next-token laws agree.
   ``eps = 0`` means they agree at every context, so ``delta = dkl_seq = dtv_seq = Dbar_t = 0``;
   ``delta = 0`` likewise forces ``eps = 0``.  ``dkl_seq = 0`` iff ``dtv_seq = 0`` iff the
   sequence laws agree for every prompt (iff every context the rollout reaches has
   ``TV = 0``, iff every ``Dbar_t = 0``).

Not checked, on purpose: no upper bound of KL by a function of TV exists (a token with
``pi_theta = 0 < pi_roll`` makes ``KL`` infinite at any ``TV > 0``), so ``delta > 0`` with a tiny
positive ``eps`` is fine.  And ``dkl_seq = 0`` in fact forces ``eps = 0`` (a context theta
reaches but the rollout does not is entered from one both reach with ``TV > 0``), but exact
engines meet ``eps > 0`` with ``dkl_seq = 0`` when a divergent context's probability
underflows float64 (below about 1e-308); the bounds are then off by no more than that mass,
so this relation is not enforced; nor, for the same reason, is ``dtv_seq = 0`` iff every
``Dbar_t = 0`` (each is a probability-weighted sum that underflows on its own; relations 5
and 7 hold both up to the tolerance).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["RELATION_TOL", "T_MAX", "validate"]

#: Absolute tolerance on the §3 inequalities checked by :func:`validate`.
RELATION_TOL = 1e-12
#: Largest accepted horizon: ``2**53``, the last integer float64 holds exactly.
T_MAX = 2**53


def _as_T(T: ArrayLike) -> np.ndarray:
    if isinstance(T, int) and not isinstance(T, bool) and T > T_MAX:
        raise ValueError(f"T must be at most 2**53 = {T_MAX} (exact in float64), got T = {T}")
    try:
        arr = np.asarray(T)
    except OverflowError:
        arr = np.asarray(T, dtype=object)
    if arr.dtype == bool or arr.ndim > 1:
        raise ValueError(f"T must be a positive integer or a 1-D integer array, got {T!r}")
    if arr.dtype == object and arr.ndim == 1 and all(isinstance(v, int) for v in arr.tolist()):
        big = max(arr.tolist(), default=0)
        if big > T_MAX:
            raise ValueError(f"T must be at most 2**53 = {T_MAX} (exact in float64), got T = {big}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"T must be a positive integer, got {_plain(T)}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"T must be a positive integer or a 1-D integer array, got {_plain(T)}")
    if arr.size == 0:
        raise ValueError("T must not be empty")
    hi = arr.max()
    if hi > T_MAX:
        raise ValueError(
            f"T must be at most 2**53 = {T_MAX} (exact in float64), got T = {_plain(hi)}"
        )
    lo = arr.min()
    if lo < 1:
        raise ValueError(f"T must be a positive integer, got T = {_plain(lo)}")
    return arr.astype(np.int64, copy=False)


def _plain(x: Any) -> str:
    """A value as a user would type it: plain ints and floats, never ``np.float64(...)``."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x.item()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**63:
        return repr(x)
    return repr(x) if isinstance(x, (int, float, str)) else str(x)


def _as_div(name: str, x: ArrayLike, *, upper: float | None = None, shape=()) -> Any:
    """``x`` as a float (or array) divergence, finite, ``>= 0`` and at most ``upper``; a
    one-line ``ValueError`` naming ``name`` otherwise.  ``shape``: the shape an array must
    have (that of ``T``), ``None`` for any shape."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if shape is not None and (arr.ndim > 1 or (arr.ndim == 1 and arr.shape != shape)):
        raise ValueError(
            f"{name} must be a scalar or match the shape of T {shape}, got shape {arr.shape}"
        )
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


def coupling_tv_cap(T: ArrayLike, eps: float) -> Any:
    """``1 - (1 - eps)^T``: the largest ``dtv_seq`` consistent with ``eps`` (relation 6)."""
    if eps >= 1.0:
        return np.ones_like(np.asarray(T, dtype=np.float64))[()]
    return -np.expm1(np.asarray(T, dtype=np.float64) * math.log1p(-eps))


def _at(T_arr: np.ndarray, i: int) -> str:
    return "" if T_arr.ndim == 0 else f" at T = {int(T_arr[i])}"


def _check_zero_rules(T_arr, eps, delta, dkl_seq, dtv_seq) -> None:
    """Relation 9: a divergence that is exactly 0 forces the others to 0 (up to the tolerance).

    ``delta = 0`` forcing ``eps <= RELATION_TOL`` and ``dkl_seq = 0`` forcing ``dtv_seq``
    likewise are relations 1 and 2; the directions checked here are those no inequality
    gives: zero TV forces zero KL.
    """
    tol = RELATION_TOL
    if eps == 0.0 and delta > tol:
        raise ValueError(
            "relation eps = 0 <=> delta = 0 violated (zero TV forces zero KL): "
            f"eps = 0.0, delta = {delta!r}"
        )
    if eps == 0.0:
        for name, x in (("dkl_seq", dkl_seq), ("dtv_seq", dtv_seq)):
            bad = np.asarray(x) > tol
            if np.any(bad):
                i = int(np.argmax(np.ravel(bad)))
                raise ValueError(
                    f"relation eps = 0 => {name} = 0 violated (equal policies){_at(T_arr, i)}: "
                    f"{name} = {_entry(x, i)!r}"
                )
    odd = (np.asarray(dtv_seq) == 0.0) & (np.asarray(dkl_seq) > tol)
    if np.any(odd):
        i = int(np.argmax(np.ravel(odd))) if odd.ndim else 0
        raise ValueError(
            f"relation dkl_seq = 0 <=> dtv_seq = 0 violated (equal sequence laws){_at(T_arr, i)}: "
            f"dkl_seq = {_entry(dkl_seq, i)!r}, dtv_seq = {_entry(dtv_seq, i)!r}"
        )


def _check_sequence_relations(T_arr, eps, delta, dkl_seq, dtv_seq) -> None:
    """Relations 2, 3 and 6 (vectorised over an array of ``T``)."""
    if np.ndim(dtv_seq) == 0 and np.ndim(dkl_seq) == 0:
        bad_pinsker = dtv_seq - math.sqrt(dkl_seq / 2.0) > RELATION_TOL
        T_min = float(T_arr.min())  # a Python float: T delta overflows to inf, silently
        bad_chain = dkl_seq > T_min * delta * (1 + RELATION_TOL) + RELATION_TOL
        i = j = 0
    else:  # one scratch buffer: at 10^6 entries fresh memory is the cost
        shape = T_arr.shape
        buf = np.empty(shape)
        np.multiply(dkl_seq, 0.5, out=buf)
        np.sqrt(buf, out=buf)
        np.subtract(dtv_seq, buf, out=buf)
        bad = buf > RELATION_TOL
        bad_pinsker = bool(bad.any())
        j = int(np.argmax(bad)) if bad_pinsker else 0
        with np.errstate(over="ignore"):  # T delta beyond float64: inf, no relation broken
            np.multiply(T_arr, delta * (1 + RELATION_TOL), out=buf)
        buf += RELATION_TOL
        bad_chain_arr = np.greater(dkl_seq, buf, out=bad)
        bad_chain = bool(bad_chain_arr.any())
        i = int(np.argmax(bad_chain_arr)) if bad_chain else 0
    if bad_pinsker:
        raise ValueError(
            f"relation dtv_seq <= sqrt(dkl_seq/2) (Pinsker) violated{_at(T_arr, j)}: "
            f"dtv_seq = {_entry(dtv_seq, j)!r}, dkl_seq = {_entry(dkl_seq, j)!r}"
        )
    if bad_chain:
        T_i = int(np.ravel(T_arr)[i]) if np.ndim(dkl_seq) else int(T_arr.min())
        raise ValueError(
            "relation dkl_seq <= T delta violated: "
            f"dkl_seq = {_entry(dkl_seq, i)!r}, T = {T_i}, delta = {delta!r}"
        )
    # Relation 6; the cap grows with T, so one comparison at min(T) settles most inputs.
    if float(np.max(dtv_seq)) <= float(coupling_tv_cap(T_arr.min(), eps)) + RELATION_TOL:
        return
    # Past T_one = log(tol)/log1p(-eps) the cap is within tol of 1 >= dtv_seq (checked by
    # _as_div); below it a sufficient test of a few multiplications settles most horizons,
    # 1 - (1 - eps)^T >= T eps / (1 + T eps) (as (1 - eps)^T <= e^(-T eps) <= 1/(1 + T eps)),
    # and only the rest need the exact cap (one expm1 each).
    T_one = (0.0 if eps >= 1.0 else math.inf if eps <= 0.0
             else math.log(RELATION_TOL) / math.log1p(-eps))
    T1 = np.atleast_1d(T_arr)
    d1 = np.broadcast_to(np.asarray(dtv_seq, dtype=np.float64), T1.shape)
    idx = np.flatnonzero(T1 < T_one)
    if idx.size:
        te = T1[idx] * eps
        idx = idx[d1[idx] * (1.0 + te) > te + RELATION_TOL]
    if idx.size == 0:
        return
    cap = coupling_tv_cap(T1[idx], eps)
    bad = d1[idx] > cap + RELATION_TOL
    if bad.any():
        k = int(np.argmax(bad))
        i = int(idx[k])
        raise ValueError(
            "relation dtv_seq <= 1 - (1 - eps)^T (token-wise coupling) violated: "
            f"dtv_seq = {float(d1[i])!r}, T = {int(T1[i])}, eps = {eps!r}, "
            f"1 - (1 - eps)^T = {float(cap[k])!r}"
        )


def _check_dbar(T_arr, eps, dkl_seq, dtv_seq, dbar) -> np.ndarray:
    """Ranges of ``Dbar_t`` and relations 4, 5, 7 and 8."""
    if T_arr.ndim != 0:
        raise ValueError("dbar is a length-T sequence and needs a scalar T")
    try:
        d = np.asarray(dbar, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"dbar must be a sequence of numbers, got {dbar!r}") from None
    if d.shape != (int(T_arr),):
        raise ValueError(f"dbar must have length T = {int(T_arr)}, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        i = int(np.argmin(np.isfinite(d)))
        raise ValueError(f"dbar must be finite, got dbar[{i}] (t = {i + 1}) = {float(d[i])!r}")
    if np.any(d < 0):
        i = int(np.argmin(d))
        raise ValueError(f"dbar must be >= 0, got dbar[{i}] (t = {i + 1}) = {float(d[i])!r}")
    if np.any(d > eps + RELATION_TOL):
        i = int(np.argmax(d))
        raise ValueError(
            f"relation Dbar_t <= eps violated at t = {i + 1}: Dbar_t = {float(d[i])!r}, "
            f"eps = {eps!r}"
        )
    total = float(np.sum(d))
    if dtv_seq > total * (1 + RELATION_TOL) + RELATION_TOL:
        raise ValueError(
            "relation dtv_seq <= sum_t Dbar_t (hybrid coupling) violated: "
            f"dtv_seq = {dtv_seq!r}, sum_t Dbar_t = {total!r}"
        )
    sq = 2.0 * float(d @ d)
    if sq > dkl_seq * (1 + RELATION_TOL) + RELATION_TOL:
        raise ValueError(
            "relation 2 sum_t Dbar_t^2 <= dkl_seq (Pinsker and Jensen per position) violated: "
            f"2 sum_t Dbar_t^2 = {sq!r}, dkl_seq = {dkl_seq!r}"
        )
    if float(d[0]) > dtv_seq + RELATION_TOL:
        raise ValueError(
            "relation Dbar_1 <= dtv_seq (data processing) violated: "
            f"Dbar_1 = {float(d[0])!r}, dtv_seq = {dtv_seq!r}"
        )
    return d


def validate(
    T: ArrayLike,
    *,
    eps: float,
    delta: float,
    dkl_seq: ArrayLike,
    dtv_seq: ArrayLike,
    dbar: ArrayLike | None = None,
) -> tuple[np.ndarray, float, float, Any, Any, np.ndarray | None]:
    """Check ranges and every relation of ``docs/theory.md §3`` listed in the module docstring.

    Ranges: ``T`` a positive integer (or 1-D array of them) at most ``2**53``; divergences
    finite and ``>= 0``; ``eps``, ``dtv_seq <= 1``.  Inequalities hold up to
    :data:`RELATION_TOL`, zero rules exactly.  Raises a one-line ``ValueError`` naming the
    field or relation and the values; returns the converted arguments.

    >>> validate(4096, eps=0.0, delta=1e-4, dkl_seq=0.0, dtv_seq=0.0)
    Traceback (most recent call last):
    ...
    ValueError: relation eps = 0 <=> delta = 0 violated (zero TV forces zero KL): eps = 0.0, delta = 0.0001
    """
    T_arr = _as_T(T)
    shape = T_arr.shape
    eps = _as_div("eps", eps, upper=1.0)
    delta = _as_div("delta", delta)
    if isinstance(eps, np.ndarray) or isinstance(delta, np.ndarray):
        raise ValueError("eps and delta must be scalars")
    dkl_seq = _as_div("dkl_seq", dkl_seq, shape=shape)
    dtv_seq = _as_div("dtv_seq", dtv_seq, upper=1.0, shape=shape)
    _check_zero_rules(T_arr, eps, delta, dkl_seq, dtv_seq)
    if eps > math.sqrt(delta / 2.0) + RELATION_TOL:
        raise ValueError(
            f"relation eps <= sqrt(delta/2) (Pinsker) violated: eps = {eps!r}, "
            f"sqrt(delta/2) = {math.sqrt(delta / 2.0)!r} (delta = {delta!r})"
        )
    _check_sequence_relations(T_arr, eps, delta, dkl_seq, dtv_seq)
    dbar_arr = None if dbar is None else _check_dbar(T_arr, eps, dkl_seq, dtv_seq, dbar)
    return T_arr, eps, delta, dkl_seq, dtv_seq, dbar_arr
