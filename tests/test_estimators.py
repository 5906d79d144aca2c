"""Monte Carlo estimators: unbiasedness checked against exact values.

Two instances: (1) a context-independent tabular pair sampled with numpy, where the exact
values have closed forms; (2) a transformer pair at an enumerable size (V = 4, T = 4), where
exact values come from full enumeration.  Seeds are fixed, so the 4-sigma interval checks are
deterministic (a correct estimator fails one with probability about 6e-5 per check).
"""

import numpy as np
import pytest
import torch

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.divergences import PINSKER_SLACK, kl, tv
from trm_bounds.estimators import CAVEAT, mc_estimates, mean_ci, plugin_bounds_from_estimates

torch.set_num_threads(1)


def test_mean_ci_reference_values():
    """mean of (1, 2, 3) is 2; sd (ddof=1) is 1, so se = 1/sqrt(3); interval mean +- z se."""
    e = mean_ci([1.0, 2.0, 3.0], z=2.0)
    np.testing.assert_allclose([e.mean, e.se], [2.0, 1 / np.sqrt(3)], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose([e.lo, e.hi], [2 - 2 / np.sqrt(3), 2 + 2 / np.sqrt(3)], RTOL)
    assert e.contains(2.0) and not e.contains(4.0)


def test_mc_estimates_zero_ratio():
    """rho = 1 everywhere: every estimate is exactly zero (no divergence, no error)."""
    est = mc_estimates(np.zeros((8, 5)), np.linspace(0, 1, 8))
    for k in ("error", "L_prime", "J_diff", "Dbar", "D_KL_seq", "D_KL_seq_k1", "D_TV_seq"):
        assert np.all(est[k].mean == 0.0) and np.all(est[k].se == 0.0), k


def test_shape_errors_are_reported():
    with pytest.raises(ValueError, match="logr must be"):
        mc_estimates(np.zeros((4, 3)), np.zeros(5))


def test_context_independent_pair_closed_forms():
    """Policies that ignore the context (p at every position, q for theta): Dbar_t = TV(p, q),
    D_KL^seq = T KL(p, q), D_TV^seq = TV(p^T, q^T); with R = 1, Error = E[prod rho] - 1 -
    sum_t (E[rho_t] - 1) = 0 exactly.  Sampled with numpy (no transformer)."""
    rng = np.random.default_rng(0)
    p, q, T, N = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.35, 0.25]), 6, 20000
    y = rng.choice(3, size=(N, T), p=p)
    logr = np.log(q[y]) - np.log(p[y])
    est = mc_estimates(logr, np.ones(N), kl_ctx=np.full((N, T), kl(p, q)))
    assert est["Dbar"].contains(np.full(T, tv(p, q)))
    assert est["D_KL_seq"].contains(T * kl(p, q))
    assert est["D_KL_seq_k1"].contains(T * kl(p, q))
    np.testing.assert_allclose(est["D_KL_seq_rb"].mean, T * kl(p, q), rtol=RTOL, atol=ATOL)
    assert est["error"].contains(0.0)
    # D_TV^seq by enumeration of the 3^T sequences
    ys = np.stack(np.meshgrid(*[np.arange(3)] * T, indexing="ij"), -1).reshape(-1, T)
    dtv = tv(np.prod(p[ys], 1), np.prod(q[ys], 1))
    assert est["D_TV_seq"].contains(dtv)


@pytest.fixture(scope="module")
def neural():
    """A weight-noise transformer pair (float64) with exact values at V = 4, T = 4, and
    N = 4000 rollout samples (seed 0)."""
    from trm_bounds.engines.neural import enumerate_tables, exact_quantities, reward_table
    from trm_bounds.transformer import (
        GPT,
        GPTConfig,
        MarkovSource,
        rollout_logratios,
        train_on_source,
        weight_noise_pair,
    )

    src = MarkovSource(V=4, n_prompts=2, seed=0)
    model = GPT(GPTConfig(vocab_size=4, n_prompts=2, seed=0))
    train_on_source(model, src, steps=40, lr=1e-2, seed=0)
    roll, theta = weight_noise_pair(model, 0.3, seed=0)
    T, p_x = 4, np.array([0.3, 0.7])
    R = reward_table(src, 2, T)
    exact = exact_quantities(enumerate_tables(roll, T), enumerate_tables(theta, T), R, p_x)
    s = rollout_logratios(roll, theta, src, N=4000, T=T, p_x=p_x, seed=0, batch=4000)
    return exact, s


def test_mc_agrees_with_enumeration(neural):
    """Every estimate's 4-sigma interval contains the exact enumerated value (docs/theory.md
    §2, §3, §6), for the grammar reward."""
    exact, s = neural
    est = mc_estimates(s["logr"], s["reward"], kl_ctx=s["kl_ctx"], tv_ctx=s["tv_ctx"])
    pairs = {
        "error": exact["error"],
        "L_prime": exact["L_prime"],
        "J_diff": exact["J_theta"] - exact["J_roll"],
        "Dbar": exact["Dbar"],
        "Dbar_rb": exact["Dbar"],
        "D_KL_seq": exact["D_KL_seq"],
        "D_KL_seq_k1": exact["D_KL_seq"],
        "D_KL_seq_rb": exact["D_KL_seq"],
        "D_TV_seq": exact["D_TV_seq"],
    }
    for k, v in pairs.items():
        assert est[k].contains(v), (k, est[k], v)


def test_mc_worst_case_reward_resolves_max_error(neural):
    """With the worst-case reward R*(x, y) = 1[c(x, y) > 0] (docs/theory.md §2; the sign of c is
    the sign of expm1(S) - sum_t expm1(r_t), a function of the sampled sequence), the error is
    max_R |Error|: the estimate's interval contains it and excludes 0."""
    exact, s = neural
    r = s["logr"]
    R_star = (np.expm1(r.sum(1)) - np.expm1(r).sum(1) > 0).astype(np.float64)
    est = mc_estimates(r, R_star)
    assert est["error"].contains(exact["error_max_over_rewards"])
    assert not est["error"].contains(0.0)


def test_observed_maxima_are_lower_estimates(neural):
    """eps_observed <= eps and delta_observed <= delta (maxima over visited contexts only)."""
    exact, s = neural
    est = mc_estimates(s["logr"], s["reward"], kl_ctx=s["kl_ctx"], tv_ctx=s["tv_ctx"])
    assert leq(est["eps_observed"], exact["eps"]) and leq(est["delta_observed"], exact["delta"])
    assert est["eps_observed"] > 0


def test_plugin_bounds_carry_the_caveat(neural):
    """Plug-in bounds (docs/theory.md §6): caveat stated, sharp = published / 2, and eps/delta
    entering them never exceed the exact maxima.  The one plug-in rule only RAISES inputs to
    satisfy the §3 relations (every bound is non-decreasing in each divergence), so each input
    is at least its estimate, and the inputs satisfy Pinsker and the other §3 relations."""
    exact, s = neural
    est = mc_estimates(s["logr"], s["reward"], kl_ctx=s["kl_ctx"], tv_ctx=s["tv_ctx"])
    pub, sharp = plugin_bounds_from_estimates(est), plugin_bounds_from_estimates(est, sharp=True)
    assert pub["caveat"] == CAVEAT and "not certified" in CAVEAT
    inp = pub["inputs"]
    assert leq(inp["eps"], exact["eps"]) and leq(inp["delta"], exact["delta"])
    # only raised, never lowered
    assert inp["eps"] >= est["eps_observed"] and inp["delta"] >= est["delta_observed"]
    assert inp["dkl_seq"] >= est["D_KL_seq_rb"].mean and inp["dtv_seq"] >= est["D_TV_seq"].mean
    assert np.all(np.asarray(inp["dbar"]) >= est["Dbar_rb"].mean)
    # the inputs used satisfy the docs/theory.md §3 relations
    assert 2 * inp["eps"] ** 2 <= inp["delta"] + PINSKER_SLACK
    assert 2 * inp["dtv_seq"] ** 2 <= inp["dkl_seq"] + PINSKER_SLACK
    assert leq(inp["dbar"], inp["eps"]) and leq(inp["dkl_seq"], est["T"] * inp["delta"])
    for name, b in pub["bounds"].items():
        np.testing.assert_allclose(2 * sharp["bounds"][name], b, rtol=RTOL, atol=ATOL)


def test_plugin_bounds_need_the_per_context_estimates():
    """Without kl_ctx/tv_ctx there are no observed maxima: a one-line ValueError names them."""
    est = mc_estimates(np.zeros((4, 3)), np.ones(4))
    with pytest.raises(ValueError, match="eps_observed"):
        plugin_bounds_from_estimates(est)


def test_plugin_bounds_raise_inputs_never_lower():
    """Estimates that break Pinsker (observed eps = 0.1, delta = 1e-3 < 2 eps^2): the one
    plug-in rule (docs/theory.md §6) keeps eps and raises delta to 2 eps^2 = 0.02, and says so
    (the previous estimator-local rule lowered eps to sqrt(delta/2) instead)."""
    N, T = 8, 3
    est = mc_estimates(
        np.zeros((N, T)), np.ones(N), kl_ctx=np.full((N, T), 1e-3), tv_ctx=np.full((N, T), 0.1)
    )
    inp = plugin_bounds_from_estimates(est)["inputs"]
    assert inp["eps"] == 0.1
    np.testing.assert_allclose(inp["delta"], 2 * 0.1**2, rtol=RTOL, atol=ATOL)
    adjusted = {a["input"]: a for a in inp["adjusted"]}
    assert "eps" not in adjusted and adjusted["delta"]["from"] == 1e-3
    assert any("Pinsker" in r for r in adjusted["delta"]["relations"])
