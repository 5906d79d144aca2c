"""Tests of the finite-state DP engine (``trm_bounds.engines.dp``; docs/theory.md §2-§5).

Every quantity is checked two ways: DP against full tree enumeration
(``trm_bounds.engines.tree.exact_report`` on ``to_tree_instance``), ``L'`` by the
performance-difference form against the forward first-moment pass, time-broadcast against
materialised policy arrays, and the docs/theory.md §3 relations and every bound on random
exact instances.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.bounds import BOUND_NAMES
from trm_bounds.divergences import PINSKER_SLACK, kl
from trm_bounds.engines import _dp_step, dp
from trm_bounds.engines import tree as tabular
from trm_bounds.instances import named
from trm_bounds.instances.finite import FiniteStateInstance, to_tree_instance
from trm_bounds.instances.format import InstanceFormatError
from trm_bounds.report import REPORT_KEYS

FS = "finite_state"
#: Keys shared with the tree engine.
SHARED_KEYS = tuple(k for k in REPORT_KEYS if k != "error_max_over_rewards")
KINDS = (
    "uniform",
    "uniform_nonhom",
    "sparse_end",
    "sparse_start",
    "staleness",
    "moe",
    "noise",
    "walk",
    "walk_sparse",
)


def make(kind: str, T: int, S: int, V: int, seed: int) -> FiniteStateInstance:
    """One instance of each generator kind (sizes small enough for tree enumeration)."""
    if kind == "uniform":
        return named.uniform_divergence(V, T, S=S, form=FS, delta=0.05, seed=seed)
    if kind == "uniform_nonhom":
        return named.uniform_divergence(V, T, S=S, form=FS, delta=0.05, seed=seed, time_homogeneous=False
        )
    if kind == "sparse_end":
        return named.sparse_divergence(V, T, S=S, form=FS, k=3, kl_size=0.3, seed=seed)
    if kind == "sparse_start":
        return named.sparse_divergence(V, T, S=S, form=FS, k=3, kl_size=0.3, at="start", seed=seed)
    if kind == "staleness":
        return named.staleness(V, T, S=S, form=FS, lr=4.0, seed=seed)
    if kind == "moe":
        return named.moe_flip(V, T, S=S, form=FS, k=3, seed=seed)
    if kind == "walk":
        return named.random_walk(T, S=S + 1, form=FS, delta=0.05, offset=seed % 3)
    if kind == "walk_sparse":
        return named.random_walk(T, S=S + 1, form=FS, delta=0.05, k=3, offset=seed % 3)
    return named.dense_noise(V, T, S=S, form=FS, scale=0.5, p_zero=0.2, seed=seed)


def assert_close(a, b, what: str) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=what)


def assert_report_matches_tree(inst: FiniteStateInstance) -> None:
    """DP report == tree enumeration, every shared key, to the suite's tolerance pair."""
    rep = dp.exact_report(inst)
    tree = to_tree_instance(inst)
    ref = tabular.exact_report(tree)
    for key in SHARED_KEYS:
        if isinstance(rep[key], dict):
            for name in BOUND_NAMES:
                assert_close(rep[key][name], ref[key][name], f"{inst.name}: {key}[{name}]")
        else:
            assert_close(rep[key], ref[key], f"{inst.name}: {key}")
    # D_KL^seq by the chain rule (DP) against the direct sequence KL (tree enumeration)
    assert_close(rep["D_KL_seq"], ref["D_KL_seq_direct"], f"{inst.name}: D_KL_seq direct")
    # max over final-state rewards: the tree's error coefficients summed per final state
    c_tree = tabular.error_coefficients(tree)  # (n_prompts, V^T)
    final = _final_states(inst)  # (n_prompts, V^T)
    c_fs = np.zeros(inst.S)
    np.add.at(c_fs, final.ravel(), c_tree.ravel())
    assert_close(rep["error_max_over_rewards"], 0.5 * np.abs(c_fs).sum(), f"{inst.name}: maxR")
    assert leq(rep["error_max_over_rewards"], ref["error_max_over_rewards"])


def _final_states(inst: FiniteStateInstance) -> np.ndarray:
    """Final state of every sequence of every prompt, in the exchange sequence order."""
    rows = []
    for s0 in np.flatnonzero(inst.p0 > 0):
        states = np.array([s0])
        for _ in range(inst.T):
            states = inst.f[states].ravel()
        rows.append(states)
    return np.stack(rows)


# --------------------------------------------------------------------------- paper / theory
def test_tight_instance_reaches_sharp_bounds():
    """docs/theory.md §5: V = T = 2, Error = 2 eps^2 = sharp Classical-TV, Coupling and
    Adaptive-hybrid bounds exactly; the published ones are twice that."""
    for eps in (0.05, 0.1, 0.3):
        rep = dp.exact_report(named.tight_instance(eps, form=FS))
        assert_close(rep["error"], 2 * eps**2, "tight error")
        assert_close(rep["error_identity"], 2 * eps**2, "tight error (first moment)")
        for name in ("classical_tv", "coupling", "adaptive_hybrid"):
            assert_close(rep["bounds_sharp"][name], rep["error"], name)
            assert_close(rep["bounds_published"][name], 2 * rep["error"], name)
        # the final state is y_1 == y_2, which is all the reward needs: max_R over final-state
        # rewards equals the error of R = 1[y_1 = y_2] (docs/theory.md §2 closed form)
        assert_close(rep["error_max_over_rewards"], 2 * eps**2, "tight maxR")


def test_single_perturbed_context_has_zero_error():
    """docs/theory.md §2: one differing context makes the surrogate first-order exact."""
    for seed in range(4):
        inst = named.sparse_divergence(3, 30, S=5, form=FS, k=1, kl_size=0.5, seed=seed)
        rep = dp.exact_report(inst)
        assert rep["D_KL_seq"] > 0.0
        assert abs(rep["error"]) <= ATOL
        assert abs(rep["error_identity"]) <= ATOL
        assert rep["error_max_over_rewards"] <= ATOL


# --------------------------------------------------------------------------- tree agreement
@pytest.mark.parametrize("kind", KINDS)
def test_dp_agrees_with_tree_enumeration(kind):
    """Every exact_report key equals the tree engine's on the expanded tree."""
    for seed in range(2):
        assert_report_matches_tree(make(kind, 5, 4, 3, seed))


def test_tight_instance_agrees_with_tree():
    assert_report_matches_tree(named.tight_instance(0.2, form=FS))


@settings(max_examples=25)
@given(
    kind=st.sampled_from(KINDS),
    T=st.integers(2, 5),
    S=st.integers(1, 5),
    V=st.integers(2, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_dp_agrees_with_tree_random(kind, T, S, V, seed):
    """Property: DP == tree enumeration on random small instances of every generator."""
    assert_report_matches_tree(make(kind, T, S, V, seed))


# --------------------------------------------------------------------------- properties
@given(
    kind=st.sampled_from(KINDS),
    T=st.integers(2, 40),
    S=st.integers(1, 6),
    V=st.integers(2, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_error_within_every_bound_and_section3_relations(kind, T, S, V, seed):
    """|Error| and max_R |Error| <= every published and sharp bound; L' two ways agree to
    1e-10; docs/theory.md §3 relations; 1 - BC <= D_TV^seq <= sqrt(1 - BC^2)."""
    inst = make(kind, T, S, V, seed)
    rep = dp.exact_report(inst)
    assert abs(rep["L_prime"] - rep["L_prime_first_moment"]) <= 1e-10
    assert abs(rep["error"] - rep["error_identity"]) <= 1e-10
    for key in ("bounds_published", "bounds_sharp"):
        for name in BOUND_NAMES:
            assert leq(abs(rep["error"]), rep[key][name]), (key, name)
            assert leq(rep["error_max_over_rewards"], rep[key][name]), (key, name)
    for name in BOUND_NAMES:
        assert_close(rep["bounds_sharp"][name], rep["bounds_published"][name] / 2, name)
    res = dp.dp_exact(inst)
    eps, delta = rep["eps"], rep["delta"]
    assert leq(2 * res.tv_ts**2, res.kl_ts + PINSKER_SLACK)  # Pinsker per (t, s)
    assert leq(2 * eps**2, delta + PINSKER_SLACK) and eps <= 1.0
    assert leq(rep["Dbar"], eps)
    assert leq(rep["D_KL_seq"], T * delta)
    assert leq(2 * rep["D_TV_seq"] ** 2, rep["D_KL_seq"] + PINSKER_SLACK)
    # KL(d_t^roll || d_t^theta) over states <= sum_{s<t} E KL(c_s) <= (t-1) delta
    marg = kl(res.d_roll, res.d_theta)  # (T+1,) t = 1..T+1
    chain = np.concatenate([[0.0], np.cumsum((res.d_roll[:T] * res.kl_ts).sum(1))])
    assert leq(marg, chain + PINSKER_SLACK)
    assert leq(chain[:T], np.arange(T) * delta)
    assert leq(rep["D_TV_seq_lower"], rep["D_TV_seq"])
    if rep["D_TV_seq_method"] == "exact":
        upper = np.sqrt(max(0.0, 1 - rep["bhattacharyya"] ** 2))
        assert leq(rep["D_TV_seq"], upper)


def test_adversarial_reward_attains_max_over_final_state_rewards():
    """Error is linear in r: r = 1[c > 0] attains 1/2 sum |c| (docs/theory.md §2)."""
    for seed in range(3):
        inst = named.dense_noise(3, 12, S=5, form=FS, scale=1.0, seed=seed)
        best = inst.with_reward(dp.adversarial_reward(inst))
        rep = dp.exact_report(best)
        assert_close(rep["error"], rep["error_max_over_rewards"], "adversarial")
        assert_close(
            rep["error_max_over_rewards"], dp.exact_report(inst)["error_max_over_rewards"], ""
        )
        assert leq(abs(dp.exact_report(inst)["error"]), rep["error"])


# --------------------------------------------------------------------------- long horizons
def test_time_broadcast_equals_materialised_arrays():
    """The time-homogeneous fast path equals the general path on the same policies
    (several chunks: T exceeds the chunk length at S = 40)."""
    inst = named.uniform_divergence(3, 700, S=40, form=FS, delta=1e-3, seed=1)
    mat = FiniteStateInstance(
        inst.p0, inst.f, np.array(inst.pi_roll), np.array(inst.pi_theta), inst.reward
    )
    assert dp._chunk_len(inst.T, inst.S, inst.V) < inst.T
    a, b = dp.exact_report(inst), dp.exact_report(mat)
    for key in SHARED_KEYS:
        if isinstance(a[key], dict):
            assert_close(list(a[key].values()), list(b[key].values()), key)
        else:
            assert_close(a[key], b[key], key)
    assert_close(a["error_identity"], b["error_identity"], "error_identity")


def test_bhattacharyya_used_beyond_enumeration():
    """V^T > 2^20 switches to a certified upper bound, sandwiching 1 - BC below it; the
    upper bound stays within min(1, sqrt(D_KL^seq / 2)) (docs/theory.md §3)."""
    inst = named.uniform_divergence(2, 21, S=4, form=FS, delta=1e-3, seed=0)  # 2^21 sequences
    rep = dp.exact_report(inst)
    assert rep["D_TV_seq_method"] in ("bhattacharyya_upper", "pinsker_upper")
    assert rep["D_TV_seq_lower"] <= rep["D_TV_seq"]
    assert leq(2 * rep["D_TV_seq"] ** 2, rep["D_KL_seq"] + PINSKER_SLACK)
    bc = rep["bhattacharyya"]
    expected = min(np.sqrt(1 - bc**2), np.sqrt(rep["D_KL_seq"] / 2))
    assert_close(rep["D_TV_seq"], expected, "certified upper")


def test_sparse_divergence_keeps_dkl_seq_fixed():
    """Sparse regime: D_KL^seq does not grow with T when the contexts sit at the start
    (positions 1, 2 are reached identically for every T >= 2)."""
    vals = [
        dp.exact_report(named.sparse_divergence(3, T, S=6, form=FS, k=3, at="start", seed=3))["D_KL_seq"]
        for T in (2, 20, 2000)
    ]
    assert_close(vals, [vals[0]] * 3, "D_KL_seq fixed")


def test_reachability_survives_underflow():
    """A state reached with probability 1e-400 (underflows to 0) still counts in eps."""
    f = np.array([[0, 1], [1, 2], [2, 2]])
    tiny = 1e-200
    row = np.array([1.0, tiny])
    pr = np.broadcast_to(row / row.sum(), (3, 3, 2)).copy()
    pt = pr.copy()
    pt[2, 2] = [0.5, 0.5]  # differs only at (t = 3, s = 2), reached w.p. 1e-400
    pr[2, 2] = [0.9, 0.1]
    inst = FiniteStateInstance(np.eye(3)[0], f, pr, pt, np.array([0.0, 0.0, 1.0]))
    rep = dp.exact_report(inst)
    assert_close(rep["eps"], 0.4, "eps at the underflowed state")


# --------------------------------------------------------------------------- DP internals
def test_csc_kernel_equals_numpy_fallback_and_dense_product():
    """The compiled kernel used per step, its numpy fallback and a dense product agree
    (y += A x with repeated row indices inside a column, as when f(s, v) = f(s, v'))."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n_row, n_col = 7, 5
    counts = rng.integers(0, 4, n_col)  # entries per column (some empty)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = rng.integers(0, n_row, indptr[-1]).astype(np.int32)
    data, x, y0 = rng.random(indptr[-1]), rng.random(n_col), rng.random(n_row)
    dense = sp.csc_matrix((data, indices, indptr), shape=(n_row, n_col)).toarray()
    y_kernel, y_numpy = y0.copy(), y0.copy()
    _dp_step.csc_matvec(n_row, n_col, indptr, indices, data, x, y_kernel)
    _dp_step.csc_matvec_numpy(n_row, n_col, indptr, indices, data, x, y_numpy)
    assert_close(y_kernel, y0 + dense @ x, "kernel")
    assert_close(y_numpy, y0 + dense @ x, "numpy fallback")


def _dense(f: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A(s, s') = sum_{v: f(s, v) = s'} w(s, v), built entry by entry (module docstring)."""
    S, V = f.shape
    A = np.zeros((S, S))
    for s in range(S):
        for v in range(V):
            A[s, f[s, v]] += w[s, v]
    return A


@pytest.mark.parametrize("seed", range(3))
def test_fused_step_is_the_five_recursions(seed):
    """One kernel call with FusedStep values advances d^roll, m, d^theta, b by one position
    and V^roll back by one (dp_exact docstring), checked against dense matrices; the machine
    has repeated next states, so duplicate entries must be summed."""
    rng = np.random.default_rng(seed)
    S, V = 5, 4
    f = rng.integers(0, 3, size=(S, V))  # next states collide within rows
    P, Q, Pb = (rng.dirichlet(np.ones(V), size=(1, S)) for _ in range(3))  # (1, S, V)
    step = _dp_step.FusedStep(f)
    data = np.empty((1, 6 * S * V))
    step.fill(data, P, Q, Q - P, Pb)
    x = rng.random(5 * S)
    y = np.zeros(5 * S)
    _dp_step.csc_matvec(step.n, step.n, step.indptr, step.indices, data[0], x, y)
    d_r, m, d_t, b, val = x.reshape(5, S)
    A_r, A_t, A_b = _dense(f, P[0]), _dense(f, Q[0]), _dense(f, np.sqrt(P[0] * Q[0]))
    expected = [d_r @ A_r, m @ A_r + d_r @ (A_t - A_r), d_t @ A_t, b @ A_b, _dense(f, Pb[0]) @ val]
    assert_close(y.reshape(5, S), np.stack(expected), "fused step")


def test_kl_rows_equals_divergences_kl():
    """The engine's chunked KL (docs/theory.md §3 stable form) equals
    trm_bounds.divergences.kl, including zero entries, q/p down to 1e-12 and q ~ p."""
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=(6, 5))  # (n, S, V)
    q = p * np.exp(rng.normal(scale=1e-6, size=p.shape))  # near-equal rows: u ~ 1e-6
    q[:3] = rng.dirichlet(np.ones(4), size=(3, 5))
    q[0, 0] = [1e-12, 0.3, 0.3, 0.4 - 1e-12]  # q/p ~ 1e-12 (u < -1/2 branch)
    p[1, 1], q[1, 1] = [0.0, 0.5, 0.5, 0.0], [0.2, 0.3, 0.5, 0.0]  # p = 0 < q: term q
    q /= q.sum(-1, keepdims=True)
    got = dp._kl_rows(p, q, q - p)
    assert_close(got, kl(p, q), "KL rows")
    q2 = q.copy()
    q2[2, 2] = [0.0, 0.5, 0.25, 0.25]  # q = 0 < p: +inf
    assert dp._kl_rows(p, q2, q2 - p)[2, 2] == np.inf


def test_chunked_paths_agree_across_chunk_boundaries():
    """T spans several chunks, the last of one step: the general path (both policies stored
    per t) and the mixed path (pi_roll time-broadcast, pi_theta stored) give the same DP; the
    perturbed positions T-1 and T sit on both sides of a chunk boundary."""
    S, V = 40, 3
    T = 3 * dp._chunk_len(10**6, S, V) + 1
    inst = named.sparse_divergence(V, T, S=S, form=FS, k=6, kl_size=0.2, seed=2)
    assert inst.pi_roll.strides[0] == 0 and inst.pi_theta.strides[0] != 0
    full = FiniteStateInstance(
        inst.p0, inst.f, np.array(inst.pi_roll), np.array(inst.pi_theta), inst.reward
    )
    a, b = dp.exact_report(inst), dp.exact_report(full)
    for key in (*SHARED_KEYS, "error_identity", "bhattacharyya"):
        if isinstance(a[key], dict):
            assert_close(list(a[key].values()), list(b[key].values()), key)
        else:
            assert_close(a[key], b[key], key)
    ra, rb = dp.dp_exact(inst), dp.dp_exact(full)
    for fld in ("d_roll", "d_theta", "value", "kl_ts", "tv_ts", "g_ts", "m_final"):
        assert_close(getattr(ra, fld), getattr(rb, fld), fld)


def test_leak_reported_at_its_position_in_a_later_chunk():
    """theta << roll is checked at every reachable (t, s), not only in the first chunk; the
    message names the position, the state and the token."""
    inst = named.dense_noise(3, 400, S=40, form=FS, seed=0)
    t = dp._chunk_len(inst.T, inst.S, inst.V) + 5  # 1-based position in the second chunk
    assert t < inst.T
    pr = np.array(inst.pi_roll)
    pr[t - 1] = [0.0, 1.0, 0.0]  # pi_theta keeps mass on tokens 0 and 2
    bad = FiniteStateInstance(inst.p0, inst.f, pr, inst.pi_theta, inst.reward)
    with pytest.raises(InstanceFormatError, match=rf"entry \(t={t}, s=\d+, v=[02]\) = 0\.\d+.*theta << roll"):
        dp.dp_exact(bad)


def test_subnormal_probability_gives_finite_kl():
    """pi_roll(0|t,s) = 1e-310 (subnormal), pi_theta = (1/2, 1/2): KL = log 2 up to 1e-300
    at every step, finite, and equal to the tree engine's (docs/theory.md §3)."""
    T = 3
    pr = np.broadcast_to([1e-310, 1.0 - 1e-310], (T, 1, 2))
    pt = np.full((T, 1, 2), 0.5)
    inst = FiniteStateInstance(np.ones(1), np.zeros((1, 2), dtype=int), pr, pt, np.ones(1))
    rep = dp.exact_report(inst)
    assert_close(rep["delta"], np.log(2.0), "delta")
    assert_close(rep["D_KL_seq"], T * np.log(2.0), "D_KL_seq")
    assert_close(rep["delta"], tabular.exact_report(to_tree_instance(inst))["delta"], "tree")


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("field", "change", "message"),
    [
        (
            "pi_roll",
            lambda a: a.__setitem__((1, 0, 0), a[1, 0, 0] + 0.1),
            "pi_roll: row (t=2, s=0)",
        ),
        ("pi_theta", lambda a: a.__setitem__((0, 1, 1), -0.5), "pi_theta: entry (t=1, s=1, v=1)"),
        ("f", lambda a: a.__setitem__((0, 1), 7), "f: entry (s=0, v=1)"),
        ("reward", lambda a: a.__setitem__(2, 1.5), "reward: entry s=2"),
        ("p0", lambda a: a.__setitem__(0, 0.5), "p0: row"),
        ("pi_roll", lambda a: a.__setitem__((2, 1, 0), np.nan), "pi_roll: entry (t=3, s=1, v=0)"),
        ("pi_theta", lambda a: a.__setitem__((0, 2, 1), np.inf), "pi_theta: entry (t=1, s=2, v=1)"),
    ],
)
def test_invalid_instances_are_rejected(field, change, message):
    good = named.dense_noise(2, 3, S=3, form=FS, seed=0)
    arrays = {k: np.array(getattr(good, k)) for k in ("p0", "f", "pi_roll", "pi_theta", "reward")}
    change(arrays[field])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FiniteStateInstance(**arrays, name="bad")


def test_theta_outside_roll_support_is_rejected():
    """L' needs theta << roll at reachable (t, s) (docs/theory.md §2, as the tree engine)."""
    inst = named.dense_noise(2, 3, S=3, form=FS, seed=0)
    pr, pt = np.array(inst.pi_roll), np.array(inst.pi_theta)
    pr[0, :, 0], pr[0, :, 1] = 0.0, 1.0
    with pytest.raises(ValueError, match="theta << roll"):
        dp.exact_report(FiniteStateInstance(np.eye(3)[0], inst.f, pr, pt, inst.reward))


def test_random_walk_kl_is_exactly_delta():
    """The walk's tilt e = sqrt(-expm1(-2 delta))/2 gives KL = -1/2 log(1 - 4e^2) = delta."""
    for delta in (1e-6, 1e-3, 0.3):
        rep = dp.exact_report(named.random_walk(6, S=9, form=FS, delta=delta))
        assert_close(rep["delta"], delta, "walk delta")
        assert_close(rep["D_KL_seq"], 6 * delta, "uniform: D_KL^seq = T delta")


# --------------------------------------------------------------------------- experiment
def test_tabular_scaling_smoke(tmp_path):
    """experiments/tabular_scaling.py --tiny writes the documented layout, and every exact
    |Error| and max_R |Error| in it lies below every sharp bound."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    try:
        import tabular_scaling
    finally:
        sys.path.pop(0)
    out = tmp_path / "ts.json"
    assert tabular_scaling.main(["--tiny", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["experiment"] == "tabular_scaling"
    assert set(data["regimes"]) == {"uniform", "sparse", "uniform_mixing", "sparse_mixing"}
    for reg in data["regimes"].values():
        n = len(reg["T"])
        assert n >= 2 and reg["T"] == sorted(reg["T"])
        assert set(reg["bounds_sharp"]) == set(BOUND_NAMES)
        assert set(reg["slopes"]["bounds_published"]) == set(BOUND_NAMES)
        for name in BOUND_NAMES:
            assert len(reg["bounds_sharp"][name]) == n
            assert leq(reg["abs_error"], reg["bounds_sharp"][name])
            assert leq(reg["error_max_over_rewards"], reg["bounds_sharp"][name])


def test_bench_finite_state_smoke(tmp_path):
    """experiments/bench_finite_state.py with tiny sizes writes the documented layout, and
    the error it records is the engine's."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    try:
        import bench_finite_state
    finally:
        sys.path.pop(0)
    out = tmp_path / "bench.json"
    args = ["--T", "30", "--S", "4", "--V", "3", "--repeats", "2", "--out", str(out)]
    assert bench_finite_state.main(args) == 0
    data = json.loads(out.read_text())
    assert data["experiment"] == "bench_finite_state"
    assert [c["name"] for c in data["cases"]] == ["time_varying", "homogeneous"]
    for case in data["cases"]:
        assert len(case["exact_report_cpu_s"]) == len(case["dp_exact_s"]) == 2
        inst = bench_finite_state.random_instance(30, 4, 3, 0, case["time_homogeneous"])
        assert case["error"] == dp.exact_report(inst)["error"]


@pytest.mark.slow
def test_long_horizon_two_surrogates_agree():
    """T = 10^5: L' by performance difference == first-moment pass, and
    the exact error stays below every sharp bound (time-varying and homogeneous paths)."""
    for inst in (
        named.dense_noise(4, 100_000, S=8, form=FS, scale=0.02, seed=0),
        named.random_walk(100_000, S=64, form=FS, delta=1e-5),
    ):
        rep = dp.exact_report(inst)
        assert abs(rep["L_prime"] - rep["L_prime_first_moment"]) <= 1e-10
        for name in BOUND_NAMES:
            assert leq(rep["error_max_over_rewards"], rep["bounds_sharp"][name])
