"""``trm-bounds plot`` draws every figure F1-F9 from result files.

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

from tests.tolerances import ATOL, RTOL

pytest.importorskip("matplotlib")

from trm_bounds.cli import plot_main as main  # noqa: E402
from trm_bounds.plot import FIGURES, ResultFileError, render  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
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
    """Each figure of the registry has its fixture (so the test below covers all nine)."""
    assert sorted(FIGURES, key=lambda k: int(k[1:])) == [f"F{i}" for i in range(1, 11)]
    for spec in FIGURES.values():
        assert (FIXTURES / spec.source).is_file(), spec.source


def test_cli_draws_all_nine_figures(drawn):
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
    code = (
        "import matplotlib; b = matplotlib.rcParams._get_backend_or_none(); "
        "import trm_bounds.plot, sys; "
        "print(matplotlib.rcParams._get_backend_or_none() == b, 'matplotlib.pyplot' in sys.modules)"
    )
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
    assert f"{len(FIGURES)} of {len(FIGURES)} figures written" in out.stdout


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
        assert a.size == (
            "full" if full and STUDIES[name].module().SIZES.get("full") else "default"
        )
        assert (getattr(a, "device", None) == "cpu:0") is STUDIES[name].torch
    assert calls["demo_evaluation"].out == str(tmp_path / "demo_eval")
    assert calls["transformer_mismatch"].instances_out == str(
        tmp_path / "transformer_instances.json"
    )


@pytest.mark.parametrize(
    "only, expected",
    [
        (["F8"], ["demo_evaluation"]),
        (["F3", "F7"], ["tabular_scaling", "transformer_mismatch"]),
        (["F1", "F4"], ["bound_scaling"]),
    ],
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


# ----------------------------------------------------------------------------- print quality

#: Pixels a series must show inside the panel at 300 dpi (3.5 in wide) to count as visible.
#: The hidden series of issue 12 showed 0-58 px at 150 dpi (about 0-230 at 300 dpi); every
#: drawn group shows over 1,000 on the committed results and the fixtures.
MIN_VISIBLE_PX = 500


def _bound_scaling(name: str) -> dict:
    root = Path(__file__).resolve().parents[2]
    src = {"fixture": FIXTURES, "committed": root / "trm_bounds" / "data" / "results"}[name]
    return json.loads((src / "bound_scaling.json").read_text())


@pytest.mark.parametrize("source", ["fixture", "committed"])
@pytest.mark.parametrize(("key", "regime"), [("F1", "uniform"), ("F2", "sparse")])
def test_every_legend_entry_of_the_scaling_figures_is_visible(source, key, regime):
    """Rendered at print size, each coincident group (one legend entry) shows at least
    ``MIN_VISIBLE_PX`` pixels of its colour inside the panel, and the legend has exactly one
    entry per group, naming every member."""
    from trm_bounds.plot import style
    from trm_bounds.plot.figures_bounds import scaling_groups

    data = _bound_scaling(source)
    fig = FIGURES[key].draw(data)
    ax = fig.axes[0]
    groups = scaling_groups(data[regime])
    colors = [style.BOUND_COLORS[g[0]] for g in groups]
    assert len(set(colors)) == len(colors)  # one colour per legend entry
    px = style.series_pixels(fig, ax, colors)
    for g, c in zip(groups, colors, strict=True):
        assert px[c] >= MIN_VISIBLE_PX, (g, px[c])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(groups)
    for g, label in zip(groups, labels, strict=True):
        assert label.count("=") == len(g) - 1, (g, label)
    assert abs(fig.get_figwidth() - style.COLUMN_WIDTH) < 1e-9


def test_a_hidden_series_counts_no_pixels():
    """Negative control of the visibility check: a curve drawn exactly under another shows
    (almost) no pixels, the one on top shows many."""
    import numpy as np

    from trm_bounds.plot import style

    with __import__("matplotlib").rc_context(style.RC):
        fig, ax = style.figure()
        x = np.geomspace(1, 1e4, 50)
        ax.plot(x, x**1.5, color="#1f77b4", linewidth=1.1, zorder=3)  # on top
        ax.plot(x, x**1.5, color="#aec7e8", linewidth=1.1, zorder=2)  # hidden underneath
        ax.set_xscale("log")
        ax.set_yscale("log")
    px = style.series_pixels(fig, ax, ["#1f77b4", "#aec7e8"])
    assert px["#1f77b4"] >= MIN_VISIBLE_PX
    assert px["#aec7e8"] < MIN_VISIBLE_PX / 4  # its antialiased rim only


@pytest.mark.parametrize("regime", ["uniform", "sparse"])
def test_coincident_groups_are_exactly_the_equal_curves(regime):
    """Members of a group are equal to relative 1e-9 on the whole grid; curves of different
    groups differ somewhere by more than 1e-6.  Uniform divergence: Coupling = Adaptive (TV)
    and PM-KL = Adaptive (KL) (the docs/theory.md §4 identities at Dbar_t = eps)."""
    import numpy as np

    from trm_bounds.plot.figures_bounds import scaling_groups

    sec = _bound_scaling("committed")[regime]
    groups = scaling_groups(sec)
    y = {n: np.asarray(sec["published"][n], dtype=float) for g in groups for n in g}
    for g in groups:
        for n in g[1:]:
            np.testing.assert_allclose(y[n], y[g[0]], rtol=1e-9, atol=0)
    heads = [g[0] for g in groups]
    for i, a in enumerate(heads):
        for b in heads[i + 1 :]:
            assert np.max(np.abs(y[a] / y[b] - 1)) > 1e-6, (a, b)
    if regime == "uniform":
        flat = {frozenset(g) for g in groups}
        assert any({"coupling", "adaptive_tv"} <= g for g in flat)
        assert any({"pm_kl", "adaptive_kl"} <= g for g in flat)


#: Plain-text mathematics that must not appear outside mathtext ($...$).
_PLAIN_MATH = ("D_KL^", "sqrt(", "Dbar", "delta", "eps ", "eps=", "T^{", "<=", "+-")


def _all_texts(fig):
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _my_figures():
    """(name, Figure) for F1, F2, F4, F5, F6 on the committed results (their labels come from
    the current study) and every F8 panel on the fixture."""
    from trm_bounds.plot import evaluate as ev

    data = _bound_scaling("committed")
    figs = [(k, FIGURES[k].draw(data)) for k in ("F1", "F2", "F4", "F5", "F6")]
    report = json.loads((FIXTURES / "demo_eval" / "report.json").read_text())
    figs += [
        ("F8 threshold", ev.acceptance_vs_threshold(report)),
        ("F8 length", ev.acceptance_by_length(report)),
        ("F8 dbar", ev.dbar_estimate(report)),
        ("F8 k2", ev.score_histogram(report, "k2_max", "k2", criterion="seq_max_k2")),
        ("F8 ser", ev.score_histogram(report, "ser", "SER", criterion="ser")),
    ]
    return figs


def test_figures_share_one_canvas_and_write_math_as_mathtext():
    """Every figure is one column wide; no text carries plain-text mathematics outside
    ``$...$``, no title starts with a figure number, and nothing cites a file in the image
    (captions live in the registry and paper_repro.md)."""
    import re

    from trm_bounds.plot import style

    for name, fig in _my_figures():
        assert abs(fig.get_figwidth() - style.COLUMN_WIDTH) < 1e-9, name
        assert fig._supxlabel is None, name  # no footer
        for text in _all_texts(fig):
            outside = re.sub(r"\$[^$]*\$", "", text)
            for bad in _PLAIN_MATH:
                assert bad not in outside, (name, text)
            assert not re.match(r"F\d", text), (name, text)
            assert ".md" not in text and ".json" not in text, (name, text)


def test_registry_gives_every_figure_a_caption():
    """Captions live in the figure registry (the report page prints them)."""
    for key, spec in FIGURES.items():
        assert len(spec.caption) > 80, key


def test_f8_names_criteria_with_thresholds_and_shows_uncertainty():
    """F8: legend labels are criterion names with their thresholds (no raw ids); acceptance by
    length carries 95% Wilson error bars around every rate; nats and dimensionless criteria
    never share an axis; the histograms mark the threshold in use; the Dbar legend sits
    outside the panel (it covers no line)."""
    import numpy as np

    from trm_bounds.plot import evaluate as ev
    from trm_bounds.proportions import wilson

    report = json.loads((FIXTURES / "demo_eval" / "report.json").read_text())
    raw_ids = set(report["criteria"])
    fig = ev.acceptance_by_length(report)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(raw_ids)
    for label in labels:
        assert not any(rid in label for rid in raw_ids), label
        assert r"$\leq$" in label
    ax = fig.axes[0]
    bars = ax.containers
    assert len(bars) == len(raw_ids)
    for c, bar in zip(report["criteria"], bars, strict=True):
        segs = bar.lines[2][0].get_segments()
        for b, seg in zip(report["length_buckets"], segs, strict=True):
            n, rate = b["n_sequences"], b["acceptance_rate"][c]
            lo, hi = wilson(np.round(rate * n), n)
            np.testing.assert_allclose(sorted([seg[0][1], seg[1][1]]), [lo, hi], atol=1e-12)
    fig = ev.acceptance_vs_threshold(report)
    for ax in fig.axes:
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        units = {"nats" in ax.get_xlabel(), "dimensionless" in ax.get_xlabel()}
        assert units == {True, False}, ax.get_xlabel()
        nats = ["k_2" in n or "k_3" in n for n in names]
        assert all(nats) if "nats" in ax.get_xlabel() else not any(nats), names
    for score, crit in (("k2_max", "seq_max_k2"), ("ser", "ser")):
        fig = ev.score_histogram(report, score, score, criterion=crit)
        xs = [ln.get_xdata()[0] for ln in fig.axes[0].get_lines()]
        assert report["criteria"][crit]["threshold"] in xs
    fig = ev.dbar_estimate(report)
    assert fig.axes[0].get_legend() is None and fig.legends  # legend outside the panel


def _embedded_fonts(pdf: bytes) -> list[dict]:
    """Each TrueType font embedded in ``pdf``: glyph name -> (outline coordinates, advance),
    and its character map."""
    import io
    import re
    import zlib

    from fontTools.ttLib import TTFont

    fonts = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, flags=re.S):
        try:
            font = TTFont(io.BytesIO(zlib.decompress(raw)))
            glyf, hmtx = font["glyf"], font["hmtx"]
        except Exception:  # not a font stream (content, image, CMap)
            continue
        glyphs = {}
        for name in font.getGlyphOrder():
            coords, _, _ = glyf[name].getCoordinates(glyf)
            glyphs[name] = (tuple(map(tuple, coords)), hmtx[name][0])
        fonts.append({"glyphs": glyphs, "cmap": dict(font.getBestCmap() or {})})
    return fonts


def test_pdf_font_subsets_keep_every_glyph_without_layout_tables(tmp_path):
    """The PDF's embedded fonts, written without the OpenType layout tables (the redraw's
    speed-up), have the same character maps as matplotlib's own subsets, every glyph a
    character maps to, and each glyph with the same outline and advance; only glyphs that
    substitutions could reach and no character maps to are left out."""
    import matplotlib

    from trm_bounds.plot import style

    data = _bound_scaling("fixture")
    style.save(FIGURES["F1"].draw(data), tmp_path, "lean", ["pdf"])
    fig = FIGURES["F1"].draw(data)
    with matplotlib.rc_context(style.RC):
        fig.savefig(tmp_path / "plain.pdf", format="pdf", dpi=style.RC["savefig.dpi"])
    lean = _embedded_fonts((tmp_path / "lean.pdf").read_bytes())
    plain = _embedded_fonts((tmp_path / "plain.pdf").read_bytes())
    assert len(lean) == len(plain) >= 2
    for font in lean:
        same = [f for f in plain if f["cmap"] == font["cmap"]]
        assert same, sorted(font["cmap"])
        full = same[0]["glyphs"]
        assert set(font["cmap"].values()) <= set(font["glyphs"])
        assert all(full[name] == g for name, g in font["glyphs"].items())
        assert set(full) - set(font["glyphs"]) <= set(full) - set(font["cmap"].values())


def test_the_figure_code_imports_no_study():
    """Layering: figures are drawn from result files, so no module of trm_bounds.plot imports
    trm_bounds.studies (the recompute path lives in trm_bounds.studies.recompute_files)."""
    import ast

    import trm_bounds.plot

    folder = Path(trm_bounds.plot.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            assert not any(n.startswith("trm_bounds.studies") for n in names), path.name
