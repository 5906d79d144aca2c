"""The studies (trm_bounds.studies): one registry, importable modules, tiny runs that write
every section, and one slope fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trm_bounds.studies import FIGURE_STUDIES, STUDIES
from trm_bounds.studies._fit import fit_slope

ROOT = Path(__file__).resolve().parents[2]


def test_registry_names_modules_with_the_study_interface():
    """Every registered study is a module with Args, SIZES, run, produce and main, and its
    entry script in experiments/ only calls it (no duplicated logic)."""
    for name, study in STUDIES.items():
        mod = study.module()
        for attr in ("Args", "SIZES", "run", "produce", "main"):
            assert hasattr(mod, attr), (name, attr)
        script = ROOT / "experiments" / f"{name}.py"
        assert script.is_file() and len(script.read_text().splitlines()) < 15, script
    assert set(FIGURE_STUDIES) <= set(STUDIES)


def test_fit_slope_is_the_one_rule():
    """Exact power laws give their exponent; a window touching zero gives None."""
    T = np.geomspace(2, 1e4, 20)
    assert fit_slope(T, 3 * T**1.5, 10, 1e4) == pytest.approx(1.5, rel=1e-12)
    y = T.copy()
    y[-1] = 0.0
    assert fit_slope(T, y, 10, 1e4) is None
    assert fit_slope(T, T, 1e5, 1e6) is None  # empty window


def test_tabular_scaling_tiny_writes_every_regime(tmp_path):
    """``--tiny`` run of the F3 study: four regimes with the keys the figure reads."""
    out = tmp_path / "ts.json"
    proc = subprocess.run([sys.executable, "-m", "trm_bounds.studies.tabular_scaling", "--tiny",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["args"]["size"] == "tiny" and data["seed"] == 0
    assert set(data["regimes"]) == {"uniform", "sparse", "uniform_mixing", "sparse_mixing"}
    for sec in data["regimes"].values():
        for key in ("T", "abs_error", "error_max_over_rewards", "bounds_published", "slopes"):
            assert key in sec


def test_tabular_verification_small_run_finds_no_violation(tmp_path):
    """A small run of the bound check: instances of every kind, zero violations."""
    out = tmp_path / "tv.json"
    proc = subprocess.run([sys.executable, "experiments/tabular_verification.py", "--per-kind",
                           "5", "--search-iters", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["violations_total"] == 0 and data["instances_checked"] >= 5


def test_bad_flag_is_a_usage_error(capsys):
    """A study's argument check is a one-line usage error (exit 2)."""
    from trm_bounds.studies import tabular_scaling

    with pytest.raises(SystemExit) as exc:
        tabular_scaling.main(["--T-max", "1"])
    assert exc.value.code == 2
    assert "--T-max" in capsys.readouterr().err


def test_demo_evaluation_reruns_into_its_own_folder(tmp_path):
    """The demo study owns its output folder: a second run replaces the first report (the
    evaluator refuses a non-empty folder to users without --overwrite)."""
    pytest.importorskip("torch")
    from trm_bounds.studies import demo_evaluation as de

    args = de.Args(out=str(tmp_path / "demo_eval"))
    first = de.produce(args)
    second = de.produce(args)
    assert first == second and second.is_file()


def test_plot_recompute_fails_when_a_study_fails(tmp_path, monkeypatch, capsys):
    """A study that fails makes ``plot --recompute`` exit non-zero, even if an older result
    file lets its figure be drawn."""
    import trm_bounds.studies as studies
    from trm_bounds.cli import plot_main

    monkeypatch.setattr(studies, "recompute", lambda d, **kw: ["log evaluator demo (F8)"])
    results = Path(__file__).resolve().parents[2] / "trm_bounds" / "data" / "results"
    status = plot_main(["--recompute", "--only", "F4", "--results", str(results),
                        "--out", str(tmp_path / "f")])  # fmt: skip
    assert status != 0
    assert "studies failed: log evaluator demo (F8)" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_study_has_a_help(name):
    """``python -m trm_bounds.studies.NAME --help`` works for every study (also one with no size
    presets), through the one study command line."""
    r = subprocess.run([sys.executable, "-m", f"trm_bounds.studies.{name}", "--help"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout
