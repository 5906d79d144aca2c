"""The decisions of :mod:`trm_bounds.studies._power_law` keep their margin above float noise.

A decay rate, a power-law window or a sign change drawn from computed floats must not change
when the floats move by float noise (module docstring of ``_power_law``): the decay found in
float noise on one CPU (``exp(-T/35585734250428)`` on a curve flat to 1e-14) is no decay; the
committed curves give the same decisions under many random relative perturbations of
``REL_NOISE``; a curve built to sit on a threshold raises ``MarginError`` instead of deciding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trm_bounds.margins import REL_NOISE, MarginError
from trm_bounds.studies._power_law import (
    MIN_DECAY_FALL,
    POWER_LAW_TOL,
    fit_exponential_tail,
    fit_power_law,
    power_law_window,
    sign_changes,
)
from trm_bounds.studies.tabular_scaling import NOISE_FLOOR, error_shape

ROOT = Path(__file__).resolve().parents[2]
GRID = np.array([2, 3, 5, 7, 10, 15, 23, 34, 51, 77, 115, 173, 260, 390, 585, 877, 1316, 1974,
                 2962, 4443, 6666, 10000], dtype=np.float64)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(level=st.floats(1e-8, 1.0), rate=st.floats(-3e-13, 3e-13), seed=st.integers(0, 2**32 - 1))
def test_a_curve_flat_up_to_float_noise_has_no_decay(level, rate, seed):
    """A constant curve times ``exp(-rate T)`` with ``|rate| <= 3e-13`` (the AMD CPU found
    2.8e-14) plus relative noise up to ``REL_NOISE``: no exponential tail, whatever the noise."""
    rng = np.random.default_rng(seed)
    y = level * np.exp(-rate * GRID) * (1 + rng.uniform(-REL_NOISE, REL_NOISE, GRID.size))
    assert fit_exponential_tail(GRID, y, floor=NOISE_FLOOR) is None


def test_the_decay_found_in_float_noise_is_no_decay():
    """The committed uniform_mixing curve of tabular_scaling.json times exp(-2.8e-14 T), the
    decay another CPU reported, is flat: no decay; its power-law window is unchanged."""
    sec = json.loads((ROOT / "trm_bounds/data/results/tabular_scaling.json").read_text())
    reg = sec["regimes"]["uniform_mixing"]
    y = np.asarray(reg["error_max_over_rewards"]) * np.exp(-2.8e-14 * GRID)
    assert fit_exponential_tail(GRID, y, floor=NOISE_FLOOR) is None
    fit = fit_power_law(GRID, y, floor=NOISE_FLOOR)
    assert fit["window"] == reg["fits"]["error_max_over_rewards"]["window"]


def test_a_decay_must_fall_by_the_floor():
    """``exp(-T/tau)`` on ``T`` in [100, 800] is a decay when it falls by more than a factor 2
    (``tau = 500``: falls by e^1.4) and none when it falls less (``tau = 2000``: e^0.35), even
    though both have perfectly constant local rates; the rate is recovered when found."""
    T = np.array([100.0, 200.0, 400.0, 800.0])
    fast, slow = np.exp(-T / 500), np.exp(-T / 2000)
    assert np.log(fast[0] / fast[-1]) > MIN_DECAY_FALL > np.log(slow[0] / slow[-1])
    assert fit_exponential_tail(T, fast)["rate"] == pytest.approx(1 / 500, rel=1e-9)
    assert fit_exponential_tail(T, slow) is None


def test_committed_curves_decide_the_same_under_perturbation():
    """Every regime of the committed tabular_scaling.json: the power-law window of
    max_R|Error|, its decay and the sign changes of Error are those stored in the file, and
    stay the same under 60 random relative perturbations of REL_NOISE (fixed seed; the
    detector before the margin flipped its decay decision in 7 of 200 such perturbations of
    each mixing regime)."""
    regs = json.loads((ROOT / "trm_bounds/data/results/tabular_scaling.json").read_text())["regimes"]
    rng = np.random.default_rng(0)
    for name, reg in regs.items():
        T = np.asarray(reg["T"], dtype=np.float64)
        err, m = np.asarray(reg["error"]), np.asarray(reg["error_max_over_rewards"])
        want_fit = reg["fits"]["error_max_over_rewards"]
        want = {"sign_changes": reg["sign_changes"], "decay": reg["decay"]}
        for _ in range(60):
            u = 1 + rng.uniform(-REL_NOISE, REL_NOISE, (2, T.size))
            fit = fit_power_law(T, m * u[1], floor=NOISE_FLOOR)
            assert (fit is None) == (want_fit is None), name
            if fit is not None:
                assert fit["window"] == want_fit["window"], name
                assert fit["slope"] == pytest.approx(want_fit["slope"], abs=1e-6), name
            got = error_shape(T, err * u[0], m * u[1])
            assert got["sign_changes"] == want["sign_changes"], name
            assert (got["decay"] is None) == (want["decay"] is None), name
            if got["decay"] is not None:
                assert got["decay"]["window"] == want["decay"]["window"], name
                assert got["decay"]["rate"] == pytest.approx(want["decay"]["rate"], rel=1e-6)


def test_a_local_slope_on_the_tolerance_is_refused():
    """Local slopes 1, 1, 1, 1, 1 + POWER_LAW_TOL: the last one sits on the tolerance, so
    whether the window includes it depends on float noise; the window is refused
    (MarginError) instead of decided.  Moved by 10x the noise band either way, it is decided."""
    T = np.geomspace(1, 1e5, 6)
    for extra, outcome in ((POWER_LAW_TOL, None), (POWER_LAW_TOL - 1e-6, 1e5),
                           (POWER_LAW_TOL + 1e-6, 1e4)):  # fmt: skip
        slopes = np.array([1.0, 1.0, 1.0, 1.0, 1.0 + extra])
        y = np.exp(np.concatenate([[0.0], np.cumsum(slopes * np.diff(np.log(T)))]))
        if outcome is None:
            with pytest.raises(MarginError, match="power-law window"):
                power_law_window(T, y)
        else:
            assert power_law_window(T, y)[1] == pytest.approx(outcome)


def test_sign_changes_skip_rounding_zeros_and_refuse_values_near_the_floor():
    """Values at most the floor are zeros (no sign change through them counted twice); a
    value within a factor 2 of the floor is too close to call."""
    T = np.arange(1.0, 6.0)
    y = np.array([1e-3, 5e-4, -1e-14, 2e-4, -1e-3])  # -1e-14: a rounding zero
    assert sign_changes(T, y, floor=1e-13) == [[4.0, 5.0]]
    assert sign_changes(T, y) == [[2.0, 3.0], [3.0, 4.0], [4.0, 5.0]]  # no floor: every sign
    with pytest.raises(MarginError, match="sign changes"):
        sign_changes(T, np.array([1e-3, 5e-4, -1.5e-13, 2e-4, -1e-3]), floor=1e-13)
