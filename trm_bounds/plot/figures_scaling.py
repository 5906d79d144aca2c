"""Figures F3 and F9: how the exact error grows with ``T`` beside the bounds (docs/theory.md §10).

F3 the finite-state DP engine's exact error on four fixed instances (``tabular_scaling.json``);
F9 the worst case over rewards of each instance family against every sharp bound, up to
``T = 10^5`` (``worst_case.json``).  Slopes are drawn only where the study found a power law
(:mod:`trm_bounds.studies._power_law`); each ``draw_fN(data)`` takes the parsed result file and
returns a matplotlib ``Figure``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter

from .result_file import ResultFileError, as_array, get_field
from .style import (
    BOUND_COLORS,
    COLUMN_WIDTH,
    ERROR_STYLE,
    PANEL_HEIGHT,
    REFERENCE_STYLE,
    bound_linestyle,
    coincident_groups,
    figure,
    legend_below,
    plot_groups,
    reference_slopes,
    styled,
)

__all__ = ["draw_f3", "draw_f9", "F3_BOUNDS", "F9_BOUNDS", "F3_TITLES", "F9_FAMILIES"]

#: Sharp bounds drawn in F3 and F9 (coincident ones merge into one legend entry).
F3_BOUNDS = ("coupling", "pm_kl", "mix_kl", "adaptive_hybrid", "linear", "unified")
F9_BOUNDS = ("pm_kl", "mix_kl", "coupling", "linear", "unified")
#: Panel titles of F3's regimes (``{n}``: the regime's number of perturbed contexts).
F3_TITLES = {
    "uniform": "(a) slow walk, every token perturbed",
    "sparse": "(b) slow walk, first {n} tokens perturbed",
    "uniform_mixing": "(c) fast machine, every token perturbed",
    "sparse_mixing": "(d) fast machine, last {n} tokens perturbed",
}
#: F9 curves of the families: (regime, family) -> (label, colour, marker).
F9_FAMILIES = {
    ("uniform", "tilted_walk"): ("tilted walk", "black", "o"),
    ("uniform", "hidden_regime_walk"): ("hidden-regime walk", "tab:purple", "^"),
    ("uniform", "reflecting_walk"): ("reflecting walk, $S = 128$", "tab:brown", "v"),
    ("uniform", "random_machine"): ("random machine, $S = 8$", "tab:olive", "d"),
    ("uniform_large", "tilted_walk"): ("tilted walk", "black", "o"),
    ("sparse", "walk_start"): ("walk, any placement", "black", "o"),
    ("sparse", "random_machine_end"): ("machine, last positions", "tab:olive", "d"),
    ("sparse", "random_machine_start"): ("machine, first positions", "tab:cyan", "x"),
}
_CHI2_STYLE = {"color": "tab:green", "linestyle": (0, (5, 1, 1, 1)), "label": r"$\chi^2$ bound (§10)"}


def _bounds(ax: Any, T: np.ndarray, bounds: dict, names: tuple[str, ...],
            bands: set[str] | frozenset[str] | None = frozenset(),
            unified_kw: dict | None = None) -> set[str]:  # fmt: skip
    """The sharp bounds ``names`` of one panel, coincident ones merged; ``bands``: the groups
    drawn as bands (default none; ``None``: each that runs close to one drawn before it,
    :func:`~.style.runs_close`); ``unified_kw`` restyles B*.  Returns those drawn as bands."""
    curves = {n: as_array(bounds[n]) for n in names if n in bounds}
    return plot_groups(ax, T, curves, coincident_groups(curves), bands=bands,
                       unified_kw=unified_kw)


def _log_axes(ax: Any) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _slope_words(slope: float) -> str:
    """``'slope 1.00'``, or ``'constant'`` for a slope within 0.01 of 0."""
    return "constant" if abs(slope) < 0.01 else f"slope {round(slope, 2) + 0.0:.2f}"


def _fit_label(fit: dict | None) -> str:
    return "" if not fit else ", " + _slope_words(fit["slope"])


@styled
def draw_f3(data: dict) -> Any:
    """F3: exact ``Error`` (sign shown) and ``max_R |Error|`` against the sharp bounds.

    Reads ``regimes: {name: {"T", "error", "error_max_over_rewards", "bounds_sharp",
    "fits": {"error_max_over_rewards": {"slope", "window"} | null, ...}, "sign_changes",
    "decay"}}`` from tabular_scaling.json.  Filled markers: ``Error > 0``; open: ``Error < 0``;
    grey bars: where ``Error`` changes sign.  A slope is printed only where the study found a
    power law; an exponential decay is labelled with its rate.
    """
    regimes = get_field(data, "regimes", source="tabular_scaling.json")
    names = [n for n in F3_TITLES if n in regimes] + [n for n in regimes if n not in F3_TITLES]
    ncols = 2
    nrows = -(-len(names) // ncols)
    fig, axes = figure(ncols=ncols, nrows=nrows, width=2 * COLUMN_WIDTH,
                       height=1.15 * PANEL_HEIGHT * nrows + 0.6, squeeze=False)  # fmt: skip
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    bands = None  # decided on panel (a), whose legend is the figure's
    for ax, name in zip(axes.flat, names, strict=False):
        sec = regimes[name]
        src = f"regimes.{name}"
        T = as_array(get_field(sec, "T", source=src))
        # the legend is panel (a)'s: its bands are drawn as bands in every panel
        bands = _bounds(ax, T, get_field(sec, "bounds_sharp", source=src), F3_BOUNDS, bands)
        err = as_array(get_field(sec, "error", source=src))
        st = ERROR_STYLE["error"]
        pos, neg = err > 0, err < 0
        ax.plot(T[pos | neg], np.abs(err[pos | neg]), color=st["color"], linewidth=0.8, zorder=4)
        ax.plot(T[pos], err[pos], "o", color=st["color"], markersize=3, zorder=5,
                label=r"exact Error $> 0$")  # fmt: skip
        ax.plot(T[neg], -err[neg], "o", markerfacecolor="white", color=st["color"],
                markersize=3, zorder=5, label=r"exact Error $< 0$ (shown $|\cdot|$)")  # fmt: skip
        fits = sec.get("fits", {}) or {}
        m = as_array(get_field(sec, "error_max_over_rewards", source=src))
        ok = m > 0
        mst = ERROR_STYLE["error_max_over_rewards"]
        fit = fits.get("error_max_over_rewards")
        ax.plot(T[ok], m[ok], color=mst["color"], linestyle="--", linewidth=1.2, zorder=4,
                label=r"exact $\mathrm{max}_R|\mathrm{Error}|$")  # fmt: skip
        for lo, hi in sec.get("sign_changes", []):
            ax.axvspan(lo, hi, color="0.6", alpha=0.35, linewidth=0, zorder=0)
        text = []
        if fit:
            lo, hi = fit["window"]
            text.append(rf"$\mathrm{{max}}_R$: {_slope_words(fit['slope'])} on $T\in[{lo:g}, {hi:g}]$")
        decay = sec.get("decay")
        if decay:
            tau, t0 = 1 / decay["rate"], decay["window"][0]
            text.append(rf"$\mathrm{{max}}_R \propto e^{{-T/{tau:.0f}}}$ for $T \geq {t0:g}$")
        if sec.get("sign_changes"):
            text.append("grey: Error changes sign")
        if text:
            ax.text(0.02, 0.98, "\n".join(text), transform=ax.transAxes, fontsize=5.8,
                    va="top", ha="left",
                    bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1})
        _log_axes(ax)
        n = (sec.get("params") or {}).get("n_contexts", "")
        ax.set_title(F3_TITLES.get(name, name).format(n=n))
        ax.set_xlabel(r"horizon $T$ (tokens)")
        ax.set_ylabel("error, sharp bounds")
    legend_below(fig, axes.flat[0], ncols=3)
    return fig


def _family_curve(ax: Any, sec: dict, key: tuple[str, str]) -> None:
    label, color, marker = F9_FAMILIES.get(key, (key[1], "grey", "."))
    T = as_array(sec["T"])
    y = as_array(sec["max_error"])
    ok = y > 1e-13
    fit = (sec.get("fit") or {}).get("max_error")
    (line,) = ax.plot(T[ok], y[ok], color=color, marker=marker, markersize=2.5, linewidth=1.0,
                      zorder=5, label=label + _fit_label(fit))  # fmt: skip
    line._trm_family = True  # in the panel's own legend; the bounds go below the figure


@styled
def draw_f9(data: dict) -> Any:
    """F9: exact worst-case error ``max_R |Error|`` of each family against ``T``, beside the
    sharp bounds and the chi-square bound of docs/theory.md §10 (log-log, reference slopes).

    Reads ``regimes: {"uniform" | "uniform_large" | "sparse": {"families": {family: {"T",
    "max_error", "bounds_sharp", "chi2_bound", "ratio", "fit"}}}}`` and ``constant_z: {"T",
    "max_error", "source", "ratio_leading", "ratio_chi2"}`` from worst_case.json.
    Panels: (a) uniform divergence at small ``delta`` (bounds of the tilted walk) with the
    constant-``|Z_T|`` design, the worst case; (b) the tilted walk at larger ``delta``, past
    ``T delta = 1``; (c) sparse divergence (bounds of the walk with its tilted positions at
    the end and at the start); (d) tightness: the walk over ``B*`` and over the chi-square
    bound, and the design over the bound it attains, ``delta sqrt(T(T-1)/2)`` (the limit of
    Theorem 10.3; Theorem 10.1 on its exact points).  ``B*`` is drawn thin and pale so that
    the bounds it equals stay readable.
    """
    regimes = get_field(data, "regimes", source="worst_case.json")
    cz = data.get("constant_z")
    unified_kw = {"linewidth": 1.6, "alpha": 0.4, "dashes": (3.0, 1.5)}
    fig, axes = figure(ncols=2, nrows=2, width=2 * COLUMN_WIDTH, height=2.5 * PANEL_HEIGHT)
    (a, b), (c, d) = axes
    for ax, reg, ref_family, title in (
        (a, "uniform", "tilted_walk", "uniform"),
        (b, "uniform_large", "tilted_walk", "uniform, larger $\\delta$"),
        (c, "sparse", "walk_end", "sparse"),
    ):
        fams = get_field(regimes, reg, "families", source="worst_case.json")
        if ref_family not in fams:
            raise ResultFileError(f"worst_case.json: missing field 'regimes.{reg}.families.{ref_family}'")
        ref = fams[ref_family]
        T = as_array(ref["T"])
        _bounds(ax, T, ref["bounds_sharp"], F9_BOUNDS, unified_kw=unified_kw)
        chi = as_array(ref["chi2_bound"])
        ax.plot(T, chi, linewidth=1.2, zorder=3, **_CHI2_STYLE)
        for fam, sec in fams.items():
            if (reg, fam) in F9_FAMILIES:
                _family_curve(ax, sec, (reg, fam))
        if reg == "uniform" and cz is not None:
            Tz, yz = as_array(cz["T"]), as_array(cz["max_error"])
            (line,) = ax.plot(Tz, yz, color="tab:red", marker="s", markersize=2.5, linewidth=1.0,
                              zorder=6, label=r"constant-$|Z_T|$ design")  # fmt: skip
            line._trm_family = True
        if reg == "sparse" and "walk_start" in fams:
            y = as_array(fams["walk_start"]["bounds_sharp"]["unified"])
            ax.plot(T, y, color=BOUND_COLORS["unified"], linestyle=bound_linestyle("unified"),
                    linewidth=0.8, alpha=0.4, label="$B^*$, tilt at the start")  # fmt: skip
        if reg != "sparse":
            y0 = float(as_array(ref["max_error"])[0])
            reference_slopes(ax, (float(T[0]), float(T[-1])), y0 * 0.3,
                             ((1.5, "$T^{3/2}$"), (1.0, "$T$"), (0.5, "$T^{1/2}$")))  # fmt: skip
        _log_axes(ax)
        ax.set_title(title)
        ax.set_xlabel("horizon $T$")
        ax.set_ylabel(r"$\mathrm{max}_R|\mathrm{Error}|$, sharp bounds")
        fam_handles = [h for h in ax.get_lines() if getattr(h, "_trm_family", False)]
        ax.legend(handles=fam_handles, fontsize=5.2, loc="upper left", framealpha=0.85)
    from matplotlib.lines import Line2D

    keys: list[tuple[Any, str]] = []
    for reg, fam, color in (("uniform", "tilted_walk", "black"),
                            ("uniform_large", "tilted_walk", "tab:gray"),
                            ("sparse", "walk_end", "tab:blue")):  # fmt: skip
        sec = regimes.get(reg, {}).get("families", {}).get(fam)
        if sec is None:
            continue
        T = as_array(sec["T"])
        lab = {"uniform": "uniform", "uniform_large": r"uniform, larger $\delta$",
               "sparse": "sparse"}[reg]  # fmt: skip
        d.plot(T, as_array(sec["ratio"]["unified"]), color=color, marker="o", markersize=2.5,
               linewidth=1.0)  # fmt: skip
        d.plot(T, as_array(sec["ratio"]["chi2"]), color=color, linestyle="--", linewidth=1.0)
        keys.append((Line2D([], [], color=color, marker="o", markersize=2.5), f"walk, {lab}"))
    keys += [(Line2D([], [], color="0.3", linewidth=1.0), "walk: solid / $B^*$"),
             (Line2D([], [], color="0.3", linestyle="--", linewidth=1.0),
              r"walk: dashed / $\chi^2$ bound")]  # fmt: skip
    if cz is not None:
        Tz = as_array(cz["T"])
        d.plot(Tz, as_array(cz["ratio_leading"]), color="tab:red", marker="s", markersize=2.5,
               linewidth=1.0)  # fmt: skip
        keys.append((Line2D([], [], color="tab:red", marker="s", markersize=2.5),
                     r"constant-$|Z_T|$ / $\delta\sqrt{T(T-1)/2}$"))  # fmt: skip
        exact = np.array([r is not None for r in cz["ratio_chi2"]])
        if exact.any():
            rc = np.array([r for r in cz["ratio_chi2"] if r is not None], dtype=float)
            d.plot(Tz[exact], rc, color="tab:red", marker="^", markersize=3, linestyle="none")
            keys.append((Line2D([], [], color="tab:red", marker="^", markersize=3,
                                linestyle="none"), r"constant-$|Z_T|$ / $\chi^2$ bound"))  # fmt: skip
    d.axhline(1.0, **{**REFERENCE_STYLE, "linestyle": "-"})
    _log_axes(d)
    d.set_ylim(3e-6, 2.0)  # room below the curves for the key
    d.set_title("tightness")
    d.set_xlabel("horizon $T$")
    d.set_ylabel(r"$\mathrm{max}_R|\mathrm{Error}|$ / bound")
    d.legend([h for h, _ in keys], [lab for _, lab in keys], fontsize=5.2, loc="lower left",
             framealpha=0.85, ncols=2)  # fmt: skip
    handles, labels = a.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels, strict=True)
            if not getattr(h, "_trm_family", False)]  # fmt: skip
    fig.legend([h for h, _ in keep], [lab for _, lab in keep], loc="outside lower center",
               ncols=3, frameon=False)  # fmt: skip
    return fig
