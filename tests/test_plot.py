"""``trm-bounds plot`` draws every figure F1-F8 from result files.

The result files are the small fixtures of ``tests/fixtures`` (see its README for where each
comes from).  Figures are written into a temporary folder, never into ``figures/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tolerances import ATOL, RTOL

pytest.importorskip("matplotlib")

from trm_bounds.cli import plot_main as main  # noqa: E402
from trm_bounds.plot import FIGURES, ResultFileError, render  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"  # PNG signature (PNG specification, section 5.2)
PDF_MAGIC = b"%PDF-"  # PDF header (ISO 32000-1, section 7.5.2)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[int, Path]:
    """Run the CLI once on the fixtures, PNG at a low resolution: (exit status, figure folder)."""
    out = tmp_path_factory.mktemp("figures")
    status = main(
        ["--results", str(FIXTURES), "--out", str(out), "--formats", "png", "--dpi", "40"]
    )
    return status, out


def test_every_fixture_result_file_exists():
    """Each figure of the registry has its fixture (so the test below covers all eight)."""
    assert sorted(FIGURES) == [f"F{i}" for i in range(1, 9)]
    for spec in FIGURES.values():
        assert (FIXTURES / spec.source).is_file(), spec.source


def test_cli_draws_all_eight_figures(drawn):
    """Exit 0, and every figure gives a non-empty PNG with the PNG signature."""
    status, out = drawn
    assert status == 0
    for key, spec in FIGURES.items():
        folder = out / spec.name if key == "F8" else out
        stems = [p.stem for p in folder.glob("*.png")] if key == "F8" else [spec.name]
        assert stems, f"{key}: no PNG written"
        for stem in stems:
            png = folder / f"{stem}.png"
            assert png.read_bytes()[:8] == PNG_MAGIC, png
            assert png.stat().st_size > 3_000, png  # a drawn figure, not an empty canvas


def test_f8_covers_threshold_and_length(drawn):
    """F8 shows acceptance against threshold and against length."""
    _, out = drawn
    names = {p.stem for p in (out / FIGURES["F8"].name).glob("*.png")}
    assert {"acceptance_vs_threshold", "acceptance_by_length"} <= names


def test_missing_result_file_is_skipped_with_message(tmp_path, capsys):
    """A missing result file: the figure is skipped with a message naming it, exit 1."""
    (tmp_path / "res").mkdir()
    shutil.copy(FIXTURES / "bound_scaling.json", tmp_path / "res" / "bound_scaling.json")
    status = main(
        ["--results", str(tmp_path / "res"), "--out", str(tmp_path / "fig"), "--only", "F3",
         "--only", "F5", "--formats", "pdf"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1
    assert "skip F3" in err and "tabular_scaling.json" in err
    pdf = tmp_path / "fig" / f"{FIGURES['F5'].name}.pdf"
    assert pdf.read_bytes()[:5] == PDF_MAGIC
    assert not (tmp_path / "fig" / f"{FIGURES['F3'].name}.png").exists()


def test_malformed_result_file_names_file_and_field(tmp_path):
    """A result file without the section a figure needs: error naming the file and field."""
    (tmp_path / "bound_scaling.json").write_text(json.dumps({"experiment": "bound_scaling"}))
    with pytest.raises(ResultFileError, match=r"bound_scaling\.json.*'uniform'"):
        render(FIGURES["F1"], tmp_path, tmp_path / "fig", ["png"])
    (tmp_path / "bound_scaling.json").write_text("{not json")
    with pytest.raises(ResultFileError, match=r"bound_scaling\.json: not valid JSON"):
        render(FIGURES["F1"], tmp_path, tmp_path / "fig", ["png"])
    assert not (tmp_path / "fig").exists()  # no partial output


def test_plot_module_is_runnable_and_documents_flags():
    """``python -m trm_bounds.plot --help`` lists the documented flags."""
    out = subprocess.run(
        [sys.executable, "-m", "trm_bounds.plot", "--help"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0
    for flag in ("--recompute", "--full", "--out", "--only"):
        assert flag in out.stdout


def test_package_root_does_not_import_matplotlib():
    """``import trm_bounds`` pulls in neither matplotlib nor torch (STYLE.md habit 1)."""
    code = "import sys, trm_bounds; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]


def test_importing_plot_changes_no_matplotlib_setting():
    """Importing the figure code selects no backend and opens no pyplot (layering)."""
    code = ("import matplotlib; b = matplotlib.rcParams._get_backend_or_none(); "
            "import trm_bounds.plot, sys; "
            "print(matplotlib.rcParams._get_backend_or_none() == b, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False"], out.stderr[-2000:]


def test_recompute_outside_a_checkout_writes_beside_the_figures(tmp_path, monkeypatch):
    """From an installed wheel (no checkout), --recompute writes the result files into
    OUT/results and draws from there: never into the installed package."""
    import trm_bounds.results as results
    import trm_bounds.studies as studies

    seen = {}

    def fake(results_dir, **kw):
        seen["dir"] = Path(results_dir)
        seen["names"] = list(kw["names"])
        return []

    monkeypatch.setattr(results, "checkout_root", lambda: None)
    monkeypatch.setattr(studies, "recompute", fake)
    out = tmp_path / "figs"
    main(["--recompute", "--out", str(out), "--only", "F5", "--formats", "png", "--dpi", "30"])
    assert seen == {"dir": out / "results", "names": ["bound_scaling"]}


@pytest.mark.slow
def test_recompute_reruns_every_experiment_and_draws_all_figures(tmp_path):
    """The README's main command end to end (minutes): every result file, every figure."""
    res, fig = tmp_path / "results", tmp_path / "figures"
    out = subprocess.run(
        [sys.executable, "-m", "trm_bounds.plot", "--recompute", "--results", str(res),
         "--out", str(fig), "--formats", "png"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    for spec in FIGURES.values():
        assert (res / spec.source).is_file(), spec.source
    assert "8 of 8 figures written" in out.stdout


@pytest.mark.parametrize("full", [False, True])
def test_recompute_runs_every_figure_study_into_the_results_folder(tmp_path, monkeypatch, full):
    """recompute runs each figure study in this process with its ``out`` in the results folder,
    the ``full`` preset only if asked, the seed passed on, and a device only to torch studies."""
    from trm_bounds.studies import FIGURE_STUDIES, STUDIES, recompute

    calls = {}
    for name in FIGURE_STUDIES:
        mod = STUDIES[name].module()
        monkeypatch.setattr(mod, "produce", lambda a, n=name: calls.setdefault(n, a))
    assert recompute(tmp_path, size="full" if full else "default", seed=3, device="cpu:0") == []
    assert list(calls) == list(FIGURE_STUDIES)
    for name, a in calls.items():
        assert str(a.out).startswith(str(tmp_path))
        assert a.seed == 3
        assert a.size == ("full" if full and STUDIES[name].module().SIZES.get("full")
                          else "default")
        assert (getattr(a, "device", None) == "cpu:0") is STUDIES[name].torch
    assert calls["demo_evaluation"].out == str(tmp_path / "demo_eval")
    assert calls["transformer_mismatch"].instances_out == str(tmp_path / "transformer_instances.json")


@pytest.mark.parametrize(
    "only, expected",
    [(["F8"], ["demo_evaluation"]), (["F3", "F7"], ["tabular_scaling", "transformer_mismatch"]),
     (["F1", "F4"], ["bound_scaling"])],
)
def test_recompute_only_reruns_what_the_figures_read(tmp_path, monkeypatch, only, expected):
    """--recompute --only FN reruns just the studies of those figures' result files."""
    import trm_bounds.studies as studies

    seen = []
    monkeypatch.setattr(studies, "recompute", lambda d, **kw: seen.extend(kw["names"]) or [])
    argv = ["--recompute", "--results", str(tmp_path), "--out", str(tmp_path / "f")]
    main(argv + [a for k in only for a in ("--only", k)])
    assert seen == expected


def test_recompute_failure_is_one_line_and_others_still_run(tmp_path, monkeypatch, capsys):
    """A failing study is reported in one line; the next ones still run."""
    from trm_bounds.studies import STUDIES, recompute

    def boom(a):
        raise RuntimeError("no data\nsecond line")

    monkeypatch.setattr(STUDIES["bound_scaling"].module(), "produce", boom)
    ran = []
    monkeypatch.setattr(STUDIES["tabular_scaling"].module(), "produce", lambda a: ran.append(a))
    failed = recompute(tmp_path, names=["bound_scaling", "tabular_scaling"])
    assert failed == [STUDIES["bound_scaling"].label] and len(ran) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "no data" in err and "second line" not in err


def test_bound_scaling_tiny_run_writes_every_section(tmp_path):
    """Smoke test of the entry script experiments/bound_scaling.py --tiny (the study
    trm_bounds.studies.bound_scaling): every section the figures read, and
    two identities: the routes meet at the crossover, sqrt(k delta / 2) = k eps at
    k = delta / (2 eps^2); the F6 TRM-Max rate brackets (1-p)^T within its interval."""
    import numpy as np

    out = tmp_path / "bs.json"
    proc = subprocess.run(
        [sys.executable, str(FIXTURES.parents[1] / "experiments" / "bound_scaling.py"),
         "--tiny", "--out", str(out), "--seed", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    for key in ("uniform", "sparse", "paper_table", "crossover", "length_bias"):
        assert key in data, key
    assert data["seed"] == 1 and data["args"]["size"] == "tiny"
    delta = data["crossover"]["delta"]
    for case in data["crossover"]["cases"]:
        k = case["crossover"]
        np.testing.assert_allclose(np.sqrt(k * delta / 2), k * case["eps"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(case["crossover_weight"], k * case["eps"], rtol=RTOL, atol=ATOL)
    sim = data["length_bias"]["simulation"]
    lo, hi = np.array(sim["ci_low"]["seq_max_k2"]), np.array(sim["ci_high"]["seq_max_k2"])
    expected = np.array(sim["expected_trm_max"])
    assert np.all((lo <= expected + ATOL) & (expected <= hi + ATOL))
