"""The evaluator is correct by construction (issue 10): no tokens is an error, the horizon
comes from the data, labels say what each number is, no stale outputs, the user's umask,
verl's option grammar on the command line."""

from __future__ import annotations

import csv
import json
import math
import os
import stat

import numpy as np
import pytest

pytest.importorskip("torch")

from trm_bounds.cli import evaluate_main as main  # noqa: E402
from trm_bounds.evaluate import OutputDirError, evaluate  # noqa: E402
from trm_bounds.logs import LogFormatError  # noqa: E402
from trm_bounds.masking import rollout_rs_mask  # noqa: E402


def dump(path, lp, rlp, mask):
    np.savez(path, old_log_probs=lp, rollout_log_probs=rlp, response_mask=mask)
    return path


def data(seed=0, B=40, T=30):
    rng = np.random.default_rng(seed)
    L = rng.integers(1, T + 1, B)
    mask = np.arange(T)[None, :] < L[:, None]
    rlp = np.log(rng.uniform(0.05, 1.0, (B, T)))
    lp = np.minimum(rlp + rng.normal(0, 1, (B, T)) * 10.0 ** rng.uniform(-3, -0.5, (B, 1)), 0.0)
    return np.where(mask, lp, 0.0), np.where(mask, rlp, 0.0), mask, int(L.max())


def pad(a, width):
    return np.pad(a, ((0, 0), (0, width - a.shape[1])))


def test_padding_width_never_changes_the_report(tmp_path):
    """Identical data padded to 40 and to 4096 columns: identical reports; the bounds'
    horizon T is the longest valid sequence."""
    lp, rlp, mask, t_max = data()
    reps = []
    for w in (40, 4096):
        f = dump(tmp_path / f"w{w}.npz", pad(lp, w), pad(rlp, w), pad(mask, w))
        rep = evaluate(f, tmp_path / f"out{w}", progress=False)
        rep.pop("inputs")
        reps.append(json.loads(json.dumps(rep)))
    assert reps[0] == reps[1]
    assert reps[0]["bounds"]["inputs"]["T"] == t_max == len(reps[0]["dbar_estimate"])


def test_zero_valid_tokens_is_an_error_not_full_acceptance(tmp_path, capsys):
    lp, rlp, mask, _ = data()
    f = dump(tmp_path / "z.npz", lp, rlp, np.zeros_like(mask))
    with pytest.raises(LogFormatError, match="no valid token|zero valid"):
        evaluate(f, tmp_path / "out", progress=False)
    assert main([str(f), "--out", str(tmp_path / "o2"), "--quiet", "--no-figures"]) == 2
    assert not (tmp_path / "o2").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "valid token" in err[0]


def test_non_empty_out_refused_and_failed_overwrite_leaves_no_stale_report(tmp_path):
    lp, rlp, mask, _ = data()
    good = dump(tmp_path / "g.npz", lp, rlp, mask)
    bad = dump(tmp_path / "b.npz", lp, rlp, np.zeros_like(mask))
    out = tmp_path / "out"
    evaluate(good, out, progress=False)
    assert {"report.json", "report.md", "sequences.csv"} <= {p.name for p in out.iterdir()}
    with pytest.raises(OutputDirError, match="not empty"):
        evaluate(good, out, progress=False)
    with pytest.raises(LogFormatError):
        evaluate(bad, out, progress=False, overwrite=True)
    assert list(out.iterdir()) == []  # the earlier run's files are gone, nothing partial
    evaluate(good, out, progress=False, overwrite=True)
    assert (out / "report.json").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_follow_the_umask(tmp_path, umask):
    lp, rlp, mask, _ = data()
    f = dump(tmp_path / "g.npz", lp, rlp, mask)
    old = os.umask(umask)
    try:
        evaluate(f, tmp_path / "out", progress=False)
    finally:
        os.umask(old)
    for name in ("report.json", "report.md", "sequences.csv"):
        mode = stat.S_IMODE((tmp_path / "out" / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


def test_sampled_token_labels_say_what_each_number_is(tmp_path):
    """One sampled k2 is not a KL estimate: p_roll = (0.99, 0.01), p_theta = (0.98, 0.02),
    token 2 sampled: k2 = (log 2)^2 / 2 is over 70 times the KL."""
    p, q = np.array([0.99, 0.01]), np.array([0.98, 0.02])
    kl = float(np.sum(p * np.log(p / q)))
    k2 = 0.5 * math.log(q[1] / p[1]) ** 2
    assert k2 / kl > 70
    f = dump(tmp_path / "s.npz", np.log([[q[1]]]), np.log([[p[1]]]), np.ones((1, 1), bool))
    o = evaluate(f, tmp_path / "out", progress=False)["observed"]
    assert math.isclose(o["delta_plugin"], k2, rel_tol=1e-6)
    assert "NEITHER a lower bound NOR an unbiased estimate" in o["delta_label"]
    assert "Pinsker's upper bound" in o["eps_label"] and "not an estimate" in o["eps_label"]
    assert math.isclose(o["eps_plugin"], math.sqrt(k2 / 2), rel_tol=1e-6)


def test_cli_rollout_rs_grammar_and_clamp(tmp_path):
    """``--rollout-rs seq_max_k2,seq_mean_k3 --rollout-rs-threshold A,B`` beside
    ``--threshold``: the report's acceptance equals ``rollout_rs_mask``'s; by default (and with
    ``--clamp-log-ratio 20``) a trainer -inf is decided as verl decides it (clipped at 20);
    ``--clamp-log-ratio inf`` departs from verl and rejects it."""
    lp, rlp, mask, _ = data(seed=3, T=400)
    lp[0, 0] = -np.inf
    mask[0, :] = True
    lp[0, 1:], rlp[0, 1:] = -1.0, -1.0
    f = dump(tmp_path / "g.npz", lp, rlp, mask)
    rs, th = "seq_max_k2,seq_mean_k3,seq_sum_k1", "1e-3,0.05,0.5_2"
    decisions = {}
    for flag, clamp in ((None, 20.0), ("20", 20.0), ("inf", None)):
        out = tmp_path / f"out{flag}"
        args = [str(f), "--out", str(out), "--quiet", "--no-figures", "--rollout-rs", rs,
                "--rollout-rs-threshold", th, "--threshold", "ser=0.1"]  # fmt: skip
        if flag:
            args += ["--clamp-log-ratio", flag]
        assert main(args) == 0
        rep = json.loads((out / "report.json").read_text())
        _, acc = rollout_rs_mask(lp, rlp, mask, rs, th, clamp_log_ratio=clamp)
        decisions[flag] = acc.int().tolist()
        assert rep["criteria"][rs]["accepted"] == int(acc.sum())
        assert rep["criteria"]["ser"]["threshold"] == 0.1
        with open(out / "sequences.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [int(r[f"accept:{rs}"]) for r in rows] == acc.int().tolist()
    assert decisions[None] == decisions["20"]  # verl's clip is the default
    assert main([str(f), "--out", str(tmp_path / "x"), "--rollout-rs", "seq_max_k2"]) != 0
