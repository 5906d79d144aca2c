"""The worst-case-error certificate (docs/theory.md §10, Theorem 10.6): the identity
max_R |Error| = E_roll max(1 - prod rho, sum (1 - rho)) on exact instances with and without
absolute continuity (two independent routes), the range of Y, validity of the bound, and
input errors.  Tolerances: tests/tolerances.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL
from trm_bounds.certify.exact import sequence_table
from trm_bounds.certify.worst_case_error import certify_worst_case_error, worst_case_error_terms
from trm_bounds.studies.worst_case_certificate import _tables, instances, sample_log


def rollout_mean_of_Y(p: np.ndarray, q: np.ndarray, T: int, V: int) -> float:
    """E_roll Y by enumeration through the certificate's own per-sequence formula."""
    ctx, tok = _tables(T, V)
    pr, pt = p[ctx, tok], q[ctx, tok]
    w = pr.prod(axis=1)
    live = w > 0
    with np.errstate(divide="ignore"):
        r = np.log(pt[live]) - np.log(pr[live])
    y = worst_case_error_terms(r, np.ones_like(r, dtype=bool))
    return float(np.sum(w[live] * y))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 4), st.integers(1, 4), st.booleans(),
       st.sampled_from([0.2, 0.5, 3.0]))  # fmt: skip
def test_identity_max_error_is_a_rollout_mean(seed, V, T, ac, conc):
    """Theorem 10.6: max_R |Error| (the coefficient route of certify.exact) equals E_roll Y
    (the per-sequence route), with or without absolute continuity, heavy tokens included."""
    rng = np.random.default_rng(seed)
    C = (V**T - 1) // (V - 1)
    p = rng.dirichlet(np.full(V, conc), size=C)
    if not ac:
        p[:, 0] = 0.0
        p /= p.sum(-1, keepdims=True)
    q = rng.dirichlet(np.full(V, conc), size=C)
    tab = sequence_table([1.0], p[None], q[None], np.zeros((1, V**T)))
    np.testing.assert_allclose(rollout_mean_of_Y(p, q, T, V), tab.error_max,
                               rtol=RTOL, atol=ATOL * T)  # fmt: skip


@given(st.lists(st.floats(-30, 5), min_size=1, max_size=12))
def test_Y_is_bounded_above_by_max_1_T(r):
    """Y <= max(1, sum_t (1 - rho_t)_+) <= max(1, T): the range the certificate uses."""
    r = np.array([r])
    y = worst_case_error_terms(r, np.ones_like(r, dtype=bool))[0]
    assert y <= max(1.0, np.sum(np.clip(-np.expm1(r), 0, None))) + 1e-12 <= max(1.0, r.size) + 1e-12


def test_bound_covers_every_instance_at_fixed_seeds():
    """On each exact instance of the study, 30 certificates at N = 400 (fixed seeds) all cover
    the truth (each fails with probability <= 0.05; the bound is conservative, so a miss here
    would be a bug, not bad luck: the mean bound exceeds the truth by > 5 sd of the mean)."""
    rng = np.random.default_rng(7)
    for s in instances(0):
        T, V = s["T"], s["V"]
        truth = sequence_table([1.0], s["p"][None], s["q"][None], np.zeros((1, V**T))).error_max
        for _ in range(30):
            lp, lr, m = sample_log(s, rng, 400)
            out = certify_worst_case_error(lp, lr, m, T_max=T, level=0.95)
            assert out["bound"] >= truth


def test_committed_coverage_meets_the_level():
    """experiments/results/worst_case_certificate.json: every row covers at >= level - 3 se
    (binomial), and on the constant-Z design the certificate beats Linear (proved, c = 1)."""
    path = Path(__file__).parents[2] / "experiments" / "results" / "worst_case_certificate.json"
    data = json.loads(path.read_text())
    for r in data["settings"]:
        assert r["coverage"] >= r["level"] - 3 * max(r["coverage_se"], 0.0154)
        assert r["mean_bound"] >= r["truth"]
        if r["name"].startswith("constant_z") and r["N"] >= 10_000:
            assert r["mean_bound"] < r["mean_linear_bound"] / 2


def test_theta_equal_roll_and_input_errors():
    """theta = roll: estimate 0 and bound small; a short T_max, a negative clip and a
    mismatched mask are one-line errors naming the field."""
    lp = np.log(np.full((1000, 6), 0.5))
    out = certify_worst_case_error(lp, lp, np.ones((1000, 6)), T_max=6)
    assert out["estimate"] == 0.0 and 0 <= out["bound"] < 0.05
    with pytest.raises(ValueError, match="T_max"):
        certify_worst_case_error(lp, lp, np.ones((1000, 6)), T_max=3)
    with pytest.raises(ValueError, match="clip"):
        certify_worst_case_error(lp, lp, np.ones((1000, 6)), clip=-1.0)
    with pytest.raises(ValueError, match="mask"):
        certify_worst_case_error(lp, lp, np.ones((1000, 5)))


def test_range_is_a_priori_and_empty_rows_are_not_sequences():
    """As for Linear (docs/theory.md §9): no T_max is an error (the longest logged response
    is not a valid range), and rows without a valid token are excluded, not counted as Y = 0."""
    lp = np.log(np.full((400, 6), 0.5))
    with pytest.raises(ValueError, match="T_max: give the generation limit"):
        certify_worst_case_error(lp, lp, np.ones((400, 6)))
    m = np.ones((400, 6))
    m[:100] = 0.0  # padding rows
    out = certify_worst_case_error(lp, lp, m, T_max=6)
    assert out["n_sequences"] == 300 and out["n_empty_rows"] == 100
