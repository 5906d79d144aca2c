"""Command lines of issue 13: ``trm-bounds plan``, ``bounds --dbar`` and ``evaluate --level``
(trm_bounds.cli, trm_bounds.planner, trm_bounds.profiles).

Most runs call :func:`trm_bounds.cli.main` in-process (fast); one runs ``python -m
trm_bounds`` to check the real exit status and stderr line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from trm_bounds.bounds import compute_bounds, kl_only
from trm_bounds.cli import main
from trm_bounds.planner import largest_delta, sequences_for_width


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_plan_json_keys_and_values(capsys):
    """--json gives delta_published and delta_sharp equal to the library's inverse."""
    status, out, _ = run(capsys, "plan", "--T", "4096", "--target", "1", "--json")
    assert status == 0
    rec = json.loads(out)
    assert rec["delta_published"] == largest_delta(4096, 1.0)
    assert rec["delta_sharp"] == largest_delta(4096, 1.0, sharp=True)
    assert f"{rec['delta_published']:.1e}" == "2.9e-06" and f"{rec['delta_sharp']:.1e}" == "5.7e-06"
    assert rec["unified_published"] <= 1.0 and rec["assumptions"]


def test_plan_text_with_dkl_seq_and_width(capsys):
    status, out, _ = run(capsys, "plan", "--T", "4096", "--target", "1", "--dkl-seq", "0.01",
                         "--width", "10", "--level", "0.9")  # fmt: skip
    assert status == 0
    assert f"{largest_delta(4096, 1.0, dkl_seq=0.01):.3g}" in out
    for variant, c in (("published", 4), ("sharp", 2), ("proved_here", 1)):
        n = sequences_for_width(10.0, T_max=4096, level=0.9, constant=c)["n_sequences"]
        assert f"{variant}, constant {c}): N >= {n} " in out


@pytest.mark.parametrize("writer", ["lines", "json", "npy"])
def test_plan_lengths_file(capsys, tmp_path, writer):
    """--lengths in each accepted format gives the same plan, with quantile rows."""
    L = np.array([100, 200, 300, 400, 1000])
    path = tmp_path / f"len.{'npy' if writer == 'npy' else 'txt' if writer == 'lines' else 'json'}"
    if writer == "npy":
        np.save(path, L)
    elif writer == "json":
        path.write_text(json.dumps(L.tolist()))
    else:
        path.write_text("# lengths\n" + "\n".join(map(str, L)) + "\n")
    status, out, _ = run(capsys, "plan", "--target", "1", "--lengths", str(path), "--json")
    assert status == 0
    rec = json.loads(out)
    assert rec["T"] == 1000 and rec["delta_sharp"] == largest_delta(1000, 1.0, lengths=L, sharp=True)
    assert [r["quantile"] for r in rec["quantiles"]] == [0.5, 0.9, 0.99]


@pytest.mark.parametrize("argv, match", [
    (["plan", "--target", "1"], "needs --T or --lengths"),
    (["plan", "--T", "10", "--target", "0"], "target must be a finite positive number, got 0.0"),
    (["plan", "--T", "10", "--target", "1", "--width", "1", "--level", "1.5"],
     "level must lie in (0, 1), got 1.5"),
    (["plan", "--T", "10", "--target", "1", "--dkl-seq", "1", "--lengths", "x"],
     "not allowed with argument"),
])  # fmt: skip
def test_plan_usage_errors_are_one_line(capsys, argv, match):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("trm-bounds plan: error:") and match in err


def test_plan_bad_lengths_file(capsys, tmp_path):
    p = tmp_path / "len.txt"
    p.write_text("10\n-3\n")
    status, _, err = run(capsys, "plan", "--target", "1", "--lengths", str(p))
    assert status == 2 and err.count("\n") == 1
    assert f"{p}: entry 1 = -3.0 is not a positive integer length" in err


def _dbar_inputs(T: int = 64):
    """A consistent profile: Dbar_t <= eps, sum >= Pinsker D_TV^seq, 2 sum Dbar^2 <= D_KL^seq."""
    delta, dkl = 1e-3, 0.04
    eps, _ = kl_only(delta, dkl)
    dbar = np.linspace(0.2, 1.0, T) * eps
    return delta, dkl, dbar


@pytest.mark.parametrize("fmt", ["json", "npy", "txt", "report"])
def test_bounds_dbar_changes_adaptive_to_the_profile(capsys, tmp_path, fmt):
    """Adaptive and Linear at the profile equal compute_bounds(dbar=profile); the default
    D_TV^seq becomes min(Pinsker, sum_t Dbar_t); every file format reads the same profile."""
    delta, dkl, dbar = _dbar_inputs()
    path = tmp_path / ("p.npy" if fmt == "npy" else "p.txt" if fmt == "txt" else "p.json")
    if fmt == "npy":
        np.save(path, dbar)
    elif fmt == "txt":
        path.write_text("\n".join(repr(float(x)) for x in dbar))
    elif fmt == "json":
        path.write_text(json.dumps(dbar.tolist()))
    else:  # the evaluator's report layout: top-level dbar_estimate
        path.write_text(json.dumps({"schema": "trm-bounds-report/v1", "dbar_estimate": dbar.tolist()}))
    status, out, _ = run(capsys, "bounds", "--T", "64", "--delta", str(delta), "--dkl-seq",
                         str(dkl), "--dbar", str(path), "--json")  # fmt: skip
    assert status == 0
    rec = json.loads(out)
    eps, dtv = kl_only(delta, dkl)
    ref = compute_bounds(64, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=min(dtv, dbar.sum()),
                         dbar=dbar, sharp=True)  # fmt: skip
    for k in ("adaptive_hybrid", "linear", "unified"):
        assert rec["sharp"][k] == ref[k]
    assert rec["published"]["linear"] == pytest.approx(4 * dbar.sum(), rel=1e-13)
    worst = compute_bounds(64, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv)
    assert rec["published"]["adaptive_hybrid"] < worst["adaptive_hybrid"]


def test_bounds_dbar_shorter_profile_is_zero_padded(capsys, tmp_path):
    """A profile shorter than T: zeros after its end (ended sequences, docs/theory.md §1)."""
    delta, dkl, dbar = _dbar_inputs(40)
    p = tmp_path / "p.json"
    p.write_text(json.dumps(dbar.tolist()))
    status, out, _ = run(capsys, "bounds", "--T", "64", "--delta", str(delta), "--dkl-seq",
                         str(dkl), "--dbar", str(p), "--json")  # fmt: skip
    assert status == 0
    used = np.asarray(json.loads(out)["inputs"]["dbar"])
    np.testing.assert_array_equal(used, np.concatenate([dbar, np.zeros(24)]))


@pytest.mark.parametrize("content, match", [
    ("[0.1, \"a\"]", "expected a list of numbers"),
    ("[0.1, 1.5]", "Dbar_t must lie in [0, 1], got entry 1 (t = 2) = 1.5"),
    ("{\"a\": 1}", "not a trm-bounds report"),
    ("[0.1,", "not valid JSON"),
    ("[]", "no numbers"),
])  # fmt: skip
def test_bounds_bad_dbar_file_is_one_line(capsys, tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_text(content)
    status, out, err = run(capsys, "bounds", "--T", "4", "--delta", "1e-3", "--dkl-seq", "1e-3",
                           "--dbar", str(p))  # fmt: skip
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("trm-bounds bounds: error:") and match in err


def test_bounds_dbar_inconsistent_profile_names_the_relation(capsys, tmp_path):
    """A profile above eps = sqrt(delta/2) contradicts delta: the relation is named."""
    p = tmp_path / "p.json"
    p.write_text("[0.5, 0.5]")
    status, _, err = run(capsys, "bounds", "--T", "2", "--delta", "1e-3", "--dkl-seq", "1e-3",
                         "--dbar", str(p))  # fmt: skip
    assert status == 2 and "relation Dbar_t <= eps violated" in err and str(p) in err


def test_bounds_dbar_longer_than_T(capsys, tmp_path):
    p = tmp_path / "p.json"
    p.write_text("[0.001, 0.001, 0.001]")
    status, _, err = run(capsys, "bounds", "--T", "2", "--delta", "1e-3", "--dkl-seq", "1e-3",
                         "--dbar", str(p))  # fmt: skip
    assert status == 2 and "3 positions, more than T = 2" in err


@pytest.mark.e2e
def test_evaluate_level_from_the_shell(tmp_path):
    """``python -m trm_bounds evaluate --level``: the report's certified level; a bad level
    is one line, exit 2, and leaves no folder behind."""
    out = tmp_path / "ev"
    r = subprocess.run([sys.executable, "-m", "trm_bounds", "evaluate", "--demo", "--no-figures",
                        "--quiet", "--level", "0.9", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["certified"]["level"] == 0.9 and rep["options"]["level"] == 0.9
    bad = tmp_path / "bad"
    r = subprocess.run([sys.executable, "-m", "trm_bounds", "evaluate", "--demo", "--level", "1",
                        "--out", str(bad)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "--level: must lie in (0, 1), got 1.0" in r.stderr and not bad.exists()
