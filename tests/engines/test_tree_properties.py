"""Property tests (hypothesis) of the exact tree engine on random exact instances of every
generator kind. Each test states the docs/theory.md relation it checks.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.bounds import BOUND_NAMES
from trm_bounds.divergences import PINSKER_SLACK, kl, tv
from trm_bounds.engines.tree import adversarial_reward, exact_report, surrogate_with_baseline
from trm_bounds.instances.format import load_instances, write_instances
from trm_bounds.instances.named import single_perturbation
from trm_bounds.instances.strategies import (
    KINDS,
    raw_tree_instances,
    tight_instances,
    tree_instances,
)

any_instance = st.one_of(tree_instances(), raw_tree_instances())


@pytest.mark.parametrize("kind", [*KINDS, "raw"])
@settings(max_examples=max(25, settings.default.max_examples // 3))  # 10 kinds: ci 25 each
@given(data=st.data())
def test_error_below_every_bound(kind, data):
    """|Error| <= B and max_R |Error| <= B for every bound of sections 4 (published) and 5
    (sharp), on every generator kind."""
    strategy = raw_tree_instances() if kind == "raw" else tree_instances(kinds=(kind,))
    inst = data.draw(strategy)
    rep = exact_report(inst)
    for family in ("bounds_published", "bounds_sharp"):
        for name in BOUND_NAMES:
            assert leq(abs(rep["error"]), rep[family][name]), (family, name, rep["error"])
            assert leq(rep["error_max_over_rewards"], rep[family][name]), (family, name)


@given(any_instance)
def test_error_two_ways_agree(inst):
    """J(theta) - J(roll) - L' = -E_roll[R sum_t (rho_t-1)(1 - prod_{j>t} rho_j)] (sec. 2),
    to 1e-10; the two forms of max_R |Error| agree too."""
    rep = exact_report(inst)
    assert abs(rep["error"] - rep["error_identity"]) <= 1e-10
    np.testing.assert_allclose(rep["error"], rep["error_identity"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        rep["error_max_over_rewards"], rep["error_max_over_rewards_direct"], rtol=RTOL, atol=ATOL
    )


@given(any_instance)
def test_section3_relations(inst):
    """2 TV(c)^2 <= KL(c) + 1e-14 per context; Dbar_t <= eps <= 1; D_KL^seq <= T delta;
    2 D_TV^seq^2 <= D_KL^seq + 1e-14; chain rule = direct sequence KL (docs/theory.md §3)."""
    tv_c, kl_c = tv(inst.pi_roll, inst.pi_theta), kl(inst.pi_roll, inst.pi_theta)
    assert np.all(2 * tv_c**2 <= kl_c + PINSKER_SLACK)
    rep = exact_report(inst)
    assert leq(rep["Dbar"], rep["eps"]) and leq(rep["eps"], 1.0)
    assert 2 * rep["eps"] ** 2 <= rep["delta"] + PINSKER_SLACK
    assert leq(rep["D_KL_seq"], inst.T * rep["delta"])
    assert 2 * rep["D_TV_seq"] ** 2 <= rep["D_KL_seq"] + PINSKER_SLACK
    np.testing.assert_allclose(rep["D_KL_seq"], rep["D_KL_seq_direct"], rtol=RTOL, atol=ATOL)
    # full-support rollouts reach every context: eps and delta are the plain maxima
    np.testing.assert_allclose(rep["eps"], tv_c.max(), rtol=RTOL, atol=ATOL)


@given(tree_instances(), st.lists(st.floats(-2.0, 2.0), min_size=1, max_size=4))
def test_baseline_does_not_change_centred_surrogate(inst, bs):
    """E_roll[(R-b) sum_t(rho_t-1)] = L' and E_roll[(R-b) sum_t rho_t] = L' + T(J_roll - b)."""
    rep = exact_report(inst)
    for b in bs:
        L_b, Lp_b = surrogate_with_baseline(inst, b)
        np.testing.assert_allclose(Lp_b, rep["L_prime"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(
            L_b, rep["L_prime"] + inst.T * (rep["J_roll"] - b), rtol=RTOL, atol=ATOL
        )


@given(any_instance)
def test_worst_case_reward(inst):
    """max_R |Error| >= |Error| and the adversarial reward 1[c > 0] attains it (sec. 2)."""
    rep = exact_report(inst)
    assert leq(abs(rep["error"]), rep["error_max_over_rewards"])
    adv = exact_report(adversarial_reward(inst))
    np.testing.assert_allclose(adv["error"], rep["error_max_over_rewards"], rtol=RTOL, atol=ATOL)


@given(tight_instances())
def test_tight_instance_reaches_sharp_bounds(inst):
    """docs/theory.md §5: Error / B = 1 for sharp Classical-TV, Coupling, Adaptive-hybrid, and
    1/2 for the published ones."""
    rep = exact_report(inst)
    for name in ("classical_tv", "coupling", "adaptive_hybrid"):
        np.testing.assert_allclose(rep["error"], rep["bounds_sharp"][name], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(
            rep["error"], 0.5 * rep["bounds_published"][name], rtol=RTOL, atol=ATOL
        )
    if rep["error"] > 1e-6:  # ratios are defined away from eps = 0
        assert math.isclose(rep["error"] / rep["bounds_sharp"]["coupling"], 1.0, rel_tol=RTOL)


@given(
    st.integers(2, 3), st.integers(1, 4), st.integers(1, 2), st.integers(0, 2**32 - 1)
)  # fmt: skip
def test_single_perturbation_zero_error(V, T, n, seed):
    """One perturbed context: Error = 0 to 1e-15 (docs/theory.md §2)."""
    rep = exact_report(single_perturbation(V, T, n_prompts=n, seed=seed))
    assert abs(rep["error"]) <= 1e-15
    assert abs(rep["error_identity"]) <= 1e-15


@settings(max_examples=max(20, settings.default.max_examples // 3))  # file I/O per example
@given(st.lists(tree_instances(kinds=KINDS, max_sequences=64), min_size=1, max_size=3))
def test_format_round_trip(insts):
    """write_instances then load_instances: identical arrays and reports ."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inst.json"
        write_instances(path, insts)
        back = load_instances(path)
    assert len(back) == len(insts)
    for a, b in zip(insts, back, strict=True):
        for name in ("p_x", "pi_roll", "pi_theta", "reward"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
        assert exact_report(a) == exact_report(b)
