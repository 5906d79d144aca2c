r"""Sympy expressions of the bounds of ``docs/theory.md §4`` (``§5``, sharp), one per registry entry.

Every bound is an expression in the positive symbols ``T`` (a positive integer),
``eps``, ``delta``, ``dkl_seq``, ``dtv_seq`` and, for the Adaptive and Linear bounds,
the undefined function ``Dbar(t)`` (expected per-position TV, summation index ``t``).
KL divergences are forward (rollout first) and in nats.  Sums over ``t = 1..T`` stay
unevaluated ``Sum`` objects with their ``Min`` caps, written with

.. math:: a = \min(1, \sqrt{\delta/2}),\qquad e = \min(1, \varepsilon).

Published bounds carry the leading constant 4 (classical: ``2T(T-1)eps^2`` and
``T(T-1)delta``); the sharp ones (section 5, ``sharp=True``) carry 2 (classical:
``T(T-1)eps^2`` and ``T(T-1)delta/2``).

What the module offers:

- :func:`bound_registry` / :func:`bound_expr`: name -> expression for the twelve bounds,
  generic ``Dbar(t)`` or the worst case ``Dbar_t = min(1, eps)``;
- :func:`closed_forms`: the paper's closed forms with their regime conditions and whether
  section 4 states an equality or an upper bound;
- :func:`leading_exponent`: the exponent of ``T``, computed (never looked up);
- :func:`adaptive_crossover`: the route crossover ``T - t = delta / (2 eps^2)``;
- ``prove_*`` (in :mod:`trm_bounds.symbolic.proofs`): symbolic proofs of the identities of
  ``docs/theory.md §2, §4, §6``;
- :func:`numeric`: a ``lambdify`` path for comparison with :mod:`trm_bounds.bounds`.

>>> leading_exponent("pm_kl", "uniform")
3/2
>>> adaptive_crossover()
delta/(2*eps**2)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from trm_bounds.bounds.registry import BOUND_NAMES, BOUNDS, UNIFIED_MEMBERS

__all__ = [
    "T",
    "t",
    "eps",
    "delta",
    "dkl_seq",
    "dtv_seq",
    "Dbar",
    "ARGS",
    "BOUND_NAMES",
    "UNIFIED_MEMBERS",
    "REGIMES",
    "ClosedForm",
    "bound_expr",
    "bound_registry",
    "worst_case",
    "drop_caps",
    "closed_forms",
    "leading_exponent",
    "adaptive_crossover",
    "numeric",
]

#: Horizon (maximum response length), a positive integer.
T = sp.Symbol("T", positive=True, integer=True)
#: Summation index, ``t = 1..T``.
t = sp.Symbol("t", positive=True, integer=True)
#: ``eps = D_TV^{tok,max}`` and ``delta = D_KL^{tok,max}`` (nats), ``docs/theory.md §3``.
eps = sp.Symbol("eps", positive=True)
delta = sp.Symbol("delta", positive=True)
#: ``D_KL^seq`` (nats) and ``D_TV^seq``, ``docs/theory.md §3``.
dkl_seq = sp.Symbol("dkl_seq", positive=True)
dtv_seq = sp.Symbol("dtv_seq", positive=True)
#: ``Dbar_t = E_{c_t ~ d_t^roll}[TV(c_t)]``, an undefined function of the index ``t``.
Dbar = sp.Function("Dbar")

# The bound names and the members of B* come from the registry (trm_bounds.bounds.registry).

#: Regime conditions of the closed forms (``docs/theory.md §4``).
REGIMES: dict[str, sp.Basic] = {
    "pm": sp.Le(delta, 2 / T),
    "coupling_small": sp.Le(T * eps, 1),
    "coupling_large": sp.Gt(T * eps, 1),
    "mix_kl": sp.And(sp.Le(delta, 2), sp.Le(dkl_seq, 2)),
    "mix_tv": sp.And(sp.Le(eps, 1), sp.Le(dtv_seq, 1)),
}

#: Argument order of the :func:`numeric` callables and of ``lambdify`` on these expressions.
ARGS = (T, eps, delta, dkl_seq, dtv_seq)
_x = sp.Symbol("x", positive=True)  # integration variable standing for t
_y = sp.Symbol("y", positive=True)
_z = sp.Symbol("z", positive=True)


def _const(sharp: bool) -> sp.Integer:
    """Leading constant: 4 published (docs/theory.md §4), 2 sharp (§5)."""
    return sp.Integer(2) if sharp else sp.Integer(4)


def _a() -> sp.Expr:
    return sp.Min(1, sp.sqrt(delta / 2))


def _e() -> sp.Expr:
    return sp.Min(1, eps)


def _sum(summand: sp.Expr) -> sp.Sum:
    return sp.Sum(summand, (t, 1, T))


@functools.cache
def _table() -> dict[str, sp.Expr]:
    """Every bound divided by its leading constant (4 published, 2 sharp), built once."""
    kl_cap_fwd = sp.Min(1, sp.sqrt((t - 1) * delta / 2))  # marginal KL route, position t
    kl_cap_bwd = sp.sqrt((T - t) * delta / 2)  # future KL route
    tv_bwd = (T - t) * eps  # future TV (coupling) route
    table = {
        "classical_tv": T * (T - 1) * eps**2 / 2,
        "classical_kl": T * (T - 1) * delta / 4,
        "coupling": _e() * _sum(sp.Min(1, (t - 1) * eps)),
        "pm_kl": _a() * _sum(kl_cap_fwd),
        "pm_tv": _e() * _sum(kl_cap_fwd),
        "mix_kl": T * _a() * sp.Min(1, sp.sqrt(dkl_seq / 2)),
        "mix_tv": T * _e() * sp.Min(1, dtv_seq),
        "adaptive_kl": _sum(Dbar(t) * sp.Min(1, kl_cap_bwd)),
        "adaptive_tv": _sum(Dbar(t) * sp.Min(1, tv_bwd)),
        "adaptive_hybrid": _sum(Dbar(t) * sp.Min(1, tv_bwd, kl_cap_bwd)),
        "linear": _sum(Dbar(t)),
    }
    # unevaluated: sympy would otherwise compare the six members pairwise (slow)
    table["unified"] = sp.Min(*(table[m] for m in UNIFIED_MEMBERS), evaluate=False)
    missing = [name for name in BOUNDS if name not in table]
    if missing:  # a registry entry without its sympy twin: add it above
        raise NotImplementedError(f"no symbolic expression for bound(s) {missing}")
    return {name: table[name] for name in BOUNDS}


def _base(name: str) -> sp.Expr:
    """Bound ``name`` divided by its leading constant; ValueError for an unknown name."""
    table = _table()
    if name not in table:
        raise ValueError(f"unknown bound {name!r}; expected one of {BOUND_NAMES}")
    return table[name]


def worst_case(expr: sp.Expr) -> sp.Expr:
    r"""Replace every ``Dbar(t)`` by the worst case ``min(1, eps)`` (docs/theory.md §4, §7).

    Section 3 gives ``Dbar_t <= eps`` and ``Dbar_t <= 1``; the paper's table uses this value.
    """
    return expr.replace(Dbar, sp.Lambda(_x, _e()))


@functools.cache
def bound_expr(name: str, *, sharp: bool = False, worst: bool = False) -> sp.Expr:
    r"""Sympy expression of bound ``name`` (``docs/theory.md §4``; section 5 if ``sharp``).

    For example ``pm_kl`` is

    .. math:: 4\,a \sum_{t=1}^{T} \min\bigl(1, \sqrt{(t-1)\,\delta/2}\bigr)

    (leading 2 when ``sharp``).  ``worst=True`` substitutes ``Dbar_t = min(1, eps)`` in the
    Adaptive and Linear bounds (and in ``unified``).

    >>> bound_expr("classical_kl")
    T*delta*(T - 1)
    """
    if worst and name == "unified":
        members = (worst_case(_base(m)) for m in UNIFIED_MEMBERS)
        return _const(sharp) * sp.Min(*members, evaluate=False)
    expr = _const(sharp) * _base(name)
    return worst_case(expr) if worst else expr


@functools.cache
def bound_registry(*, sharp: bool = False, worst: bool = False) -> dict[str, sp.Expr]:
    """The registry ``name -> expression`` over :data:`BOUND_NAMES` (see :func:`bound_expr`).

    The returned dict is cached: do not mutate it.
    """
    return {name: bound_expr(name, sharp=sharp, worst=worst) for name in BOUND_NAMES}


def drop_caps(expr: sp.Expr) -> sp.Expr:
    r"""Remove the caps ``1`` from every ``Min`` (small-divergence regime, docs/theory.md §4).

    ``Min(1, u) -> u`` and ``Min(1, u, v) -> Min(u, v)``: the value of the bound while
    every capped argument is at most 1 (e.g. ``delta <= 2/T`` for Pinsker-Marginal,
    ``T eps <= 1`` for Coupling).
    """

    def _strip(m: sp.Min) -> sp.Expr:
        rest = [arg for arg in m.args if arg != 1]
        return sp.Min(*rest) if rest else sp.Integer(1)

    return expr.replace(lambda e: isinstance(e, sp.Min), _strip)


@dataclass(frozen=True)
class ClosedForm:
    """A closed form of ``docs/theory.md §4``.

    Attributes:
        bound: the bound name it approximates (a key of :data:`BOUND_NAMES`).
        expr: the closed form, in ``T, eps, delta, dkl_seq, dtv_seq``.
        condition: the regime where the statement holds (sympy relational).
        relation: ``"eq"`` (bound == expr in the regime) or ``"le"`` (bound <= expr).
    """

    bound: str
    expr: sp.Expr
    condition: sp.Basic
    relation: str


@functools.cache
def closed_forms(*, sharp: bool = False) -> dict[str, ClosedForm]:
    r"""The paper's closed forms (``docs/theory.md §4``), halved when ``sharp`` (section 5).

    - ``pm_kl``: PM-KL ``<= (4/3) T^{3/2} delta`` when ``delta <= 2/T``;
    - ``pm_tv``: PM-TV ``<= (8/3) T^{3/2} eps sqrt(delta/2)`` when ``delta <= 2/T``;
    - ``mix_kl``: Mix-KL ``= 2 T sqrt(delta dkl_seq)`` when ``delta <= 2``, ``dkl_seq <= 2``;
    - ``mix_tv``: Mix-TV ``= 4 T eps dtv_seq`` when ``eps <= 1``, ``dtv_seq <= 1``;
    - ``coupling``: Coupling ``= 2 T (T-1) eps^2`` when ``T eps <= 1``;
    - ``coupling_large``: Coupling ``<= 4 T eps - 2`` when ``T eps > 1`` (the paper says
      ``+ 2``; ``- 2`` also holds).
    """
    h = sp.Rational(1, 2) if sharp else sp.Integer(1)
    r32 = sp.Rational(3, 2)
    forms = [
        ClosedForm("pm_kl", sp.Rational(4, 3) * T**r32 * delta, REGIMES["pm"], "le"),
        ClosedForm(
            "pm_tv", sp.Rational(8, 3) * T**r32 * eps * sp.sqrt(delta / 2), REGIMES["pm"], "le"
        ),
        ClosedForm("mix_kl", 2 * T * sp.sqrt(delta * dkl_seq), REGIMES["mix_kl"], "eq"),
        ClosedForm("mix_tv", 4 * T * eps * dtv_seq, REGIMES["mix_tv"], "eq"),
        ClosedForm("coupling", 2 * T * (T - 1) * eps**2, REGIMES["coupling_small"], "eq"),
        ClosedForm("coupling", 4 * T * eps - 2, REGIMES["coupling_large"], "le"),
    ]
    keys = ("pm_kl", "pm_tv", "mix_kl", "mix_tv", "coupling", "coupling_large")
    return {
        k: ClosedForm(f.bound, h * f.expr, f.condition, f.relation)
        for k, f in zip(keys, forms, strict=True)
    }


# --------------------------------------------------------------------------- exponents


def _substitute_regime(expr: sp.Expr, regime: str) -> sp.Expr:
    if regime == "uniform":
        # eps = sqrt(delta/2), dkl_seq = T delta, dtv_seq = sqrt(dkl_seq / 2) (Pinsker)
        return expr.subs(dtv_seq, sp.sqrt(T * delta / 2)).subs(
            {dkl_seq: T * delta, eps: sp.sqrt(delta / 2)}
        )
    if regime == "fixed":
        return expr
    raise ValueError(f"unknown regime {regime!r}; expected 'uniform' or 'fixed'")


def _power(expr: sp.Expr) -> sp.Rational:
    """Exponent ``p`` of a positive ``expr ~ C T^p`` (no Sum, no Min) as ``lim T f'/f``.

    For ``f ~ C T^p`` (here: finite sums of powers of ``T`` and ``T - 1``) the logarithmic
    derivative ``T f'(T) / f(T)`` tends to the same ``p`` as ``log f / log T``, and sympy
    computes its limit several times faster.
    """
    return sp.nsimplify(sp.limit(T * sp.diff(expr, T) / expr, T, sp.oo))


def _sum_sandwich(s: sp.Sum) -> tuple[sp.Expr, sp.Expr]:
    r"""Bounds ``L <= s <= U`` for ``s = sum_{t=1}^T g(t)``, ``g >= 0`` monotone in ``t``.

    ``L = int_1^T g``, ``U = L + g(1) + g(T)`` (for monotone ``g`` the sum minus the
    integral lies between ``min`` and ``max`` of ``g(1), g(T)``).  Monotonicity is checked
    symbolically with ``t = 1 + y``, ``T = 1 + y + z`` (``y, z > 0``).
    """
    g = s.function.subs(t, _x)
    dg = sp.diff(g, _x).subs(T, 1 + _y + _z).subs(_x, 1 + _y)
    if not (dg.is_nonnegative or dg.is_nonpositive):
        raise ValueError(f"cannot show the summand {s.function} is monotone in t")
    lower = sp.integrate(g, (_x, 1, T))
    return lower, lower + g.subs(_x, 1) + g.subs(_x, T)


@functools.cache
def _exponent(expr: sp.Expr) -> sp.Rational:
    """Leading exponent of ``T`` in an uncapped expression (see :func:`leading_exponent`)."""
    mins = expr.atoms(sp.Min)
    if mins:  # split the outermost Min first (fewest re-evaluations of nested Mins)
        m = max(mins, key=lambda e: (len(e.atoms(sp.Min)), sp.default_sort_key(e)))
        return min(_exponent(expr.xreplace({m: arg})) for arg in m.args)
    sums = expr.atoms(sp.Sum)
    if not sums:
        return _power(expr)
    lower, upper = expr, expr
    for s in sums:
        if s.function.is_polynomial(t):  # sympy sums polynomials in closed form
            lo = up = sp.summation(s.function, *s.limits)
        else:
            lo, up = _sum_sandwich(s)
        lower, upper = lower.xreplace({s: lo}), upper.xreplace({s: up})
    p_lo, p_up = _power(lower), _power(upper)
    if p_lo != p_up:
        raise ValueError(f"sandwich exponents differ ({p_lo} vs {p_up}) for {expr}")
    return p_lo


@functools.cache
def leading_exponent(name: str, regime: str) -> sp.Rational:
    r"""Leading exponent ``p`` of ``T`` in bound ``name``: ``bound ~ C T^p`` (docs/theory.md §4).

    .. math:: p = \lim_{T\to\infty} \frac{\log f(T)}{\log T}
                = \lim_{T\to\infty} \frac{T f'(T)}{f(T)}

    (the two limits agree for the finite sums of powers met here; sympy evaluates the
    second one faster), computed on the *uncapped* bound :func:`drop_caps` with the worst case
    ``Dbar_t = min(1, eps)``, i.e. in the small-divergence regime where every cap is
    inactive.  Regimes:

    - ``"uniform"``: ``dkl_seq = T delta``, ``dtv_seq = sqrt(dkl_seq/2)`` (Pinsker),
      ``eps = sqrt(delta/2)``;
    - ``"fixed"``: ``dkl_seq``, ``dtv_seq``, ``eps``, ``delta`` held fixed (sparse divergence).

    Sums are evaluated with ``summation`` where sympy finds a closed form and otherwise
    sandwiched between ``int_1^T g`` and that plus ``g(1) + g(T)`` (monotone summand); both
    sides must give the same exponent.  A ``Min`` of power laws (the hybrid route, the
    unified bound) gets the smallest exponent of its arguments.  Beyond the
    small-divergence regime the caps bind as ``T`` grows at fixed divergences, and then
    every capped bound is eventually *linear* in ``T`` (each summand is at most a constant);
    only the classical bounds, which have no caps, keep ``T^2``.

    Args:
        name: one of :data:`BOUND_NAMES`.
        regime: ``"uniform"`` or ``"fixed"``.

    Returns:
        The exponent as a sympy Rational (2, 3/2 or 1 for the published family).

    >>> leading_exponent("mix_kl", "fixed"), leading_exponent("mix_kl", "uniform")
    (1, 3/2)
    """
    if name == "unified":  # a Min of power laws grows like its slowest member
        return min(leading_exponent(m, regime) for m in UNIFIED_MEMBERS)
    # uncapped worst case: Dbar_t = min(1, eps) -> eps once the caps are dropped
    uncapped = drop_caps(bound_expr(name)).replace(Dbar, sp.Lambda(_x, eps))
    return sp.Rational(_exponent(_substitute_regime(uncapped, regime)))


def adaptive_crossover() -> sp.Expr:
    r"""Where the Adaptive TV and KL routes meet (docs/theory.md §4): solve for ``u = T - t``

    .. math:: u\,\varepsilon = \sqrt{u\,\delta/2} \iff u = \frac{\delta}{2\varepsilon^2}.

    For ``T - t`` below it the TV (coupling) route is smaller, above it the KL route.
    """
    u = sp.Symbol("u", positive=True)
    (sol,) = sp.solve(sp.Eq(u * eps, sp.sqrt(u * delta / 2)), u)
    return sol


# --------------------------------------------------------------------------- numeric path


@functools.cache
def _lambdified(name: str, sharp: bool, worst: bool) -> Callable[..., float]:
    expr = bound_expr(name, sharp=sharp, worst=worst)
    args = ARGS if worst else (*ARGS, Dbar)
    return sp.lambdify(args, expr, modules="numpy")


def numeric(name: str, *, sharp: bool = False) -> Callable[..., float]:
    r"""A numpy callable ``f(T, eps, delta, dkl_seq, dtv_seq, dbar=None)`` for bound ``name``.

    Built with ``sympy.lambdify`` from :func:`bound_expr` (docs/theory.md §4, §5 if
    ``sharp``).  ``dbar`` is a length-``T`` sequence of ``Dbar_t``, ``t = 1..T``; ``None``
    uses the worst case ``Dbar_t = min(1, eps)``.  A ``Sum`` over ``t`` with the symbolic
    upper limit ``T`` becomes a Python generator ``sum(... for t in range(1, T+1))``, so for
    the summed bounds ``T`` must be a scalar integer and the cost is ``O(T)`` Python steps:
    this is a reference path, :func:`trm_bounds.bounds.compute_bounds` is the fast one.

    >>> f = numeric("coupling")
    >>> round(float(f(4096, 5e-3, 1e-4, 0.01, 0.05)), 1)  # docs/theory.md §7, KL+TV column
    79.9
    """
    if name not in BOUND_NAMES:
        raise ValueError(f"unknown bound {name!r}; expected one of {BOUND_NAMES}")

    def f(
        T: int,
        eps: float,
        delta: float,
        dkl_seq: float,
        dtv_seq: float,
        dbar: Sequence[float] | np.ndarray | None = None,
    ) -> float:
        if dbar is None:
            return _lambdified(name, sharp, True)(T, eps, delta, dkl_seq, dtv_seq)
        d = np.asarray(dbar, dtype=np.float64)
        if d.shape != (int(T),):
            raise ValueError(f"dbar: expected length T = {int(T)}, got shape {d.shape}")
        generic = _lambdified(name, sharp, False)
        return generic(T, eps, delta, dkl_seq, dtv_seq, lambda k: d[k - 1])

    f.__name__ = f"{name}{'_sharp' if sharp else ''}"
    return f
