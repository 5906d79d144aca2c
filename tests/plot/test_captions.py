"""Figure captions computed from the result files read the same on every CPU.

Every float of every committed result file is multiplied by ``1 + u``, ``u`` uniform in
``[-1e-9, 1e-9]`` (fixed seeds): a CPU that sums in another order moves results by far less.
The captions computed from the perturbed copies must equal those from the originals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from tests.perturb import perturbed_copy  # noqa: E402
from trm_bounds.margins import CAPTION_MARGIN as MARGIN  # noqa: E402
from trm_bounds.margins import stable_number  # noqa: E402
from trm_bounds.plot import FIGURES  # noqa: E402
from trm_bounds.plot.captions import CAPTIONS, captions_markdown, figure_captions  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "trm_bounds" / "data" / "results"
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.mark.parametrize("source", [RESULTS, FIXTURES], ids=["committed", "fixtures"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_captions_do_not_change_under_a_relative_1e9_perturbation(tmp_path, source, seed):
    """Every caption computed from perturbed result files equals the original's."""
    keys = [k for k, s in FIGURES.items() if (source / s.source).is_file()]
    assert set(CAPTIONS) <= set(keys)  # every computed caption is exercised
    original = figure_captions(source, keys)
    moved = tmp_path / "moved"
    assert perturbed_copy(source, moved, seed) >= len({FIGURES[k].source for k in CAPTIONS})
    assert figure_captions(moved, keys) == original


def test_captions_quote_the_result_files():
    """The computed captions carry the numbers of the committed files (not typed-in ones):
    F7's horizons and its B* / max_R |Error| range at the smallest horizon, F3's sign change."""
    caps = figure_captions(RESULTS)
    data = json.loads((RESULTS / FIGURES["F7"].source).read_text())
    Ts = sorted({r["T"] for r in data["exact"]})
    assert f"T = {', '.join(map(str, Ts))}" in caps["F7"]
    r = [x["bounds_sharp"]["unified"] / x["error_max_over_rewards"] for x in data["exact"]
         if x["T"] == Ts[0]]  # fmt: skip
    assert f"between {min(r):.1f} and {max(r):.1f} at T = {Ts[0]}" in caps["F7"]
    ts = json.loads((RESULTS / FIGURES["F3"].source).read_text())["regimes"]["uniform"]
    for lo, hi in ts["sign_changes"]:
        assert f"between T = {lo:.0f} and {hi:.0f}" in caps["F3"]
    md = captions_markdown(caps)
    assert all(f"## {k}: `{FIGURES[k].name}`" in md for k in FIGURES)


@pytest.mark.parametrize("digits", [0, 1, 2])
def test_stable_number_is_constant_on_a_perturbation_below_its_margin(digits):
    """Values at rounding midpoints (the worst case), within and outside the margin of one,
    and at random: the text of ``x`` and of ``x (1 + u)``, ``|u| <= MARGIN / 1000``, agree;
    away from midpoints it is ``x`` rounded to ``digits`` decimals."""
    rng = np.random.default_rng(digits)
    step = 10.0**-digits
    mids = (rng.integers(1, 10_000, 200) + 0.5) * step
    xs = np.concatenate([mids, mids * (1 + MARGIN / 10), mids * (1 + 10 * MARGIN),
                         rng.uniform(0, 1000, 200)])  # fmt: skip
    for x in mids * (1 + 10 * MARGIN):
        assert stable_number(x, digits) == f"{x:.{digits}f}"
    for x in xs:
        u = rng.uniform(-MARGIN / 1000, MARGIN / 1000, 4)
        assert {stable_number(v, digits) for v in x * (1 + u)} == {stable_number(x, digits)}, x


def test_plot_writes_the_captions_beside_the_figures(tmp_path):
    """``trm-bounds plot`` writes captions.md in the figure folder, one section per figure
    drawn, equal to :func:`figure_captions` of the result files."""
    from trm_bounds.cli import plot_main

    res = tmp_path / "res"
    shutil.copytree(FIXTURES, res)
    out = tmp_path / "fig"
    status = plot_main(["--results", str(res), "--out", str(out), "--only", "F3", "--only",
                        "F7", "--formats", "png", "--dpi", "30"])  # fmt: skip
    assert status == 0
    caps = figure_captions(res, ["F3", "F7"])
    assert (out / "captions.md").read_text(encoding="utf-8") == captions_markdown(caps)
