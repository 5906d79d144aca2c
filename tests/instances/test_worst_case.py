"""How tight the bounds are in T (docs/theory.md §10): the tilted walk's closed form, the
chi-square martingale bound, the power-law rule of the slope fits, and the F9 study.

Each test states the lemma it checks.  Tolerances: the suite's pair (tests/tolerances.py) for
identities and inequalities; asymptotic statements are checked against their own error terms,
stated at each test.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.bounds import compute_bounds
from trm_bounds.bounds.chi2 import KAPPA, chi2_bound, chi2_bound_terms, kl_budget_bound, regularise
from trm_bounds.divergences import kl_terms
from trm_bounds.engines import dp, tree
from trm_bounds.instances.finite import to_tree_instance
from trm_bounds.instances.named import dense_noise, tight_instance
from trm_bounds.instances.strategies import tree_instances
from trm_bounds.instances.worst_case import (
    PLACEMENTS,
    WALK_CONSTANT,
    hidden_regime_walk,
    tilted_walk,
    walk_max_error_asymptotic,
    walk_max_error_closed_form,
    walk_sequence_tv,
    walk_tilt,
    walk_tilt_positions,
)
from trm_bounds.studies._fit import fit_slope
from trm_bounds.studies._power_law import (
    fit_exponential_tail,
    fit_power_law,
    power_law_window,
    sign_changes,
)
from trm_bounds.studies.worst_case import chi2_per_position


def close(a, b) -> None:
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- the tilted walk
@pytest.mark.parametrize("T", [1, 2, 3, 7, 40, 300])
@pytest.mark.parametrize("delta", [1e-6, 1e-2, 0.3])
def test_walk_closed_form_equals_dp(T, delta):
    """Two routes, one number: the DP's max over final-state rewards of the unreflected walk
    (W = T) equals the binomial closed form; and its KL is delta at every context."""
    rep = dp.exact_report(tilted_walk(T, delta=delta, width=T))
    close(rep.error_max_over_rewards, walk_max_error_closed_form(T, delta))
    close(rep.delta, delta)
    close(rep.D_KL_seq, T * delta)


@pytest.mark.parametrize("T,delta", [(2, 0.05), (4, 0.01), (6, 0.2), (9, 1e-3)])
def test_walk_final_state_max_is_the_max_over_all_rewards(T, delta):
    """c(y) depends on y only through X, so the max over final-state rewards (DP) equals the
    max over every reward of the sequence (tree engine, all 2^T sequences); and D_TV^seq has
    the closed form."""
    inst = tilted_walk(T, delta=delta, width=T)
    full = tree.exact_report(to_tree_instance(inst))
    close(full.error_max_over_rewards, dp.exact_report(inst).error_max_over_rewards)
    close(full.D_TV_seq, walk_sequence_tv(T, delta))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_sparse_walk_does_not_depend_on_T_or_placement(placement):
    """k tilted positions among T, free tokens elsewhere: max_R |Error| is the closed form at
    n = k for every T and every placement (the walk forgets nothing, X is a sum)."""
    k, delta = 3, 0.02
    want = walk_max_error_closed_form(k, delta)
    for T in (3, 10, 57):
        inst = tilted_walk(T, delta=delta, positions=walk_tilt_positions(T, k, placement))
        rep = dp.exact_report(inst)
        close(rep.error_max_over_rewards, want)
        close(rep.D_KL_seq, k * delta)


def test_walk_grows_linearly_with_the_predicted_constant():
    """Lower bound of §10: max_R |Error| / (delta T) -> 2 phi(1) = 0.4839 as T -> inf with
    T delta -> 0.  The relative deviation is O(1/T + T delta) (Edgeworth and second-order
    terms): below 2/T + 2 T delta at every T of the grid, and the fitted exponent over
    T in [10^3, 10^5] is 1 within 1e-3."""
    delta = 1e-12
    T = np.array([10, 100, 1000, 10_000, 100_000])
    exact = np.array([walk_max_error_closed_form(int(t), delta) for t in T])
    dev = np.abs(exact / np.array([walk_max_error_asymptotic(int(t), delta) for t in T]) - 1)
    assert np.all(dev <= 2.0 / T + 2 * T * delta)
    assert abs(fit_slope(T, exact, 1e3, 1e5) - 1.0) < 1e-3
    close(WALK_CONSTANT, 2 * math.exp(-0.5) / math.sqrt(2 * math.pi))


def test_walk_beats_no_bound_but_leaves_pm_behind_like_sqrt_T():
    """Against the sharp bounds at the walk's exact divergences: every bound holds, and the
    ratio to Pinsker-Marginal (KL) falls like T^{-1/2} (fitted exponent -0.5 within 0.01 on
    T in [10^3, 10^5], T delta <= 1e-3)."""
    delta = 1e-8
    T = np.array([1000, 3000, 10_000, 30_000, 100_000])
    e = walk_tilt(delta)
    ratio = []
    for t in T:
        t = int(t)
        err = walk_max_error_closed_form(t, delta)
        b = compute_bounds(t, eps=e, delta=delta, dkl_seq=t * delta,
                           dtv_seq=walk_sequence_tv(t, delta), dbar=np.full(t, e), sharp=True)  # fmt: skip
        assert all(leq(err, v) for v in b.values())
        ratio.append(err / b["pm_kl"])
    assert abs(fit_slope(T, np.array(ratio), 1e3, 1e5) + 0.5) < 0.01


def test_hidden_regime_walk_has_kl_delta_everywhere_and_grows_like_T():
    """The hidden-regime walk has forward KL exactly delta at every context, and its
    worst-case error is within 1% of the plain walk's at T = 400 (a hidden state that never
    changes does not help the adversary)."""
    delta = 1e-5
    rep = dp.exact_report(hidden_regime_walk(400, delta=delta))
    close(rep.delta, delta)
    close(rep.D_KL_seq, 400 * delta)
    plain = walk_max_error_closed_form(400, delta)
    assert abs(rep.error_max_over_rewards / plain - 1) < 0.01


# --------------------------------------------------------------------------- chi-square bound
def test_chi2_bound_is_attained_by_the_tight_instance():
    """At the tight instance of §5 (chi = 4 eps^2 at both positions) the bound is 2 eps^2, the
    exact error: the constant 1/2 cannot be lowered."""
    for eps in (0.01, 0.1, 0.3):
        inst = tight_instance(eps, form="finite_state")
        rep = dp.exact_report(inst)
        close(chi2_bound(chi2_per_position(inst)), 2 * eps**2)
        close(rep.error, 2 * eps**2)


def _tree_chi2_per_position(inst) -> np.ndarray:
    """max over contexts of level t of chi^2(pi_theta || pi_roll), t = 1..T (level order)."""
    V, T = inst.V, inst.T
    p, q = inst.pi_roll, inst.pi_theta  # (n_prompts, C, V)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = np.where(p > 0, (q - p) ** 2 / np.where(p > 0, p, 1.0), 0.0).sum(-1).max(0)
    starts = np.concatenate([[0], np.cumsum(V ** np.arange(T))])
    return np.array([chi[starts[t] : starts[t + 1]].max() for t in range(T)])


@given(tree_instances(max_V=3, max_T=4))
def test_chi2_bound_holds_on_random_tree_instances(inst):
    """|Error| and max_R |Error| (over every reward) are at most the chi-square bound, with
    and without the D_TV^seq branch (docs/theory.md §10)."""
    rep = tree.exact_report(inst)
    chi = _tree_chi2_per_position(inst)
    assert leq(rep.error_max_over_rewards, chi2_bound(chi))
    assert leq(rep.error_max_over_rewards, chi2_bound(chi, dtv_seq=min(1.0, rep.D_TV_seq)))
    assert leq(abs(rep.error), chi2_bound(chi))


@given(st.integers(0, 2**31 - 1), st.integers(2, 3), st.integers(2, 6), st.integers(2, 5),
       st.sampled_from([0.05, 0.5, 2.0]))  # fmt: skip
def test_chi2_bound_holds_on_random_finite_state_instances(seed, V, T, S, scale):
    """The bound holds against the max over *all* rewards (tree engine on the expanded
    finite-state instance), with chi_t from the finite-state policy tables."""
    inst = dense_noise(V, T, form="finite_state", S=S, scale=scale, seed=seed)
    rep = tree.exact_report(to_tree_instance(inst))
    chi = chi2_per_position(inst)
    assert leq(rep.error_max_over_rewards, chi2_bound(chi, dtv_seq=min(1.0, rep.D_TV_seq)))


def test_chi2_bound_within_a_factor_of_the_walk():
    """The walk reaches 2 phi(1) / (1 / sqrt 2) = 0.684 of the chi-square bound as T grows
    (ratio in [0.6, 0.7] at T = 10^4, 10^5, T delta <= 1e-3): the bound's order T is the
    truth for bounded likelihood ratios."""
    delta = 1e-8
    e = walk_tilt(delta)
    for T in (10_000, 100_000):
        r = walk_max_error_closed_form(T, delta) / chi2_bound(np.full(T, 4 * e * e))
        assert 0.6 <= r <= 0.7


def test_chi2_bound_terms_validate_and_are_monotone():
    """Negative chi is refused with its position; each term is non-decreasing in every chi_t."""
    with pytest.raises(ValueError, match="t=2"):
        chi2_bound_terms(np.array([0.1, -0.1]))
    rng = np.random.default_rng(0)
    for _ in range(50):
        chi = rng.random(8) * 0.1
        more = chi + rng.random(8) * 0.05
        a, b = chi2_bound_terms(chi)
        a2, b2 = chi2_bound_terms(more)
        assert a <= a2 and b <= b2


@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.sampled_from([0.01, 0.3, 1.0, 4.0]))
def test_regularise_lemma(seed, V, scale):
    """Lemma of §10: q' << p, TV(q, q') <= m <= kappa KL(p || q) and
    chi^2(q' || p) <= 2 kappa KL + 2 m^2, on random pairs with heavy tokens (log-ratio noise
    up to 4 nats) and a rollout zero where theta is zero too."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(V), size=20)
    q = p * np.exp(scale * rng.normal(size=p.shape))
    q /= q.sum(-1, keepdims=True)
    p[:, 0] = q[:, 0] = 0.0  # a token neither policy uses
    p /= p.sum(-1, keepdims=True)
    q /= q.sum(-1, keepdims=True)
    kl = kl_terms(p, q).sum(-1)  # (20,) forward KL, nats
    for i in range(20):
        qp, m = regularise(p[i], q[i])
        close(qp.sum(), 1.0)
        assert np.all(qp[p[i] == 0] == 0)
        assert leq(0.5 * np.abs(q[i] - qp).sum(), m) and leq(m, KAPPA * kl[i])
        chi = np.sum((qp - p[i])[p[i] > 0] ** 2 / p[i][p[i] > 0])
        assert leq(chi, 2 * KAPPA * kl[i] + 2 * m * m)


@given(tree_instances(max_V=3, max_T=4))
def test_kl_budget_bound_holds_on_random_tree_instances(inst):
    """Theorem 10.2: max_R |Error| <= kl_budget_bound(T, delta), delta the largest forward
    KL over contexts (the theorem needs no chi-square input)."""
    rep = tree.exact_report(inst)
    assert leq(rep.error_max_over_rewards, kl_budget_bound(inst.T, rep.delta))


def test_kl_budget_bound_is_order_T_delta():
    """Theorem 10.2 at T delta = 0.1 is at most 9.11 T delta (9.1022 in the limit), and the
    walk lies below it: the worst case under a per-token KL budget is Theta(T delta)."""
    for T in (10, 1000, 100_000):
        delta = 0.1 / T
        b = kl_budget_bound(T, delta)
        w = walk_max_error_closed_form(T, delta)
        assert 0.4 * T * delta <= w <= b <= 9.11 * T * delta


# --------------------------------------------------------------------------- power-law rule
def test_power_law_window_excludes_a_bend_and_an_exponential_tail():
    """A curve T for T <= 1000 and 1000 sqrt(T/1000) beyond: the window is one side of the
    bend (slope 1 or 1/2, never a mixture); exp(-T/300) after a power law gets no power-law
    window across the decay, and its rate is recovered."""
    T = np.geomspace(1, 1e6, 25)
    y = np.where(T <= 1000, T, 1000 * np.sqrt(T / 1000))
    fit = fit_power_law(T, y)
    assert fit["slope"] == pytest.approx(1.0, abs=1e-9) or fit["slope"] == pytest.approx(0.5, abs=1e-9)
    lo, hi = fit["window"]
    assert hi <= 1000 * 1.8 or lo >= 1000 / 1.8
    T2 = np.geomspace(300, 3e4, 12)
    z = np.exp(-T2 / 300)
    assert power_law_window(T2, z) is None
    assert fit_exponential_tail(T2, z)["rate"] == pytest.approx(1 / 300, rel=1e-9)


def test_sign_change_breaks_the_fit():
    """|Error| across a sign change has a cusp: no window spans it."""
    T = np.geomspace(10, 1e5, 21)
    err = 1e-3 * T * (1 - T / 900)
    assert sign_changes(T, err) != []
    fit = fit_power_law(T, np.abs(err))
    assert fit is None or fit["window"][1] < 900 or fit["window"][0] > 900


# --------------------------------------------------------------------------- study and F9
def test_worst_case_study_tiny(tmp_path):
    """``--tiny`` run: the documented layout; every max_R |Error| at most every sharp bound
    and the chi-square bound; the DP check equals the closed form; F9 draws from it."""
    out = tmp_path / "wc.json"
    proc = subprocess.run([sys.executable, "-m", "trm_bounds.studies.worst_case", "--tiny",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["experiment"] == "worst_case" and data["args"]["size"] == "tiny"
    assert set(data["regimes"]) == {"uniform", "uniform_large", "sparse"}
    for reg in data["regimes"].values():
        for fam in reg["families"].values():
            err = np.array(fam["max_error"])
            for b in fam["bounds_sharp"].values():
                assert leq(err, b)
            assert leq(err, fam["chi2_bound"])
    wc = data["walk_check"]
    close(wc["dp"], wc["closed_form"])
    cz = data["constant_z"]  # attains delta sqrt(T(T-1)/2) (Theorem 10.5b) and Theorem 10.1
    for r, se, e, src in zip(cz["ratio_leading"], cz["stderr"], cz["max_error"], cz["source"],
                             strict=True):  # fmt: skip
        assert abs(r - 1) <= 1e-4 + 5 * se / e * r  # O(sqrt(T delta)) bias, 5 sd of the MC
        assert src in ("tree", "monte_carlo")
    assert all(leq(r, 1.0) for r in cz["ratio_chi2"] if r is not None)
    assert data["best_exponent"]["uniform"]["slope"] == pytest.approx(1.0, abs=0.05)
    pytest.importorskip("matplotlib")
    from trm_bounds.plot.figures_scaling import draw_f9

    fig = draw_f9(data)
    assert len(fig.axes) >= 4


def test_f3_study_tiny_has_fits_and_draws(tmp_path):
    """The F3 study writes power-law fits (or null), sign changes and the decay, and F3
    draws from them."""
    from trm_bounds.studies import tabular_scaling

    out = tmp_path / "ts.json"
    assert tabular_scaling.main(["--tiny", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    for sec in data["regimes"].values():
        assert {"fits", "sign_changes", "decay", "slopes"} <= set(sec)
    pytest.importorskip("matplotlib")
    from trm_bounds.plot.figures_scaling import draw_f3

    assert len(draw_f3(data).axes) >= 4
