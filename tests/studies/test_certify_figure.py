"""The F10 study (trm_bounds.studies.certify_figure) and its figure (docs/theory.md §9).

The study's samplers are checked against the exact engines: the sample mean of ``X`` over
many sequences estimates the exact ``sum_t Dbar_t`` (tree engine for a transformer pair,
DP engine for the finite-state family) within 5 standard errors at a fixed seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trm_bounds.engines.dp import exact_report as dp_report
from trm_bounds.engines.tree import exact_report as tree_report
from trm_bounds.instances.format import load_instances
from trm_bounds.instances.named import uniform_divergence
from trm_bounds.results import results_dir
from trm_bounds.studies import certify_figure as cf
from trm_bounds.studies._cli import apply_size

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "certify_figure.json"


def _check_mean(x: np.ndarray, exact: float) -> None:
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert abs(x.mean() - exact) <= 5 * se, (x.mean(), exact, se)


def test_tree_sampler_matches_the_exact_engine():
    """Responses sampled from the enumerated table: mean X -> sum_t Dbar_t, mean of the
    error term -> Error (both within 5 SE; 200,000 samples)."""
    inst = load_instances(Path(results_dir()) / cf.INSTANCES)[2]
    rep = tree_report(inst)
    table = cf._tree_table(inst)
    np.testing.assert_allclose(table[0].sum(), 1.0, rtol=1e-12)
    x, S, U, R = cf._tree_terms(table, 100_000, 2, np.random.default_rng(0))
    _check_mean(x, float(np.sum(rep["Dbar"])))
    _check_mean(R * (np.expm1(S) - U), float(rep["error"]))


def test_finite_state_sampler_matches_the_dp_engine():
    inst = uniform_divergence(4, 12, form="finite_state", S=8, delta=1e-2, seed=1)
    rep = dp_report(inst)
    x, S, U, R = cf._finite_terms(inst, 50_000, 2, np.random.default_rng(1))
    _check_mean(x, float(np.sum(rep["Dbar"])))
    _check_mean(R * (np.expm1(S) - U), float(rep["error"]))


def test_tiny_run_layout_and_constants(tmp_path):
    """Every panel has the keys F10 reads; the certified medians keep the constants 4 : 2 : 1;
    the exact values are the engines' (transformer pair: tree engine)."""
    args = apply_size(cf.Args, cf.SIZES, "tiny", out=str(tmp_path / "cf.json"))
    path = cf.produce(args)
    data = json.loads(path.read_text())
    assert data["args"]["size"] == "tiny" and data["seed"] == 0
    assert set(data["panels"]) == {*args.transformer_ids, "finite_state_vs_N", "finite_state_vs_T"}
    for p in data["panels"].values():
        s = p["series"]
        n = len(p["x"])
        assert all(len(v) == n for v in (*s.values(), *p["exact"].values()))
        np.testing.assert_allclose(s["linear_published_median"],
                                   4 * np.asarray(s["proved_median"]), rtol=1e-12)  # fmt: skip
        np.testing.assert_allclose(s["linear_sharp_median"], 2 * np.asarray(s["proved_median"]),
                                   rtol=1e-12)  # fmt: skip
        assert all(0 <= c <= 1 for c in s["ucb_coverage"] + s["bound_coverage"])
    inst = {i.id: i for i in load_instances(Path(results_dir()) / cf.INSTANCES)}
    tid = args.transformer_ids[0]
    rep = tree_report(inst[tid])
    assert data["panels"][tid]["exact"]["abs_error"][0] == abs(float(rep["error"]))
    assert data["panels"][tid]["exact"]["unified_published"][0] == float(
        rep["bounds_published"]["unified"])


def test_f10_draws_from_the_fixture_with_a_caption(tmp_path):
    pytest.importorskip("matplotlib")
    from trm_bounds.plot import FIGURES, render
    from trm_bounds.plot.figures_certify import caption_f10

    data = json.loads(FIXTURE.read_text())
    cap = caption_f10(data)
    low = min(min(p["series"]["bound_coverage"]) for p in data["panels"].values())
    assert f"{low:.1%}" in cap and "not a certificate" in cap
    paths = render(FIGURES["F10"], FIXTURE.parent, tmp_path, ["png"], dpi=40)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 3000
