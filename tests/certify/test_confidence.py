"""Confidence bounds for a mean in [0, B] (docs/theory.md §9): formulas, the betting capital's
monotonicity, coverage at a fixed seed, and a negative control (the CLT bound under-covers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL
from trm_bounds.certify.confidence import (
    METHODS,
    _bets,
    lower_confidence_bound,
    mean_interval,
    upper_confidence_bound,
    upper_confidence_bounds,
)

LEVEL = 0.95
REPS = 2000  # batches per coverage check; binomial se at 0.95 is 0.0049


def _min_coverage(reps: int, level: float = LEVEL) -> float:
    """``1 - alpha - 3 se``: the smallest coverage a valid method may show at ``reps``."""
    return level - 3.0 * math.sqrt(level * (1 - level) / reps)


def test_hoeffding_and_bernstein_are_their_formulas():
    """Hoeffding: mean + B sqrt(log(1/alpha)/(2n)); Maurer-Pontil: mean + sqrt(2 V log(2/alpha)/n)
    + 7 B log(2/alpha)/(3(n-1)), V the unbiased variance; both on a scaled sample (B = 7)."""
    rng = np.random.default_rng(3)
    x = 7.0 * rng.beta(0.5, 5.0, size=200)
    n, a = x.size, 1 - LEVEL
    hoef = x.mean() + 7.0 * math.sqrt(math.log(1 / a) / (2 * n))
    bern = (x.mean() + math.sqrt(2 * (x / 7).var(ddof=1) * math.log(2 / a) / n) * 7.0
            + 7.0 * 7 * math.log(2 / a) / (3 * (n - 1)))
    np.testing.assert_allclose(upper_confidence_bound(x, upper=7.0, level=LEVEL,
                                                      method="hoeffding"), hoef, RTOL, ATOL)
    np.testing.assert_allclose(upper_confidence_bound(x, upper=7.0, level=LEVEL,
                                                      method="bernstein"), bern, RTOL, ATOL)


@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40), st.floats(0.5, 0.999))
def test_betting_ucb_is_the_crossing_of_a_monotone_capital(xs, level):
    """The betting bound U is where log K_n(m) = sum log(1 + lambda_i (m - z_i)) reaches
    log(1/alpha): K_n is non-decreasing in m (bets in [0, 3/4] independent of m), rejects at U
    (or U = 1), and does not reject just below U."""
    z = np.asarray(xs)
    u = upper_confidence_bound(z, upper=1.0, level=level, method="betting")
    lam = _bets(z[None, :], 1 - level)[0]
    assert np.all((lam >= 0) & (lam <= 0.75))
    grid = np.linspace(0, 1, 101)
    logk = np.log1p(lam[None, :] * (grid[:, None] - z[None, :])).sum(axis=1)
    assert np.all(np.diff(logk) >= -ATOL)
    thresh = math.log(1 / (1 - level))
    logk_at = lambda m: float(np.log1p(lam * (m - z)).sum())  # noqa: E731
    assert u == 1.0 or logk_at(u) >= thresh - ATOL
    assert logk_at(max(u - 1e-9, 0.0)) < thresh + ATOL or u <= 1e-9
    assert z.mean() <= u + ATOL


@given(st.lists(st.floats(0.0, 3.0), min_size=2, max_size=40), st.sampled_from(METHODS))
def test_bounds_bracket_the_sample_mean_within_the_range(xs, method):
    """L <= mean <= U, all in [0, B]; the two-sided interval is wider than each side at level."""
    x = np.asarray(xs)
    u = upper_confidence_bound(x, upper=3.0, level=LEVEL, method=method)
    lo = lower_confidence_bound(x, upper=3.0, level=LEVEL, method=method)
    assert 0.0 <= lo <= x.mean() + ATOL and x.mean() <= u + ATOL and u <= 3.0
    lo2, u2 = mean_interval(x, upper=3.0, level=LEVEL, method=method)
    assert lo2 <= lo + ATOL and u2 >= u - ATOL


def test_betting_beats_hoeffding_and_bernstein_at_low_variance():
    """On a low-variance law (Beta(0.5, 20), mean 0.024) at n = 256 the betting bound is the
    narrowest on average, as Waudby-Smith & Ramdas report."""
    rng = np.random.default_rng(5)
    x = rng.beta(0.5, 20.0, size=(200, 256))
    w = {m: upper_confidence_bounds(x, upper=1.0, level=LEVEL, method=m).mean() for m in METHODS}
    assert w["betting"] < w["bernstein"] < w["hoeffding"]


LAWS = {
    "bernoulli_0.02": lambda rng, s: (rng.random(s) < 0.02).astype(float),
    "beta_0.5_20": lambda rng, s: rng.beta(0.5, 20.0, size=s),
    "uniform": lambda rng, s: rng.random(s),
    "two_point_0.3": lambda rng, s: np.where(rng.random(s) < 0.3, 1.0, 0.1),
}
MEANS = {"bernoulli_0.02": 0.02, "beta_0.5_20": 0.5 / 20.5, "uniform": 0.5,
         "two_point_0.3": 0.3 + 0.07}


@pytest.mark.parametrize("law", sorted(LAWS))
@pytest.mark.parametrize("n", [16, 128])
def test_coverage_of_every_method(law, n):
    """P(U >= mean) >= 1 - alpha - 3 se over 2,000 batches (fixed seed), for every method, and
    the lower bound likewise; the laws include a rare-event Bernoulli(0.02)."""
    rng = np.random.default_rng([11, n, sorted(LAWS).index(law)])
    x = LAWS[law](rng, (REPS, n))
    mu = MEANS[law]
    for method in METHODS:
        u = upper_confidence_bounds(x, upper=1.0, level=LEVEL, method=method)
        assert np.mean(u >= mu) >= _min_coverage(REPS), method
        lo = 1.0 - upper_confidence_bounds(1.0 - x, upper=1.0, level=LEVEL, method=method)
        assert np.mean(lo <= mu) >= _min_coverage(REPS), method


def test_negative_control_clt_bound_undercovers_rare_events():
    """The CLT bound mean + z sd / sqrt(n) covers Bernoulli(0.02) at n = 16 only when a 1 is
    drawn: about 1 - 0.98^16 = 0.28 of the time, far below 0.95. The coverage check above
    therefore can fail."""
    rng = np.random.default_rng(12)
    x = LAWS["bernoulli_0.02"](rng, (REPS, 16))
    u = x.mean(axis=1) + 1.645 * x.std(axis=1, ddof=1) / 4.0
    assert np.mean(u >= 0.02) < 0.5


@pytest.mark.parametrize("kw, msg", [
    (dict(method="wald"), "method"), (dict(level=1.0), "level"), (dict(upper=0.0), "upper"),
    (dict(upper=0.5), "range"),
])
def test_invalid_arguments_raise_one_line(kw, msg):
    """Unknown method, level outside (0, 1), non-positive upper, data outside [0, upper]."""
    args = dict(upper=1.0, level=LEVEL, method="betting") | kw
    with pytest.raises(ValueError, match=msg):
        upper_confidence_bound(np.array([0.2, 0.9]), **args)
    with pytest.raises(ValueError, match="NaN"):
        upper_confidence_bound(np.array([0.2, np.nan]), upper=1.0)
