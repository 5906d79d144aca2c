"""The one KL/TV kernel: its two numpy forms agree, and the torch twin agrees with numpy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL
from trm_bounds.divergences import (
    PINSKER_SLACK,
    k1,
    k2,
    k3,
    kl,
    kl_from_logprobs,
    kl_terms,
    kl_terms_from_logprobs,
    softmax,
    tv,
    tv_from_logprobs,
)


def _pairs(seed: int, n: int = 64, V: int = 7, zeros: bool = True):
    rng = np.random.default_rng(seed)
    p = softmax(rng.normal(size=(n, V)) * rng.uniform(0, 8, size=(n, 1)))
    q = softmax(rng.normal(size=(n, V)) * rng.uniform(0, 8, size=(n, 1)))
    if zeros:
        p[0, 0] = 0.0
        p[0] /= p[0].sum()
        q[1, 1] = 0.0
        q[1] /= q[1].sum()
    return p, q


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=50, deadline=None)
def test_probability_and_log_forms_agree(seed):
    """``p(u - log1p u)`` and ``p(expm1 d - d)`` are the same terms.

    The log-space form inherits the rounding of ``log q - log p`` (absolute ~1e-16 |log p|), so
    a term whose ``d`` is small is accurate only to ~1e-16 |log p| / |d| relative: per entry the
    forms agree to 1e-8 relative, per row (the KL itself) to the suite's RTOL/ATOL pair.
    """
    p, q = _pairs(seed)
    with np.errstate(divide="ignore"):
        a = kl_terms_from_logprobs(np.log(p), np.log(q))
    b = kl_terms(p, q)
    assert np.array_equal(np.isinf(a), np.isinf(b))
    fin = np.isfinite(a)
    np.testing.assert_allclose(b[fin], a[fin], rtol=1e-8, atol=1e-300)
    rows = np.isfinite(a.sum(-1))
    np.testing.assert_allclose(b.sum(-1)[rows], a.sum(-1)[rows], rtol=RTOL, atol=ATOL)


def test_kl_terms_in_place_buffers_and_diff():
    """Passing ``diff`` and scratch buffers changes nothing but where the result lives."""
    p, q = _pairs(3, zeros=False)
    work = (np.empty_like(p), np.empty_like(p))
    out = kl_terms(p, q, diff=q - p, work=work)
    assert out is work[0]
    np.testing.assert_array_equal(out, kl_terms(p, q))


def test_tiny_kl_keeps_pinsker():
    """At KL ~ 1e-20 the stable form keeps ``2 TV^2 <= KL``; the textbook sum loses it."""
    p = np.array([0.5, 0.5])
    q = np.array([0.5 + 1e-10, 0.5 - 1e-10])
    k = kl_terms(p, q).sum()
    t = tv(p, q)
    assert 2 * t * t <= k + PINSKER_SLACK
    np.testing.assert_allclose(k, 2 * (1e-10) ** 2, rtol=1e-6)  # KL ~ 2 x^2 for p = 1/2 +- x


def test_kl_support_edges():
    """``p = 0`` contributes ``q``; ``q = 0 < p`` gives ``+inf``."""
    assert kl([0.0, 1.0], [0.5, 0.5]) == pytest.approx(np.log(2.0), rel=RTOL, abs=ATOL)
    assert np.isinf(kl([0.5, 0.5], [1.0, 0.0]))
    assert np.isinf(kl_terms(np.array([0.5, 0.5]), np.array([1.0, 0.0])).sum())


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_torch_twin_agrees(seed):
    """Every torch twin equals its numpy twin in float64 to RTOL."""
    torch = pytest.importorskip("torch")
    from trm_bounds import divergences_torch as dt

    p, q = _pairs(seed)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p), np.log(q)
    tp, tq = torch.from_numpy(lp), torch.from_numpy(lq)
    a = dt.kl_terms_from_logprobs(tp, tq).numpy()
    b = kl_terms_from_logprobs(lp, lq)
    assert np.array_equal(np.isinf(a), np.isinf(b))
    fin = np.isfinite(b)
    np.testing.assert_allclose(a[fin], b[fin], rtol=RTOL, atol=ATOL)
    fin_rows = np.isfinite(kl_from_logprobs(lp, lq))
    np.testing.assert_allclose(
        dt.kl_from_logprobs(tp, tq).numpy()[fin_rows], kl_from_logprobs(lp, lq)[fin_rows],
        rtol=RTOL, atol=ATOL,
    )
    np.testing.assert_allclose(dt.tv_from_logprobs(tp, tq).numpy(), tv_from_logprobs(lp, lq),
                               rtol=RTOL, atol=ATOL)
    r = np.linspace(-3, 3, 13)
    tr = torch.from_numpy(r)
    for f_np, f_t in ((k1, dt.k1), (k2, dt.k2), (k3, dt.k3)):
        np.testing.assert_allclose(f_t(tr).numpy(), f_np(r), rtol=RTOL, atol=ATOL)


def test_softmax_rows_sum_to_one():
    z = np.random.default_rng(0).normal(size=(5, 9)) * 50
    np.testing.assert_allclose(softmax(z).sum(-1), 1.0, rtol=RTOL, atol=ATOL)


def test_subnormal_and_far_apart_entries_stay_finite():
    """A subnormal ``p`` beside a normal ``q`` has a finite term ``q - p - p log(q/p)`` in both
    forms (``D/p`` and ``e^d`` would overflow); ``q = 0 < p`` stays ``+inf``."""
    p = np.array([1e-310, 1.0 - 1e-310])
    q = np.array([0.5, 0.5])
    expected = 0.5 - 1e-310 - 1e-310 * (np.log(0.5) - np.log(1e-310)) + kl_terms(p[1:], q[1:])[0]
    a = kl_terms(p, q).sum()
    b = kl_terms_from_logprobs(np.log(p), np.log(q)).sum()
    assert np.isfinite(a) and np.isfinite(b)
    np.testing.assert_allclose([a, b], expected, rtol=RTOL, atol=ATOL)
    assert np.isinf(kl_terms(np.array([1e-310, 1.0]), np.array([0.0, 1.0])).sum())


def test_underflowing_p_and_subnormal_ratio():
    """``log p = -800`` is a positive probability: against ``q = 0`` the KL is ``+inf``.  A ratio
    ``q/p`` in the subnormal range keeps its digits: ``p = 0.9, q = 5e-324`` gives the term
    ``0.9 (log 0.9 - log 5e-324) + q - p`` (computed with logs of each, as a reference)."""
    assert np.isinf(kl_terms_from_logprobs(np.array([-800.0, 0.0]), np.array([-np.inf, 0.0]))[0])
    p, q = np.array([0.9]), np.array([5e-324])
    want = 0.9 * (np.log(0.9) - np.log(5e-324)) + 5e-324 - 0.9
    np.testing.assert_allclose(kl_terms(p, q), want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(kl_terms_from_logprobs(np.log(p), np.log(q)), want, rtol=RTOL,
                               atol=ATOL)


def test_torch_twin_agrees_at_the_extremes():
    """Zeros, underflowing and subnormal probabilities, far-apart pairs: same terms as numpy."""
    torch = pytest.importorskip("torch")
    from trm_bounds import divergences_torch as dt

    lp = np.array([-np.inf, -800.0, -800.0, np.log(1e-310), 0.0, -1e-3, -750.0])
    lq = np.array([-0.5, -np.inf, -1.0, np.log(0.5), -np.inf, -2e-3, -0.1])
    a = dt.kl_terms_from_logprobs(torch.from_numpy(lp), torch.from_numpy(lq)).numpy()
    b = kl_terms_from_logprobs(lp, lq)
    assert np.array_equal(np.isinf(a), np.isinf(b)) and not np.isnan(a).any()
    fin = np.isfinite(b)
    np.testing.assert_allclose(a[fin], b[fin], rtol=RTOL, atol=ATOL)
