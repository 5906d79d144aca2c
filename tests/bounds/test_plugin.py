"""The one plug-in rule for estimated divergences (trm_bounds.bounds.plugin_bounds).

Its contract (docs/theory.md §3, §6): inputs are only ever raised (a total variation above 1
is capped at 1, its true upper limit), every raise is named, and the result always passes
compute_bounds' validation.  Reference values are the relations themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL
from trm_bounds.bounds import BOUND_NAMES, compute_bounds, plugin_bounds, validate

small = st.one_of(st.just(0.0), st.floats(0, 1e-3), st.floats(0, 2.0))


@given(st.integers(1, 300), small, small, small, st.floats(0, 1), st.booleans(), st.floats(0, 1))
def test_only_raises_and_is_consistent(T, eps, delta, dkl, dtv, with_dbar, scale):
    """Any non-negative estimates: the inputs used are >= the given ones (TVs capped at 1)
    and satisfy every relation of docs/theory.md §3 (validate accepts them)."""
    eps = min(eps, 1.0)
    dbar = np.random.default_rng(T).uniform(0, 1, T) * scale * eps if with_dbar else None
    r = plugin_bounds(T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv, dbar=dbar)
    u = r["inputs"]
    assert u["eps"] >= eps and u["delta"] >= delta and u["dkl_seq"] >= dkl and u["dtv_seq"] >= dtv
    if dbar is not None:
        assert np.all(np.asarray(u["dbar"]) >= dbar)
    validate(T, eps=u["eps"], delta=u["delta"], dkl_seq=u["dkl_seq"], dtv_seq=u["dtv_seq"],
             dbar=u["dbar"])
    moved = {a["input"].split()[0] for a in u["adjusted"]}
    for name, given_value in (("eps", eps), ("delta", delta), ("dkl_seq", dkl), ("dtv_seq", dtv)):
        assert (u[name] != given_value) == (name in moved), name


@given(st.integers(1, 300), st.floats(1e-6, 1.0), st.floats(0, 1), st.floats(0, 1))
def test_consistent_inputs_pass_unchanged(T, eps, u1, u2):
    """Inputs that already satisfy §3 come back unchanged, with the bounds of compute_bounds."""
    delta = 2 * eps * eps * (1 + u1)
    dtv = min(u2 * math.sqrt(T * delta / 2), -math.expm1(T * math.log1p(-min(eps, 0.999999))))
    dkl = max(2 * dtv * dtv, T * delta * u2 * u2)
    if dtv == 0.0:
        dkl = 0.0
    if dkl == 0.0:
        dtv = 0.0
    kw = dict(eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv)
    r = plugin_bounds(T, **kw)
    if dtv > 0.0 or dkl == 0.0:
        assert r["inputs"]["adjusted"] == [] or dtv == 0.0
    ref = compute_bounds(T, **{k: r["inputs"][k] for k in kw})
    for name in BOUND_NAMES:
        np.testing.assert_allclose(r["bounds"][name], ref[name], rtol=RTOL, atol=ATOL)


def test_pinsker_violation_raises_delta_not_lowers_eps():
    """An observed eps above sqrt(delta/2) raises delta to 2 eps^2 (the old Monte Carlo rule
    lowered eps to sqrt(delta/2), which can only shrink the bounds)."""
    r = plugin_bounds(4096, eps=0.01, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)
    assert r["inputs"]["eps"] == 0.01
    assert r["inputs"]["delta"] == pytest.approx(2e-4, rel=1e-15)
    (adj,) = [a for a in r["inputs"]["adjusted"] if a["input"] == "delta"]
    assert adj["from"] == 1e-4 and "Pinsker" in adj["relations"][0]
    lowered = compute_bounds(4096, eps=math.sqrt(1e-4 / 2), delta=1e-4, dkl_seq=0.01,
                             dtv_seq=0.05)
    for name in BOUND_NAMES:
        assert r["bounds"][name] >= lowered[name] * (1 - RTOL)


def test_dbar_above_eps_raises_eps_not_clips_dbar():
    """Dbar_t > eps raises eps (the old evaluate rule clipped Dbar_t down to eps)."""
    T = 50
    dbar = np.full(T, 2e-3)
    dbar[7] = 9e-3
    r = plugin_bounds(T, eps=5e-3, delta=1e-4, dkl_seq=0.004, dtv_seq=0.05, dbar=dbar)
    assert r["inputs"]["eps"] == 9e-3
    assert r["inputs"]["dbar"] == dbar.tolist()
    assert r["inputs"]["delta"] >= 2 * 9e-3**2


def test_zero_tv_with_positive_kl_is_raised():
    """eps = 0 with delta > 0 (the false certificate B* = 0) becomes eps = sqrt(delta/2)."""
    r = plugin_bounds(4096, eps=0.0, delta=1e-4, dkl_seq=0.01, dtv_seq=0.0)
    assert r["inputs"]["eps"] == math.sqrt(1e-4 / 2)
    assert r["inputs"]["dtv_seq"] == pytest.approx(math.sqrt(0.01 / 2), rel=1e-15)
    assert r["bounds"]["unified"] > 0


def test_all_zero_stays_zero():
    r = plugin_bounds(10, eps=0.0, delta=0.0, dkl_seq=0.0, dtv_seq=0.0, dbar=np.zeros(10))
    assert r["inputs"]["adjusted"] == [] and r["bounds"]["unified"] == 0.0


@pytest.mark.parametrize("kw, match", [
    ({"delta": float("nan")}, "delta must be finite"),
    ({"dkl_seq": -1.0}, "dkl_seq must be >= 0"),
    ({"T": 0}, "positive integer"),
    ({"dbar": [0.1, float("inf")]}, r"dbar must be finite and >= 0, got dbar\[1\]"),
])
def test_bad_estimates_raise_one_line(kw, match):
    base = dict(T=2, eps=0.1, delta=0.1, dkl_seq=0.01, dtv_seq=0.05)
    with pytest.raises(ValueError, match=match) as info:
        plugin_bounds(**{**base, **kw})
    assert "\n" not in str(info.value) and "np.float64" not in str(info.value)
