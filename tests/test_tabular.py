"""Unit tests of the exact tree engine, the generators and the exchange format (issue 3).

Reference values: closed forms of THEORY.md sections 2 and 5 (the tight instance), and an
independent Python-loop enumeration (``loop_report`` below) of the definitions of
THEORY.md sections 1-3, one sequence at a time.
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
from tolerances import ATOL, RTOL, leq

from trm_bounds.bounds import BOUND_NAMES
from trm_bounds.divergences import kl, tv
from trm_bounds.generators import (
    GENERATORS,
    adversarial_reward,
    dense_noise,
    moe_flip,
    move_mass,
    policy_gradient,
    single_perturbation,
    sparse_divergence,
    staleness,
    tight_instance,
    uniform_divergence,
)
from trm_bounds.results import read_results
from trm_bounds.tabular import (
    REPORT_KEYS,
    InstanceFormatError,
    TreeInstance,
    context_index,
    error_coefficients,
    exact_report,
    load_instances,
    main,
    sequence_index,
    surrogate_with_baseline,
    write_instances,
)


def loop_report(inst: TreeInstance) -> dict[str, float | list[float]]:
    """THEORY.md sections 1-3 by plain loops over prompts and sequences (the reference)."""
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
    """ctx(t, y_<t) enumerates 0..C-1 in order; seq(y) enumerates 0..V^T-1 (issue 3 item 4)."""
    V, T = 3, 3
    ctxs = [context_index(y, V) for t in range(T) for y in itertools.product(range(V), repeat=t)]
    assert ctxs == list(range((V**T - 1) // (V - 1)))
    seqs = [sequence_index(y, V) for y in itertools.product(range(V), repeat=T)]
    assert seqs == list(range(V**T))


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_vectorised_engine_matches_python_loops(kind):
    """Every exact quantity equals the loop enumeration of its definition (section 1-3)."""
    inst = GENERATORS[kind](11, 3, 3, 2)
    rep, ref = exact_report(inst), loop_report(inst)
    for key in ("J_roll", "J_theta", "L_prime", "D_TV_seq", "D_KL_seq", "Dbar"):
        np.testing.assert_allclose(rep[key], ref[key], rtol=RTOL, atol=ATOL, err_msg=key)
    np.testing.assert_allclose(rep["error_identity"], ref["identity"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        rep["error"], ref["J_theta"] - ref["J_roll"] - ref["L_prime"], rtol=RTOL, atol=ATOL
    )


def test_report_has_the_issue_keys_and_every_bound():
    """exact_report returns the keys of issue 3 item 4, bounds keyed by BOUND_NAMES."""
    rep = exact_report(dense_noise(2, 3, seed=0))
    assert set(REPORT_KEYS) <= set(rep)
    assert tuple(rep["bounds_published"]) == BOUND_NAMES
    assert tuple(rep["bounds_sharp"]) == BOUND_NAMES
    assert len(rep["Dbar"]) == 3


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.1, 0.25, 0.49])
def test_tight_instance_closed_forms(eps):
    """THEORY.md section 5: Error = 2 eps^2 = sharp Classical-TV = Coupling = Adaptive-hybrid;
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
    """One perturbed context: the surrogate is first-order exact, Error = 0 (section 2)."""
    for seed in range(5):
        rep = exact_report(single_perturbation(3, 3, n_prompts=2, seed=seed))
        assert abs(rep["error"]) <= 1e-15  # rounding of three sums of probabilities
        assert rep["error_identity"] == 0.0  # every telescoped term is exactly 0
        assert rep["error_max_over_rewards"] == 0.0
        assert rep["delta"] > 0.0


def test_baseline_changes_L_but_not_L_prime():
    """E[(R-b) sum(rho-1)] = L' for every b; E[(R-b) sum rho] = L' + T(J_roll - b) (sec. 2)."""
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
    """k perturbed contexts on one path: D_KL^seq <= k delta, and eps = size (THEORY s.3)."""
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
    """theta puts mass where roll puts none at a reached context: rejected (sec. 2).

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
    write_instances(path, insts)
    back = load_instances(path)
    assert [b.id for b in back] == [a.id for a in insts]
    for a, b in zip(insts, back, strict=True):
        for name in ("p_x", "pi_roll", "pi_theta", "reward"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
        assert (a.V, a.T, a.n_prompts) == (b.V, b.T, b.n_prompts)
        assert exact_report(a) == exact_report(b)
        assert b.meta["expected"] == json.loads(json.dumps(exact_report(a)))
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
    write_instances(path, _instances(), with_expected=False)
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


def test_cli_prints_tables_and_writes_reports(tmp_path, capsys):
    """main([file, --json OUT]) prints every bound and writes every report; exit 0."""
    path, out = tmp_path / "inst.json", tmp_path / "out" / "rep.json"
    write_instances(path, _instances())
    assert main([str(path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("matches expected") == 3
    for name in BOUND_NAMES:
        assert name in text
    doc = json.loads(out.read_text())
    assert [r["id"] for r in doc["reports"]] == [i.id for i in _instances()]
    assert doc["reports"][0]["error"] == exact_report(tight_instance(0.2))["error"]


def test_cli_reports_expected_mismatch(tmp_path, capsys):
    """An expected value off by 1e-6 relative (beyond 1e-9) exits 1 and names the key."""
    path = tmp_path / "inst.json"
    write_instances(path, _instances())
    doc = json.loads(path.read_text())
    doc["instances"][2]["expected"]["bounds_sharp"]["mix_kl"] *= 1 + 1e-6
    path.write_text(json.dumps(doc))
    assert main([str(path)]) == 1
    assert "bounds_sharp.mix_kl" in capsys.readouterr().out


def test_cli_bad_file_exits_2_without_output(tmp_path, capsys):
    """A malformed file: one line on stderr, exit 2, no output file."""
    path, out = tmp_path / "inst.json", tmp_path / "rep.json"
    write_instances(path, _instances(), with_expected=False)
    doc = json.loads(path.read_text())
    doc["instances"][0]["p_x"] = [0.9]
    path.write_text(json.dumps(doc))
    assert main([str(path), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'p_x'" in err and "instance 0 (id 'tight')" in err
    assert not out.exists()


def test_infinite_delta_is_reported_clearly():
    """theta = 0 where roll > 0 gives forward KL = inf: a one-line ValueError (sec. 3)."""
    inst = tight_instance(0.2).replace(pi_theta=np.tile([1.0, 0.0], (1, 3, 1)))
    with pytest.raises(ValueError, match="delta = inf"):
        exact_report(inst)


# ---------------------------------------------------------------------- experiment smoke tests


def _experiment(name: str):
    """Import ``experiments/<name>.py`` as a module (experiments are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
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
