r"""Figure F10: what a log certifies, against the exact error (docs/theory.md §9).

Drawn from ``certify_figure.json`` (:mod:`trm_bounds.studies.certify_figure`): per panel,
against the number of sequences ``N`` or the horizon ``T``, the certified Linear bounds
(median over repetitions, with the 10-90% band of the constant-1 bound), the exact
``|Error|`` and ``max_R |Error|``, the estimated error with its interval (medians over
repetitions of the estimate and of the interval's ends; ``|.|`` on a log axis), and the
paper's ``B*`` at the exact maxima (the conditional bound no log can give).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_bounds.margins import stable_number

from .result_file import as_array, get_field
from .style import BOUND_COLORS, ERROR_STYLE, figure, styled

__all__ = ["draw_f10", "caption_f10"]

_TITLES = {"transformer": "transformer pair", "finite_state": "finite-state, uniform divergence"}
#: Width and height of F10, inches: two columns of a two-column paper, fonts as in one column.
F10_WIDTH, F10_HEIGHT = 7.0, 6.0


def _title(name: str, p: dict, letter: str) -> str:
    """``'(a) transformer pair, staleness, $T=4$'``: the family, the source in words (never a
    raw id), the fixed size."""
    from .figures_exact import source_label

    fixed = f"$T={p['T'][0]}$" if p["axis"] == "N" else f"$N={p['N'][0]}$"
    title = _TITLES.get(p["family"], p["family"])
    if p["family"] == "transformer":
        src = name.removeprefix("transformer-").rsplit("-V", 1)[0]
        title += ", " + source_label(src).split(" (")[0]
    return f"({letter}) {title}, {fixed}"


def caption_f10(data: dict) -> str:
    """The caption text of F10 for a page (not drawn on the figure), from the result file
    (coverages in percent, one decimal, rounded with a margin: :func:`trm_bounds.margins.stable_number`)."""
    lvl, method, reps = data.get("level"), data.get("method"), data.get("reps")
    panels = get_field(data, "panels", source="certify_figure.json").values()
    cov = min(min(as_array(p["series"]["bound_coverage"])) for p in panels)
    ucb = min(min(as_array(p["series"]["ucb_coverage"])) for p in panels)
    ci = [c for p in panels for c in as_array(p["series"]["ci_coverage"])]
    pct = [stable_number(100 * v, 1) for v in (ucb, cov, min(ci), max(ci))]
    return (
        f"Certified bounds on |Error| at level {stable_number(lvl, 2)} ({method} confidence "
        f"bound on sum_t Dbar_t = E[X]; median over {reps} repetitions, band 10-90% for "
        f"constant 1) need no assumption on delta or eps. At every point the upper confidence "
        f"bound covered the exact sum_t Dbar_t in at least {pct[0]}% of repetitions and the "
        f"constant-1 bound covered the exact |Error| in at least {pct[1]}%; they are loose "
        f"because X lies in [0, T]. The estimated error's CLT interval contained the exact "
        f"error in {pct[2]}% to {pct[3]}% of repetitions: an estimate, not a certificate. B* "
        "at the exact maxima (dotted) is the paper's conditional bound, which no log can "
        "evaluate."
    )


def _panel(ax: Any, name: str, p: dict, letter: str) -> None:
    src = f"panels.{name}"
    x = as_array(get_field(p, "x", source=src))
    ex, se = get_field(p, "exact", source=src), get_field(p, "series", source=src)
    ax.fill_between(x, as_array(se["proved_lo"]), as_array(se["proved_hi"]), color="tab:blue",
                    alpha=0.18, linewidth=0)  # fmt: skip
    ax.plot(x, as_array(se["proved_median"]), color="tab:blue", marker="o",
            label="certified, $c=1$ (§9)")  # fmt: skip
    ax.plot(x, as_array(se["linear_sharp_median"]), color="tab:blue", linestyle="--",
            label="certified, $c=2$ (sharp)")  # fmt: skip
    ax.plot(x, as_array(se["linear_published_median"]), color=BOUND_COLORS.get("linear", "navy"),
            linestyle=":", marker="s", label="certified, $c=4$ (published)")  # fmt: skip
    ax.plot(x, as_array(ex["dbar_sum"]), color="0.4", linestyle="-.",
            label=r"exact $\sum_t \bar D_t$")  # fmt: skip
    ax.plot(x, as_array(ex["unified_published"]), color=BOUND_COLORS.get("unified", "k"),
            linestyle=":", linewidth=2.2, label=r"paper's $B^*$ at exact $\delta,\varepsilon$")
    err = ERROR_STYLE["error"]
    ax.plot(x, np.abs(as_array(ex["abs_error"])), color=err["color"], marker=err["marker"],
            label=r"exact $|\mathrm{Error}|$")  # fmt: skip
    mx = ERROR_STYLE["error_max_over_rewards"]
    ax.plot(x, as_array(ex["error_max_over_rewards"]), color=mx["color"], linestyle="--",
            marker=mx["marker"], label=r"exact $\max_R |\mathrm{Error}|$")  # fmt: skip
    est = np.abs(as_array(se["estimate_median"]))
    lo, hi = as_array(se["estimate_lo_median"]), as_array(se["estimate_hi_median"])
    top = np.maximum(np.abs(lo), np.abs(hi))  # the interval of Error, as an interval of |Error|
    low = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    ax.plot(x, est, color="tab:orange", marker="^", linestyle="none",
            label=r"estimated $|\mathrm{Error}|$ (median)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    shown = np.concatenate([ln.get_ydata() for ln in ax.get_lines()] + [top])
    shown = shown[np.isfinite(shown) & (shown > 0)]
    ax.set_ylim(shown.min() / 3, shown.max() * 3)
    floor = ax.get_ylim()[0]  # an interval that contains 0 runs to the axis bottom
    ax.fill_between(x, np.maximum(low, floor), top, color="tab:orange", alpha=0.25, linewidth=0,
                    label=r"its CLT interval, as $|\cdot|$ (to the bottom: contains 0)")
    ax.set_xlabel("$N$ (sequences)" if p["axis"] == "N" else "$T$ (horizon, tokens)")
    ax.set_ylabel(r"bound or $|\mathrm{Error}|$")
    ax.set_title(_title(name, p, letter), fontsize=7.5)


@styled
def draw_f10(data: dict) -> Any:
    """F10: certified bounds, exact and estimated error, and the conditional ``B*``.

    Reads ``panels: {name: {"family", "axis", "x", "T", "N", "exact": {...},
    "series": {...}}}`` and ``level``, ``method``, ``reps`` from certify_figure.json (layout
    in :mod:`trm_bounds.studies.certify_figure`).
    """
    panels = get_field(data, "panels", source="certify_figure.json")
    names = list(panels)
    ncols = min(2, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = figure(ncols=ncols, nrows=nrows, width=F10_WIDTH,
                       height=F10_HEIGHT * nrows / 2, squeeze=False)  # fmt: skip
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for i, (ax, name) in enumerate(zip(axes.flat, names, strict=False)):
        _panel(ax, name, panels[name], "abcdefgh"[i])
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False,
               columnspacing=1.0, handletextpad=0.5)  # fmt: skip
    return fig
