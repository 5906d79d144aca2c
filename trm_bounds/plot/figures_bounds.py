"""Figures F1, F2, F4, F5 and F6: the bounds themselves, drawn from ``bound_scaling.json``.

F1/F2 every bound against ``T`` (uniform and sparse divergence, docs/theory.md §4), F4 the
paper's table beside ours (§7, sharp constants §5), F5 the Adaptive route crossover (§4),
F6 the length bias of TRM-Max against SER and LN-TRM (§6).  Each ``draw_fN(data)`` takes the
parsed result file and returns a matplotlib ``Figure``; :mod:`.figures` registers them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter

from trm_bounds.bounds import BOUND_NAMES

from . import style
from .result_file import as_array, get_field
from .style import BOUND_LABELS, figure, plot_bound, slope_text, styled

__all__ = ["draw_f1", "draw_f2", "draw_f4", "draw_f5", "draw_f6", "SCALING_BOUNDS"]

#: Bounds drawn in the scaling figures (all twelve; curves that coincide are drawn on top of
#: each other with different markers).
SCALING_BOUNDS = ("classical_kl", "classical_tv", *BOUND_NAMES[2:])


def _scaling_panel(ax, sec: dict, title: str) -> None:
    """Log-log bound curves of one regime with the fitted slope in each legend entry."""
    T = as_array(sec["T"])
    slopes = sec.get("slopes", {})
    for name in SCALING_BOUNDS:
        if name not in sec["published"]:
            continue
        y = as_array(sec["published"][name])
        ok = y > 0
        if not ok.any():
            continue
        plot_bound(ax, T[ok], y[ok], name, label=BOUND_LABELS[name] + slope_text(slopes.get(name)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("horizon T (tokens)")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("bound on |Error| (reward units, R in [0, 1])")
    ax.set_title(title)
    lo, hi = sec.get("fit_window", [T.min(), T.max()])
    ax.axvspan(lo, hi, color="0.85", alpha=0.35, zorder=0, label="slope fit window")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), borderaxespad=0.0)


@styled
def draw_f1(data: dict) -> Any:
    """F1: every published bound of docs/theory.md §4 against T, uniform divergence (``dkl_seq = T delta``)."""
    sec = get_field(data, "uniform", source="bound_scaling.json")
    fig, ax = figure(width=8.6, height=4.8)
    _scaling_panel(
        ax,
        sec,
        f"F1  Uniform divergence: every context KL = delta = {sec['delta']:g} nats,\n"
        f"eps = sqrt(delta/2), D_KL^seq = T delta, worst case Dbar_t = eps",
    )
    style.note(
        fig,
        "Published constants (docs/theory.md §4); coinciding curves overlap (distinct markers). "
        "Under uniform divergence Mixed grows like T^{3/2}, not T (correction, docs/theory.md §4).",
    )
    return fig


@styled
def draw_f2(data: dict) -> Any:
    """F2: every published bound of docs/theory.md §4 against T, sparse divergence (``dkl_seq`` fixed)."""
    sec = get_field(data, "sparse", source="bound_scaling.json")
    fig, ax = figure(width=8.6, height=4.8)
    _scaling_panel(
        ax,
        sec,
        f"F2  Sparse divergence: D_KL^seq = {sec['dkl_seq']:g} nats fixed, "
        f"{sec['n_divergent']} positions with KL = {sec['delta']:g},\n"
        "Dbar_t = eps on those positions, 0 elsewhere",
    )
    style.note(
        fig,
        "Published constants (docs/theory.md §4). With D_KL^seq fixed the Mixed bounds grow like T "
        "(the paper's O(T) claim).",
    )
    return fig


@styled
def draw_f4(data: dict) -> Any:
    """F4: the paper's table at T = 4096 (docs/theory.md §7), published and sharp (§5) beside the paper's."""
    tab = get_field(data, "paper_table", source="bound_scaling.json")
    cols = get_field(tab, "columns", source="bound_scaling.json: paper_table")
    rows = tab["rows"]
    titles = {
        "kl_only": "KL-only: delta = 1e-4, D_KL^seq = 0.01",
        "kl_tv": "KL+TV: + eps = 5e-3, D_TV^seq = 0.05",
    }
    fig, axes = figure(ncols=len(cols), width=11.0, height=4.6, sharey=True)
    y = np.arange(len(rows))[::-1].astype(float)
    h = 0.38
    for ax, (col, c) in zip(np.atleast_1d(axes), cols.items(), strict=True):
        pub = np.array([c["published"][b] for b, _ in rows])
        shp = np.array([c["sharp"][b] for b, _ in rows])
        paper = np.array([c["paper"].get(b, np.nan) for b, _ in rows])
        ax.barh(y + h / 2, pub, h, color="tab:blue", label="ours, published constant 4")
        ax.barh(y - h / 2, shp, h, color="tab:orange", label="ours, sharp constant 2")
        ax.plot(paper, y + h / 2, "k|", markersize=14, mew=2, label="paper's number")
        upper = set(tab.get("upper_only", []))
        marks = ["<= " if b in upper else "" for b, _ in rows]
        for yi, p, s, pp, mk in zip(y, pub, shp, paper, marks, strict=True):
            ax.text(p * 1.08, yi + h / 2, f"{p:.4g}", va="center", fontsize=7.5)
            ax.text(s * 1.08, yi - h / 2, f"{s:.4g}", va="center", fontsize=7.5, color="0.3")
            if np.isfinite(pp):
                ax.text(
                    pp / 1.08,
                    yi + h / 2 + 0.3,
                    f"paper {mk}{pp:g}",
                    ha="right",
                    fontsize=6.5,
                    color="0.15",
                )
        ax.set_xscale("log")
        ax.set_xlim(0.4, 2e4)
        ax.set_xlabel("bound on |Error| at T = 4096 (reward units, log scale)")
        ax.set_title(titles.get(col, col))
        ax.grid(axis="y", visible=False)
    ax0 = np.atleast_1d(axes)[0]
    ax0.set_yticks(y, [label for _, label in rows])
    ax0.legend(loc="lower right", fontsize=7.5)
    hl = tab.get("headline", {})
    fig.suptitle(
        "F4  The paper's error-bound table (T = 4096): Classical / Unified = "
        f"{hl.get('ratio', float('nan')):.1f}x (paper: {hl.get('paper_ratio', float('nan')):g}x)"
    )
    style.note(
        fig,
        "Adaptive and Unified at the worst case Dbar_t = eps (the paper prints them as upper "
        "bounds). Classical: TV form 2T(T-1)eps^2. Sharp constants: docs/theory.md §5.",
    )
    return fig


@styled
def draw_f5(data: dict) -> Any:
    """F5: Adaptive weights ``min(1, (T-t) eps, sqrt((T-t) delta/2))`` (docs/theory.md §4) against ``T - t``."""
    sec = get_field(data, "crossover", source="bound_scaling.json")
    k = as_array(sec["k"])
    fig, ax = figure(width=7.4, height=4.8)
    ax.plot(
        k,
        as_array(sec["kl_route"]),
        color="k",
        linestyle="--",
        linewidth=1.8,
        label=f"KL route min(1, sqrt((T-t) delta/2)), delta = {sec['delta']:g}",
    )
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    for case, col in zip(sec["cases"], colors, strict=False):
        eps = case["eps"]
        ax.plot(
            k,
            as_array(case["coupling_route"]),
            color=col,
            linestyle=":",
            linewidth=1.4,
            label=f"TV route min(1, (T-t) eps), eps = {eps:g}",
        )
        ax.plot(
            k,
            as_array(case["hybrid"]),
            color=col,
            linewidth=3.0,
            alpha=0.55,
            label=f"hybrid weight (min), eps = {eps:g}",
        )
        kc, wc = case["crossover"], case["crossover_weight"]
        ax.plot([kc], [wc], "o", color=col, markersize=8, mec="k", zorder=5)
        ax.annotate(
            f"T - t = {kc:g}",
            (kc, wc),
            xytext=(-8, 10),
            textcoords="offset points",
            color=col,
            fontsize=8,
            ha="right",
            fontweight="bold",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 2.0)
    ax.set_xlabel("tokens remaining after position t, T - t")
    ax.set_ylabel("per-position weight w (dimensionless)")
    ax.set_title(
        "F5  Adaptive bound weights: TV route below the crossover T - t = delta/(2 eps^2)"
        " (dots),\nKL route above it; the hybrid weight is the smaller of the two"
    )
    ax.legend(loc="lower right", fontsize=7)
    style.note(fig, "Adaptive hybrid = 4 sum_t Dbar_t w(T - t) (docs/theory.md §4).")
    return fig


@styled
def draw_f6(data: dict) -> Any:
    """F6: length bias ``(1-p)^T`` and simulated TRM-Max / SER / LN-TRM acceptance (docs/theory.md §6)."""
    sec = get_field(data, "length_bias", source="bound_scaling.json")
    T = as_array(sec["T"])
    fig, axes = figure(ncols=2, width=11.0, height=4.6)
    ax = axes[0]
    table = sec.get("paper_table", {})
    for (p, y), col in zip(
        sec["analytic"].items(), ["tab:red", "tab:blue", "tab:green"], strict=False
    ):
        ax.plot(T, as_array(y), color=col, label=f"(1-p)^T, p = {float(p):g}")
        if p in table:
            tp, pv = as_array(table["T"]), as_array(table[p]["paper"])
            # "below": the paper prints "< x" (drawn as a down-pointing triangle at x)
            below = np.array([r == "below" for r in table[p].get("relation", [])], dtype=bool)
            if below.size != tp.size:
                below = np.zeros(tp.size, dtype=bool)
            ax.plot(
                tp[~below],
                pv[~below],
                "o",
                mfc="none",
                color=col,
                markersize=7,
                label=f"paper's table, p = {float(p):g}",
            )
            if below.any():
                ax.plot(
                    tp[below],
                    pv[below],
                    "v",
                    mfc="none",
                    color=col,
                    markersize=7,
                    label=f"paper: < {pv[below][0]:g}",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-8, 2.0)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("P(TRM-Max accepts) (probability)")
    ax.set_title("TRM-Max with i.i.d. violation probability p")
    ax.legend(loc="lower left")
    ax = axes[1]
    sim = sec.get("simulation")
    if sim:
        Ts = as_array(sim["T"])
        looks = [("tab:red", "o", "-"), ("tab:green", "s", "--"), ("tab:blue", "^", "-."),
                 ("tab:purple", "v", ":")]  # fmt: skip
        for (crit, rate), (col, mk, ls) in zip(sim["acceptance"].items(), looks, strict=False):
            rate = as_array(rate)
            lo, hi = as_array(sim["ci_low"][crit]), as_array(sim["ci_high"][crit])
            ax.plot(Ts, rate, marker=mk, linestyle=ls, color=col, linewidth=2.0,
                    label=sim.get("labels", {}).get(crit, crit))  # fmt: skip
            ax.fill_between(Ts, lo, hi, color=col, alpha=0.15)
        if "expected_trm_max" in sim:
            ax.plot(
                Ts,
                as_array(sim["expected_trm_max"]),
                "k--",
                linewidth=1.0,
                label=f"(1-p)^T, p = {sim['p']:g}",
            )
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("sequence length T (tokens)")
        ax.set_ylabel("acceptance rate (fraction of sequences)")
        ax.set_title(
            f"Simulation: {sim['n_sequences']} sequences per T,\n"
            f"log-ratio N(0, {sim['sigma']:g}^2), spikes +-{sim['spike']:g} w.p. {sim['p']:g}"
        )
        ax.legend(loc="lower left", fontsize=7.5)
    else:
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "simulation not in the result file:\n" + str(sec.get("reason", "")),
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    fig.suptitle("F6  Length bias: TRM-Max rejects long sequences; SER and LN-TRM do not")
    style.note(fig, "docs/theory.md §6. Shaded bands: 95% Wilson intervals.")
    return fig
