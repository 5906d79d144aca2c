"""The intervals for every law (trm_bounds.certify.error_interval; docs/theory.md §9, Theorem
9.4): the bracketing inequalities E Y- <= E summand <= E Y+ and the ranges, exactly on random
enumerated instances; the bracket closes where nothing is truncated; the reward-range scaling
computed two ways; coverage on the instances where the central-limit interval failed; clear
errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL
from trm_bounds.certify.error_estimate import QUANTITIES, error_terms, estimate_error_sums
from trm_bounds.certify.error_interval import bracket_terms, error_intervals
from trm_bounds.certify.exact import sequence_table
from trm_bounds.instances.generators import GENERATORS

KINDS = ("dense", "sparse", "moe_flip", "staleness", "adversarial", "tight",
         "single_perturbation", "uniform", "sparse_divergence")


def _table(kind: str, seed: int, V: int, T: int, n: int):
    """Probabilities under pi_roll, S, U, R of every sequence of an enumerated instance, and its
    horizon (a generator may change ``V`` and ``T``: ``tight`` has two tokens)."""
    inst = GENERATORS[kind](seed, V, T, n)
    tb = sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, inst.reward)
    p = tb.w_roll.ravel() / tb.w_roll.sum()
    return p, tb.S.ravel(), tb.U.ravel(), tb.reward.ravel(), int(inst.T)


@settings(max_examples=120, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 10_000), V=st.integers(2, 3),
       T=st.integers(1, 4), n=st.integers(1, 2),
       u=st.sampled_from([0.0, 0.25, 1.0, 2.0, 5.0]))
def test_brackets_hold_exactly_on_enumerated_instances(kind, seed, V, T, n, u):
    """For every quantity: each bracketing variable lies in its range on every sequence, and
    E Y- <= E summand <= E Y+ under pi_roll (enumeration; relative slack 1e-12 for the sums)."""
    p, S, U, R, T = _table(kind, seed, V, T, n)
    f = error_terms(S, U, R)
    for q, (ylo, (a1, b1), yhi, (a2, b2)) in bracket_terms(S, U, R, T_max=T,
                                                            truncation=u).items():
        assert a1 <= ylo.min() and ylo.max() <= b1 and a2 <= yhi.min() and yhi.max() <= b2, q
        exact = float(p @ f[q])
        slack = 1e-12 * (1 + float(p @ np.abs(ylo)) + float(p @ np.abs(yhi)))
        assert float(p @ ylo) <= exact + slack and exact <= float(p @ yhi) + slack, q


def test_bracket_closes_where_nothing_is_truncated():
    """With the truncation above every U (and e^u above every weight) the expectations of
    both bracketing variables equal the exact value: E[w] = 1 and E[U] = 0 computed by
    enumeration, the identity of Theorem 9.4's proof, two ways."""
    p, S, U, R, _ = _table("dense", 1, 3, 4, 2)
    np.testing.assert_allclose(p @ np.exp(S), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p @ U, 0.0, atol=1e-12)
    u = float(max(U.max(), S.max())) + 1.0
    f = error_terms(S, U, R)
    for q, (ylo, _, yhi, _) in bracket_terms(S, U, R, T_max=4, truncation=u).items():
        exact = float(p @ f[q])
        np.testing.assert_allclose([p @ ylo, p @ yhi], [exact, exact], rtol=RTOL, atol=1e-12)


def test_ranges_at_their_ends():
    """Extreme sequences: theta gives probability 0 to every token (S = -inf, U = -T), the
    largest weight I allows (S = U = u), and a weight above any truncation; the variables
    stay in their ranges and reach the ends that name T."""
    T, u = 5, 2.0
    S = np.array([-np.inf, u, 30.0, 0.0])
    U = np.array([-float(T), u, 40.0, 0.0])
    for R in (np.zeros(4), np.ones(4)):
        for ylo, (a1, b1), yhi, (a2, b2) in bracket_terms(S, U, R, T_max=T,
                                                           truncation=u).values():
            assert a1 <= ylo.min() and ylo.max() <= b1 and a2 <= yhi.min() <= yhi.max() <= b2
    ylo, _, yhi, _ = bracket_terms(S, U, np.zeros(4), T_max=T, truncation=u)["error"]
    assert ylo[0] == -T  # R = 0, U = -T: the lower end
    ylo, _, yhi, _ = bracket_terms(S, U, np.ones(4), T_max=T, truncation=u)["error"]
    assert yhi[0] == T  # R = 1, w = 0, U = -T: f = T - 1, the upper end


def test_reward_range_scales_the_intervals():
    """Rewards in [l, h]: the intervals are (h - l) times those of (R - l) / (h - l) in
    [0, 1] (E[w - 1] = E[U] = 0), computed two ways."""
    rng = np.random.default_rng(1)
    p, S, U, R01, _ = _table("staleness", 2, 3, 4, 2)
    idx = rng.choice(p.size, size=500, p=p)
    lo, hi = -3.0, 5.0
    a = error_intervals(S[idx], U[idx], lo + (hi - lo) * R01[idx], T_max=4,
                        reward_range=(lo, hi))
    b = error_intervals(S[idx], U[idx], R01[idx], T_max=4)
    for q in QUANTITIES:
        np.testing.assert_allclose(a[q], (hi - lo) * np.asarray(b[q]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("cell", [("uniform", 1, 2), ("uniform", 0, 1), ("moe_flip", 0, 1),
                                  ("dense", 1, 2)])
def test_intervals_cover_where_the_clt_interval_did_not(cell):
    """Level 0.95, N = 256, 200 batches: coverage >= 0.95 - 3 standard errors (0.904) in every
    quantity, on the instances where the k-hat-gated central-limit interval covered 28 of 36
    (uniform:1:2) and 7 of 10 (uniform:0:1), and on a heavy-tailed one (fixed seeds)."""
    kind, seed, n = cell
    p, S, U, R, _ = _table(kind, seed, 3, 4, n)
    f = error_terms(S, U, R)
    exact = {q: float(p @ f[q]) for q in QUANTITIES}
    rng = np.random.default_rng([seed, n, 256])
    covered = dict.fromkeys(QUANTITIES, 0)
    for _ in range(200):
        idx = rng.choice(p.size, size=256, p=p)
        iv = error_intervals(S[idx], U[idx], R[idx], T_max=4)
        for q in QUANTITIES:
            covered[q] += iv[q][0] <= exact[q] <= iv[q][1]
    floor = 0.95 - 3 * math.sqrt(0.95 * 0.05 / 200)
    assert all(c / 200 >= floor for c in covered.values()), covered


def test_groups_take_the_group_means():
    """With group ids the units are the group means of the bracketing variables: equal to the
    intervals of a sample whose rows are those means (reached through identical rows)."""
    rng = np.random.default_rng(3)
    S = rng.normal(0, 0.2, 64)
    U = np.expm1(S) + rng.uniform(0, 0.1, 64)  # U >= expm1(S) >= S: a valid pair
    R = rng.uniform(0, 1, 64)
    gid = np.repeat(np.arange(16), 4)
    a = error_intervals(S, U, R, T_max=8, group_ids=gid)
    b = error_intervals(S, U, R, T_max=8)
    assert all(a[q] != b[q] for q in QUANTITIES)
    same = np.repeat(np.arange(64), 1)
    c = error_intervals(S, U, R, T_max=8, group_ids=same)
    for q in QUANTITIES:
        np.testing.assert_allclose(c[q], b[q], rtol=RTOL, atol=ATOL)


def test_estimate_error_sums_shows_the_intervals_only_with_T_max():
    """Without T_max the intervals are withheld and the report says why; with it they are the
    intervals of error_intervals over the non-empty rows."""
    rng = np.random.default_rng(5)
    S = rng.normal(0, 0.1, 200)
    U = np.expm1(S)
    R = rng.uniform(0, 1, 200)
    L = np.full(200, 3)
    L[:10] = 0
    out = estimate_error_sums(S, U, R, lengths=L)
    assert not out["error"]["shown"] and "generation limit" in out["error"]["withheld_because"]
    assert out["diagnostic"].startswith("intervals withheld")
    out = estimate_error_sums(S, U, R, lengths=L, T_max=3)
    iv = error_intervals(S[10:], U[10:], R[10:], T_max=3)
    for q in QUANTITIES:
        assert out[q]["shown"] and (out[q]["lo"], out[q]["hi"]) == iv[q]
    with pytest.raises(ValueError, match="more than T_max = 2"):
        estimate_error_sums(S, U, R, lengths=L, T_max=2)


def test_bad_input_is_one_clear_error():
    S = np.zeros(4)
    with pytest.raises(ValueError, match="T_max"):
        error_intervals(S, S, S, T_max=None)
    with pytest.raises(ValueError, match="row 2 has 1.5, outside reward_range"):
        error_intervals(S, S, np.array([0, 1, 1.5, 0]), T_max=3)
    with pytest.raises(ValueError, match="longer than T_max"):
        error_intervals(S, np.array([0.0, -5.0, 0, 0]), S, T_max=3)
    with pytest.raises(ValueError, match="group_ids"):
        error_intervals(S, S, S, T_max=3, group_ids=np.zeros(3))
    with pytest.raises(ValueError, match="truncation"):
        error_intervals(S, S, S, T_max=3, truncation=-1.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), lo=st.sampled_from([0.0, -3.0, -1.0, 1.0]),
       u=st.sampled_from([0.5, 2.0]))
def test_without_absolute_continuity_the_brackets_of_theorem_9_4_e(seed, lo, u):
    """pi_roll zero on a third of the (context, token) pairs where pi_theta has mass: the true
    J_theta - J_roll (every sequence enumerated, the unseen ones too) stays in its bracket for
    every reward range; the true Error and L' stay in theirs when the range contains 0
    (docs/theory.md §9, Theorem 9.4 (e))."""
    rng = np.random.default_rng(seed)
    inst = GENERATORS["dense"](seed, 3, 3, 2)
    roll = np.asarray(inst.pi_roll, dtype=np.float64).copy()
    cut = rng.random(roll.shape) < 1 / 3
    cut[..., 0] = False  # every context keeps a token
    roll = np.where(cut, 0.0, roll)
    roll /= roll.sum(axis=-1, keepdims=True)
    hi = lo + 4.0
    R = lo + (hi - lo) * rng.random(inst.reward.shape)
    tb = sequence_table(inst.p_x, roll, inst.pi_theta, R)
    p = tb.w_roll.ravel()
    seen = p > 0
    true = {"J_diff": float(((tb.w_theta - tb.w_roll) * R).sum()),
            "L_prime": float((tb.w_roll * R * tb.U).sum()),
            "error": float((tb.coef * R).sum())}
    assert float(tb.w_theta.ravel()[~seen].sum()) > 1e-3  # pi_theta has mass pi_roll never samples
    S, U, Rs = tb.S.ravel()[seen], tb.U.ravel()[seen], R.ravel()[seen]
    for q, (ylo, _, yhi, _) in bracket_terms(S, U, (Rs - lo) / (hi - lo), T_max=3,
                                             truncation=u).items():
        if q != "J_diff" and not lo <= 0.0 <= hi:
            continue
        slack = 1e-12 * (1 + abs(true[q]))
        low, up = (hi - lo) * float(p[seen] @ ylo), (hi - lo) * float(p[seen] @ yhi)
        assert low <= true[q] + slack and true[q] <= up + slack, (q, low, true[q], up)


def test_an_empty_interval_is_withheld_with_the_reason():
    """Every row has one token with rho = 7 (impossible under pi_theta << pi_roll at any
    sizeable N: E w = 1): the J_diff bracket comes out empty; it is withheld and said."""
    S = np.full(256, np.log(7.0))
    out = estimate_error_sums(S, np.full(256, 6.0), np.ones(256), T_max=1)
    assert not out["J_diff"]["shown"] and "empty" in out["J_diff"]["withheld_because"]
    assert any("contradicts E[prod_t rho_t] = 1" in w for w in out["warnings"])


def test_truncation_beyond_float_resolution_is_refused():
    S = np.zeros(8)
    with pytest.raises(ValueError, match=r"truncation must lie in \[0, 20\]"):
        error_intervals(S, S, S, T_max=2, truncation=40.0)


def test_an_overflowing_ratio_gives_the_same_interval_as_any_large_one():
    """One sequence with rho = e^800 (U = +inf in float64): the brackets use only U > u there,
    so the intervals equal those with that U replaced by 1e6 (two ways); before, the estimate
    with T_max raised instead of reporting."""
    rng = np.random.default_rng(2)
    S = rng.normal(0, 0.1, 128)
    U = np.expm1(S)
    R = rng.uniform(0, 1, 128)
    S[0], U[0] = 800.0, np.inf
    a = error_intervals(S, U, R, T_max=3)
    U[0] = 1e6
    b = error_intervals(S, U, R, T_max=3)
    assert a == b and all(np.isfinite(v).all() for v in a.values())
    U[0] = np.inf
    out = estimate_error_sums(S, U, R, T_max=3)
    assert out["error"]["shown"] and any("overflows" in w for w in out["warnings"])
