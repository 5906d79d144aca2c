"""The error estimate (trm_bounds.certify.error_estimate; docs/theory.md §9): unbiased on exact
instances, the ESS, two entry points giving one result, groups, and the PSIS diagnostics: they
flag the point estimates where the summands are heavy-tailed (the intervals, which hold for
every law, are tested in tests/certify/test_error_interval.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.certify.test_linear import _sample
from tests.tolerances import ATOL, RTOL
from trm_bounds.certify import estimate_error
from trm_bounds.certify.error_estimate import QUANTITIES, error_terms, estimate_error_sums
from trm_bounds.certify.exact import sequence_table
from trm_bounds.engines.tree import exact_report
from trm_bounds.instances.generators import GENERATORS


def test_estimate_error_is_unbiased_on_an_exact_instance():
    """On an absolutely continuous tree instance, 20,000 sampled sequences: the estimates of
    Error, J_theta - J_roll and L' lie within 5 standard errors of the exact values (tree
    engine), and Error = J_diff - L' for the estimates (the intervals may be withheld: the
    instance has few distinct sequences, so its sample tails are ties)."""
    inst = GENERATORS["dense"](7, 3, 4, 2)
    rep = exact_report(inst)
    lp, lr, R, _ = _sample(inst, 20000, 8)
    out = estimate_error(lp, lr, np.ones_like(lp), R)
    for key, exact in (("error", rep["error"]), ("J_diff", rep["J_theta"] - rep["J_roll"]),
                       ("L_prime", rep["L_prime"])):
        assert abs(out[key]["estimate"] - exact) <= 5 * out[key]["se"] + ATOL, key
    np.testing.assert_allclose(out["error"]["estimate"],
                               out["J_diff"]["estimate"] - out["L_prime"]["estimate"],
                               RTOL, ATOL)
    assert 0 < out["ess"] <= 20000 and out["ess_fraction"] == out["ess"] / 20000


def test_estimate_error_ess_is_kish_and_warns_when_small():
    """ESS = (sum w)^2 / sum w^2 of w = prod rho; one dominant weight gives ESS ~ 1, a warning,
    and no interval (the weights average 0.06, not 1)."""
    lr = np.log(np.full((100, 2), 0.5))
    lp = lr.copy()
    lp[0] = np.log([0.99, 0.99])  # w_0 = 3.92, others 1
    lp[1:] = np.log([0.01, 0.5])  # w = 0.02
    w = np.exp((lp - lr).sum(axis=1))
    out = estimate_error(lp, lr, np.ones_like(lp), np.ones(100))
    np.testing.assert_allclose(out["ess"], w.sum() ** 2 / (w**2).sum(), RTOL, ATOL)
    assert out["ess"] < 10 and out["warnings"]
    assert not any(out[q]["shown"] for q in QUANTITIES) and out["error"]["lo"] is None  # no T
    assert any("point estimates unreliable" in w for w in out["warnings"])
    with pytest.raises(ValueError, match="rewards"):
        estimate_error(lp, lr, np.ones_like(lp), np.ones(99))


def test_every_rho_zero_gives_ess_zero_and_no_interval():
    """prod rho = 0 on every sequence (theta excludes each sampled response): ESS 0.0 with a
    warning (the drift of issue 16: the evaluator said 1.0), J_diff = -mean R exactly."""
    lr = np.log(np.full((300, 3), 0.5))
    lp = lr.copy()
    lp[:, 1] = -np.inf
    R = np.random.default_rng(0).uniform(0, 1, 300)
    out = estimate_error(lp, lr, np.ones_like(lp), R)
    assert out["ess"] == 0.0 and any("effective sample size" in w for w in out["warnings"])
    np.testing.assert_allclose(out["J_diff"]["estimate"], -R.mean(), RTOL, ATOL)
    assert any("point estimates unreliable" in w and "weights" in w for w in out["warnings"])
    assert out["weights_mean"]["estimate"] == 0.0 and not out["weights_mean"]["consistent"]


def test_padded_and_per_sequence_entry_points_agree_and_empty_rows_are_dropped():
    """estimate_error on padded arrays (with all-masked rows) = estimate_error_sums on the
    per-sequence S, U of the non-empty rows: two routes."""
    inst = GENERATORS["dense"](3, 3, 4, 1)
    lp, lr, R, _ = _sample(inst, 600, 2)
    pad = [np.concatenate([a, np.zeros((50,) + a.shape[1:])]) for a in (lp, lr, R)]
    m = np.concatenate([np.ones_like(lp), np.zeros((50, lp.shape[1]))])
    a = estimate_error(pad[0], pad[1], m, pad[2], T_max=4)
    S = (lp - lr).sum(axis=1)
    U = np.expm1(lp - lr).sum(axis=1)
    b = estimate_error_sums(S, U, R, T_max=4)
    assert a["n_empty_rows"] == 50 and a["n_sequences"] == b["n_sequences"] == 600
    for q in QUANTITIES:
        assert a[q]["shown"] and b[q]["shown"]
        for k in ("estimate", "se", "lo", "hi"):
            np.testing.assert_allclose(a[q][k], b[q][k], RTOL, ATOL)


def test_groups_are_the_units():
    """With group_ids the estimate is the mean of the group means of the summands."""
    rng = np.random.default_rng(4)
    S, U, R = rng.normal(0, 0.1, 64), rng.normal(0, 0.1, 64), rng.uniform(0, 1, 64)
    gid = np.repeat(np.arange(8), 8)
    out = estimate_error_sums(S, U, R, group_ids=gid)
    f = error_terms(S, U, R)["error"].reshape(8, 8).mean(axis=1)
    np.testing.assert_allclose(out["error"]["estimate"], f.mean(), RTOL, ATOL)
    np.testing.assert_allclose(out["error"]["se"], f.std(ddof=1) / math.sqrt(8), RTOL, ATOL)
    assert (out["unit"], out["n_units"]) == ("group", 8)


def test_error_summand_cancellation_is_exactly_zero():
    """One perturbed token: expm1(S) = rho - 1 = U mathematically; the summand is 0, not
    rounding noise (no decision rests on noise)."""
    r = np.log(np.linspace(0.1, 3.0, 1000))
    f = error_terms(r, np.expm1(r), np.ones(1000))["error"]
    assert np.all(f == 0.0)


# ---- the diagnostics on heavy tails ---------------------------------------------------------

#: Instances with rare heavy weights: the point estimates must be flagged nearly always.
HEAVY = [("moe_flip", 0, 1), ("moe_flip", 2, 2)]


def test_heavy_tailed_point_estimates_are_flagged():
    """Rare sequences with weights ~100 carry the error: at N = 256 the point estimate of Error
    is flagged unreliable (k-hat, ties, or the weights' mean) in at least 95 of 100 batches."""
    for kind, seed, n in HEAVY:
        inst = GENERATORS[kind](seed, 3, 4, n)
        tb = sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, inst.reward)
        p = tb.w_roll.ravel() / tb.w_roll.sum()
        S, U, R = tb.S.ravel(), tb.U.ravel(), tb.reward.ravel()
        rng = np.random.default_rng([seed, n, 256])
        flagged = 0
        for _ in range(100):
            idx = rng.choice(p.size, size=256, p=p)
            out = estimate_error_sums(S[idx], U[idx], R[idx])
            flagged += any("point estimates unreliable" in w for w in out["warnings"])
        assert flagged >= 95, (kind, flagged)
