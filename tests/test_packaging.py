"""Packaging: the core needs numpy, scipy and sympy only; the wheel ships what the figures read
and works away from the checkout."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_core_dependencies_and_extras():
    """Core: numpy, scipy, sympy; torch, matplotlib and pyarrow only in extras; the torch range
    admits 2.13.0; the README's commands install the extras they need."""
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("=")[0].split("<")[0] for d in meta["dependencies"]}
    assert core == {"numpy", "scipy", "sympy"}
    extras = meta["optional-dependencies"]
    assert {"torch", "plot", "logs", "all", "test"} <= set(extras)
    assert any(d.startswith("torch>=2.1,<2.15") for d in extras["torch"])
    readme = (ROOT / "README.md").read_text()
    assert '.[all]"' in readme and '.[test]"' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    cmd2 = next(line for line in readme.splitlines() if '.[test]"' in line)
    assert cmd2.strip() in ci


def test_wheel_ships_the_figure_result_files():
    """setup.py's list of shipped result files is the list the figures read."""
    pytest.importorskip("matplotlib")
    from trm_bounds.plot import FIGURES

    tree = ast.parse((ROOT / "setup.py").read_text())
    shipped = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and getattr(n.targets[0], "id", "") == "FIGURE_RESULTS")  # fmt: skip
    assert set(shipped) == {s.source for s in FIGURES.values()}
    for rel in shipped:
        assert (ROOT / "experiments" / "results" / rel).is_file(), rel


@pytest.mark.slow
def test_wheel_works_away_from_the_checkout(tmp_path):
    """``pip install .`` (not editable) into a new venv; from another folder ``trm-bounds
    bounds``, ``evaluate --demo --out X`` and ``plot --out X`` work and write only into X."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)  # fmt: skip
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                    str(ROOT)], check=True, timeout=900, capture_output=True)  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    exe = str(venv / "bin" / "trm-bounds")
    env = {**os.environ, "PYTHONPATH": ""}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *argv], cwd=work, capture_output=True, text=True,
                              timeout=900, env=env)  # fmt: skip

    r = run("bounds", "--T", "4096", "--delta", "1e-4", "--dkl-seq", "0.01")
    assert r.returncode == 0 and "tightest" in r.stdout, r.stderr
    r = run("evaluate", "--demo", "--no-figures", "--out", "ev")
    assert r.returncode == 0, r.stderr
    assert (work / "ev" / "report.json").is_file()
    r = run("plot", "--out", "figs", "--formats", "png", "--dpi", "30")
    assert r.returncode == 0, r.stderr
    assert "10 of 10 figures" in r.stdout
    assert sorted(p.name for p in work.iterdir()) == ["ev", "figs"]
    site = subprocess.run([str(py), "-c", "import trm_bounds, os; print(os.path.dirname("
                           "trm_bounds.__file__))"], capture_output=True, text=True,
                          cwd=work, env=env).stdout.strip()  # fmt: skip
    assert not (Path(site) / "figures").exists() and not (Path(site).parent / "figures").exists()
