"""Figures F1-F8 of trm-bounds, drawn from result files only.

Each ``draw_fN(data)`` takes the parsed JSON of one result file and returns a matplotlib
``Figure``; it never computes a bound or runs an experiment (every number it shows is in
the file, fitted slopes included).  :data:`FIGURES` maps each figure to its result file and
file name; :func:`render` draws one figure into a folder.

======  ==========================================  ============================================
figure  content                                     result file (under ``experiments/results``)
======  ==========================================  ============================================
F1      every bound against T, uniform divergence   ``bound_scaling.json`` (``uniform``)
F2      every bound against T, sparse divergence    ``bound_scaling.json`` (``sparse``)
F3      exact error against bounds, T up to 10^4    ``tabular_scaling.json``
F4      the paper's table, published and sharp      ``bound_scaling.json`` (``paper_table``)
F5      the Adaptive route crossover                ``bound_scaling.json`` (``crossover``)
F6      length bias of TRM-Max, SER, LN-TRM         ``bound_scaling.json`` (``length_bias``)
F7      transformer mismatch sources                ``transformer_mismatch.json`` (``exact``)
F8      log evaluator on the demo dump              ``demo_eval/report.json`` (via plot.evaluate)
======  ==========================================  ============================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator, NullFormatter

from trm_bounds.bounds import BOUND_NAMES

from . import style
from .style import BOUND_LABELS, ERROR_STYLE, figure, plot_bound, styled

__all__ = [
    "FigureSpec",
    "FIGURES",
    "render",
    "draw_f1",
    "draw_f2",
    "draw_f3",
    "draw_f4",
    "draw_f5",
    "draw_f6",
    "draw_f7",
    "draw_f8",
    "ResultFileError",
]

#: Bounds drawn in the scaling figures (all twelve; curves that coincide are drawn on top of
#: each other with different markers).
SCALING_BOUNDS = ("classical_kl", "classical_tv", *BOUND_NAMES[2:])


class ResultFileError(ValueError):
    """A result file lacks a field a figure needs (message names the file and the field)."""


def _get(data: dict, *keys: str, source: str = "result file") -> Any:
    """``data[k1][k2]...`` or a :class:`ResultFileError` naming the missing field."""
    cur: Any = data
    for i, k in enumerate(keys):
        if not isinstance(cur, dict) or k not in cur:
            raise ResultFileError(f"{source}: missing field {'.'.join(keys[: i + 1])!r}")
        cur = cur[k]
    return cur


def _arr(x: Any) -> np.ndarray:
    """A float array from a JSON list (``"inf"``/``"nan"`` strings and ``null`` included)."""
    return np.asarray([np.nan if v is None else float(v) for v in x], dtype=np.float64)


def _scaling_panel(ax, sec: dict, title: str) -> None:
    """Log-log bound curves of one regime with the fitted slope in each legend entry."""
    T = _arr(sec["T"])
    slopes = sec.get("slopes", {})
    for name in SCALING_BOUNDS:
        if name not in sec["published"]:
            continue
        y = _arr(sec["published"][name])
        ok = y > 0
        if not ok.any():
            continue
        plot_bound(ax, T[ok], y[ok], name, label=BOUND_LABELS[name] + _slope_text(slopes.get(name)))
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
    sec = _get(data, "uniform", source="bound_scaling.json")
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
    sec = _get(data, "sparse", source="bound_scaling.json")
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


def _slope_text(s: Any) -> str:
    """``'  slope 1.50'`` or ``''`` for a missing (null) slope."""
    return f"  slope {round(float(s), 2) + 0.0:.2f}" if isinstance(s, (int, float)) else ""


@styled
def draw_f3(data: dict) -> Any:
    """F3: exact ``|Error|`` and ``max_R |Error|`` against the bounds (finite-state DP engine).

    Reads ``regimes: {name: {"T", "abs_error", "error_max_over_rewards",
    "bounds_published": {bound: list}, "bounds_sharp", "slopes": {"abs_error",
    "error_max_over_rewards", "bounds_published": {bound: slope}}, "fit_window"}}`` from
    tabular_scaling.json (layout of ``experiments/tabular_scaling.py``).
    """
    regimes = _get(data, "regimes", source="tabular_scaling.json")
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
        T = _arr(_get(sec, "T", source=src))
        slopes = sec.get("slopes", {}) or {}
        bslopes = slopes.get("bounds_published", {}) or {}
        pub = _get(sec, "bounds_published", source=src)
        for b in F3_BOUNDS:
            if b not in pub:
                continue
            y = _arr(pub[b])
            ok = y > 0
            plot_bound(ax, T[ok], y[ok], b, label=BOUND_LABELS[b] + _slope_text(bslopes.get(b)))
        shp = sec.get("bounds_sharp", {}).get("unified")
        if shp is not None:
            y = _arr(shp)
            ok = y > 0
            ax.plot(T[ok], y[ok], color="0.45", linestyle=":", linewidth=2.0,
                    label="Unified B*, sharp constant 2")  # fmt: skip
        for key, skey, st in F3_ERRORS:
            if key not in sec:
                continue
            y = np.abs(_arr(sec[key]))
            ok = y > 0
            kw = dict(ERROR_STYLE[st])
            kw["label"] = str(kw["label"]) + _slope_text(slopes.get(skey))
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


@styled
def draw_f4(data: dict) -> Any:
    """F4: the paper's table at T = 4096 (docs/theory.md §7), published and sharp (§5) beside the paper's."""
    tab = _get(data, "paper_table", source="bound_scaling.json")
    cols = _get(tab, "columns", source="bound_scaling.json: paper_table")
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
    sec = _get(data, "crossover", source="bound_scaling.json")
    k = _arr(sec["k"])
    fig, ax = figure(width=7.4, height=4.8)
    ax.plot(
        k,
        _arr(sec["kl_route"]),
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
            _arr(case["coupling_route"]),
            color=col,
            linestyle=":",
            linewidth=1.4,
            label=f"TV route min(1, (T-t) eps), eps = {eps:g}",
        )
        ax.plot(
            k,
            _arr(case["hybrid"]),
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
    sec = _get(data, "length_bias", source="bound_scaling.json")
    T = _arr(sec["T"])
    fig, axes = figure(ncols=2, width=11.0, height=4.6)
    ax = axes[0]
    table = sec.get("paper_table", {})
    for (p, y), col in zip(
        sec["analytic"].items(), ["tab:red", "tab:blue", "tab:green"], strict=False
    ):
        ax.plot(T, _arr(y), color=col, label=f"(1-p)^T, p = {float(p):g}")
        if p in table:
            tp, pv = _arr(table["T"]), _arr(table[p]["paper"])
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
        Ts = _arr(sim["T"])
        looks = [("tab:red", "o", "-"), ("tab:green", "s", "--"), ("tab:blue", "^", "-."),
                 ("tab:purple", "v", ":")]  # fmt: skip
        for (crit, rate), (col, mk, ls) in zip(sim["acceptance"].items(), looks, strict=False):
            rate = _arr(rate)
            lo, hi = _arr(sim["ci_low"][crit]), _arr(sim["ci_high"][crit])
            ax.plot(Ts, rate, marker=mk, linestyle=ls, color=col, linewidth=2.0,
                    label=sim.get("labels", {}).get(crit, crit))  # fmt: skip
            ax.fill_between(Ts, lo, hi, color=col, alpha=0.15)
        if "expected_trm_max" in sim:
            ax.plot(
                Ts,
                _arr(sim["expected_trm_max"]),
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


#: Bounds drawn in F7 (published constants).
F7_BOUNDS = ("classical_kl", "coupling", "pm_kl", "mix_kl", "mix_tv", "adaptive_hybrid", "unified")


@styled
def draw_f7(data: dict) -> Any:
    """F7: exact error against the bounds for each transformer mismatch source.

    Reads ``exact: [{"source", "T", "error", "error_max_over_rewards", "bounds_published"
    {bound: value}, "bounds_sharp", "tightest_sharp", "ratio_worst_case_sharp"}]`` from
    transformer_mismatch.json (layout of ``experiments/transformer_mismatch.py``).
    """
    rows = _get(data, "exact", source="transformer_mismatch.json")
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


def draw_f8(report: dict, out_dir: str | Path, formats: Iterable[str]) -> list[Path]:
    """F8: the log evaluator's figures on the demo dump (``trm_bounds.plot.evaluate``)."""
    from .evaluate import draw_report_figures

    paths = draw_report_figures(report, out_dir, formats=tuple(formats))
    return [Path(p) for p in (paths or [])]


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its key, file stem, result file (relative to the results folder), drawer."""

    key: str
    name: str
    source: str
    draw: Callable[[dict], Any] | None
    what: str


FIGURES: dict[str, FigureSpec] = {
    s.key: s
    for s in (
        FigureSpec(
            "F1",
            "f1_bounds_uniform",
            "bound_scaling.json",
            draw_f1,
            "every bound against T, uniform divergence",
        ),
        FigureSpec(
            "F2",
            "f2_bounds_sparse",
            "bound_scaling.json",
            draw_f2,
            "every bound against T, sparse divergence",
        ),
        FigureSpec(
            "F3",
            "f3_exact_error_scaling",
            "tabular_scaling.json",
            draw_f3,
            "exact error against every bound, T up to 10^4",
        ),
        FigureSpec(
            "F4",
            "f4_paper_table",
            "bound_scaling.json",
            draw_f4,
            "the paper's table, published beside sharp",
        ),
        FigureSpec(
            "F5",
            "f5_adaptive_crossover",
            "bound_scaling.json",
            draw_f5,
            "the Adaptive route crossover",
        ),
        FigureSpec(
            "F6",
            "f6_length_bias",
            "bound_scaling.json",
            draw_f6,
            "length bias of TRM-Max, SER, LN-TRM",
        ),
        FigureSpec(
            "F7",
            "f7_transformer_mismatch",
            "transformer_mismatch.json",
            draw_f7,
            "transformer mismatch sources, exact error against bounds",
        ),
        FigureSpec(
            "F8", "f8_demo_eval", "demo_eval/report.json", None, "log evaluator on the demo dump"
        ),
    )
}


def render(
    spec: FigureSpec,
    results_dir: str | Path,
    out_dir: str | Path,
    formats: Sequence[str],
    *,
    dpi: float | None = None,
) -> list[Path]:
    """Draw one figure from its result file into ``out_dir``; returns the written paths.

    Raises ``FileNotFoundError`` when the result file is missing and
    :class:`ResultFileError` when it is malformed (both name the file).
    """
    path = Path(results_dir) / spec.source
    if not path.is_file():
        raise FileNotFoundError(f"{path}: result file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if spec.draw is None:
        return draw_f8(data, Path(out_dir) / spec.name, formats)
    try:
        fig = spec.draw(data)
    except ResultFileError as exc:
        raise ResultFileError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, IndexError) as exc:
        raise ResultFileError(f"{path}: unexpected layout ({type(exc).__name__}: {exc})") from exc
    return style.save(fig, out_dir, spec.name, formats, dpi=dpi)
