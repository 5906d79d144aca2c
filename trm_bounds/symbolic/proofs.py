r"""Symbolic proofs of the identities of ``docs/theory.md §2, §4, §5, §6`` (sympy).

Each ``prove_*`` returns ``True`` (or a dict of ``True``) only when sympy reduces the
difference of the two sides to exactly 0 or shows the sign it needs; the tests also run
negative controls (a wrong identity must give ``False``).

>>> prove_telescoping(3)
True
"""

from __future__ import annotations

import sympy as sp

from trm_bounds.symbolic.expressions import (
    BOUND_NAMES,
    Dbar,
    T,
    _a,
    _x,
    _y,
    bound_expr,
    closed_forms,
    drop_caps,
    eps,
    t,
)

__all__ = [
    "reversal_equal",
    "prove_telescoping",
    "prove_k3_unbiased",
    "prove_adaptive_equals_pm_kl",
    "prove_adaptive_tv_equals_coupling",
    "prove_sharp_is_half",
    "prove_closed_form_equalities",
    "prove_pm_closed_forms_upper",
    "prove_coupling_large_upper",
]



def _is_zero(expr: sp.Expr) -> bool:
    """True only when sympy simplifies ``expr`` to exactly 0.

    Cheap canonical forms come first (``expand``, then ``factor_terms``, which also moves
    constant factors out of a ``Sum``).  Then a quick refutation: if ``expr`` is clearly
    non-zero at one point (``T = 5``, fixed positive values of the other symbols, sums
    evaluated), it is not identically 0 and the costly ``simplify`` is skipped.
    """
    if sp.factor_terms(sp.expand(expr)) == 0:
        return True
    point = {s: sp.Rational(3, 7) + sp.Rational(i, 11) for i, s in enumerate(expr.free_symbols)}
    point[T] = 5
    try:
        value = complex(expr.subs(point).doit().evalf(30))
    except (TypeError, ValueError):  # Dbar or other undefined functions left: no shortcut
        value = 0.0
    if abs(value) > 1e-20:
        return False
    return sp.simplify(expr) == 0


def prove_telescoping(max_T: int = 6) -> bool:
    r"""Telescoping identity (docs/theory.md §2) for every ``T = 1..max_T``:

    .. math:: \prod_{t=1}^{T}\rho_t - 1 = \sum_{t=1}^{T} (\rho_t - 1) \prod_{j>t} \rho_j

    with independent symbols ``rho_1..rho_T``; each difference is expanded to 0.
    """
    for n in range(1, max_T + 1):
        rho = sp.symbols(f"rho1:{n + 1}", positive=True)
        rhs = sum(((rho[i] - 1) * sp.Mul(*rho[i + 1 :]) for i in range(n)), start=sp.Integer(0))
        if sp.expand(sp.Mul(*rho) - 1 - rhs) != 0:
            return False
    return True


def prove_k3_unbiased() -> bool:
    r"""``E_roll[k3] = KL(roll || theta)`` for a generic 3-symbol pair (docs/theory.md §6).

    ``p = (p1, p2, 1-p1-p2)`` (rollout), ``q = (q1, q2, 1-q1-q2)`` (theta),
    ``k3 = rho - 1 - log rho`` with ``rho = q/p``:

    .. math:: \sum_v p_v(\rho_v - 1 - \log\rho_v) = \sum_v p_v \log(p_v/q_v)

    since ``sum_v p_v (rho_v - 1) = sum_v (q_v - p_v) = 0``.
    """
    p1, p2, q1, q2 = sp.symbols("p1 p2 q1 q2", positive=True)
    p = (p1, p2, 1 - p1 - p2)
    q = (q1, q2, 1 - q1 - q2)
    e_k3 = sum(pv * (qv / pv - 1 - sp.log(qv / pv)) for pv, qv in zip(p, q, strict=True))
    kl = sum(pv * sp.log(pv / qv) for pv, qv in zip(p, q, strict=True))
    return _is_zero(sp.expand(sp.expand_log(e_k3 - kl, force=True)))


def reversal_equal(adaptive: sp.Expr, target: sp.Expr) -> bool:
    r"""True when ``adaptive`` equals ``target`` after the index reversal ``t -> T + 1 - t``.

    Every ``Sum`` over ``(t, 1, T)`` in ``adaptive`` is rewritten with
    ``Sum.change_index(t, T + 1 - t)`` (symbolic ``T``), then the difference must simplify
    to 0.
    """
    reversed_ = adaptive.replace(
        lambda e: isinstance(e, sp.Sum), lambda s: s.change_index(t, T + 1 - t, t)
    )
    return _is_zero(reversed_ - target)


def prove_adaptive_equals_pm_kl(*, sharp: bool = False) -> bool:
    r"""Adaptive-KL with ``Dbar_t = a = min(1, sqrt(delta/2))`` equals PM-KL (docs/theory.md §4).

    .. math:: 4\sum_{t=1}^T a \min(1, \sqrt{(T-t)\delta/2})
              = 4a\sum_{t=1}^T \min(1, \sqrt{(t-1)\delta/2})

    Proven for symbolic ``T`` by the index change ``t -> T + 1 - t`` (:func:`reversal_equal`).
    """
    adaptive = bound_expr("adaptive_kl", sharp=sharp).replace(Dbar, sp.Lambda(_x, _a()))
    return reversal_equal(adaptive, bound_expr("pm_kl", sharp=sharp))


def prove_adaptive_tv_equals_coupling(*, sharp: bool = False) -> bool:
    r"""Adaptive on the coupling route with ``Dbar_t = e`` equals Coupling (docs/theory.md §4).

    .. math:: 4\sum_{t=1}^T e \min(1, (T-t)\varepsilon) = 4e\sum_{t=1}^T \min(1, (t-1)\varepsilon)

    with ``e = min(1, eps)``, which is ``eps`` for every valid input (``eps <= 1``, §3).
    Symbolic ``T``, index change ``t -> T + 1 - t``.
    """
    adaptive = bound_expr("adaptive_tv", sharp=sharp, worst=True)
    return reversal_equal(adaptive, bound_expr("coupling", sharp=sharp))


def prove_sharp_is_half() -> dict[str, bool]:
    """For each bound, whether ``published - 2 * sharp`` simplifies to 0 (docs/theory.md §5)."""
    return {
        name: _is_zero(bound_expr(name) - 2 * bound_expr(name, sharp=True)) for name in BOUND_NAMES
    }


def prove_closed_form_equalities(*, sharp: bool = False) -> dict[str, bool]:
    r"""The closed forms that section 4 states as equalities, proven with caps removed.

    In each regime every capped argument is at most 1 (``Mix-KL``: ``delta, dkl_seq <= 2``;
    ``Mix-TV``: ``eps, dtv_seq <= 1``; ``Coupling``: ``(t-1) eps <= (T-1) eps < T eps <= 1``),
    so the bound equals its :func:`drop_caps` form; that form is summed with
    ``summation`` and its difference with the closed form must simplify to 0.
    """
    out = {}
    for key, form in closed_forms(sharp=sharp).items():
        if form.relation != "eq":
            continue
        uncapped = drop_caps(bound_expr(form.bound, sharp=sharp)).doit()
        out[key] = _is_zero(uncapped - form.expr)
    return out


def prove_pm_closed_forms_upper(*, sharp: bool = False) -> dict[str, bool]:
    r"""PM-KL and PM-TV are at most their closed forms when ``delta <= 2/T`` (docs/theory.md §4).

    With ``delta <= 2/T`` the caps are inactive (``(t-1) delta/2 < 1`` and ``a = sqrt(delta/2)``,
    ``e = eps``), and the summand ``g(t) = sqrt((t-1) delta/2)`` is increasing, so
    ``g(t) <= int_t^{t+1} g`` and

    .. math:: \sum_{t=1}^T g(t) \le \int_1^{T+1} g(x)\,dx = \tfrac23 T^{3/2}\sqrt{\delta/2}.

    Checks symbolically: ``g' > 0``, and the closed form equals the uncapped bound with the
    sum replaced by that integral.
    """
    out = {}
    for key in ("pm_kl", "pm_tv"):
        form = closed_forms(sharp=sharp)[key]
        uncapped = drop_caps(bound_expr(key, sharp=sharp))
        (s,) = uncapped.atoms(sp.Sum)
        g = s.function.subs(t, _x)
        increasing = bool(sp.diff(g, _x).subs(_x, 1 + _y).is_positive)
        integral = sp.integrate(g, (_x, 1, T + 1))
        out[key] = increasing and _is_zero(uncapped.xreplace({s: integral}) - form.expr)
    return out


def prove_coupling_large_upper(*, sharp: bool = False) -> bool:
    r"""Coupling ``<= 4 T eps - 2`` when ``T eps > 1`` (docs/theory.md §4; halved if ``sharp``).

    Case ``eps < 1`` (``e = eps``): with ``n = floor(1/eps)`` (so ``n <= T - 1`` because
    ``T > 1/eps``) the capped sum is
    ``S = sum_{k=0}^{n} k eps + (T - 1 - n)``.  With ``x = eps (n + 1)`` the gap is

    .. math:: 4T\varepsilon - 2 - 4\varepsilon S = 2\bigl(\varepsilon x - (x - 1)^2\bigr),

    and ``n <= 1/eps < n + 1`` gives ``x = 1 + eps s`` with ``s`` in ``(0, 1]``, written
    ``s = 1/(1 + w)``, ``w >= 0``; the gap is then manifestly non-negative.
    Case ``eps >= 1`` (``e = 1``, every term but ``t = 1`` capped): the gap is
    ``4 T eps - 2 - 4 (T - 1) = 4 T (eps - 1) + 2 >= 0``, written with ``eps = 1 + v``.
    Checks each step with sympy (the sum, the gap identity, the signs).
    """
    h = sp.Rational(1, 2) if sharp else sp.Integer(1)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    n = sp.Symbol("n", integer=True, nonnegative=True)
    w, v = sp.symbols("w v", nonnegative=True)
    form = closed_forms(sharp=sharp)["coupling_large"].expr
    # eps < 1
    capped_sum = sp.summation(k * eps, (k, 0, n)) + (T - 1 - n)
    gap = form - h * 4 * eps * capped_sum
    x = eps * (n + 1)
    identity = _is_zero(gap - h * 2 * (eps * x - (x - 1) ** 2))
    s = 1 / (1 + w)
    small = sp.factor(h * 2 * (eps * x - (x - 1) ** 2)).subs(n, (1 + eps * s) / eps - 1)
    small_ok = bool(sp.simplify(small).is_nonnegative)
    # eps >= 1
    large = (form - h * 4 * (T - 1)).subs(eps, 1 + v)
    large_ok = bool(sp.expand(large).is_nonnegative)
    return identity and small_ok and large_ok
