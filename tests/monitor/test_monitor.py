"""The monitor (trm_bounds.monitor.monitor, run_folder; docs/theory.md §6, §9).

Same batch, same numbers: each step's dump goes through the single-dump evaluator
(:func:`trm_bounds.evaluate.evaluate`), an independent route (numpy readers, chunked
statistics, the evaluator's certified section) to the monitor's numbers.
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from trm_bounds.certify import certify_linear, estimate_error, upper_confidence_bound
from trm_bounds.certify.linear import unit_order
from trm_bounds.evaluate import evaluate
from trm_bounds.monitor import Monitor, RunFolderError, parse_criteria

torch = pytest.importorskip("torch")  # the [torch] extra
# (one import per block: ruff's isort places `tests` differently in a worktree and in a checkout)
from tests.tolerances import ATOL, RTOL  # noqa: E402


def batch(seed: int, B: int = 48, L: int = 40, *, left: bool = False, dtype=torch.float64,
          sigma: float = 0.1, empty: int = 2):  # fmt: skip
    """Random trainer batch: lengths 1..L (the first ``empty`` rows without a trained token),
    garbage (NaN) at padding."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(1, L + 1, (B,), generator=g)
    n[:empty] = 0
    pos = torch.arange(L)
    mask = (pos[None] >= L - n[:, None]) if left else (pos[None] < n[:, None])
    rlp = torch.log(torch.rand(B, L, generator=g, dtype=torch.float64) * 0.95 + 0.05)
    lp = (rlp + sigma * torch.randn(B, L, generator=g, dtype=torch.float64)).clamp(max=0.0)
    nan = torch.full_like(rlp, float("nan"))
    lp, rlp = torch.where(mask, lp, nan).to(dtype), torch.where(mask, rlp, nan).to(dtype)
    R = torch.rand(B, generator=g, dtype=torch.float64)
    return lp, rlp, mask.to(torch.int64), R


def lines(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("left", [False, True])
def test_same_batch_same_numbers_as_the_evaluator(tmp_path, left):
    # no empty rows (the evaluator's count of them is in flux); 256 rows of a mild mismatch: the
    # error estimate's Pareto k-hats (<= 0.29) lie far below the gate (0.58 at 256 rows)
    lp, rlp, m, R = batch(0, B=256, left=left, empty=0, sigma=0.03)
    T = int(m.sum(1).max())  # the evaluator's range is the longest row: make them equal
    with Monitor(tmp_path / "run", max_response_length=T, dump_batches=True) as mon:
        met = mon.update(7, lp, rlp, m, rewards=R).metrics
    rep = evaluate(tmp_path / "run" / "dumps" / "step_7.npz", tmp_path / "ev", html=False,
                   max_response_length=T)  # the generation limit the monitor was given
    # float64 inputs: the two routes differ only in summation order
    for k in ("k3_mean", "k2_max", "ser_mean", "log_ppl_abs_diff"):
        np.testing.assert_allclose(met[f"trm/{k}"], rep["metrics"][k], rtol=RTOL, atol=ATOL)
    for c in ("seq_max_k2", "seq_mean_k3", "seq_max_k2,seq_mean_k3"):
        assert rep["criteria"][c]["accepted"] == round(met[f"trm/acceptance_rate/{c}"] * 256)
    # the certificate and the error estimate: the library on the whole arrays
    cert = certify_linear(lp, rlp, m, T_max=T, level=0.95)
    for k in ("dbar_sum_estimate", "dbar_sum_ucb"):
        np.testing.assert_allclose(met[f"trm/cert/{k}"], cert[k], rtol=RTOL, atol=ATOL)
    for v, b in cert["bounds"].items():
        np.testing.assert_allclose(met[f"trm/cert/bound_{v}"], b, rtol=RTOL, atol=ATOL)
    err = estimate_error(lp, rlp, m, R, T_max=T)
    assert all(err[k]["shown"] for k in ("error", "L_prime", "J_diff"))
    for k in ("error", "L_prime", "J_diff"):
        for p in ("estimate", "lo", "hi"):
            np.testing.assert_allclose(met[f"trm/error/{k}_{p}"], err[k][p], rtol=RTOL, atol=ATOL)
    # and the evaluator's error section, from the dump, at the same generation limit
    for k in ("error", "L_prime", "J_diff"):
        for p in ("estimate", "lo", "hi"):
            np.testing.assert_allclose(rep["error_estimate"][k][p], err[k][p], rtol=RTOL,
                                       atol=ATOL)
    # and the evaluator's certified section, at the same generation limit
    ev = rep["certified"]
    assert ev["T_max"] == T
    np.testing.assert_allclose(met["trm/cert/dbar_sum_ucb"], ev["dbar_sum_ucb"], rtol=RTOL)


def test_alignment_dtype_and_padding_garbage_do_not_change_the_mask(tmp_path):
    right = batch(1)
    n = right[2].sum(1, keepdim=True)
    idx = (torch.arange(40)[None] + n) % 40  # row i rotated right by L - n_i: same tokens, left
    left = tuple(t.gather(1, idx) for t in right[:3])
    assert torch.equal(left[2].sum(1), right[2].sum(1)) and not torch.equal(left[2], right[2])
    outs = []
    for i, (lp, rlp, m) in enumerate((right[:3], left)):
        with Monitor(tmp_path / f"r{i}", max_response_length=40) as mon:
            outs.append(mon.update(0, lp, rlp, m))
    assert torch.equal(outs[0].keep, outs[1].keep)
    assert 0 < outs[0].metrics["trm/acceptance_rate"] < 1  # both decisions occur
    for k in ("trm/k2_max", "rollout_corr/kl", "trm/cert/dbar_sum_estimate"):
        np.testing.assert_allclose(outs[0].metrics[k], outs[1].metrics[k], rtol=RTOL, atol=ATOL)
    lp, rlp, m, _ = right
    with Monitor(tmp_path / "bf16", max_response_length=40) as mon:
        out = mon.update(0, lp.to(torch.bfloat16), rlp.to(torch.bfloat16), m.bool())
    assert out.keep.dtype == torch.bool and out.keep.shape == (48,)


def test_groups_certify_the_mean_of_each_group(tmp_path):
    lp, rlp, m, _ = batch(2, B=64)
    gid = torch.arange(64) // 8
    with Monitor(tmp_path / "run", max_response_length=40, reward_range=(-1.0, 2.0)) as mon:
        met = mon.update(0, lp, rlp, m, group_ids=gid).metrics
    a = np.where(m.numpy() != 0, -np.expm1(np.minimum(np.nan_to_num((lp - rlp).numpy()), 0)), 0)
    x = a.sum(1)
    keep = m.numpy().sum(1) > 0  # rows without a trained token are not sequences
    g = gid.numpy()[keep]
    means = np.array([x[keep][g == k].mean() for k in np.unique(g)])
    means = means[unit_order(means.size)]  # the betting bound's value-independent order
    ucb = upper_confidence_bound(means, upper=40.0, level=0.95, method="betting")
    assert met["trm/cert/n_units"] == 8
    np.testing.assert_allclose(met["trm/cert/bound_proved_here"], 3.0 * ucb, rtol=RTOL)


def test_heavy_tailed_error_estimate_is_flagged_and_its_interval_still_holds(tmp_path):
    """Heavy-tailed weights: the library flags the point estimates (Pareto k-hat) and its
    interval for every law, over the groups, is what the monitor logs."""
    lp, rlp, m, R = batch(3, sigma=1.5)
    gid = torch.arange(48) // 4
    est = estimate_error(lp, rlp, m, R, group_ids=gid.numpy(), T_max=40)
    assert not est["error"]["reliable"] and any("unreliable" in w for w in est["warnings"])
    with Monitor(tmp_path / "run", max_response_length=40) as mon:
        met = mon.update(0, lp, rlp, m, rewards=R, group_ids=gid).metrics
    for p in ("estimate", "lo", "hi"):
        np.testing.assert_allclose(met[f"trm/error/error_{p}"], est["error"][p], rtol=RTOL,
                                   atol=ATOL)
    for k in ("ess_fraction", "pareto_k_weights"):
        np.testing.assert_allclose(met[f"trm/error/{k}"], est[k], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(met["trm/error/error_pareto_k"], est["error"]["pareto_k"],
                               rtol=RTOL, atol=ATOL)  # fmt: skip


def test_bad_input_is_one_clear_error_and_loses_nothing(tmp_path):
    lp, rlp, m, R = batch(4)
    run = tmp_path / "run"
    mon = Monitor(run, max_response_length=40, dump_batches=True, tensorboard=True)
    mon.update(3, lp, rlp, m, rewards=R)
    before = (run / "metrics.jsonl").read_bytes()
    bad_lp = lp.clone()
    bad_lp[5, 0] = float("nan")
    cases = {
        "shape": ((4, lp[:, :-1], rlp, m), "share one"),
        "nan": ((4, bad_lp, rlp, m), "log_probs: row 5, token 0: NaN"),
        "backwards": ((2, lp, rlp, m), "steps must increase"),
        "repeat": ((3, lp, rlp, m), "steps must increase"),
        "reward": ((4, lp, rlp, m, R + 1.5), "outside reward_range"),
        "groups": ((4, lp, rlp, m, None, torch.arange(3)), "group_ids"),
    }
    for name, (args, msg) in cases.items():
        with pytest.raises(ValueError, match=msg) as ei:
            mon.update(*args)
        assert "\n" not in str(ei.value), name
    with Monitor(tmp_path / "short", max_response_length=10) as short:
        with pytest.raises(ValueError, match="more than max_response_length = 10"):
            short.update(0, lp, rlp, m)
    assert (run / "metrics.jsonl").read_bytes() == before
    assert sorted(p.name for p in (run / "dumps").iterdir()) == ["step_3.npz"]
    mon.update(4, lp, rlp, m)  # still usable after the refused batches
    mon.close()
    assert [ln["step"] for ln in lines(run)] == [3, 4]


def test_run_folder_is_resumed_or_refused(tmp_path):
    lp, rlp, m, _ = batch(5)
    run = tmp_path / "run"
    with Monitor(run, max_response_length=40) as mon:
        mon.update(0, lp, rlp, m)
    with Monitor(run, max_response_length=40) as mon:  # same settings: resumed
        with pytest.raises(ValueError, match="already holds step 0"):
            mon.update(0, lp, rlp, m)
        mon.update(1, lp, rlp, m)
    assert [ln["step"] for ln in lines(run)] == [0, 1]
    with pytest.raises(RunFolderError, match="other settings .*max_response_length"):
        Monitor(run, max_response_length=64)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not written by trm-bounds"):
        Monitor(foreign, max_response_length=40)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "trm/k')  # a crash mid-line
    with pytest.raises(RunFolderError, match="line 3: incomplete"):
        Monitor(run, max_response_length=40)


def test_options_are_checked():
    with pytest.raises(ValueError, match="max_response_length"):
        Monitor("unused", max_response_length=None)
    with pytest.raises(ValueError, match="level"):
        Monitor("unused", level=1.0, max_response_length=8)
    with pytest.raises(ValueError, match="2 values for 3 criteria"):
        parse_criteria("seq_max_k2,seq_mean_k3,ser", "0.1,0.2")
    with pytest.raises(ValueError, match="unknown criterion"):
        parse_criteria("seq_max_k9", None)


def test_memory_does_not_grow_with_the_number_of_steps(tmp_path):
    lp, rlp, m, R = batch(6, B=16, L=16)
    with Monitor(tmp_path / "run", max_response_length=16, tensorboard=True) as mon:
        for s in range(5):  # warm-up: caches, lazy imports
            mon.update(s, lp, rlp, m, rewards=R)
        tracemalloc.start()
        for s in range(5, 15):
            mon.update(s, lp, rlp, m, rewards=R)
        mid = tracemalloc.get_traced_memory()[0]
        for s in range(15, 55):
            mon.update(s, lp, rlp, m, rewards=R)
        end = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    # 40 more steps: no per-step retention (a retained metrics dict alone is > 5 kB a step)
    assert end - mid < 50_000


@pytest.mark.e2e
def test_importing_the_monitor_imports_neither_torch_nor_tensorboard():
    import subprocess
    import sys

    code = ("import sys, trm_bounds.monitor; "
            "print(sorted(m for m in ('torch', 'tensorboard', 'trl') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
