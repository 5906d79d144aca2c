"""One battery over the bound registry (trm_bounds.bounds.BOUNDS), published and sharp.

For every entry: non-negative; non-decreasing in T and in each divergence it reads; capped
where the formula caps (each capped term at most 1, docs/theory.md §4); sharp = published / 2
exactly (docs/theory.md §5); the array path equals the scalar formulas; B* <= every member.
Reference values are the formulas themselves (docs/theory.md §4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.bounds import BOUND_NAMES, BOUNDS, UNIFIED_MEMBERS, compute_bounds, unified

FORMULAS = [name for name in BOUND_NAMES if BOUNDS[name].fn is not None]
SHARP = pytest.mark.parametrize("sharp", [False, True], ids=["published", "sharp"])


@st.composite
def inputs(draw, max_T: int = 2000):
    """Raw formula inputs (the formulas themselves do not validate), Dbar_t in [0, min(1, eps)]."""
    T = draw(st.integers(1, max_T))
    eps = draw(st.floats(0, 1))
    kw = dict(eps=eps, delta=draw(st.floats(0, 10)), dkl_seq=draw(st.floats(0, 10)),
              dtv_seq=draw(st.floats(0, 1)))
    dbar = None
    if draw(st.booleans()):
        dbar = np.random.default_rng(T).uniform(0, 1, T) * min(1.0, eps)
    return T, kw, dbar


def _call(name, T, kw, dbar, sharp=False):
    spec = BOUNDS[name]
    args = {k: (dbar if k == "dbar" else kw[k]) for k in spec.needs}
    return spec.fn(T, **args, sharp=sharp)


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_registry_entry_is_complete(name):
    """Each entry names its formula, section, family, regimes and plot style."""
    s = BOUNDS[name]
    assert s.name == name and s.label and s.label_tex and s.theory.startswith("§4 row ")
    assert s.family in {"TV", "KL", "hybrid", "min"}
    assert set(s.exponents) == {"uniform", "fixed"}
    assert s.color.startswith("#") and len(s.color) == 7
    assert s.unified_member == (name in UNIFIED_MEMBERS)
    if s.fn is not None:
        assert "docs/theory.md §4" in s.fn.__doc__ and ".. math::" in s.fn.__doc__
        assert set(s.needs) <= {"eps", "delta", "dkl_seq", "dtv_seq", "dbar"}


@SHARP
@pytest.mark.parametrize("name", FORMULAS)
@settings(max_examples=40)
@given(p=inputs())
def test_non_negative_and_sharp_is_half(name, sharp, p):
    """B >= 0, and the sharp value is exactly half the published one (a power-of-2 scale).

    Scaling by 2 is exact in the normal range of float64; below it (results under 2.2e-308,
    from eps ~ 1e-165 say) a subnormal product keeps fewer digits, and the two may differ
    by one subnormal step (5e-324)."""
    T, kw, dbar = p
    b = float(_call(name, T, kw, dbar, sharp=sharp))
    assert b >= 0.0
    if sharp:
        half = float(_call(name, T, kw, dbar)) / 2
        if half >= np.finfo(np.float64).tiny:
            assert b == half
        else:
            assert abs(b - half) <= np.nextafter(0.0, 1.0)


@pytest.mark.parametrize("name", FORMULAS)
@settings(max_examples=40)
@given(p=inputs(), dT=st.integers(1, 300), u=st.floats(0, 1))
def test_monotone_in_T_and_each_divergence(name, p, dT, u):
    """Non-decreasing in T (worst-case Dbar_t) and in every divergence the bound reads."""
    T, kw, dbar = p
    base = float(_call(name, T, kw, dbar))
    if dbar is None:
        assert leq(base, _call(name, T + dT, kw, None)), "T"
    for k in BOUNDS[name].needs:
        if k == "dbar":
            if dbar is not None:
                grown = dbar + u * (min(1.0, kw["eps"]) - dbar)
                assert leq(base, _call(name, T, kw, grown)), k
            continue
        hi = 1.0 if k in ("eps", "dtv_seq") else 10.0
        bigger = {**kw, k: kw[k] + u * (hi - kw[k])}
        # Dbar_t <= eps: growing eps keeps an explicit dbar valid
        assert leq(base, _call(name, T, bigger, dbar)), k


@pytest.mark.parametrize("name", [n for n in FORMULAS if BOUNDS[n].capped])
@pytest.mark.parametrize("T", [1, 2, 17, 4096])
def test_capped_where_the_formula_caps(name, T):
    """Every cap binding (eps = 1, delta = 8, dkl_seq = 4, dtv_seq = 1): each capped sum term
    is 1, so a capped bound is at most 4 T (published); uncapped forms exceed it."""
    kw = dict(eps=1.0, delta=8.0, dkl_seq=4.0, dtv_seq=1.0)
    b = float(_call(name, T, kw, None))
    assert leq(b, 4.0 * T)
    assert float(_call(name, T, {**kw, "delta": 800.0}, None)) == b or "delta" not in BOUNDS[name].needs


@SHARP
@pytest.mark.parametrize("case", [(5e-3, 1e-4), (1e-3, 1e-2), (1.0, 2.5), (7e-6, 1e-10),
                                  (0.0, 0.0), (1e-200, 1e-300)])
def test_array_path_equals_scalar_formulas(case, sharp):
    """compute_bounds over an array of T (the vectorised path) equals each registry formula
    at each T, relative tolerance only (tiny values must not underflow to 0)."""
    eps, delta = case
    T = np.unique(np.r_[1:70, np.geomspace(70, 3e5, 60).astype(np.int64)])
    dkl = T * delta * 0.3
    cap = 1.0 if eps >= 1.0 else -np.expm1(T * np.log1p(-eps))
    dtv = np.minimum(np.minimum(1.0, np.sqrt(dkl / 2)), cap) * 0.9
    vec = compute_bounds(T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv, sharp=sharp)
    for i in range(0, T.size, 5):
        kw = dict(eps=eps, delta=delta, dkl_seq=dkl[i], dtv_seq=dtv[i])
        one = {n: float(_call(n, int(T[i]), kw, None, sharp=sharp)) for n in FORMULAS}
        one["unified"] = float(unified(one))
        for name in BOUND_NAMES:
            np.testing.assert_allclose(vec[name][i], one[name], rtol=RTOL, atol=0, err_msg=name)


@settings(max_examples=60)
@given(p=inputs())
def test_unified_at_most_every_member(p):
    """B* <= each of its members, and equals one of them (docs/theory.md §4)."""
    T, kw, dbar = p
    vals = {n: float(_call(n, T, kw, dbar)) for n in UNIFIED_MEMBERS}
    b = float(unified(vals))
    assert all(b <= v for v in vals.values()) and b in vals.values()


def test_array_T_is_read_only_and_complete():
    out = compute_bounds(np.arange(1, 50), eps=5e-3, delta=1e-4, dkl_seq=1e-5, dtv_seq=1e-3)
    assert tuple(out) == BOUND_NAMES
    assert all(not v.flags.writeable for v in out.values())
    assert math.isclose(out["classical_kl"][-1], 49 * 48 * 1e-4, rel_tol=RTOL, abs_tol=ATOL)
