"""Certified bounds from logs (docs/theory.md §9): Lemma 9.1 (TV is the rollout mean of
(1 - rho)_+), Theorem 9.3 (|Error| <= sum_t Dbar_t, with or without absolute continuity, and
attained), the reward-range scaling, and certify_linear / certify_sums with their conditions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.certify import certify_linear, upper_confidence_bound
from trm_bounds.certify.exact import sequence_table
from trm_bounds.certify.linear import CONSTANTS, certify_sums, unit_order
from trm_bounds.engines.tree import exact_report
from trm_bounds.instances.generators import GENERATORS
from trm_bounds.instances.strategies import (
    probability_vectors,
    raw_tree_instances,
    shapes,
    tree_instances,
)
from trm_bounds.instances.tree import n_contexts


def _table(inst):
    return sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, inst.reward)


@given(st.one_of(tree_instances(), raw_tree_instances()))
def test_lemma_9_1_dbar_sum_is_the_rollout_mean_of_x(inst):
    """sum_t Dbar_t (tree engine, from context tables) = E_roll[sum_t (1 - rho_t)_+]
    (enumeration over sequences); per position, the enumeration's Dbar_t equals the engine's."""
    rep, tb = exact_report(inst), _table(inst)
    np.testing.assert_allclose((tb.w_roll * tb.X).sum(), np.sum(rep["Dbar"]), RTOL, ATOL)
    np.testing.assert_allclose(tb.dbar, rep["Dbar"], RTOL, ATOL)


@given(st.one_of(tree_instances(), raw_tree_instances()))
def test_enumeration_error_agrees_with_the_tree_engine(inst):
    """Error = sum_y R(y) coef(y) and max_R |Error| from the definition J_theta - J_roll - L'
    agree with the tree engine (two independent computations) on absolutely continuous pairs."""
    rep, tb = exact_report(inst), _table(inst)
    np.testing.assert_allclose(tb.error, rep["error"], RTOL, ATOL)
    np.testing.assert_allclose(tb.error_max, rep["error_max_over_rewards"], RTOL, ATOL)


@given(st.one_of(tree_instances(), raw_tree_instances()))
def test_theorem_9_3_constant_one_absolutely_continuous(inst):
    """max_R |Error| <= sum_t Dbar_t (Theorem 9.3; published Linear has 4, sharp 2)."""
    rep = exact_report(inst)
    assert leq(rep["error_max_over_rewards"], np.sum(rep["Dbar"]))


def _rows(V):
    """Probability vectors whose entries are exactly 0 or >= 1e-6 (no subnormal ratios)."""
    def clean(p):
        p = np.where(p < 1e-6, 0.0, p)
        p[np.argmax(p)] += p.sum() == 0
        return p / p.sum()

    return probability_vectors(V).map(clean)


@st.composite
def non_ac_pairs(draw):
    """Tree pairs drawn entry by entry with exact zeros in both policies (theta << roll may
    fail: a top-p/top-k rollout), rewards in [0, 1]."""
    V, T, n = draw(shapes(3, 3, 2, 27))
    C = n_contexts(V, T)
    p_x = draw(probability_vectors(n, 1e-3))
    pr = np.array([[draw(_rows(V)) for _ in range(C)] for _ in range(n)])
    pt = np.array([[draw(_rows(V)) for _ in range(C)] for _ in range(n)])
    R = np.array([draw(st.lists(st.floats(0, 1), min_size=V**T, max_size=V**T))
                  for _ in range(n)])
    return p_x, pr, pt, R


@given(non_ac_pairs())
def test_theorem_9_3_holds_without_absolute_continuity(pair):
    """max_R |Error| <= sum_t Dbar_t for pairs with zeros anywhere, Error from its definition;
    and the Lemma 9.1 identity holds there too (TV without absolute continuity)."""
    tb = sequence_table(*pair)
    assert leq(tb.error_max, tb.dbar_sum)
    np.testing.assert_allclose((tb.w_roll * tb.X).sum(), tb.dbar_sum, RTOL, ATOL)


def test_random_search_never_exceeds_constant_one_and_gets_close():
    """2,000 random pairs (half with zeros, half local perturbations): max ratio
    max_R |Error| / sum Dbar is <= 1 and above 0.9 (the constant cannot be lowered much)."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(2000):
        V, T, n = int(rng.integers(2, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        C = n_contexts(V, T)

        def pol(sparse, V=V, n=n, C=C):
            w = rng.dirichlet(np.full(V, rng.choice([0.1, 0.5, 2.0])), size=(n, C))
            if sparse:
                w = np.where(rng.random(w.shape) < 0.3, 0.0, w)
                w[..., 0] += w.sum(-1) == 0
                w /= w.sum(-1, keepdims=True)
            return w

        pr, pt = pol(rng.random() < 0.5), pol(rng.random() < 0.5)
        tb = sequence_table(rng.dirichlet(np.ones(n)), pr, pt, rng.random((n, V**T)))
        assert leq(tb.error_max, tb.dbar_sum)
        if tb.dbar_sum > 1e-6:
            worst = max(worst, tb.error_max / tb.dbar_sum)
    assert worst > 0.9


@pytest.mark.parametrize("a", [0.01, 0.3, 1.0])
def test_theorem_9_3_attained_without_absolute_continuity(a):
    """Instance (i) of §9: roll = (1, 0), theta = (1 - a, a), R = 1[y = 1]: Error = a = Dbar_1."""
    tb = sequence_table([1.0], [[[1.0, 0.0]]], [[[1 - a, a]]], [[0.0, 1.0]])
    np.testing.assert_allclose([tb.error, tb.error_max, tb.dbar_sum], [a, a, a], RTOL, ATOL)


@pytest.mark.parametrize("eta", [0.2, 0.01, 1e-4])
def test_theorem_9_3_approached_with_absolute_continuity(eta):
    """Instance (ii) of §9 (theta << roll): Error = (1/2 - eta)(1 - eta) and sum Dbar =
    1/2 - eta^2 (closed forms of §9) by enumeration; the ratio tends to 1 as eta -> 0."""
    pr = np.array([[[1 - eta, eta], [0.5, 0.5], [1 - eta, eta]]])
    pt = np.array([[[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]]])
    R = np.array([[0.0, 0.0, 0.0, 1.0]])  # 1[y1 = y2 = 1]
    tb = sequence_table([1.0], pr, pt, R)
    np.testing.assert_allclose(tb.error, (0.5 - eta) * (1 - eta), RTOL, ATOL)
    np.testing.assert_allclose(tb.dbar_sum, 0.5 - eta**2, RTOL, ATOL)
    assert leq(tb.error_max, tb.dbar_sum)


# ---- certify_linear ----------------------------------------------------------------------


def _sample(inst, n, seed):
    """``n`` sequences of a tree instance from pi_roll: log-probs (n, T) of both policies."""
    tb = _table(inst)
    rng = np.random.default_rng(seed)
    w = tb.w_roll.ravel()
    idx = rng.choice(w.size, size=n, p=w / w.sum())
    x_idx, seq = np.divmod(idx, inst.V**inst.T)
    V, T = inst.V, inst.T
    tok = (seq[:, None] // V ** np.arange(T - 1, -1, -1)) % V
    ctx = (V ** np.arange(T) - 1) // (V - 1) + seq[:, None] // V ** np.arange(T, 0, -1)
    lr = np.log(inst.pi_roll[x_idx[:, None], ctx, tok])
    with np.errstate(divide="ignore"):
        lp = np.log(inst.pi_theta[x_idx[:, None], ctx, tok])
    return lp, lr, inst.reward[x_idx, seq], tb


def test_certify_linear_keys_constants_and_x_two_ways():
    """Every key; bound = c * ucb with c = 4 (published) or 2 (sharp), bounds for all three
    constants; the estimate is the mean of sum_t max(0, 1 - exp(r_t)) (direct formula)."""
    inst = GENERATORS["dense"](4, 3, 4, 2)
    lp, lr, _, _ = _sample(inst, 300, 1)
    m = np.ones_like(lp)
    out = certify_linear(lp, lr, m, T_max=4)
    assert set(out) >= {"level", "method", "n_sequences", "dbar_sum_estimate", "dbar_sum_ucb",
                        "bound", "conditions", "T_max", "width", "bounds", "bound_proved_here"}
    x = np.maximum(0.0, 1.0 - np.exp(lp - lr)).sum(axis=1)
    np.testing.assert_allclose(out["dbar_sum_estimate"], x.mean(), RTOL, ATOL)
    np.testing.assert_allclose(out["dbar_sum_ucb"], upper_confidence_bound(
        x[unit_order(x.size)], upper=4.0, level=0.95, method="betting"), RTOL, ATOL)
    in_log_order = certify_linear(lp, lr, m, T_max=4, order_seed=None)
    np.testing.assert_allclose(in_log_order["dbar_sum_ucb"], upper_confidence_bound(
        x, upper=4.0, level=0.95, method="betting"), RTOL, ATOL)
    sharp = certify_linear(lp, lr, m, T_max=4, sharp=True)
    assert out["bound"] == 4 * out["dbar_sum_ucb"] and sharp["bound"] == 2 * out["dbar_sum_ucb"]
    assert out["bounds"] == {k: c * out["dbar_sum_ucb"] for k, c in CONSTANTS.items()}
    assert out["bound_proved_here"] == out["dbar_sum_ucb"]
    assert out["width"] == out["dbar_sum_ucb"] - out["dbar_sum_estimate"] >= 0
    assert out["n_sequences"] == 300 and out["T_max"] == 4 and out["level"] == 0.95
    assert any("absolute continuity" in c for c in out["conditions"])


def test_certify_linear_mask_ragged_and_t_max():
    """Padding is ignored whatever it holds; the range is the a-priori T_max (a larger T_max
    widens the bound); a row longer than T_max is an error naming the row."""
    rng = np.random.default_rng(2)
    lr = np.log(rng.uniform(0.05, 1, (200, 10)))
    lp = np.minimum(lr + rng.normal(0, 0.3, lr.shape), 0.0)
    m = np.arange(10)[None, :] < rng.integers(1, 8, 200)[:, None]
    lp_pad = np.where(m, lp, np.nan)
    a = certify_linear(lp_pad, lr, m, T_max=10)
    x = np.where(m, np.maximum(0, 1 - np.exp(lp - lr)), 0).sum(axis=1)
    np.testing.assert_allclose(a["dbar_sum_estimate"], x.mean(), RTOL, ATOL)
    assert a["T_max"] == 10
    b = certify_linear(lp, lr, m, T_max=64)
    assert b["T_max"] == 64 and b["dbar_sum_ucb"] >= a["dbar_sum_ucb"]
    row = int(np.flatnonzero(m.sum(axis=1) > 2)[0])
    with pytest.raises(ValueError, match=f"row {row}: .* more than T_max = 2"):
        certify_linear(lp, lr, m, T_max=2)


def test_certify_linear_torch_float32_equals_numpy():
    """Torch tensors (float32) give the numbers of the same values as float64 numpy arrays."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    lr = np.log(rng.uniform(0.05, 1, (64, 6))).astype(np.float32)
    lp = np.minimum(lr + rng.normal(0, 0.2, lr.shape), 0.0).astype(np.float32)
    m = np.ones_like(lr)
    a = certify_linear(torch.from_numpy(lp), torch.from_numpy(lr), torch.from_numpy(m), T_max=6)
    b = certify_linear(lp.astype(np.float64), lr.astype(np.float64), m, T_max=6)
    assert a == b


def test_certify_linear_theta_zero_counts_full_divergence():
    """log_probs = -inf (theta gives the sampled token 0): (1 - rho)_+ = 1 exactly."""
    lr = np.log(np.full((4, 3), 0.5))
    lp = lr.copy()
    lp[:, 0] = -np.inf
    assert certify_linear(lp, lr, np.ones((4, 3)), T_max=3)["dbar_sum_estimate"] == 1.0


@pytest.mark.parametrize("field, value, msg", [
    ("lp", np.nan, "log_probs: row 1, token 1: NaN"), ("lp", np.inf, "log_probs: row 1.*\\+inf"),
    ("lr", np.nan, "rollout_log_probs: row 1.*NaN"), ("lr", -np.inf, "rollout_log_probs: row 1.*-inf"),
    ("lp", 1e-3, "log_probs: row 1, token 1: log-probability above"),
    ("lr", 0.5, "rollout_log_probs: row 1, token 1: log-probability above"),
])
def test_certify_linear_bad_logprobs_name_the_field(field, value, msg):
    """NaN / +inf in either field, -inf in the rollout's, at a valid position: ValueError."""
    lp, lr = np.full((3, 2), -0.5), np.full((3, 2), -0.5)
    (lp if field == "lp" else lr)[1, 1] = value
    with pytest.raises(ValueError, match=msg):
        certify_linear(lp, lr, np.ones((3, 2)), T_max=2)


def test_certify_linear_no_valid_token_and_shapes():
    """A zero mask and mismatched shapes are one-line ValueErrors."""
    with pytest.raises(ValueError, match="no valid token"):
        certify_linear(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), T_max=2)
    with pytest.raises(ValueError, match="rollout_log_probs: shape"):
        certify_linear(np.zeros((2, 2)), np.zeros((2, 3)), np.ones((2, 2)), T_max=2)


# ---- the conditions of the certificate (docs/theory.md §9): range, groups, rewards, rows ----


@pytest.mark.parametrize("bad", [None, 8.7, 0, -3, True, np.nan, np.inf, "8"])
def test_t_max_must_be_a_given_positive_integer(bad):
    """No default from the data: None, non-integers, 0, bool, NaN are one-line errors."""
    lp = np.full((4, 3), -0.5)
    with pytest.raises(ValueError, match="T_max"):
        certify_linear(lp, lp, np.ones((4, 3)), T_max=bad)
    with pytest.raises(ValueError, match="T_max"):
        certify_sums(np.zeros(4), T_max=bad)


def test_t_max_missing_names_the_generation_limit():
    lp = np.full((4, 3), -0.5)
    with pytest.raises(ValueError, match="generation limit.*observed maximum is not a valid"):
        certify_linear(lp, lp, np.ones((4, 3)))
    assert certify_linear(lp, lp, np.ones((4, 3)), T_max=np.int64(3))["T_max"] == 3
    assert certify_linear(lp, lp, np.ones((4, 3)), T_max=3.0)["T_max"] == 3


@pytest.mark.parametrize("value", [-1.0, 0.5, 2.0, np.nan])
def test_mask_values_other_than_0_1_name_the_row(value):
    lp = np.full((4, 3), -0.5)
    m = np.ones((4, 3))
    m[2, 1] = value
    with pytest.raises(ValueError, match="mask: row 2, token 1"):
        certify_linear(lp, lp, m, T_max=3)


def test_empty_rows_are_not_sequences():
    """All-masked rows are excluded from N (half padding rows do not halve the estimate) and
    counted; the certificate equals the one without those rows."""
    rng = np.random.default_rng(5)
    lr = np.log(rng.uniform(0.05, 1, (40, 6)))
    lp = np.minimum(lr + rng.normal(0, 0.4, lr.shape), 0.0)
    m = np.ones((40, 6))
    padded = [np.concatenate([a, np.zeros_like(a)]) for a in (lp, lr, m)]
    a = certify_linear(lp, lr, m, T_max=6)
    b = certify_linear(*padded, T_max=6)
    assert b["n_sequences"] == a["n_sequences"] == a["n_units"] == 40
    assert b["n_empty_rows"] == 40 and a["n_empty_rows"] == 0
    for k in ("dbar_sum_estimate", "dbar_sum_ucb", "bound"):
        assert a[k] == b[k], k


def test_groups_certify_the_mean_of_group_means():
    """group_ids: the UCB is the one of the group means on [0, T_max]; unit, counts, sizes;
    without groups a condition says one response per prompt is assumed."""
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 3, 64)
    gid = np.repeat(np.arange(8), 8)[rng.permutation(64)]
    out = certify_sums(x, T_max=10, group_ids=gid)
    gm = np.array([x[gid == g].mean() for g in range(8)])  # per-group loop: a second route
    np.testing.assert_allclose(out["dbar_sum_estimate"], gm.mean(), RTOL, ATOL)
    assert out["dbar_sum_ucb"] == max(gm.mean(), upper_confidence_bound(gm, upper=10.0))
    assert (out["unit"], out["n_units"], out["n_sequences"]) == ("group", 8, 64)
    assert out["group_size"] == {"min": 8, "median": 8.0, "max": 8}
    seq = certify_sums(x, T_max=10)
    assert seq["unit"] == "sequence" and seq["group_size"] is None
    assert any("one response per prompt" in c for c in seq["conditions"])
    ids = [("p", int(g)) if g % 2 else str(g) for g in gid]  # mixed hashables
    assert certify_sums(x, T_max=10, group_ids=np.array(ids, dtype=object))["n_units"] == 8


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.0, 1000.0), (-3.0, 5.0), (1.0, 2.0),
                                    (-4.0, -1.0)])
def test_reward_range_scales_the_bound(lo, hi):
    """bound = ((hi - lo) c + dist(0, [lo, hi])) U for each constant; dbar_* unscaled."""
    x = np.random.default_rng(7).uniform(0, 1, 100)
    base = certify_sums(x, T_max=4)
    out = certify_sums(x, T_max=4, reward_range=(lo, hi))
    d = max(lo, -hi, 0.0)
    assert out["dbar_sum_ucb"] == base["dbar_sum_ucb"] and out["reward_range"] == [lo, hi]
    for k, c in CONSTANTS.items():
        np.testing.assert_allclose(out["bounds"][k], ((hi - lo) * c + d) * base["dbar_sum_ucb"],
                                   RTOL, ATOL)
    with pytest.raises(ValueError, match="reward_range"):
        certify_sums(x, T_max=4, reward_range=(1.0, 1.0))


@st.composite
def non_ac_pairs_any_reward_range(draw):
    p_x, pr, pt, _ = draw(non_ac_pairs())
    lo = draw(st.floats(-5, 5))
    hi = lo + draw(st.floats(0.01, 10))
    return p_x, pr, pt, lo, hi


@given(non_ac_pairs_any_reward_range())
def test_reward_range_bound_holds_exactly_without_absolute_continuity(case):
    """max over R in [lo, hi] of |Error| <= ((hi - lo) + dist(0, [lo, hi])) sum_t Dbar_t
    (§9, reward ranges), Error from its definition, with or without absolute continuity."""
    p_x, pr, pt, lo, hi = case
    tb = sequence_table(p_x, pr, pt, np.zeros((pr.shape[0], pr.shape[-1] ** _depth(pr))))
    pos, neg = np.clip(tb.coef, 0, None).sum(), np.clip(-tb.coef, 0, None).sum()
    worst = max(abs(hi * pos - lo * neg), abs(lo * pos - hi * neg))
    assert leq(worst, ((hi - lo) + max(lo, -hi, 0.0)) * tb.dbar_sum)


def test_reward_range_offset_is_needed_without_absolute_continuity():
    """Instance (i) of §9 with R in [1, 2]: Error = 2a = hi * Dbar, more than (hi - lo) Dbar."""
    a = 0.3
    tb = sequence_table([1.0], [[[1.0, 0.0]]], [[[1 - a, a]]], [[1.0, 2.0]])
    np.testing.assert_allclose(tb.error, 2 * a, RTOL, ATOL)
    assert tb.error > (2 - 1) * tb.dbar_sum and leq(tb.error, (1 + 1) * tb.dbar_sum)


def _depth(pr):
    """Horizon T of a tree layout with C = (V^T - 1) / (V - 1) contexts."""
    V, C = pr.shape[-1], pr.shape[1]
    return int(round(np.log(C * (V - 1) + 1) / np.log(V)))
