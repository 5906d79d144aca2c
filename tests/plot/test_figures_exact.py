"""Figure F7 (transformer mismatch sources): one meaning per colour, every result drawn.

Reads the committed ``trm_bounds/data/results/transformer_mismatch.json`` and checks the drawing
against it: each mismatch source has one colour in both panels (the exact panel and the
Monte Carlo panel) and no two sources share one; every enumerated horizon and every Monte
Carlo row is drawn; log axes carry at least two labelled decades; the canvas is one column.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

pytest.importorskip("matplotlib")

from trm_bounds.plot import style  # noqa: E402
from trm_bounds.plot.figures_exact import SOURCE_STYLE, draw_f7, source_label  # noqa: E402

RESULT = Path(__file__).resolve().parents[2] / "trm_bounds" / "data" / "results"
RESULT = RESULT / "transformer_mismatch.json"


@pytest.fixture(scope="module")
def data():
    if not RESULT.is_file():
        pytest.skip("no committed transformer_mismatch.json")
    return json.loads(RESULT.read_text())


def _lines_by_colour(ax):
    out = {}
    for line in ax.get_lines():
        out.setdefault(to_hex(line.get_color()), []).append(line)
    return out


def test_one_colour_per_source_in_both_panels(data):
    """A source's colour is the same in (a) and (b), and distinct sources never share one."""
    fig = draw_f7(data)
    exact_ax, mc_ax = fig.axes[:2]
    sources = list(dict.fromkeys(r["source"] for r in data["exact"]))
    colours = {s: to_hex(SOURCE_STYLE[s]["color"]) for s in sources}
    assert len(set(colours.values())) == len(colours)
    a, b = _lines_by_colour(exact_ax), _lines_by_colour(mc_ax)
    assert set(a) == set(colours.values())
    assert set(b) == {colours[r["source"]] for r in data["montecarlo"]}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[: len(sources)] == [source_label(s) for s in sources]
    keys = labels[len(sources) :]  # what filled, open and the whisker mean, in the legend
    assert keys[0].startswith("filled") and keys[1].startswith("open") and len(keys) == 3
    markers = {line.get_marker() for line in exact_ax.get_lines()}
    assert len(markers) == len(sources)  # one marker per source, as one colour


def test_every_result_is_drawn(data):
    """Panel (a) has one error and one bound line per (source, V) with every enumerated T;
    panel (b) plots each Monte Carlo row's 4-sigma upper end of |Error| and its plug-in B*."""
    fig = draw_f7(data)
    exact_ax, mc_ax = fig.axes[:2]
    drawn = {tuple(np.asarray(line.get_ydata(), float)) for line in exact_ax.get_lines()}
    for s in {r["source"] for r in data["exact"]}:
        rs = sorted((r for r in data["exact"] if r["source"] == s and r.get("V", 4) == 4),
                    key=lambda r: r["T"])  # fmt: skip
        assert tuple(float(r["error_max_over_rewards"]) for r in rs) in drawn
        assert tuple(float(r["bounds_sharp"]["unified"]) for r in rs) in drawn
    ys = {float(y) for line in mc_ax.get_lines() for y in line.get_ydata()}
    for r in data["montecarlo"]:
        e = r["estimates"]["error"]
        assert max(abs(e["lo"]), abs(e["hi"])) in ys
        assert r["plugin_bounds_sharp"]["unified"] in ys
    assert f"T = {data['montecarlo'][0]['T']}" in mc_ax.get_title()


def test_log_axes_label_whole_decades(data):
    """Each log axis spans whole decades with at least two labelled major ticks inside the
    limits and no minor labels; the canvas is one column wide with no footer."""
    fig = draw_f7(data)
    assert abs(fig.get_figwidth() - style.COLUMN_WIDTH) < 1e-9 and fig._supxlabel is None
    for ax in fig.axes[:2]:
        lo, hi = ax.get_ylim()
        assert np.log10(lo) == np.floor(np.log10(lo)) and np.log10(hi) == np.floor(np.log10(hi))
        ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
        assert len(ticks) >= 2
        assert all(lbl.get_text() == "" for lbl in ax.get_yminorticklabels())
