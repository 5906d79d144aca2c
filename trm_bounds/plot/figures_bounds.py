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
from .style import figure, styled

__all__ = [
    "draw_f1",
    "draw_f2",
    "draw_f4",
    "draw_f5",
    "draw_f6",
    "SCALING_BOUNDS",
    "scaling_groups",
]

#: Bounds drawn in the scaling figures (all twelve; curves that coincide on the whole grid
#: are drawn once, with one legend entry naming every member: :func:`style.coincident_groups`).
SCALING_BOUNDS = ("classical_kl", "classical_tv", *BOUND_NAMES[2:])


def scaling_groups(sec: dict) -> list[tuple[str, ...]]:
    """The coincident groups of one regime's published curves (positive somewhere)."""
    curves = {}
    for name in SCALING_BOUNDS:
        if name in sec["published"]:
            y = as_array(sec["published"][name])
            if (y > 0).any():
                curves[name] = y
    return style.coincident_groups(curves)


def _scaling_panel(fig, ax, sec: dict, title: str) -> None:
    """Log-log bound curves of one regime: one curve per coincident group, reference slopes."""
    T = as_array(sec["T"])
    groups = scaling_groups(sec)
    curves = {g[0]: as_array(sec["published"][g[0]]) for g in groups}
    style.plot_groups(ax, T, curves, groups)
    lows = [np.nanmin(y[y > 0]) for y in curves.values()]
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo, hi = float(T.min()), float(T.max())
    # reference slopes fan out from a decade below the lowest curve at the left edge
    style.reference_slopes(ax, (lo, hi), min(lows) / 10)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(r"horizon $T$ (tokens)")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(r"bound on $|\mathrm{Error}|$ ($R\in[0,1]$)")
    ax.set_title(title)
    style.legend_below(fig, ax)


@styled
def draw_f1(data: dict) -> Any:
    """F1: every published bound of docs/theory.md §4 against T, uniform divergence (``dkl_seq = T delta``)."""
    sec = get_field(data, "uniform", source="bound_scaling.json")
    fig, ax = figure(height=4.1)
    _scaling_panel(
        fig, ax, sec,
        rf"Uniform: $\delta={_tex_num(sec['delta'])}$, $D_{{KL}}^{{seq}}=T\delta$, "
        r"$\bar D_t=\varepsilon=\sqrt{\delta/2}$",
    )  # fmt: skip
    return fig


@styled
def draw_f2(data: dict) -> Any:
    """F2: every published bound of docs/theory.md §4 against T, sparse divergence (``dkl_seq`` fixed)."""
    sec = get_field(data, "sparse", source="bound_scaling.json")
    fig, ax = figure(height=4.1)
    _scaling_panel(
        fig, ax, sec,
        rf"Sparse: $D_{{KL}}^{{seq}}={_tex_num(sec['dkl_seq'])}$ fixed, "
        rf"{sec['n_divergent']} tokens at $\delta={_tex_num(sec['delta'])}$",
    )  # fmt: skip
    return fig


def _tex_num(x: float) -> str:
    """``1e-4 -> '10^{-4}'``, ``0.01 -> '0.01'``, ``5e-3 -> '5\\times10^{-3}'`` (mathtext)."""
    text = f"{float(x):g}"
    if "e" not in text:
        return text
    mant, exp = text.split("e")
    exp = str(int(exp))
    return f"10^{{{exp}}}" if mant == "1" else rf"{mant}\times10^{{{exp}}}"


@styled
def draw_f4(data: dict) -> Any:
    """F4: the paper's table at T = 4096 (docs/theory.md §7), published and sharp (§5) beside the paper's."""
    tab = get_field(data, "paper_table", source="bound_scaling.json")
    cols = get_field(tab, "columns", source="bound_scaling.json: paper_table")
    rows = tab["rows"]
    titles = {
        "kl_only": r"KL-only: $\delta=10^{-4}$, $D_{KL}^{seq}=0.01$",
        "kl_tv": r"KL+TV: also $\varepsilon=5\times10^{-3}$, $D_{TV}^{seq}=0.05$",
    }
    fig, axes = figure(nrows=len(cols), height=2.3 * len(cols) + 0.3, sharex=True)
    y = np.arange(len(rows))[::-1].astype(float)
    h = 0.4
    upper = set(tab.get("upper_only", []))
    top = 0.0
    for ax, (col, c) in zip(np.atleast_1d(axes), cols.items(), strict=True):
        pub = np.array([c["published"][b] for b, _ in rows])
        shp = np.array([c["sharp"][b] for b, _ in rows])
        paper = np.array([c["paper"].get(b, np.nan) for b, _ in rows])
        top = max(top, float(np.max(pub)))
        ax.barh(y + h / 2, pub, h, color="tab:blue", label="ours, published constant 4")
        ax.barh(y - h / 2, shp, h, color="tab:orange", label="ours, sharp constant 2")
        ax.plot(paper, y + h / 2, "k|", markersize=6, mew=1.2, label="paper's number")
        for yi, p, sv in zip(y, pub, shp, strict=True):
            ax.text(p * 1.12, yi + h / 2, f"{p:.4g}", va="center", fontsize=5.5)
            ax.text(sv * 1.12, yi - h / 2, f"{sv:.4g}", va="center", fontsize=5.5, color="0.3")
        # the paper's printed numbers: a column of their own right of the panel
        ax.text(1.02, 1.0, "paper", transform=ax.transAxes, fontsize=5.5, va="bottom",
                ha="left", weight="bold")  # fmt: skip
        for (b, _), yi, pp in zip(rows, y, paper, strict=True):
            if np.isfinite(pp):
                mk = r"$\leq$" if b in upper else ""
                ax.text(1.02, yi, f"{mk}{pp:g}", transform=ax.get_yaxis_transform(),
                        fontsize=5.5, va="center", ha="left")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(titles.get(col, col), fontsize=7)
        ax.grid(axis="y", visible=False)
        ax.set_yticks(y, [label for _, label in rows], fontsize=6)
        ax.set_ylim(y.min() - 0.6, y.max() + 0.6)
    axes = np.atleast_1d(axes)
    axes[0].set_xlim(0.4, top * 6)  # room for the labels right of the longest bar
    axes[-1].set_xlabel(r"bound on $|\mathrm{Error}|$ at $T=4096$ (log scale)")
    style.legend_below(fig, axes[0], ncols=2)
    return fig


@styled
def draw_f5(data: dict) -> Any:
    """F5: Adaptive weights ``min(1, (T-t) eps, sqrt((T-t) delta/2))`` (docs/theory.md §4) against ``T - t``."""
    sec = get_field(data, "crossover", source="bound_scaling.json")
    k = as_array(sec["k"])
    fig, ax = figure(height=3.6)
    ax.plot(
        k,
        as_array(sec["kl_route"]),
        color="k",
        linestyle="-",
        linewidth=1.2,
        label=rf"KL route $\min(1,\sqrt{{(T-t)\delta/2}})$, $\delta={_tex_num(sec['delta'])}$",
    )
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    for case, col in zip(sec["cases"], colors, strict=False):
        eps = case["eps"]
        ax.plot(
            k,
            as_array(case["coupling_route"]),
            color=col,
            linestyle="--",
            linewidth=0.9,
            label=rf"TV route $\min(1,(T-t)\varepsilon)$, $\varepsilon={_tex_num(eps)}$",
        )
        ax.plot(k, as_array(case["hybrid"]), color=col, linewidth=2.6, alpha=0.45)
        kc, wc = case["crossover"], case["crossover_weight"]
        ax.plot([kc], [wc], "o", color=col, markersize=4, mec="k", mew=0.5, zorder=5)
        ax.annotate(f"{kc:g}", (kc, wc), xytext=(-4, 5), textcoords="offset points",
                    color=col, fontsize=6, ha="right")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 2.0)
    ax.plot([], [], color="0.5", linewidth=2.6, alpha=0.45, label="hybrid weight (the smaller)")
    ax.plot([], [], "o", color="0.5", mec="k", mew=0.5, markersize=4,
            label=r"crossover $T-t=\delta/(2\varepsilon^2)$")  # fmt: skip
    ax.set_xlabel(r"tokens remaining $T-t$")
    ax.set_ylabel(r"weight $w(T-t)$")
    ax.set_title(r"Adaptive weights: TV route, then KL route")
    style.legend_below(fig, ax)
    return fig


@styled
def draw_f6(data: dict) -> Any:
    """F6: length bias ``(1-p)^T`` and simulated TRM-Max / SER / LN-TRM acceptance (docs/theory.md §6)."""
    sec = get_field(data, "length_bias", source="bound_scaling.json")
    T = as_array(sec["T"])
    fig, axes = figure(nrows=2, height=5.6)
    ax = axes[0]
    table = sec.get("paper_table", {})
    for (p, y), col in zip(
        sec["analytic"].items(), ["tab:red", "tab:blue", "tab:green"], strict=False
    ):
        ax.plot(T, as_array(y), color=col, label=rf"$(1-p)^T$, $p={_tex_num(float(p))}$")
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
                markersize=4,
                label="paper's table",
            )
            if below.any():
                ax.plot(
                    tp[below],
                    pv[below],
                    "v",
                    mfc="none",
                    color=col,
                    markersize=4,
                    label=f"paper: $<{_tex_num(pv[below][0])}$",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-8, 2.0)
    ax.set_xlabel(r"sequence length $T$ (tokens)")
    ax.set_ylabel("P(TRM-Max accepts)")
    ax.set_title(r"TRM-Max, i.i.d. violations with probability $p$")
    ax.legend(loc="lower left", fontsize=5.8)
    ax = axes[1]
    sim = sec.get("simulation")
    if sim:
        Ts = as_array(sim["T"])
        looks = [("tab:red", "o", "-"), ("tab:green", "s", "--"), ("tab:blue", "^", "-."),
                 ("tab:purple", "v", ":")]  # fmt: skip
        for (crit, rate), (col, mk, ls) in zip(sim["acceptance"].items(), looks, strict=False):
            rate = as_array(rate)
            lo, hi = as_array(sim["ci_low"][crit]), as_array(sim["ci_high"][crit])
            ax.plot(Ts, rate, marker=mk, linestyle=ls, color=col, linewidth=1.1,
                    label=sim.get("labels", {}).get(crit, crit))  # fmt: skip
            ax.fill_between(Ts, lo, hi, color=col, alpha=0.15)
        if "expected_trm_max" in sim:
            ax.plot(
                Ts,
                as_array(sim["expected_trm_max"]),
                "k:",
                linewidth=0.8,
                label=rf"$(1-p)^T$, $p={_tex_num(sim['p'])}$",
            )
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel(r"sequence length $T$ (tokens)")
        ax.set_ylabel("acceptance rate")
        ax.set_title(rf"Simulated: {sim['n_sequences']} sequences per $T$ (95% Wilson bands)")
        ax.legend(loc="lower left", fontsize=5.8)
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
    return fig
