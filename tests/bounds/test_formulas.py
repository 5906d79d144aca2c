"""The bound calculator (docs/theory.md §4, 5 and 7).

Reference values: the paper's printed numbers come from ``trm_bounds.paper`` (typed from
the paper's table, docs/theory.md §7); sums are checked against an independent brute-force
``math.fsum`` over ``t`` and, for ``sum sqrt(k)``, against mpmath's Hurwitz zeta at 30 digits.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds import bounds as B
from trm_bounds.bounds import (
    BOUND_NAMES,
    BOUNDS,
    UNIFIED_MEMBERS,
    compute_bounds,
    kl_only,
    plugin_bounds,
)
from trm_bounds.paper import (
    LENGTH_BIAS_PAPER,
    LENGTH_BIAS_T,
    length_bias,
    paper_table_rows,
    reproduced,
)

# --------------------------------------------------------------------------- strategies


@st.composite
def valid_params(draw, max_T: int = 3000):
    """Parameters satisfying every relation of docs/theory.md §3 (trm_bounds.bounds.validate):
    Pinsker for eps and dtv_seq, the chain rule, the token-wise coupling cap on dtv_seq, and
    the zero rules (eps = 0 iff delta = 0; dkl_seq = 0 iff dtv_seq = 0)."""
    T = draw(st.integers(1, max_T))
    delta = draw(st.one_of(st.floats(0, 1e-3), st.floats(0, 5.0)))
    if delta == 0.0:
        return dict(T=T, eps=0.0, delta=0.0, dkl_seq=0.0, dtv_seq=0.0)
    eps = draw(st.floats(0, 1)) * min(1.0, math.sqrt(delta / 2))
    if eps == 0.0:
        eps = min(1.0, math.sqrt(delta / 2))
    if eps == 0.0:  # delta / 2 underflows (delta = 5e-324)
        return dict(T=T, eps=0.0, delta=0.0, dkl_seq=0.0, dtv_seq=0.0)
    dkl = draw(st.floats(0, 1)) * T * delta
    cap = 1.0 if eps >= 1.0 else -math.expm1(T * math.log1p(-eps))
    dtv = draw(st.floats(0, 1)) * min(1.0, math.sqrt(dkl / 2), cap)
    if dtv == 0.0 or dkl == 0.0:
        dkl = dtv = 0.0
    return dict(T=T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv)


def brute_force(T, eps, delta, dkl_seq, dtv_seq, dbar=None, sharp=False) -> dict[str, float]:
    """Each bound as a plain ``math.fsum`` over t = 1..T, straight from docs/theory.md §4."""
    c = 2.0 if sharp else 4.0
    a, e = min(1.0, math.sqrt(delta / 2)), min(1.0, eps)
    ts = range(1, T + 1)
    db = [e] * T if dbar is None else list(dbar)
    kl_w = [min(1.0, math.sqrt((T - t) * delta / 2)) for t in ts]
    tv_w = [min(1.0, (T - t) * eps) for t in ts]
    out = {
        "classical_tv": (1 if sharp else 2) * T * (T - 1) * eps**2,
        "classical_kl": (0.5 if sharp else 1) * T * (T - 1) * delta,
        "coupling": c * e * math.fsum(min(1.0, (t - 1) * eps) for t in ts),
        "pm_kl": c * a * math.fsum(min(1.0, math.sqrt((t - 1) * delta / 2)) for t in ts),
        "pm_tv": c * e * math.fsum(min(1.0, math.sqrt((t - 1) * delta / 2)) for t in ts),
        "mix_kl": c * T * a * min(1.0, math.sqrt(dkl_seq / 2)),
        "mix_tv": c * T * e * min(1.0, dtv_seq),
        "adaptive_kl": c * math.fsum(d * w for d, w in zip(db, kl_w, strict=False)),
        "adaptive_tv": c * math.fsum(d * w for d, w in zip(db, tv_w, strict=False)),
        "adaptive_hybrid": c * math.fsum(d * min(u, v) for d, u, v in zip(db, kl_w, tv_w, strict=False)),
        "linear": c * math.fsum(db),
    }
    out["unified"] = min(out[m] for m in UNIFIED_MEMBERS)
    return out


# --------------------------------------------------------------------------- paper numbers


@pytest.mark.parametrize("row", paper_table_rows(), ids=lambda r: f"{r.row}|{r.column}")
def test_paper_table(row):
    """Every number of docs/theory.md §7, within the paper's rounding (half a printed unit;
    'truncated' and '<=' entries as docs/theory.md states them)."""
    assert row.ok, (row.row, row.column, row.paper, row.ours)


@pytest.mark.parametrize("p", sorted(LENGTH_BIAS_PAPER))
def test_length_bias_table(p):
    """Length-bias table (1-p)^T (docs/theory.md §7), rounded or truncated as stated there."""
    for T, (val, dec, rel) in zip(LENGTH_BIAS_T, LENGTH_BIAS_PAPER[p], strict=False):
        ours = length_bias(p, T)
        assert reproduced(ours, val, dec, rel), (p, T, ours, val)
        np.testing.assert_allclose(ours, (1 - p) ** T, rtol=RTOL)


def test_truncated_entries_do_not_round():
    """docs/theory.md §7: 0.358, 0.663, 0.440 are truncations (they round to 0.359, 0.664, 0.441)."""
    assert round(length_bias(1e-3, 1024), 3) == 0.359
    assert round(length_bias(1e-4, 4096), 3) == 0.664
    assert round(length_bias(1e-4, 8192), 3) == 0.441


def test_paper_exact_pm_sum():
    """docs/theory.md §7: the exact PM-KL sum is 34.946 (the closed form 34.95)."""
    eps, dtv = kl_only(1e-4, 0.01)
    b = compute_bounds(4096, eps=eps, delta=1e-4, dkl_seq=0.01, dtv_seq=dtv)
    assert round(b["pm_kl"], 3) == 34.946
    assert round(float(B.pm_kl_closed_form(4096, delta=1e-4)), 2) == 34.95


# --------------------------------------------------------------------------- identities


@given(valid_params())
def test_against_brute_force(p):
    """compute_bounds equals the plain per-t sum of docs/theory.md §4 (published and sharp)."""
    for sharp in (False, True):
        ours = compute_bounds(**p, sharp=sharp)
        ref = brute_force(**p, sharp=sharp)
        for name in BOUND_NAMES:
            np.testing.assert_allclose(ours[name], ref[name], rtol=RTOL, atol=ATOL, err_msg=name)


@given(valid_params(), st.floats(0, 1))
def test_explicit_dbar_against_brute_force(p, scale):
    """Adaptive and Linear with a data-dependent Dbar_t equal the plain sum."""
    rng = np.random.default_rng(p["T"])
    dbar = rng.uniform(0, 1, p["T"]) * p["eps"] * scale
    # Dbar_t ties dtv_seq and dkl_seq (docs/theory.md §3): the one plug-in rule raises them
    # to a consistent set (tests/bounds/test_plugin.py checks that rule).
    p = {k: v for k, v in plugin_bounds(**p, dbar=dbar)["inputs"].items() if k != "adjusted"}
    dbar = np.asarray(p.pop("dbar"))
    ours = compute_bounds(**p, dbar=dbar)
    ref = brute_force(**p, dbar=dbar)
    for name in ("adaptive_kl", "adaptive_tv", "adaptive_hybrid", "linear", "unified"):
        np.testing.assert_allclose(ours[name], ref[name], rtol=RTOL, atol=ATOL, err_msg=name)


@given(valid_params())
def test_sharp_is_half_published(p):
    """docs/theory.md §5: every sharp bound is exactly half the published one (classical forms
    T(T-1)eps^2 and T(T-1)delta/2)."""
    pub, sharp = compute_bounds(**p), compute_bounds(**p, sharp=True)
    for name in BOUND_NAMES:
        np.testing.assert_allclose(sharp[name], pub[name] / 2, rtol=RTOL, atol=ATOL)


@given(valid_params())
def test_unified_is_min_of_members(p):
    """B* <= every member, and equals one of them (docs/theory.md §4)."""
    b = compute_bounds(**p)
    assert all(b["unified"] <= b[m] for m in UNIFIED_MEMBERS)
    assert b["unified"] == min(b[m] for m in UNIFIED_MEMBERS)


@given(valid_params(max_T=800))
def test_worst_case_dbar_is_eps(p):
    """dbar=None is the worst case Dbar_t = min(1, eps) (the paper's table)."""
    # Dbar_t = eps at every t needs D_KL^seq >= 2 T eps^2 and eps <= D_TV^seq (docs/theory.md §3)
    T, eps = p["T"], p["eps"]
    dkl = max(p["dkl_seq"], 2 * T * eps * eps)
    cap = 1.0 if eps >= 1.0 else -math.expm1(T * math.log1p(-eps))
    p = {**p, "dkl_seq": dkl, "dtv_seq": min(1.0, math.sqrt(dkl / 2), cap)}
    implicit = compute_bounds(**p)
    explicit = compute_bounds(**p, dbar=np.full(p["T"], min(1.0, p["eps"])))
    for name in BOUND_NAMES:
        np.testing.assert_allclose(implicit[name], explicit[name], rtol=RTOL, atol=ATOL)


@given(st.integers(1, 3000), st.floats(0, 4.0))
def test_adaptive_at_a_equals_pm_kl(T, delta):
    """docs/theory.md §4: Adaptive-KL with Dbar_t = a = min(1, sqrt(delta/2)) equals PM-KL
    (index reversal); with Dbar_t = eps on the TV route it equals Coupling."""
    eps, _ = kl_only(delta, 0.0)
    if eps == 0.0:  # delta / 2 underflows: the zero rule eps = 0 <=> delta = 0
        delta = 0.0
    dkl = T * delta  # Dbar_t = eps everywhere forces 2 T eps^2 <= D_KL^seq (docs/theory.md §3)
    cap = 1.0 if eps >= 1.0 else -math.expm1(T * math.log1p(-eps))
    dtv = min(1.0, math.sqrt(dkl / 2), cap)
    b = compute_bounds(T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv, dbar=np.full(T, eps))
    np.testing.assert_allclose(b["adaptive_kl"], b["pm_kl"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b["adaptive_tv"], b["coupling"], rtol=RTOL, atol=ATOL)


def test_array_T_equals_scalar_loop():
    """One vectorised pass over an array of T equals the per-T scalar path."""
    T = np.unique(np.r_[1:300, np.geomspace(300, 2e6, 400).astype(np.int64)])
    # (1e-4, 0.0) was here: eps = 0 with delta > 0 is now refused (test_zero_tv_forces_zero_kl);
    # (1e-4, 1e-200) keeps a tiny-eps case where PM-KL must not underflow.
    for delta, eps in ((1e-4, 5e-3), (1e-2, 1e-3), (2.5, 1.0), (1e-10, 7e-6), (0.0, 0.0),
                       (1e-4, 1e-200)):
        dkl = T * delta * 0.3
        cap = 1.0 if eps >= 1.0 else -np.expm1(T * np.log1p(-eps))
        dtv = np.minimum(np.minimum(1.0, np.sqrt(dkl / 2)), cap) * 0.9
        for sharp in (False, True):
            vec = compute_bounds(T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv, sharp=sharp)
            for i in range(0, T.size, 7):
                one = compute_bounds(
                    int(T[i]), eps=eps, delta=delta, dkl_seq=dkl[i], dtv_seq=dtv[i], sharp=sharp
                )
                for name in BOUND_NAMES:
                    np.testing.assert_allclose(vec[name][i], one[name], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("n", [0, 1, 2, 63, 64, 65, 100, 1000, 12345])
def test_sum_sqrt_against_mpmath(n):
    """S(n) = zeta(-1/2) - zeta(-1/2, n+1) (Hurwitz; mpmath at 30 digits)."""
    mpmath.mp.dps = 30
    ref = 0.0 if n == 0 else float(mpmath.zeta(-0.5) - mpmath.zeta(-0.5, n + 1))
    np.testing.assert_allclose(B.sum_sqrt(n), ref, rtol=1e-15, atol=0)
    np.testing.assert_allclose(B.sum_sqrt(np.array([n, n])), [ref, ref], rtol=1e-15, atol=0)


@pytest.mark.parametrize("n", [10**5, 10**6])
def test_sum_sqrt_against_fsum(n):
    """S(n) against math.fsum of correctly rounded square roots (relative error < 2e-16)."""
    ref = math.fsum(np.sqrt(np.arange(1, n + 1, dtype=np.float64)))
    np.testing.assert_allclose(B.sum_sqrt(n), ref, rtol=1e-15, atol=0)


# --------------------------------------------------------------------------- closed forms


@given(st.integers(1, 20000), st.floats(1e-12, 1.0))
def test_pm_closed_forms_upper_bound(T, frac):
    """docs/theory.md §4: PM-KL <= (4/3) T^{3/2} delta and PM-TV <= (8/3) T^{3/2} eps sqrt(delta/2)
    when delta <= 2/T (and both are the sum's continuous majorant, within a factor tending to 1)."""
    delta = frac * 2.0 / T
    eps = math.sqrt(delta / 2) * 0.7
    assert B.pm_regime(T, delta=delta)
    b = compute_bounds(T, eps=eps, delta=delta, dkl_seq=0.0, dtv_seq=0.0)
    assert leq(b["pm_kl"], B.pm_kl_closed_form(T, delta=delta))
    assert leq(b["pm_tv"], B.pm_tv_closed_form(T, eps=eps, delta=delta))


@given(valid_params())
def test_mix_closed_forms(p):
    """Mix-KL = 2 T sqrt(delta D_KL^seq) when both caps are inactive; Mix-TV = 4 T eps D_TV^seq."""
    b = compute_bounds(**p)
    if p["delta"] <= 2 and p["dkl_seq"] <= 2:
        np.testing.assert_allclose(
            b["mix_kl"],
            B.mix_kl_closed_form(p["T"], delta=p["delta"], dkl_seq=p["dkl_seq"]),
            rtol=RTOL,
            atol=ATOL,
        )
    np.testing.assert_allclose(
        b["mix_tv"],
        B.mix_tv_closed_form(p["T"], eps=p["eps"], dtv_seq=p["dtv_seq"]),
        rtol=RTOL,
        atol=ATOL,
    )


@given(st.integers(1, 50000), st.floats(1e-6, 1.0))
def test_coupling_closed_form(T, eps):
    """Coupling = 2T(T-1)eps^2 when T eps <= 1; <= 4 T eps - 2 otherwise (docs/theory.md §4)."""
    b = B.coupling(T, eps=eps)
    cf = B.coupling_closed_form(T, eps=eps)
    if B.coupling_regime(T, eps=eps):
        np.testing.assert_allclose(b, cf, rtol=RTOL, atol=ATOL)
    else:
        assert leq(b, cf)
        assert leq(b, 4 * T * eps + 2)  # the paper's looser printed form


def test_crossover():
    """The two Adaptive routes cross at T - t = delta / (2 eps^2)."""
    for eps, delta in ((5e-3, 1e-4), (1e-3, 1e-2), (0.05, 0.5)):
        k = B.adaptive_crossover(eps=eps, delta=delta)
        np.testing.assert_allclose(k * eps, math.sqrt(k * delta / 2), rtol=RTOL)
        assert 0.5 * k * eps < math.sqrt(0.5 * k * delta / 2)  # TV route smaller below
        assert 2 * k * eps > math.sqrt(2 * k * delta / 2)  # KL route smaller above


# --------------------------------------------------------------------------- monotone, caps


@given(valid_params(max_T=2000), st.integers(1, 500))
def test_monotone_in_T(p, dT):
    """Every bound is non-decreasing in T (other inputs fixed)."""
    lo = compute_bounds(**p)
    hi = compute_bounds(**{**p, "T": p["T"] + dT})
    for name in BOUND_NAMES:
        assert leq(lo[name], hi[name]), name


@given(valid_params(max_T=2000), st.floats(0, 1))
def test_monotone_in_each_divergence(p, u):
    """Every bound is non-decreasing in eps, delta, D_KL^seq and D_TV^seq (within validity)."""
    base = compute_bounds(**p)
    grown = [
        {**p, "delta": p["delta"] * (1 + u) + u},  # relations stay valid when delta grows
        {**p, "eps": p["eps"] + u * (min(1.0, math.sqrt(p["delta"] / 2)) - p["eps"])},
        {**p, "dkl_seq": p["dkl_seq"] + u * (p["T"] * p["delta"] - p["dkl_seq"])},
        {**p, "dtv_seq": p["dtv_seq"] + u * (min(1, math.sqrt(p["dkl_seq"] / 2)) - p["dtv_seq"])},
    ]
    for q in grown:
        # growing one input can break a relation of docs/theory.md §3: the plug-in rule then
        # raises the others (never lowers), so q stays componentwise >= p
        q = plugin_bounds(**q)["inputs"]
        q = {k: q[k] for k in ("T", "eps", "delta", "dkl_seq", "dtv_seq")}
        b = compute_bounds(**q)
        for name in BOUND_NAMES:
            assert leq(base[name], b[name]), (name, q)


@pytest.mark.parametrize("T", [1, 2, 17, 4096])
def test_caps_active(T):
    """All caps binding (delta = 8, eps = 1, D_KL^seq = 4, D_TV^seq = 1): every capped term
    is 1, so PM, Coupling, Adaptive = 4(T-1) and Mixed = Linear = 4T (published)."""
    b = compute_bounds(T, eps=1.0, delta=8.0, dkl_seq=min(4.0, 8.0 * T), dtv_seq=1.0)
    for name in ("coupling", "pm_kl", "pm_tv", "adaptive_kl", "adaptive_tv", "adaptive_hybrid"):
        np.testing.assert_allclose(b[name], 4.0 * (T - 1), rtol=RTOL, atol=ATOL, err_msg=name)
    for name in ("mix_kl", "mix_tv", "linear"):
        np.testing.assert_allclose(b[name], 4.0 * T, rtol=RTOL, atol=ATOL, err_msg=name)
    np.testing.assert_allclose(b["unified"], 4.0 * (T - 1), rtol=RTOL, atol=ATOL)


def test_caps_inactive():
    """No cap binding (tiny divergences): PM-KL = 2 delta S(T-1) and Coupling = 2T(T-1)eps^2."""
    T, delta, eps = 1000, 1e-9, 1e-6
    b = compute_bounds(T, eps=eps, delta=delta, dkl_seq=1e-7, dtv_seq=1e-4)
    np.testing.assert_allclose(b["pm_kl"], 2 * delta * B.sum_sqrt(T - 1), rtol=RTOL)
    np.testing.assert_allclose(b["coupling"], 2 * T * (T - 1) * eps**2, rtol=RTOL)
    np.testing.assert_allclose(b["mix_kl"], 2 * T * math.sqrt(delta * 1e-7), rtol=RTOL)


def test_registry_is_complete():
    """The registry lists exactly the twelve names, in docs/theory.md order, each citing s.4."""
    assert BOUND_NAMES == (
        "classical_tv",
        "classical_kl",
        "coupling",
        "pm_kl",
        "pm_tv",
        "mix_kl",
        "mix_tv",
        "adaptive_kl",
        "adaptive_tv",
        "adaptive_hybrid",
        "linear",
        "unified",
    )
    for _name, spec in BOUNDS.items():
        assert spec.theory.startswith("§4")
        if spec.fn is not None:
            assert "docs/theory.md §4" in spec.fn.__doc__


# --------------------------------------------------------------------------- invalid input

GOOD = dict(T=100, eps=5e-3, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"T": 0}, "positive integer"),
        ({"T": -3}, "positive integer"),
        ({"T": 2.5}, "positive integer"),
        ({"T": True}, "positive integer"),
        ({"T": "100"}, "positive integer"),
        ({"T": np.array([[1, 2]])}, "1-D"),
        ({"T": np.array([], dtype=int)}, "empty"),
        ({"T": np.array([5, 0])}, "positive integer"),
        ({"eps": float("nan")}, "finite"),
        ({"eps": -1e-3}, ">= 0"),
        ({"eps": 1.5, "delta": 10.0}, "<= 1"),
        ({"delta": float("inf")}, "finite"),
        ({"dkl_seq": -0.1}, ">= 0"),
        ({"dtv_seq": 1.2, "dkl_seq": 0.01}, "<= 1"),
        ({"eps": 0.01}, r"eps <= sqrt\(delta/2\)"),
        ({"dtv_seq": 0.08}, r"dtv_seq <= sqrt\(dkl_seq/2\)"),
        ({"dkl_seq": 0.02, "T": 100}, "dkl_seq <= T delta"),
        ({"dbar": np.full(99, 1e-3)}, "length T"),
        ({"dbar": np.full(100, 6e-3)}, "Dbar_t <= eps"),
        ({"dbar": np.r_[np.full(99, 1e-3), np.nan]}, "finite"),
        ({"dbar": np.r_[np.full(99, 1e-3), -1e-3]}, ">= 0"),
        ({"T": np.array([100, 200]), "dbar": np.full(100, 1e-3)}, "scalar T"),
        ({"T": np.array([100, 200]), "dkl_seq": np.array([0.01, 0.01, 0.01])}, "shape"),
        # every relation of docs/theory.md §3 (trm_bounds.bounds.validate, relations 1-9)
        ({"eps": 0.0}, r"eps = 0 <=> delta = 0"),
        ({"eps": 0.0, "delta": 0.0, "dkl_seq": 0.0}, r"eps = 0 => dtv_seq = 0"),
        ({"delta": 0.0}, r"eps <= sqrt\(delta/2\)"),
        ({"dtv_seq": 0.0}, r"dkl_seq = 0 <=> dtv_seq = 0"),
        ({"eps": 0.0, "delta": 1e-11, "dkl_seq": 0.0, "dtv_seq": 0.0}, r"eps = 0 <=> delta = 0"),
        ({"T": 2, "dkl_seq": 2e-4, "dtv_seq": 0.01}, r"dtv_seq <= 1 - \(1 - eps\)\^T"),
        ({"dbar": np.full(100, 1e-4)}, r"dtv_seq <= sum_t Dbar_t"),
        ({"dbar": np.full(100, 5e-3), "dkl_seq": 0.004, "dtv_seq": 0.04}, r"2 sum_t Dbar_t\^2 <= dkl_seq"),
        ({"dbar": np.r_[5e-3, np.full(99, 1e-3)], "dtv_seq": 4e-3}, r"Dbar_1 <= dtv_seq"),
        ({"T": 2**63}, r"at most 2\*\*53 = 9007199254740992 .* got T = 9223372036854775808"),
        ({"T": np.array([5, 2**63], dtype=np.uint64)}, r"got T = 9223372036854775808"),
        ({"T": 1e19}, r"got T = 1e\+19"),
    ],
)
def test_invalid_arguments_raise(change, match):
    """Every invalid argument raises a one-line ValueError naming the relation or field,
    with plain numbers (never ``np.float64(...)``)."""
    with pytest.raises(ValueError, match=match) as info:
        compute_bounds(**{**GOOD, **change})
    assert "\n" not in str(info.value) and "np." not in str(info.value)


def test_zero_tv_forces_zero_kl():
    """The false certificate of the issue: eps = 0 with delta = 1e-4 gave B* = 0; it is refused."""
    with pytest.raises(ValueError, match=r"^relation eps = 0 <=> delta = 0 violated .*delta = 0.0001$"):
        compute_bounds(4096, eps=0, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)
    with pytest.raises(ValueError, match="eps = 0 <=> delta = 0"):
        compute_bounds(4096, eps=0, delta=1e-4, dkl_seq=0.0, dtv_seq=0.0)
    b = compute_bounds(4096, eps=0, delta=0, dkl_seq=0, dtv_seq=0)
    assert all(v == 0.0 for v in b.values())


def test_negative_delta_one_line():
    """``bounds --delta=-1e-4``: one line from validate, a plain number."""
    with pytest.raises(ValueError) as info:
        compute_bounds(4096, eps=5e-3, delta=-1e-4, dkl_seq=0.01, dtv_seq=0.05)
    assert str(info.value) == "delta must be >= 0, got -0.0001"


@pytest.mark.parametrize(("delta", "dkl_seq", "message"), [
    (-1.0, 0.01, "delta must be >= 0, got -1.0"),
    (np.float64(-1e-4), 0.01, "delta must be >= 0, got -0.0001"),
    (math.nan, 0.01, "delta must be finite, got nan"),
    (math.inf, 0.01, "delta must be finite, got inf"),
    (1e-4, -0.5, "dkl_seq must be >= 0, got -0.5"),
    (1e-4, np.array([0.01, -0.5]), "dkl_seq must be >= 0, got -0.5 at position 1"),
])  # fmt: skip
def test_kl_only_refuses_invalid_divergences(delta, dkl_seq, message):
    """kl_only(delta=-1) raised a bare 'math domain error' (and a negative dkl_seq gave NaN):
    a KL divergence is finite and >= 0, and the one-line message names the argument and the
    value as a plain float."""
    with pytest.raises(ValueError) as info:
        kl_only(delta, dkl_seq)
    assert str(info.value) == message


def test_numpy_scalars_print_plainly():
    """Error messages print plain floats even for numpy inputs."""
    with pytest.raises(ValueError) as info:
        compute_bounds(np.int64(100), eps=np.float64(0.01), delta=np.float64(1e-4),
                       dkl_seq=np.float64(0.01), dtv_seq=np.float32(0.05))
    assert "np." not in str(info.value) and "eps = 0.01" in str(info.value)


def test_big_T_refused_with_true_value():
    """T >= 2**63 was reported as T = -9223372036854775808; now the true value is printed.
    T = 2**53 (the largest exact float64 integer) is accepted."""
    for T in (2**63, 2**64 + 5):
        with pytest.raises(ValueError, match=f"got T = {T}$"):
            compute_bounds(T, **{k: v for k, v in GOOD.items() if k != "T"})
    b = compute_bounds(2**53, eps=5e-3, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)
    assert math.isfinite(b["unified"])


def test_classical_overflow_is_inf_without_warning():
    """T^2 delta above 1e308: the classical KL form is inf, silently, on both paths."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kw = dict(eps=1.0, delta=1e300, dkl_seq=2.0, dtv_seq=1.0)
        assert compute_bounds(10**6, **kw)["classical_kl"] == math.inf
        arr = compute_bounds(np.array([10, 10**6]), **kw)["classical_kl"]
        assert arr[0] == 90 * 1e300 and arr[1] == math.inf


def test_tiny_delta_array_path_agrees():
    """The array path gave PM-KL = 0 where the scalar path gives about 2e-300 (tiny eps, delta):
    compared with a relative tolerance only."""
    T = np.array([2, 3, 100])
    kw = dict(eps=1e-200, delta=1e-300, dkl_seq=1e-300, dtv_seq=1e-200)
    vec = compute_bounds(T, **kw)
    for i, t in enumerate(T):
        one = compute_bounds(int(t), **kw)
        assert one["pm_kl"] > 0
        for name in BOUND_NAMES:
            np.testing.assert_allclose(vec[name][i], one[name], rtol=RTOL, atol=0, err_msg=name)


def test_relations_hold_up_to_tolerance():
    """Rounding-level violations (below 1e-12) are accepted, as exact engines produce them
    (e.g. eps = 5.6e-17 with delta = 0, dkl_seq = 7.9e-32 with dtv_seq = 0)."""
    compute_bounds(10, eps=5.551115123125783e-17, delta=0.0, dkl_seq=0.0, dtv_seq=0.0)
    compute_bounds(10, eps=1e-3, delta=1e-4, dkl_seq=7.881622158793727e-32, dtv_seq=0.0)
    compute_bounds(**{**GOOD, "eps": math.sqrt(1e-4 / 2) + 5e-13})
    compute_bounds(**{**GOOD, "dbar": np.full(100, 5e-3 + 5e-13)})


# --------------------------------------------------------------------------- CLI


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trm_bounds", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.e2e
def test_cli_paper_table_and_json():
    """`bounds --paper-table` reproduces every entry; `--json` round-trips compute_bounds."""
    r = _cli("bounds", "--paper-table")
    assert r.returncode == 0, r.stderr
    assert "25/25 table entries reproduced" in r.stdout and "DIFFERS" not in r.stdout
    r = _cli(
        "bounds",
        "--T",
        "4096",
        "--delta",
        "1e-4",
        "--eps",
        "5e-3",
        "--dkl-seq",
        "0.01",
        "--dtv-seq",
        "0.05",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    ref = compute_bounds(4096, eps=5e-3, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05, sharp=True)
    assert rec["sharp"] == pytest.approx(ref, rel=RTOL)
    r = _cli("bounds", "--T", "4096", "--delta", "1e-4", "--eps", "0.5", "--dkl-seq", "0.01")
    assert r.returncode == 2 and "eps <= sqrt(delta/2)" in r.stderr and r.stdout == ""


# --------------------------------------------------------------------------- raw formulas' ranges


@pytest.mark.parametrize("name", [n for n in BOUND_NAMES if BOUNDS[n].fn is not None])
@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf])
def test_public_formula_refuses_out_of_range_input(name, bad):
    """Every public formula refuses a negative, NaN or infinite divergence with a one-line
    error naming the argument (``mix_tv(10, eps=-0.5, dtv_seq=0.3)`` once returned -6.0)."""
    spec = BOUNDS[name]
    good = dict(eps=0.01, delta=1e-3, dkl_seq=0.01, dtv_seq=0.05)
    for arg in spec.needs:
        if arg == "dbar":
            continue
        kw = {k: good[k] for k in spec.needs if k != "dbar"} | {arg: bad}
        with pytest.raises(ValueError, match=rf"^{arg} must be") as info:
            spec.fn(10, **kw)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("kw", [dict(eps=1.5), dict(eps=0.1, dbar=[0.1] * 9),
                                dict(eps=0.1, dbar=[2.0] * 10)])
def test_linear_refuses_tv_above_one_and_wrong_dbar_length(kw):
    with pytest.raises(ValueError, match=r"^(eps|dbar) must"):
        B.linear(10, **kw)


@pytest.mark.parametrize("T", [0, -3, 2.5, 2**53 + 2])
def test_public_formula_refuses_bad_horizon(T):
    with pytest.raises(ValueError, match="^T must"):
        B.coupling(T, eps=0.01)


@given(valid_params())
def test_checked_and_unchecked_formulas_agree(p):
    """The range check changes no value: each public formula equals its unchecked body."""
    p = dict(p)
    T = p.pop("T")
    for name in BOUND_NAMES:
        spec = BOUNDS[name]
        if spec.fn is None:
            continue
        kw = {k: p[k] for k in spec.needs if k in p}
        assert spec.fn(T, **kw) == spec.fn.__wrapped__(T, **kw)


@given(st.floats(1e-6, 0.5), st.lists(st.integers(1, 10**5), min_size=1, max_size=40),
       st.floats(0.0, 0.999), st.data())
def test_coupling_cap_relation_is_checked_exactly(eps, Ts, u, data):
    """Relation 6 over an array of T (docs/theory.md §3): every dtv_seq at most
    ``u (1 - (1 - eps)^T)`` passes, and one entry 1e-6 above its cap is refused, naming its T
    (the check skips horizons past the cap's reach of 1 and a sufficient test first)."""
    T = np.array(Ts)
    cap = -np.expm1(T * math.log1p(-eps))
    dtv = np.maximum(cap * u, 1e-300)  # dtv_seq = 0 with dkl_seq > 0 breaks a zero rule
    kw = dict(eps=eps, delta=2.0, dkl_seq=2.0)  # Pinsker and the chain rule hold for any dtv
    compute_bounds(T, **kw, dtv_seq=dtv)
    k = data.draw(st.integers(0, len(Ts) - 1))
    if cap[k] > 1 - 1e-5:
        return
    dtv[k] = cap[k] + 1e-6
    with pytest.raises(ValueError, match=rf"token-wise coupling\) violated: .* T = {T[k]},"):
        compute_bounds(T, **kw, dtv_seq=dtv)
