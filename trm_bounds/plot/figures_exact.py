"""Figures F3 and F7: exact errors against the bounds (exact engines' result files).

F3 the finite-state DP engine's exact ``|Error|`` and ``max_R |Error|`` against every bound
up to ``T = 10^5`` (``tabular_scaling.json``); F7 small transformers, per mismatch source
(``transformer_mismatch.json``).  docs/theory.md §2-§5.  Each ``draw_fN(data)`` takes the
parsed result file and returns a matplotlib ``Figure``; :mod:`.figures` registers them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator, NullFormatter

from . import style
from .result_file import ResultFileError, as_array, get_field
from .style import BOUND_LABELS, ERROR_STYLE, figure, plot_bound, slope_text, styled

__all__ = ["draw_f3", "draw_f7", "F3_BOUNDS", "F7_BOUNDS"]

#: Bounds drawn in F3 (coinciding KL/TV twins and the Adaptive routes left out for legibility).
F3_BOUNDS = (
    "classical_kl", "coupling", "pm_kl", "mix_kl", "mix_tv", "adaptive_hybrid", "linear",
    "unified",
)  # fmt: skip
#: F3 error curves: result key, slope key, style key of ERROR_STYLE.
F3_ERRORS = (
    ("abs_error", "abs_error", "error"),
    ("error_max_over_rewards", "error_max_over_rewards", "error_max_over_rewards"),
)


@styled
def draw_f3(data: dict) -> Any:
    """F3: exact ``|Error|`` and ``max_R |Error|`` against the bounds (finite-state DP engine).

    Reads ``regimes: {name: {"T", "abs_error", "error_max_over_rewards",
    "bounds_published": {bound: list}, "bounds_sharp", "slopes": {"abs_error",
    "error_max_over_rewards", "bounds_published": {bound: slope}}, "fit_window"}}`` from
    tabular_scaling.json (layout of ``experiments/tabular_scaling.py``).
    """
    regimes = get_field(data, "regimes", source="tabular_scaling.json")
    names = list(regimes)
    ncols = min(2, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = figure(ncols=ncols, nrows=nrows, width=6.0 * ncols, height=6.4 * nrows,
                       squeeze=False)  # fmt: skip
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        sec = regimes[name]
        src = f"regimes.{name}"
        T = as_array(get_field(sec, "T", source=src))
        slopes = sec.get("slopes", {}) or {}
        bslopes = slopes.get("bounds_published", {}) or {}
        pub = get_field(sec, "bounds_published", source=src)
        for b in F3_BOUNDS:
            if b not in pub:
                continue
            y = as_array(pub[b])
            ok = y > 0
            plot_bound(ax, T[ok], y[ok], b, label=BOUND_LABELS[b] + slope_text(bslopes.get(b)))
        shp = sec.get("bounds_sharp", {}).get("unified")
        if shp is not None:
            y = as_array(shp)
            ok = y > 0
            ax.plot(T[ok], y[ok], color="0.45", linestyle=":", linewidth=2.0,
                    label="Unified B*, sharp constant 2")  # fmt: skip
        for key, skey, st in F3_ERRORS:
            if key not in sec:
                continue
            y = np.abs(as_array(sec[key]))
            ok = y > 0
            kw = dict(ERROR_STYLE[st])
            kw["label"] = str(kw["label"]) + slope_text(slopes.get(skey))
            ax.plot(T[ok], y[ok], linewidth=2.2, markevery=max(1, int(ok.sum()) // 12), **kw)
        if "fit_window" in sec:
            lo, hi = sec["fit_window"]
            ax.axvspan(lo, hi, color="0.85", alpha=0.35, zorder=0, label="slope fit window")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("horizon T (tokens)")
        ax.set_ylabel("|Error| and published bounds (reward units, R in [0, 1])")
        params = sec.get("params", {})
        ax.set_title(f"{name} divergence" + (f"\n{_params(params)}" if params else ""),
                     fontsize=9.5)  # fmt: skip
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2, fontsize=7)
    fig.suptitle("F3  Exact surrogate error (finite-state DP engine) against the bounds")
    style.note(fig, "Exact DP values; slopes are least-squares log-log fits over the shaded "
               "window (tabular_scaling.json). docs/theory.md §2-§5.")  # fmt: skip
    return fig


def _params(params: dict) -> str:
    """``k=v`` list of generator parameters for a panel title (seed left out)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items() if k != "seed")  # fmt: skip


#: Bounds drawn in F7 (published constants).
F7_BOUNDS = ("classical_kl", "coupling", "pm_kl", "mix_kl", "mix_tv", "adaptive_hybrid", "unified")


@styled
def draw_f7(data: dict) -> Any:
    """F7: exact error against the bounds for each transformer mismatch source.

    Reads ``exact: [{"source", "T", "error", "error_max_over_rewards", "bounds_published"
    {bound: value}, "bounds_sharp", "tightest_sharp", "ratio_worst_case_sharp"}]`` from
    transformer_mismatch.json (layout of ``experiments/transformer_mismatch.py``).
    """
    rows = get_field(data, "exact", source="transformer_mismatch.json")
    if not rows:
        raise ResultFileError("field 'exact' is empty")
    sources = list(dict.fromkeys(r["source"] for r in rows))
    last = {s: max((r for r in rows if r["source"] == s), key=lambda r: r["T"]) for s in sources}
    fig, (ax, ax2) = figure(ncols=2, width=13.0, height=5.6, width_ratios=[1.7, 1.0])
    x = np.arange(len(sources), dtype=float)
    n = len(F7_BOUNDS) + 2
    w = 0.84 / n
    for j, (key, st) in enumerate(ERROR_STYLE.items()):
        vals = np.abs([float(last[s].get(key, np.nan)) for s in sources])
        ax.bar(x - 0.42 + (j + 0.5) * w, vals, w, color=st["color"], label=st["label"],
               hatch="//" if j else None, edgecolor="white")  # fmt: skip
    for j, b in enumerate(F7_BOUNDS, start=2):
        vals = np.array([float(last[s]["bounds_published"][b]) for s in sources])
        ax.bar(x - 0.42 + (j + 0.5) * w, vals, w, color=style.BOUND_COLORS[b],
               label=BOUND_LABELS[b])  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{s}\nT = {last[s]['T']}" for s in sources], fontsize=7.5)
    ax.set_ylabel("|Error| and published bounds (reward units, log scale)")
    ax.set_title("Exact error and bounds at the largest enumerated T")
    ax.legend(loc="upper left", fontsize=7, ncols=3)
    ax.grid(axis="x", visible=False)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 50)  # room for the legend above the bars
    colors = [f"C{i}" for i in range(10)]
    for s, col in zip(sources, colors, strict=False):
        rs = sorted((r for r in rows if r["source"] == s), key=lambda r: r["T"])
        ratio = [float(r.get("ratio_worst_case_sharp", np.nan)) for r in rs]
        ax2.plot([r["T"] for r in rs], ratio, "o-", color=col, label=s)
    ax2.set_yscale("log")
    ax2.axhline(1.0, color="k", linewidth=0.8)
    ax2.set_xlabel("horizon T (tokens)")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("sharp B* / max_R |Error| (>= 1)")
    ax2.set_title("Tightness: sharp unified bound B* over\nthe worst-case exact error")
    ax2.legend(loc="best", fontsize=7)
    fig.suptitle("F7  Small transformers: exact error against the bounds, per mismatch source")
    style.note(fig, "Exact enumeration of every sequence (float64); reward: fraction of "
               "grammatical positions. docs/theory.md §2-§5.")  # fmt: skip
    return fig
