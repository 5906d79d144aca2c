"""The Pareto k-hat tail diagnostic (trm_bounds.certify.pareto; docs/theory.md §9; Vehtari et
al., JMLR 2024, with the Zhang-Stephens fit): known shapes recovered, agreement with scipy's
maximum-likelihood fit, scale equivariance, and the no-fit cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import genpareto
from tests.tolerances import ATOL, RTOL

from trm_bounds.certify.pareto import gpd_fit, khat_threshold, pareto_khat, tail_length


@pytest.mark.parametrize("k", [0.2, 0.5, 0.8])
def test_khat_recovers_the_shape_of_a_pareto_tail(k):
    """Lomax draws with alpha = 1/k have a GPD tail of shape k: median k-hat over 20 samples of
    4,000 within 0.1 of k (the prior pulls towards 1/2 by 10/(M + 10) <= 0.05)."""
    rng = np.random.default_rng(int(10 * k))
    ks = [pareto_khat(rng.pareto(1.0 / k, 4000)) for _ in range(20)]
    assert abs(float(np.median(ks)) - k) < 0.1


def test_light_tails_have_small_khat():
    """Uniform (k = -1) and normal draws (k -> 0 from below): k-hat below 0.2."""
    rng = np.random.default_rng(1)
    assert pareto_khat(rng.uniform(size=4000)) < -0.5
    assert pareto_khat(rng.normal(size=4000)) < 0.2


def test_gpd_fit_agrees_with_scipy_maximum_likelihood_and_is_scale_equivariant():
    """Two estimators of the same shape on 20,000 GPD(0.3) draws agree to 0.02 (no prior
    effect at this size beyond 10 * 0.2 / 20,010); gpd_fit(c z) = (k, c sigma)."""
    z = genpareto.rvs(0.3, size=20000, random_state=3)
    k, sigma = gpd_fit(z)
    k_ml, _, s_ml = genpareto.fit(z, floc=0)
    assert abs(k - k_ml) < 0.02 and abs(sigma - s_ml) < 0.02 * s_ml
    k2, sigma2 = gpd_fit(7.5 * z)
    np.testing.assert_allclose([k2, sigma2], [k, 7.5 * sigma], RTOL, ATOL)


def test_no_fit_cases_are_not_trusted():
    """Ties (a largest fifth of one value, or fewer than 5 distinct exceedances), infinities
    and tiny samples give +inf; NaN is an error."""
    assert pareto_khat(np.zeros(1000)) == math.inf
    assert pareto_khat(np.r_[np.zeros(990), np.full(10, 3.0)]) == math.inf
    assert pareto_khat(np.r_[np.zeros(990), np.arange(1.0, 4.0), np.full(7, 9.0)]) == math.inf
    assert pareto_khat(np.r_[np.random.default_rng(0).normal(size=99), np.inf]) == math.inf
    assert pareto_khat(np.arange(10.0)) == math.inf
    with pytest.raises(ValueError, match="NaN"):
        pareto_khat(np.r_[1.0, np.nan])
    with pytest.raises(ValueError, match="exceedances"):
        gpd_fit(np.ones(3))


def test_threshold_and_tail_length_follow_the_paper():
    """min(1 - 1/log10 S, 0.7) and M = ceil(min(S/5, 3 sqrt S))."""
    assert khat_threshold(100) == pytest.approx(0.5, abs=1e-15)
    assert khat_threshold(10**6) == 0.7 and khat_threshold(1) == -math.inf
    assert [tail_length(S) for S in (10, 100, 256, 10**4)] == [2, 20, 48, 300]
