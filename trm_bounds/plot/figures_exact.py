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
from .style import figure, legend_below, styled

__all__ = ["draw_f7", "SOURCE_STYLE", "source_label"]

#: Colour and short label of each mismatch source (the same in both panels of F7).
SOURCE_STYLE: dict[str, dict[str, str]] = {
    "precision_bf16": {"color": "#1f77b4", "label": "bf16 rollout"},
    "precision_fp16": {"color": "#17becf", "label": "fp16 rollout"},
    "staleness": {"color": "#d62728", "label": "staleness (2 Adam steps)"},
    "moe_routing": {"color": "#9467bd", "label": "MoE routing"},
    "weight_noise_0.02": {"color": "#2ca02c", "label": "weight noise 0.02"},
    "weight_noise_0.1": {"color": "#8c564b", "label": "weight noise 0.1"},
}
_FALLBACK = ["#7f7f7f", "#bcbd22", "#e377c2", "#ff7f0e"]


def source_label(name: str) -> str:
    """Short legend label of a mismatch source (its key when unknown).

    >>> source_label("moe_routing"), source_label("other")
    ('MoE routing', 'other')
    """
    return SOURCE_STYLE.get(name, {}).get("label", name)


def _colors(names: list[str]) -> dict[str, str]:
    extra = iter(_FALLBACK * 4)
    return {n: SOURCE_STYLE[n]["color"] if n in SOURCE_STYLE else next(extra) for n in names}


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
    horizon; (b) Monte Carlo at the long horizon.

    (a) reads ``exact: [{"source", "T", "V" (4 when absent), "error_max_over_rewards",
    "bounds_sharp": {"unified"}}]``: per source, ``max_R |Error|`` (filled markers, solid)
    and the sharp ``B^*`` (open markers, dashed) against ``T``; a ``V = 8`` row is drawn with a
    square marker.  (b) reads ``montecarlo: [{"source", "T", "N", "estimates": {"error":
    {"mean", "lo", "hi"}}, "plugin_bounds_sharp": {"unified"}}]``: per source, the
    ``4\sigma`` upper end of ``|Error|`` (a bar from the axis bottom, the point estimate as a
    dot) and the plug-in sharp ``B^*`` (open marker; an estimate, not a certified bound).
    """
    rows = get_field(data, "exact", source="transformer_mismatch.json")
    if not rows:
        raise ResultFileError("field 'exact' is empty")
    mc = data.get("montecarlo") or []
    sources = list(dict.fromkeys([r["source"] for r in rows] + [r["source"] for r in mc]))
    col = _colors(sources)
    fig, axes = figure(nrows=2 if mc else 1, height=5.6 if mc else 3.2, squeeze=False)
    ax = axes[0, 0]
    shown = []
    for s in sources:
        for V in sorted({int(r.get("V", 4)) for r in rows if r["source"] == s}):
            rs = sorted((r for r in rows if r["source"] == s and int(r.get("V", 4)) == V),
                        key=lambda r: r["T"])  # fmt: skip
            T = [r["T"] for r in rs]
            err = np.array([float(r["error_max_over_rewards"]) for r in rs])
            bnd = np.array([float(r["bounds_sharp"]["unified"]) for r in rs])
            mk = "o" if V == 4 else "s"
            ax.plot(T, err, marker=mk, color=col[s], linestyle="-", label=source_label(s))
            ax.plot(T, bnd, marker=mk, color=col[s], linestyle="--", markerfacecolor="white")
            shown += [err, bnd]
    ax.set_yscale("log")
    ax.set_xlabel("horizon $T$ (every sequence enumerated)")
    ax.set_ylabel(r"max$_R$ |Error| (filled), $B^*$ sharp (open)")
    Vs = sorted({int(r.get("V", 4)) for r in rows})
    ax.set_title("(a) exact, $V = " + ", ".join(map(str, Vs)) + "$")
    ax.set_xticks(sorted({r["T"] for r in rows}))
    _decades(ax, np.concatenate(shown))
    if mc:
        ax2 = axes[1, 0]
        x = np.arange(len(mc), dtype=float)
        vals = []
        for i, r in enumerate(mc):
            e = r["estimates"]["error"]
            up = max(abs(float(e["lo"])), abs(float(e["hi"])))  # 4-sigma upper end of |Error|
            b = float(r["plugin_bounds_sharp"]["unified"])
            c = col[r["source"]]
            ax2.plot([x[i], x[i]], [1e-300, up], color=c, linewidth=2.2, solid_capstyle="butt")
            ax2.plot(x[i], up, marker="_", color=c, markersize=9, mew=1.5)
            if float(e["mean"]) != 0:
                ax2.plot(x[i], abs(float(e["mean"])), "o", color=c)
            ax2.plot(x[i] + 0.28, b, marker="D", color=c, markerfacecolor="white")
            vals += [up, b] + ([abs(float(e["mean"]))] if float(e["mean"]) != 0 else [])
        ax2.set_yscale("log")
        _decades(ax2, np.array(vals))
        ax2.set_xticks(x, [source_label(r["source"]).split(" (")[0] for r in mc], rotation=30,
                       ha="right")  # fmt: skip
        ax2.grid(axis="x", visible=False)
        ax2.set_xlim(-0.5, len(mc) - 0.3)
        T_mc, N_mc = mc[0]["T"], mc[0]["N"]
        ax2.set_title(f"(b) Monte Carlo, $T = {T_mc}$, $N = {N_mc}$")
        ax2.set_ylabel(r"|Error| $4\sigma$ (bar), plug-in $B^*$ ($\diamond$)")
    legend_below(fig, ax, ncols=2)
    return fig
