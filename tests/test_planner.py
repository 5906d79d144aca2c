"""The threshold planner (trm_bounds.planner; docs/theory.md §4, §5, §9).

The planner's inverse is checked against :func:`trm_bounds.bounds.compute_bounds` called
with inputs built here by hand (the parametrisation of the issue: eps = sqrt(delta/2),
D_KL^seq = T delta, D_TV^seq = Pinsker capped by the coupling relation, Dbar_t = eps), not
through :func:`trm_bounds.planner.plan_inputs`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trm_bounds.bounds import compute_bounds
from trm_bounds.certify.confidence import upper_confidence_bound
from trm_bounds.planner import (
    largest_delta,
    plan,
    plan_inputs,
    required_sample_size,
    sequences_for_width,
    unified_at,
)


def b_star(T: int, delta: float, *, dkl_seq: float | None = None, sharp: bool = False) -> float:
    """B* at the uniform worst case, inputs written out from the issue's definition."""
    eps = min(1.0, math.sqrt(delta / 2))
    dkl = T * delta if dkl_seq is None else dkl_seq
    dtv = min(1.0, math.sqrt(dkl / 2), 1 - (1 - eps) ** T)
    return compute_bounds(T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv, sharp=sharp)["unified"]


def test_issue_example_to_the_printed_digits():
    """Issue 13: B* < 1 at T = 4096 needs delta <= 2.9e-6 published, 5.7e-6 sharp (two
    significant digits, as printed)."""
    p = plan(4096, 1.0)
    assert f"{p['delta_published']:.1e}" == "2.9e-06"
    assert f"{p['delta_sharp']:.1e}" == "5.7e-06"


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 20000), log_target=st.floats(-3.0, 3.0), sharp=st.booleans())
def test_inverse_against_compute_bounds(T, log_target, sharp):
    """B*(delta) <= target at the returned delta and B*(delta (1 + 1e-6)) > target."""
    target = 10.0**log_target
    d = largest_delta(T, target, sharp=sharp)
    if d == math.inf:  # every delta meets the target: then so does the saturated one
        assert b_star(T, 2.0, sharp=sharp) <= target
        return
    assert 0 < d < 2
    assert b_star(T, d, sharp=sharp) <= target < b_star(T, d * (1 + 1e-6), sharp=sharp)


@pytest.mark.parametrize("T, dkl_seq, target", [(4096, 0.01, 1.0), (512, 0.05, 5.0),
                                                (64, 1e-3, 0.2)])  # fmt: skip
def test_inverse_with_fixed_dkl_seq(T, dkl_seq, target):
    """With D_KL^seq fixed the same inversion holds (the search starts at D_KL^seq / T)."""
    for sharp in (False, True):
        d = largest_delta(T, target, dkl_seq=dkl_seq, sharp=sharp)
        assert d >= dkl_seq / T
        assert b_star(T, d, dkl_seq=dkl_seq, sharp=sharp) <= target
        assert b_star(T, d * (1 + 1e-6), dkl_seq=dkl_seq, sharp=sharp) > target


def test_no_and_every_threshold():
    """0.0 when even the smallest consistent delta misses; inf when the saturated B* meets."""
    assert largest_delta(4096, 1e-6, dkl_seq=1.0) == 0.0
    assert b_star(4096, 1.0 / 4096, dkl_seq=1.0) > 1e-6
    assert largest_delta(512, 0.5, dkl_seq=0.05) == 0.0 < largest_delta(512, 1.0, dkl_seq=0.05,
                                                                          sharp=True)
    assert b_star(512, 0.05 / 512, dkl_seq=0.05) > 0.5
    assert largest_delta(8, 1e6) == math.inf


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 5000), sharp=st.booleans())
def test_b_star_is_non_decreasing_in_delta(T, sharp):
    """The monotonicity the bisection relies on (proved in the module docstring)."""
    ds = np.geomspace(1e-9, 4.0, 60)
    vals = [unified_at(T, float(d), sharp=sharp) for d in ds]
    assert all(a <= b * (1 + 1e-12) for a, b in zip(vals, vals[1:], strict=False))


def test_equal_lengths_reduce_to_the_uniform_case():
    """Lengths all equal to T: D_KL^seq = T delta and Dbar_t = eps, the uniform worst case."""
    T = 300
    kw = plan_inputs(T, 1e-3, lengths=np.full(7, T))
    np.testing.assert_allclose(kw["dbar"], np.full(T, kw["eps"]), rtol=1e-15)
    assert kw["dkl_seq"] == pytest.approx(T * 1e-3, rel=1e-15)
    for sharp in (False, True):
        assert largest_delta(T, 0.3, lengths=np.full(7, T), sharp=sharp) == pytest.approx(
            largest_delta(T, 0.3, sharp=sharp), rel=1e-9)


def test_lengths_plan_and_quantiles():
    """Shorter responses allow a larger threshold; each quantile row is the plan of the
    lengths cut at that quantile, and the plan's delta meets the target at its horizon."""
    rng = np.random.default_rng(3)
    L = rng.integers(10, 2001, size=500)
    p = plan(None, 1.0, lengths=L)
    assert p["T"] == int(L.max())
    assert p["delta_published"] > largest_delta(p["T"], 1.0)
    assert unified_at(p["T"], p["delta_published"], lengths=L) <= 1.0
    for row in p["quantiles"]:
        Tq = int(np.quantile(L, row["quantile"], method="inverted_cdf"))
        assert row["T"] == Tq
        assert row["delta_sharp"] == largest_delta(Tq, 1.0, lengths=np.minimum(L, Tq), sharp=True)
    qs = [r["delta_published"] for r in p["quantiles"]]
    assert qs == sorted(qs, reverse=True)  # longer horizons need smaller thresholds


@pytest.mark.parametrize("bad, match", [
    (dict(T=0, target=1.0), "T must be a positive integer"),
    (dict(T=10, target=-1.0), "target must be a finite positive number"),
    (dict(T=10, target=1.0, lengths=[3, 0]), "lengths must be positive integers"),
    (dict(T=2, target=1.0, lengths=[3]), "below the longest logged length 3"),
])  # fmt: skip
def test_plan_errors_are_one_line(bad, match):
    with pytest.raises(ValueError, match=match) as exc:
        plan(bad.pop("T"), bad.pop("target"), **bad)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("T_max, width, level, sharp", [(100, 40.0, 0.95, False),
                                                        (4096, 10.0, 0.99, True),
                                                        (7, 0.5, 0.9, False)])  # fmt: skip
def test_hoeffding_sequences_is_the_smallest_n(T_max, width, level, sharp):
    """At N the certificate's width c (UCB - mean) is <= width, at N - 1 it is not; the
    width is read off the library's Hoeffding bound on zero samples (UCB - mean exactly)."""
    r = sequences_for_width(width, T_max=T_max, level=level, sharp=sharp)
    n, c = r["n_sequences"], r["constant"]

    def w(k: int) -> float:
        return c * upper_confidence_bound(np.zeros(k), upper=T_max, level=level,
                                          method="hoeffding")  # fmt: skip

    assert w(n) <= width * (1 + 1e-12)
    assert n == 1 or w(n - 1) > width


def test_bernstein_planning_is_the_smallest_n_at_zero_variance():
    """With variance 0 the empirical Bernstein width is its range term: compare with the
    library's bound on zero samples (sample variance 0)."""
    T_max, width, level = 50, 4.0, 0.95
    n = sequences_for_width(width, T_max=T_max, level=level, method="bernstein",
                            variance=0.0)["n_sequences"]  # fmt: skip

    def w(k: int) -> float:
        return 4 * upper_confidence_bound(np.zeros(k), upper=T_max, level=level,
                                          method="bernstein")  # fmt: skip

    assert w(n) <= width * (1 + 1e-12) < w(n - 1)
    # the worst-case variance T^2/4 needs more sequences
    assert sequences_for_width(width, T_max=T_max, method="bernstein")["n_sequences"] > n


def test_sequences_for_width_refuses_betting():
    with pytest.raises(ValueError, match="method must be 'hoeffding' or 'bernstein'"):
        sequences_for_width(1.0, T_max=10, method="betting")


# ---- required_sample_size: how many sequences for a certified bound of X ---------------------


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 512), target=st.floats(0.5, 50.0), level=st.sampled_from([0.8, 0.95, 0.99]),
       method=st.sampled_from(["betting", "bernstein", "hoeffding"]),
       c=st.sampled_from([1.0, 2.0, 4.0]))
def test_required_sample_size_is_the_best_case_threshold(T, target, level, method, c):
    """At n_units the library's own bound on n zeros, times c, is <= target; at n - 1 it is
    not (or n - 1 is too few for the method); and n is never below the lower limit of any
    valid bound, T (1 - alpha^(1/N)) <= u."""
    r = required_sample_size(target, T_max=T, level=level, method=method, constant=c)
    n = r["n_units"]

    def ucb(k):
        return upper_confidence_bound(np.zeros(k), upper=float(T), level=level, method=method)

    assert ucb(n) <= r["ucb_needed"] and r["ucb_needed"] == target / c
    assert (n - 1 < (2 if method == "bernstein" else 1)) or ucb(n - 1) > r["ucb_needed"]
    assert n >= r["lower_limit"] - 1e-9
    assert T * (1 - (1 - level) ** (1 / r["lower_limit"])) <= target / c * (1 + 1e-9)


def test_required_sample_size_reproduces_the_issue_number():
    """Issue 17: with every X_i = 0 at T_max = 4096 and N = 2,048 the level-0.95 betting
    certificate (constant 1) is the library's U; asking for that bound returns N <= 2,048, and
    Hoeffding's closed form ceil(T^2 log(1/alpha) / (2 u^2)) for Hoeffding."""
    U = upper_confidence_bound(np.zeros(2048), upper=4096.0, level=0.95, method="betting")
    assert 8.1 < U < 8.2
    assert required_sample_size(U, T_max=4096, constant=1.0)["n_units"] <= 2048
    u = 2.0
    n = required_sample_size(u, T_max=100, method="hoeffding", constant=1.0)["n_units"]
    assert n == math.ceil(100**2 * math.log(20) / (2 * u * u) - 1e-9)


def test_required_sample_size_reward_range_and_errors():
    """The reward range divides the UCB needed by (hi - lo) c + dist(0, [lo, hi])."""
    a = required_sample_size(8.0, T_max=50, constant=1.0, reward_range=(-3, 5))
    b = required_sample_size(1.0, T_max=50, constant=1.0)
    assert a["n_units"] == b["n_units"] and a["ucb_needed"] == b["ucb_needed"] == 1.0
    assert required_sample_size(2.0, T_max=50, constant=1.0, reward_range=(1, 2))["ucb_needed"] == 1.0
    for kw, msg in (({"T_max": None}, "T_max"), ({"T_max": 10, "method": "x"}, "method"),
                    ({"T_max": 10, "level": 1.0}, "level")):
        with pytest.raises(ValueError, match=msg):
            required_sample_size(1.0, **kw)
    with pytest.raises(ValueError, match="target"):
        required_sample_size(0.0, T_max=10)


def test_plan_cli_answers_the_sample_size_question(capsys):
    """trm-bounds plan --max-response-length 4096 --certified-bound X: one line per constant
    with the library's n_units and lower limit; --json has them under sample_size."""
    from trm_bounds.cli import main

    assert main(["plan", "--max-response-length", "4096", "--certified-bound", "8.16"]) == 0
    out = capsys.readouterr().out
    for variant, c in (("published", 4), ("sharp", 2), ("proved_here", 1)):
        r = required_sample_size(8.16, T_max=4096, constant=c)
        assert f"{variant}: A certified bound <= 8.16" in out
        assert f"needs N >= {r['n_units']} sequences" in out and str(r["lower_limit"]) in out
    assert main(["plan", "--T", "100", "--certified-bound", "2", "--reward-range", "0", "10",
                 "--method", "hoeffding", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["sample_size"]["proved_here"] == required_sample_size(
        2.0, T_max=100, method="hoeffding", constant=1.0, reward_range=(0, 10))
    assert main(["plan", "--T", "100"]) != 0
    assert "--certified-bound" in capsys.readouterr().err
