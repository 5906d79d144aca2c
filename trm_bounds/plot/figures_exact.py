"""Figure F7: small transformers, exact error and Monte Carlo estimates against the bounds.

Drawn from ``transformer_mismatch.json`` (layout of ``trm_bounds.studies.transformer_mismatch``);
docs/theory.md §2-§6.  Colour means the mismatch source in both panels (:data:`SOURCE_STYLE`);
marker fill means the quantity (filled: the error, open: the bound).  ``draw_f7(data)`` takes
the parsed result file and returns a matplotlib ``Figure``; :mod:`.figures` registers it.
(F3 moved to :mod:`.figures_scaling`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter

from .figures_scaling import draw_f3  # noqa: F401  (F3 moved; figures.py may import it here)
from .result_file import ResultFileError, get_field
from .style import figure, styled

__all__ = ["draw_f7", "SOURCE_STYLE", "source_label"]

#: Colour and short label of each mismatch source (the same in both panels of F7).
SOURCE_STYLE: dict[str, dict[str, str]] = {
    "precision_bf16": {"color": "#1f77b4", "marker": "o", "label": "bf16 rollout"},
    "precision_fp16": {"color": "#17becf", "marker": "s", "label": "fp16 rollout"},
    "staleness": {"color": "#d62728", "marker": "^", "label": "staleness (2 Adam steps)"},
    "moe_routing": {"color": "#9467bd", "marker": "D", "label": "MoE routing"},
    "weight_noise_0.02": {"color": "#2ca02c", "marker": "v", "label": "weight noise 0.02"},
    "weight_noise_0.1": {"color": "#8c564b", "marker": "P", "label": "weight noise 0.1"},
}
_FALLBACK = ["#7f7f7f", "#bcbd22", "#e377c2", "#ff7f0e"]
_FALLBACK_MARKERS = ["X", "<", ">", "h"]


def source_label(name: str) -> str:
    """Short legend label of a mismatch source (its key when unknown).

    >>> source_label("moe_routing"), source_label("other")
    ('MoE routing', 'other')
    """
    return SOURCE_STYLE.get(name, {}).get("label", name)


def _colors(names: list[str]) -> dict[str, str]:
    extra = iter(_FALLBACK * 4)
    return {n: SOURCE_STYLE[n]["color"] if n in SOURCE_STYLE else next(extra) for n in names}


def _markers(names: list[str]) -> dict[str, str]:
    extra = iter(_FALLBACK_MARKERS * 4)
    return {n: SOURCE_STYLE[n]["marker"] if n in SOURCE_STYLE else next(extra) for n in names}


def _decades(ax: Any, values: np.ndarray) -> None:
    """Log y axis spanning whole decades around ``values`` (at least two labelled ticks, one
    label per decade, no minor labels)."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size:
        lo, hi = np.floor(np.log10(v.min())), np.ceil(np.log10(v.max()))
        hi = max(hi, lo + 1)
        ax.set_ylim(10**lo, 10**hi)
        step = max(1, int(np.ceil((hi - lo) / 6)))
        ax.yaxis.set_major_locator(LogLocator(base=10.0**step, numticks=12))
    ax.yaxis.set_minor_formatter(NullFormatter())


@styled
def draw_f7(data: dict) -> Any:
    r"""F7: (a) exact worst-case error against the sharp unified bound for every enumerated
    horizon; (b) Monte Carlo at the long horizon.  Each source has one colour and one marker
    in both panels; the legend says what filled and open markers mean.

    (a) reads ``exact: [{"source", "T", "V" (4 when absent), "error_max_over_rewards",
    "bounds_sharp": {"unified"}}]``: per source (and ``V``), ``max_R |Error|`` (filled markers,
    solid) and the sharp ``B^*`` (open markers, dashed) against ``T``; the title names the
    enumerated horizons.  (b) reads ``montecarlo: [{"source", "T", "N", "estimates": {"error":
    {"mean", "lo", "hi"}}, "plugin_bounds_sharp": {"unified"}}]``: per source, the point
    estimate of ``|Error|`` (filled marker) and the ``4\sigma`` interval of ``|Error|`` (a
    capped whisker; where the interval of ``Error`` contains 0 the whisker runs to the axis
    bottom and ends in an arrow), and the plug-in sharp ``B^*`` (open marker; an estimate,
    not a certified bound).
    """
    from matplotlib.lines import Line2D

    rows = get_field(data, "exact", source="transformer_mismatch.json")
    if not rows:
        raise ResultFileError("field 'exact' is empty")
    mc = data.get("montecarlo") or []
    sources = list(dict.fromkeys([r["source"] for r in rows] + [r["source"] for r in mc]))
    col, mk = _colors(sources), _markers(sources)
    fig, axes = figure(nrows=2 if mc else 1, height=5.4 if mc else 3.2, squeeze=False)
    ax = axes[0, 0]
    Vs = sorted({int(r.get("V", 4)) for r in rows})
    shown, handles = [], []
    for s in sources:
        for V in sorted({int(r.get("V", 4)) for r in rows if r["source"] == s}):
            rs = sorted((r for r in rows if r["source"] == s and int(r.get("V", 4)) == V),
                        key=lambda r: r["T"])  # fmt: skip
            T = [r["T"] for r in rs]
            err = np.array([float(r["error_max_over_rewards"]) for r in rs])
            bnd = np.array([float(r["bounds_sharp"]["unified"]) for r in rs])
            label = source_label(s) + (f", $V = {V}$" if len(Vs) > 1 else "")
            (h,) = ax.plot(T, err, marker=mk[s], color=col[s], linestyle="-", label=label)
            ax.plot(T, bnd, marker=mk[s], color=col[s], linestyle="--", markerfacecolor="white")
            handles.append(h)
            shown += [err, bnd]
    ax.set_yscale("log")
    ax.set_xlabel("horizon $T$ (tokens; every sequence enumerated)")
    ax.set_ylabel("worst-case error or bound")
    Ts = sorted({int(r["T"]) for r in rows})
    ax.set_title(f"(a) exact, $T = {Ts[0]}$-${Ts[-1]}$, $V = {', '.join(map(str, Vs))}$")
    ax.set_xticks(Ts)
    _decades(ax, np.concatenate(shown))
    if mc:
        ax2 = axes[1, 0]
        x = np.arange(len(mc), dtype=float)
        vals, floor_rows = [], []
        for i, r in enumerate(mc):
            e = r["estimates"]["error"]
            lo_e, hi_e, mean = float(e["lo"]), float(e["hi"]), float(e["mean"])
            up = max(abs(lo_e), abs(hi_e))  # 4-sigma interval of |Error|: [low, up]
            low = 0.0 if lo_e <= 0 <= hi_e else min(abs(lo_e), abs(hi_e))
            b = float(r["plugin_bounds_sharp"]["unified"])
            c, m = col[r["source"]], mk[r["source"]]
            ax2.plot([x[i]], [up], marker="_", color=c, markersize=7, mew=1.2)
            if low > 0:
                ax2.plot([x[i], x[i]], [low, up], color=c, linewidth=0.9)
                ax2.plot([x[i]], [low], marker="_", color=c, markersize=7, mew=1.2)
                vals.append(low)
            else:
                floor_rows.append((x[i], up, c))
            if mean != 0:
                ax2.plot(x[i], abs(mean), marker=m, color=c, linestyle="none")
                vals.append(abs(mean))
            ax2.plot(x[i] + 0.3, b, marker=m, color=c, markerfacecolor="white", linestyle="none")
            vals += [up, b]
        ax2.set_yscale("log")
        _decades(ax2, np.array(vals))
        bottom = ax2.get_ylim()[0]
        for xi, up, c in floor_rows:  # the interval of Error contains 0: |Error| down to 0
            ax2.plot([xi, xi], [bottom, up], color=c, linewidth=0.9)
            ax2.plot([xi], [bottom], marker="v", color=c, markersize=4, clip_on=False)
        ax2.set_xticks(x, [source_label(r["source"]).split(" (")[0] for r in mc], rotation=30,
                       ha="right")  # fmt: skip
        ax2.grid(axis="x", visible=False)
        ax2.set_xlim(-0.5, len(mc) - 0.2)
        T_mc, N_mc = mc[0]["T"], mc[0]["N"]
        ax2.set_title(f"(b) Monte Carlo, $T = {T_mc}$, $N = {N_mc}$ rollouts")
        ax2.set_ylabel("|Error| or plug-in bound")
    grey = {"color": "0.35", "marker": "o", "markersize": 3}
    keys = [Line2D([], [], linestyle="-", **grey),
            Line2D([], [], linestyle="--", markerfacecolor="white", **grey)]  # fmt: skip
    key_labels = [r"filled: max$_R$|Error| (a), $|\widehat{\mathrm{Error}}|$ (b)",
                  r"open: sharp $B^*$ (a), plug-in $B^*$ (b)"]  # fmt: skip
    if mc:
        keys.append(Line2D([], [], color="0.35", marker="_", markersize=7, mew=1.2,
                           linestyle="-", linewidth=0.9))  # fmt: skip
        key_labels.append(r"$4\sigma$ interval of |Error| (b); $\blacktriangledown$: reaches 0")
    fig.legend(handles + keys, [h.get_label() for h in handles] + key_labels,
               loc="outside lower center", ncols=2, frameon=False, columnspacing=1.0,
               handletextpad=0.5)  # fmt: skip
    return fig
