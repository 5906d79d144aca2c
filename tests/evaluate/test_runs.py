"""Per-step runs (``evaluate RUN --by-step``) and comparisons (``evaluate A B --compare``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from trm_bounds.cli import evaluate_main as main  # noqa: E402
from trm_bounds.evaluate import evaluate  # noqa: E402
from trm_bounds.evaluate.runs import compare, evaluate_run, steps_of_run, summary_row  # noqa: E402


def step_file(path, seed: int, sigma: float, B: int = 24, T: int = 30):
    rng = np.random.default_rng(seed)
    L = rng.integers(1, T + 1, B)
    mask = np.arange(T)[None, :] < L[:, None]
    rlp = np.log(rng.uniform(0.05, 1.0, (B, T)))
    lp = np.minimum(rlp + rng.normal(0, sigma, (B, T)), 0.0)
    np.savez(path, old_log_probs=np.where(mask, lp, 0.0),
             rollout_log_probs=np.where(mask, rlp, 0.0), response_mask=mask)  # fmt: skip
    return path


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    for i, (step, sigma) in enumerate([(1, 1e-3), (2, 1e-2), (10, 1e-1)]):
        step_file(d / f"train_data_step{step}.npz", seed=i, sigma=sigma)
    return d


def test_steps_parsed_from_names_sorted_numerically(run_dir):
    assert list(steps_of_run(run_dir)) == [1, 2, 10]


def test_by_step_rows_equal_separate_evaluations(run_dir, tmp_path):
    """Each row of run.json = the summary of that step evaluated alone; the trend of the
    mismatch follows the injected noise."""
    res = evaluate_run(run_dir, tmp_path / "out", progress=False)
    assert [r["step"] for r in res["steps"]] == [1, 2, 10]
    for r in res["steps"]:
        alone = evaluate(run_dir / f"train_data_step{r['step']}.npz", tmp_path / f"a{r['step']}",
                         progress=False)  # fmt: skip
        want = summary_row(alone)
        assert {k: r[k] for k in want} == want
    k3 = [r["metric:k3_mean"] for r in res["steps"]]
    assert k3[0] < k3[1] < k3[2]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["steps"] == res["steps"]
    assert (tmp_path / "out" / "step_10" / "report.json").exists()


def test_failed_run_leaves_nothing_stale_or_partial(run_dir, tmp_path):
    """A failed run with ``overwrite``: the earlier run's outputs are gone (none of them can
    pass for the new run's), nothing of the failed run is left, the user's other files stay."""
    out = tmp_path / "out"
    evaluate_run(run_dir, out, progress=False)
    (out / "notes.txt").write_text("mine")
    (run_dir / "train_data_step2.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        evaluate_run(run_dir, out, progress=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_compare_is_b_minus_a(run_dir, tmp_path):
    a, b = run_dir / "train_data_step1.npz", run_dir / "train_data_step10.npz"
    res = compare(a, b, tmp_path / "cmp", progress=False)
    ra = summary_row(evaluate(a, tmp_path / "ea", progress=False))
    rb = summary_row(evaluate(b, tmp_path / "eb", progress=False))
    for k, row in res["rows"].items():
        assert row["a"] == ra.get(k) and row["b"] == rb.get(k)
        if isinstance(row["a"], float) and isinstance(row["b"], float):
            assert row["b_minus_a"] == row["b"] - row["a"]
    assert (tmp_path / "cmp" / "compare.md").exists()


def test_cli_by_step_with_trend_figures_and_compare(run_dir, tmp_path):
    out = tmp_path / "o"
    assert main([str(run_dir), "--by-step", "--out", str(out), "--quiet"]) == 0
    for stem in ("trend_certified", "trend_mismatch_nats", "trend_mismatch_scores",
                 "trend_acceptance", "trend_bounds"):
        assert (out / f"{stem}.png").stat().st_size > 0
    page = (out / "run.html").read_text()
    assert 'src="data:image/png;base64,' in page and "<script" not in page
    assert page.index('id="verdict"') < page.index("Mismatch metrics")
    assert main([str(run_dir), "--compare", "--out", str(tmp_path / "c"), "--quiet"]) == 2
    a, b = str(run_dir / "train_data_step1.npz"), str(run_dir / "train_data_step2.npz")
    assert main([a, b, "--compare", "--out", str(tmp_path / "c"), "--quiet", "--no-figures"]) == 0


def test_cli_runs_honour_level_and_html_flags(run_dir, tmp_path):
    """``--level`` and ``--no-html`` reach every step of a run and both sides of a comparison
    (no flag is silently ignored)."""
    out = tmp_path / "o"
    assert main([str(run_dir), "--by-step", "--out", str(out), "--quiet", "--no-figures",
                 "--level", "0.9", "--no-html"]) == 0  # fmt: skip
    steps = sorted(out.glob("step_*"))
    assert len(steps) == 3
    for d in steps:
        rep = json.loads((d / "report.json").read_text())
        assert rep["certified"]["level"] == 0.9
        assert not (d / "report.html").exists()
    a, b = str(run_dir / "train_data_step1.npz"), str(run_dir / "train_data_step2.npz")
    c = tmp_path / "c"
    assert main([a, b, "--compare", "--out", str(c), "--quiet", "--no-figures",
                 "--level", "0.8"]) == 0  # fmt: skip
    for side in ("a", "b"):
        rep = json.loads((c / side / "report.json").read_text())
        assert rep["certified"]["level"] == 0.8
        assert (c / side / "report.html").exists()


def test_run_page_and_comparison_lead_with_the_certified_bound(run_dir, tmp_path):
    """run.md opens with the certified bound over the steps, then a row per step; compare.md
    with both certified bounds and verdicts, then mask rates in percent and the metrics,
    each with its meaning; every number of the JSON rows stays in compare.json."""
    from trm_bounds.evaluate.words import meaning, percent

    res = evaluate_run(run_dir, tmp_path / "r", progress=False, max_response_length=30)
    md = (tmp_path / "r" / "run.md").read_text()
    bounds = [r["certified:bound"] for r in res["steps"]]
    assert all(isinstance(b, float) for b in bounds)
    assert md.splitlines()[2].startswith(f"**certified |Error| from {min(bounds):.3g} to "
                                         f"{max(bounds):.3g} over 3 steps")  # fmt: skip
    a, b = run_dir / "train_data_step1.npz", run_dir / "train_data_step10.npz"
    cmp = compare(a, b, tmp_path / "c", progress=False, max_response_length=30)
    assert list(cmp["rows"])[:2] == ["certified:bound", "certified:dbar_sum_ucb"]
    text = (tmp_path / "c" / "compare.md").read_text()
    first = text.splitlines()[2]
    va, vb = cmp["rows"]["verdict"]["a"], cmp["rows"]["verdict"]["b"]
    assert first.startswith("**Certified at level 0.95: a |Error| <= ")
    assert va in first and vb in first
    table = text[text.index("| quantity"):]
    assert table.index("certified:bound") < table.index("kept by") < table.index("`k3_mean`")
    for k, v in cmp["rows"].items():
        if k.startswith("acceptance:"):
            assert percent(v["a"]) in text and meaning(k.split(":", 1)[1]) in text
    no_limit = compare(a, b, tmp_path / "c2", progress=False)
    assert no_limit["rows"]["certified:bound"] == {"a": None, "b": None, "b_minus_a": None}
    text = (tmp_path / "c2" / "compare.md").read_text()
    assert "no certified bound (no generation limit)" in text
