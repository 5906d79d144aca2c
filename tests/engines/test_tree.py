"""Unit tests of the exact tree engine, the named instances and the exchange format.

Reference values: closed forms of docs/theory.md §2 and §5 (the tight instance), and an
independent Python-loop enumeration (``loop_report`` below) of the definitions of
docs/theory.md §1-§3, one sequence at a time.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.bounds import BOUND_NAMES
from trm_bounds.divergences import kl, tv
from trm_bounds.engines.tree import (
    adversarial_reward,
    check_instance,
    error_coefficients,
    exact_report,
    policy_gradient,
    surrogate_with_baseline,
)
from trm_bounds.instances.format import InstanceFormatError, load_instances, write_instances
from trm_bounds.instances.generators import GENERATORS
from trm_bounds.instances.named import (
    dense_noise,
    moe_flip,
    single_perturbation,
    sparse_divergence,
    staleness,
    tight_instance,
    uniform_divergence,
)
from trm_bounds.instances.random import move_mass
from trm_bounds.instances.tree import TreeInstance, context_index, sequence_index
from trm_bounds.report import EXPECTED_KEYS, REPORT_KEYS, format_report
from trm_bounds.results import read_results


def loop_report(inst: TreeInstance) -> dict[str, float | list[float]]:
    """docs/theory.md §1-§3 by plain loops over prompts and sequences (the reference)."""
    V, T = inst.V, inst.T
    out = dict(J_roll=0.0, J_theta=0.0, L_prime=0.0, identity=0.0, D_TV_seq=0.0)
    dbar, dkl = [0.0] * T, [0.0] * T
    for x in range(inst.n_prompts):
        tv_x = 0.0
        for y in itertools.product(range(V), repeat=T):
            p_r = p_t = 1.0
            rhos = []
            for t in range(T):
                c = context_index(y[:t], V)
                pr, pt = inst.pi_roll[x, c], inst.pi_theta[x, c]
                # each context is visited once, by its continuation y_t.. = 0..0
                if all(v == 0 for v in y[t:]):
                    dbar[t] += inst.p_x[x] * p_r * float(tv(pr, pt))
                    dkl[t] += inst.p_x[x] * p_r * float(kl(pr, pt))
                rhos.append(pt[y[t]] / pr[y[t]])
                p_r *= pr[y[t]]
                p_t *= pt[y[t]]
            R = inst.reward[x, sequence_index(y, V)]
            w = inst.p_x[x]
            out["J_roll"] += w * p_r * R
            out["J_theta"] += w * p_t * R
            out["L_prime"] += w * p_r * R * sum(r - 1.0 for r in rhos)
            tele = sum((rhos[t] - 1.0) * (1.0 - math.prod(rhos[t + 1 :])) for t in range(T))
            out["identity"] -= w * p_r * R * tele
            tv_x += 0.5 * abs(p_t - p_r)
        out["D_TV_seq"] += inst.p_x[x] * tv_x
    out["Dbar"] = dbar
    out["D_KL_seq"] = sum(dkl)
    return out


def test_context_and_sequence_index_match_the_schema():
    """ctx(t, y_<t) enumerates 0..C-1 in order; seq(y) enumerates 0..V^T-1 (the exchange format)."""
    V, T = 3, 3
    ctxs = [context_index(y, V) for t in range(T) for y in itertools.product(range(V), repeat=t)]
    assert ctxs == list(range((V**T - 1) // (V - 1)))
    seqs = [sequence_index(y, V) for y in itertools.product(range(V), repeat=T)]
    assert seqs == list(range(V**T))


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_vectorised_engine_matches_python_loops(kind):
    """Every exact quantity equals the loop enumeration of its definition (docs/theory.md §1-§3)."""
    inst = GENERATORS[kind](11, 3, 3, 2)
    rep, ref = exact_report(inst), loop_report(inst)
    for key in ("J_roll", "J_theta", "L_prime", "D_TV_seq", "D_KL_seq", "Dbar"):
        np.testing.assert_allclose(rep[key], ref[key], rtol=RTOL, atol=ATOL, err_msg=key)
    np.testing.assert_allclose(rep["error_identity"], ref["identity"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        rep["error"], ref["J_theta"] - ref["J_roll"] - ref["L_prime"], rtol=RTOL, atol=ATOL
    )


def test_report_has_the_report_keys_and_every_bound():
    """exact_report returns every key of REPORT_KEYS, bounds keyed by BOUND_NAMES."""
    rep = exact_report(dense_noise(2, 3, seed=0))
    assert set(REPORT_KEYS) <= set(rep)
    assert tuple(rep["bounds_published"]) == BOUND_NAMES
    assert tuple(rep["bounds_sharp"]) == BOUND_NAMES
    assert len(rep["Dbar"]) == 3


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.1, 0.25, 0.49])
def test_tight_instance_closed_forms(eps):
    """docs/theory.md §5: Error = 2 eps^2 = sharp Classical-TV = Coupling = Adaptive-hybrid;
    TV(c) = eps and KL(c) = -log(1 - 4 eps^2)/2 at every context (forward KL, closed form)."""
    rep = exact_report(tight_instance(eps))
    np.testing.assert_allclose(rep["error"], 2 * eps**2, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["error_identity"], 2 * eps**2, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["eps"], eps, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["Dbar"], [eps, eps], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["delta"], -0.5 * math.log1p(-4 * eps**2), rtol=RTOL, atol=ATOL)
    for name in ("classical_tv", "coupling", "adaptive_hybrid"):
        np.testing.assert_allclose(rep["bounds_sharp"][name], 2 * eps**2, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(rep["bounds_published"][name], 4 * eps**2, rtol=RTOL, atol=ATOL)
    # the reward 1[y1 = y2] is adversarial: it attains max_R |Error|
    np.testing.assert_allclose(rep["error_max_over_rewards"], 2 * eps**2, rtol=RTOL, atol=ATOL)


def test_single_perturbation_has_zero_error():
    """One perturbed context: the surrogate is first-order exact, Error = 0 (docs/theory.md §2)."""
    for seed in range(5):
        rep = exact_report(single_perturbation(3, 3, n_prompts=2, seed=seed))
        assert abs(rep["error"]) <= 1e-15  # rounding of three sums of probabilities
        assert rep["error_identity"] == 0.0  # every telescoped term is exactly 0
        assert rep["error_max_over_rewards"] == 0.0
        assert rep["delta"] > 0.0


def test_baseline_changes_L_but_not_L_prime():
    """E[(R-b) sum(rho-1)] = L' for every b; E[(R-b) sum rho] = L' + T(J_roll - b) (docs/theory.md §2)."""
    inst = dense_noise(2, 4, n_prompts=2, scale=0.5, seed=3)
    rep = exact_report(inst, baseline=0.3)
    for b in (0.0, 0.3, 1.0, -2.0):
        L_b, Lp_b = surrogate_with_baseline(inst, b)
        np.testing.assert_allclose(Lp_b, rep["L_prime"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(
            L_b, rep["L_prime"] + inst.T * (rep["J_roll"] - b), rtol=RTOL, atol=ATOL
        )
    np.testing.assert_allclose(rep["L_baseline"], surrogate_with_baseline(inst, 0.3)[0])


def test_error_coefficients_two_forms_and_adversarial_reward():
    """c(x,y) sums to 0, equals its untelescoped form, and R = 1[c > 0] attains 1/2 sum|c|."""
    inst = dense_noise(3, 3, n_prompts=2, scale=1.0, seed=5)
    c = error_coefficients(inst)
    np.testing.assert_allclose(c.sum(), 0.0, atol=ATOL)
    rep = exact_report(inst)
    np.testing.assert_allclose(
        rep["error_max_over_rewards"], rep["error_max_over_rewards_direct"], rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(np.sum(c * inst.reward), rep["error"], rtol=RTOL, atol=ATOL)
    adv = exact_report(adversarial_reward(inst))
    np.testing.assert_allclose(adv["error"], rep["error_max_over_rewards"], rtol=RTOL, atol=ATOL)
    assert leq(abs(rep["error"]), adv["error"])


def test_move_mass_and_uniform_divergence_have_exact_tv():
    """move_mass gives TV = size exactly; uniform divergence has TV(c) = size everywhere."""
    inst = uniform_divergence(3, 3, n_prompts=2, size=0.2, seed=1)
    np.testing.assert_allclose(tv(inst.pi_roll, inst.pi_theta), 0.2, rtol=RTOL, atol=ATOL)
    rep = exact_report(inst)
    np.testing.assert_allclose(rep["Dbar"], [0.2] * 3, rtol=RTOL, atol=ATOL)
    p = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(
        move_mass(p, 0.3, np.array(2)), [0.7 - 0.3 * 7 / 9, 0.2 - 0.3 * 2 / 9, 0.1 + 0.3]
    )
    with pytest.raises(ValueError, match="size"):
        move_mass(p, 0.5, np.array(0))


def test_sparse_divergence_keeps_kl_seq_bounded_by_k_delta():
    """k perturbed contexts on one path: D_KL^seq <= k delta, and eps = size (docs/theory.md §3)."""
    inst = sparse_divergence(2, 6, k=3, size=0.3, seed=2)
    rep = exact_report(inst)
    np.testing.assert_allclose(rep["eps"], 0.3, rtol=RTOL, atol=ATOL)
    assert leq(rep["D_KL_seq"], 3 * rep["delta"])
    assert np.count_nonzero(tv(inst.pi_roll, inst.pi_theta) > 0) == 3


def test_moe_flip_probabilities():
    """The flipped token has 0.9 under the rollout and 0.001 under theta; TV(c) = 0.899."""
    inst = moe_flip(3, 3, k=2, seed=4)
    tv_c = tv(inst.pi_roll, inst.pi_theta)
    flipped = np.argwhere(tv_c > 0)
    assert len(flipped) == 2
    for i, c in flipped:
        u = int(np.argmax(inst.pi_roll[i, c]))
        assert inst.pi_roll[i, c, u] == 0.9 and inst.pi_theta[i, c, u] == 0.001
    np.testing.assert_allclose(exact_report(inst)["eps"], 0.899, rtol=RTOL, atol=ATOL)


def test_policy_gradient_matches_finite_differences():
    """grad_z J at theta = roll equals central differences of the exact J (sec. 2: grad J =
    grad L' at theta = roll). Tolerance 1e-8: truncation O(h^2) = 1e-10 plus rounding
    1e-16 / h = 1e-11 (h = 1e-5), with margin."""
    inst = dense_noise(2, 2, scale=0.0, seed=6)
    g = policy_gradient(inst)
    z = np.log(inst.pi_roll)
    h = 1e-5
    for idx in itertools.product(range(1), range(3), range(2)):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        jp = exact_report(inst.replace(pi_theta=np.exp(zp) / np.exp(zp).sum(-1, keepdims=True)))
        jm = exact_report(inst.replace(pi_theta=np.exp(zm) / np.exp(zm).sum(-1, keepdims=True)))
        assert abs((jp["J_theta"] - jm["J_theta"]) / (2 * h) - g[idx]) <= 1e-8
    st = exact_report(staleness(2, 3, step=0.5, seed=6))
    assert st["J_theta"] > st["J_roll"]  # a small ascent step improves J


def test_theta_outside_rollout_support_is_rejected():
    """theta puts mass where roll puts none at a reached context: rejected (docs/theory.md §2).

    The importance-weighted L' then differs from the performance-difference surrogate and the
    TV bounds fail: here, with R = 1[y_1 = 1] and theta(1|root) = a, Error = a while the
    published Coupling bound is 4 a^2 (worked out by hand, not computed by the engine)."""
    pr = np.array([[[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]]])
    pt = np.array([[[0.9, 0.1], [0.5, 0.5], [0.5, 0.5]]])
    inst = TreeInstance.from_arrays([1.0], pr, pt, np.zeros((1, 4)), id="leak")
    with pytest.raises(InstanceFormatError, match="pi_theta.*\\[0, 0, 1\\]"):
        exact_report(inst)


# ---------------------------------------------------------------------- exchange format


def _instances():
    return [
        tight_instance(0.2),
        dense_noise(3, 2, n_prompts=2, seed=1),
        sparse_divergence(2, 4, k=2, size=0.1, seed=2),
    ]


def test_round_trip_gives_identical_arrays_and_reports(tmp_path):
    """write_instances then load_instances: bitwise identical arrays, identical reports."""
    path = tmp_path / "inst.json"
    insts = _instances()
    write_instances(path, insts, report=exact_report)
    back = load_instances(path)
    assert [b.id for b in back] == [a.id for a in insts]
    for a, b in zip(insts, back, strict=True):
        for name in ("p_x", "pi_roll", "pi_theta", "reward"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
        assert (a.V, a.T, a.n_prompts) == (b.V, b.T, b.n_prompts)
        assert exact_report(a) == exact_report(b)
        full = json.loads(json.dumps(exact_report(a).to_dict()))
        assert b.meta["expected"] == {k: full[k] for k in EXPECTED_KEYS}
        assert b.meta["kind"] == a.meta["kind"]


def _mutations():
    """(name, mutate(doc), text the error must contain)."""

    def setp(path, value):
        def f(doc):
            obj = doc
            for k in path[:-1]:
                obj = obj[k]
            obj[path[-1]] = value

        return f

    def delete(key):
        def f(doc):
            del doc["instances"][1][key]

        return f

    row = [[0.5, 0.6, 0.2], [0.3, 0.3, 0.4], [0.3, 0.3, 0.4], [0.3, 0.3, 0.4]]
    return [
        ("schema", setp(["schema"], "trm-oracle-instances/v0"), "'schema'"),
        ("instances", setp(["instances"], {}), "'instances'"),
        ("missing", delete("pi_theta"), "missing field 'pi_theta'"),
        ("row_sum", setp(["instances", 1, "pi_roll", 0], row), "'pi_roll': row [0, 0] sums"),
        ("negative", setp(["instances", 1, "pi_theta", 1, 2], [1.5, -0.5, 0.0]), "'pi_theta'"),
        ("reward_hi", setp(["instances", 1, "reward", 1, 4], 1.5), "'reward': entry 1.5 at [1, 4]"),
        ("reward_lo", setp(["instances", 1, "reward", 0, 0], -0.1), "'reward': entry -0.1"),
        ("shape", setp(["instances", 1, "reward"], [[0.0] * 9]), "'reward': shape (1, 9)"),
        ("ragged", setp(["instances", 1, "reward", 0], [0.0]), "'reward': not a rectangular"),
        ("p_x", setp(["instances", 1, "p_x"], [0.5, 0.6]), "'p_x': sums to"),
        ("V", setp(["instances", 1, "V"], 2.5), "'V': must be an integer"),
        ("T", setp(["instances", 1, "T"], 3), "'pi_roll': shape"),
    ]


@pytest.mark.parametrize("name,mutate,needle", _mutations(), ids=[m[0] for m in _mutations()])
def test_malformed_files_name_the_field(tmp_path, name, mutate, needle):
    """Every malformed case raises InstanceFormatError naming file, instance and field."""
    path = tmp_path / "inst.json"
    write_instances(path, _instances())
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(InstanceFormatError) as info:
        load_instances(path)
    msg = str(info.value)
    assert needle in msg
    assert str(path) in msg and "\n" not in msg
    if name not in ("schema", "instances"):
        assert "instance 1 (id 'dense-1')" in msg


def test_not_json_and_missing_file(tmp_path):
    """Files that are not JSON, or absent, raise InstanceFormatError (a ValueError)."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InstanceFormatError, match="not valid JSON"):
        load_instances(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_instances(tmp_path / "absent.json")


def test_expected_reports_match_and_tables_list_every_bound(tmp_path):
    """Written instances match their expected reports; the table lists every bound."""
    path = tmp_path / "inst.json"
    write_instances(path, _instances(), report=exact_report)
    for inst in load_instances(path):
        rep, mismatches = check_instance(inst)
        assert mismatches == []
        text = format_report(rep, name=inst.id)
        for name in BOUND_NAMES:
            assert name in text
    tight = check_instance(load_instances(path)[0])[0]
    assert tight["error"] == exact_report(tight_instance(0.2))["error"]


def test_expected_mismatch_names_the_key(tmp_path):
    """An expected value off by 1e-6 relative (beyond 1e-9) is a mismatch naming the key."""
    path = tmp_path / "inst.json"
    write_instances(path, _instances(), report=exact_report)
    doc = json.loads(path.read_text())
    doc["instances"][2]["expected"]["bounds_sharp"]["mix_kl"] *= 1 + 1e-6
    path.write_text(json.dumps(doc))
    mismatches = check_instance(load_instances(path)[2])[1]
    assert len(mismatches) == 1 and mismatches[0].startswith("bounds_sharp.mix_kl")


def test_expected_report_is_compared_at_the_files_baseline(tmp_path):
    """A file written with a baseline b != 0 matches when checked without one given (the
    expected report records b), and mismatches in L_baseline when another b is given."""
    path = tmp_path / "inst.json"
    inst = dense_noise(2, 3, seed=4)
    rec = exact_report(inst, baseline=0.25)
    write_instances(path, [inst])
    doc = json.loads(path.read_text())
    doc["instances"][0]["expected"] = rec.to_dict()
    path.write_text(json.dumps(doc))
    back = load_instances(path)[0]
    assert back.meta["expected"]["baseline_b"] == 0.25
    rep, mismatches = check_instance(back)
    assert mismatches == [] and rep.baseline_b == 0.25
    _, other = check_instance(back, baseline=0.0)
    assert any(m.startswith("L_baseline") for m in other)


def test_malformed_file_is_one_line_naming_field_and_instance(tmp_path):
    """A malformed file: one line naming the field and the instance."""
    path = tmp_path / "inst.json"
    write_instances(path, _instances())
    doc = json.loads(path.read_text())
    doc["instances"][0]["p_x"] = [0.9]
    path.write_text(json.dumps(doc))
    with pytest.raises(InstanceFormatError) as info:
        load_instances(path)
    err = str(info.value)
    assert "\n" not in err and "'p_x'" in err and "instance 0 (id 'tight')" in err


def test_infinite_delta_is_reported_clearly():
    """theta = 0 where roll > 0 gives forward KL = inf: a one-line ValueError (docs/theory.md §3)."""
    inst = tight_instance(0.2).replace(pi_theta=np.tile([1.0, 0.0], (1, 3, 1)))
    with pytest.raises(ValueError, match="delta = inf"):
        exact_report(inst)


# ---------------------------------------------------------------------- extreme probabilities


def test_reachability_is_exact_when_the_path_probability_underflows():
    """A context reached with probability 1e-330 (a float product underflows to 0) still
    counts for eps and delta (docs/theory.md §3: maxima over contexts reached with positive
    probability); here the only divergent context: eps = 0.8, delta = 0.8 log 9."""
    V, T = 2, 12
    pr = np.tile([1e-30, 1.0 - 1e-30], (1, (V**T - 1) // (V - 1), 1))
    pt = pr.copy()
    deep = context_index([0] * (T - 1), V)  # prefix of 11 tokens 0: probability 1e-330
    pr[0, deep], pt[0, deep] = [0.9, 0.1], [0.1, 0.9]
    inst = TreeInstance.from_arrays([1.0], pr, pt, np.zeros((1, V**T)), id="deep")
    rep = exact_report(inst)
    np.testing.assert_allclose(rep["eps"], 0.8, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["delta"], 0.8 * math.log(9.0), rtol=RTOL, atol=ATOL)


def test_sequence_tv_is_finite_with_probabilities_near_1e_200():
    """pi_roll = (1e-200, 1 - 1e-200), pi_theta = (1/2, 1/2), T = 2: P^roll is (almost) a
    point mass on (1, 1), so D_TV^seq = 1 - 1/4 up to 1e-200 (docs/theory.md §3)."""
    pr = np.tile([1e-200, 1.0 - 1e-200], (1, 3, 1))
    pt = np.full((1, 3, 2), 0.5)
    rep = exact_report(TreeInstance.from_arrays([1.0], pr, pt, np.ones((1, 4)), id="tiny"))
    np.testing.assert_allclose(rep["D_TV_seq"], 0.75, rtol=RTOL, atol=ATOL)
    for key in ("error", "error_identity", "error_max_over_rewards", "D_KL_seq"):
        assert math.isfinite(rep[key]), key


def test_subnormal_probability_gives_finite_delta():
    """pi_roll(0|c) = 1e-310 (subnormal), pi_theta = (1/2, 1/2): KL(c) = log 2 up to 1e-300,
    finite (docs/theory.md §3: KL is infinite only where pi_theta = 0 < pi_roll)."""
    pr = np.tile([1e-310, 1.0 - 1e-310], (1, 3, 1))
    pt = np.full((1, 3, 2), 0.5)
    rep = exact_report(TreeInstance.from_arrays([1.0], pr, pt, np.ones((1, 4)), id="sub"))
    np.testing.assert_allclose(rep["delta"], math.log(2.0), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["D_KL_seq"], 2 * math.log(2.0), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["D_KL_seq_direct"], 2 * math.log(2.0), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rep["D_TV_seq"], 0.75, rtol=RTOL, atol=ATOL)
    for key in ("error", "error_identity", "error_max_over_rewards", "L_prime", "L_baseline"):
        assert math.isfinite(rep[key]), key


# ---------------------------------------------------------------------- experiment smoke tests


def _experiment(name: str):
    """Import ``experiments/<name>.py`` as a module (experiments are scripts, not a package)."""
    path = Path(__file__).resolve().parents[2] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_exp_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tabular_verification_smoke(tmp_path):
    """Tiny run: no violations, every kind recorded, ratios <= 1 (sharp bounds hold)."""
    out = tmp_path / "v.json"
    argv = ["--out", str(out), "--per-kind", "3", "--search-iters", "2", "--search-restarts", "1"]
    assert _experiment("tabular_verification").main(argv) == 0
    doc = read_results(out)
    assert doc["violations_total"] == 0
    assert set(doc["kinds"]) == {*GENERATORS, "raw"}
    assert doc["instances_checked"] == 3 * (len(GENERATORS) + 1)
    assert leq(max(doc["max_ratio_maxR_over_sharp_all_kinds"].values()), 1.0)


def test_bench_tabular_smoke(tmp_path):
    """Tiny run writes the sequence count and the times."""
    out = tmp_path / "b.json"
    assert _experiment("bench_tabular").main(["--out", str(out), "--case", "2", "4"]) == 0
    case = read_results(out)["cases"][0]
    assert case["sequences"] == 2**4 and case["seconds_best"] > 0.0
