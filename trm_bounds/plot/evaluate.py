r"""Figures of the log-evaluation report (figure F8), drawn from ``report.json`` only.

Figures (file stems), each one column wide (:mod:`trm_bounds.plot.style`):

- ``acceptance_vs_threshold`` -- acceptance rate against the threshold of each single
  criterion (from the right-closed score histograms, exact at the bin edges), the threshold
  in use dotted; one panel for the log-ratio criteria (nats) and one for the dimensionless
  scores (SER, LN-TRM), so no axis mixes units;
- ``acceptance_by_length`` -- acceptance rate per length quantile bucket and criterion, with
  95% Wilson intervals from the bucket's counts (:func:`trm_bounds.proportions.wilson`);
- ``dbar_estimate`` -- the per-position estimate of ``Dbar_t`` (docs/theory.md §6), with the
  ``eps`` plug-in value (legend below the panel, so it covers no line);
- ``hist_k2_max`` and ``hist_ser`` -- histograms of the per-sequence max-k2 and SER scores,
  the threshold in use marked.

Legends name each criterion and its threshold (:func:`criterion_label`), never a raw id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.plot import style
from trm_bounds.plot.style import figure, save, styled
from trm_bounds.proportions import wilson

__all__ = [
    "CRITERION_TEX",
    "CRITERION_COLORS",
    "NATS_CRITERIA",
    "criterion_label",
    "draw_report_figures",
    "acceptance_vs_threshold",
    "acceptance_by_length",
    "dbar_estimate",
    "score_histogram",
]

_EMPTY_NOTE = "no data"

#: Reader-facing name and score of each basic criterion (trm_bounds.masking names).
CRITERION_TEX: dict[str, str] = {
    "seq_max_k2": r"TRM-Max, max$_t\,k_2$",
    "seq_mean_k3": r"TRM-Avg, mean $k_3$",
    "seq_max_kl": r"max$_t$ KL",
    "ser": r"SER, mean $|\rho-1|$",
    "ln_trm": r"LN-TRM, $W/Z$",
}
#: One colour per criterion, the same in every F8 panel.
CRITERION_COLORS: dict[str, str] = {
    "seq_max_k2": "C0", "seq_mean_k3": "C1", "seq_max_k2,seq_mean_k3": "C2", "ser": "C3",
    "ln_trm": "C4", "seq_max_kl": "C5",
}  # fmt: skip
#: Criteria whose score is in nats (the others are dimensionless).
NATS_CRITERIA: tuple[str, ...] = ("seq_max_k2", "seq_mean_k3", "seq_max_kl")


def criterion_label(name: str, threshold: Any) -> str:
    r"""Legend label of a (comma-joined) criterion with its threshold(s), in mathtext.

    >>> print(criterion_label("seq_max_k2", 0.05))
    TRM-Max, max$_t\,k_2$ $\leq$ 0.05
    >>> print(criterion_label("seq_max_k2,seq_mean_k3", {"seq_max_k2": 0.05, "seq_mean_k3": 1e-3}))
    TRM-Max, max$_t\,k_2$ $\leq$ 0.05 and TRM-Avg, mean $k_3$ $\leq$ 0.001
    """

    parts = name.split(",")
    thr = threshold if isinstance(threshold, Mapping) else {parts[0]: threshold}
    out = []
    for part in parts:
        t = thr.get(part)
        tail = rf" $\leq$ {float(t):g}" if isinstance(t, (int, float)) else ""
        out.append(CRITERION_TEX.get(part, part) + tail)
    return " and ".join(out)


def _color(name: str) -> str:
    return CRITERION_COLORS.get(name, "C7")


def _threshold(report: Mapping[str, Any], name: str) -> Any:
    return report.get("criteria", {}).get(name, {}).get("threshold")


@styled
def acceptance_vs_threshold(report: Mapping[str, Any]):
    """Acceptance rate against threshold per criterion (log x axis), nats and dimensionless
    criteria in separate panels."""
    curves = report.get("acceptance_curves", {})
    panels = [
        ([c for c in curves if c in NATS_CRITERIA], "threshold (nats)"),
        ([c for c in curves if c not in NATS_CRITERIA], "threshold (dimensionless)"),
    ]
    panels = [pnl for pnl in panels if pnl[0]] or [([], "threshold")]
    fig, axes = figure(nrows=len(panels), height=2.3 * len(panels), squeeze=False)
    for ax, (names, xlabel) in zip(axes[:, 0], panels, strict=True):
        lo, hi = np.inf, -np.inf
        for name in names:
            th = np.asarray(curves[name]["thresholds"], dtype=float)
            acc = np.asarray(curves[name]["acceptance"], dtype=float)
            moving = np.flatnonzero((acc > 0) & (acc < 1))  # the edges where the curve moves
            if moving.size:
                lo = min(lo, th[max(moving[0] - 10, 0)])
                hi = max(hi, th[min(moving[-1] + 10, th.size - 1)])
            used = _threshold(report, name)
            (line,) = ax.step(th, acc, where="post", color=_color(name),
                              label=criterion_label(name, used))  # fmt: skip
            if isinstance(used, (int, float)):
                ax.axvline(float(used), color=line.get_color(), linestyle=":", linewidth=0.9)
                lo, hi = min(lo, float(used) / 2), max(hi, float(used) * 2)
        ax.set_xscale("log")
        if np.isfinite(lo) and hi > lo:
            ax.set_xlim(lo, hi)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel + "; dotted: in use")
        ax.set_ylabel("acceptance rate")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=5.8)
    axes[0, 0].set_title("Acceptance against threshold")
    return fig


@styled
def acceptance_by_length(report: Mapping[str, Any]):
    """Acceptance rate per length quantile bucket, one marker series per criterion, with 95%
    Wilson intervals from the bucket counts (accepted = rate x n, rounded)."""
    fig, ax = figure(height=3.2)
    buckets = report.get("length_buckets", [])
    crit = list(report.get("criteria", {}))
    x = np.arange(len(buckets), dtype=float)
    width = 0.7 / max(len(crit), 1)
    markers = ["o", "s", "D", "^", "v", "P"]
    for i, c in enumerate(crit):
        n = np.array([b["n_sequences"] for b in buckets], dtype=float)
        rate = np.array([b["acceptance_rate"][c] for b in buckets], dtype=float)
        k = np.round(rate * n)
        ci = [wilson(k[j], int(n[j])) for j in range(len(buckets))]  # sizes differ
        lo = np.array([float(a) for a, _ in ci])
        hi = np.array([float(b) for _, b in ci])
        xi = x + (i - (len(crit) - 1) / 2) * width
        ax.errorbar(xi, rate, yerr=np.clip([rate - lo, hi - rate], 0, None), fmt=markers[i % len(markers)],
                    color=_color(c), markersize=3, capsize=1.5, elinewidth=0.8,
                    label=criterion_label(c, _threshold(report, c)))  # fmt: skip
    ax.set_xticks(
        x, [f"{b['min_length']}-{b['max_length']}\n(n={b['n_sequences']})" for b in buckets]
    )
    ax.tick_params(axis="x", labelsize=5.8)
    ax.set_ylim(*_rate_limits([ln for c in ax.containers for ln in c.lines[2]]))
    ax.set_xlabel("response length bucket (tokens; quantiles)")
    ax.set_ylabel("acceptance rate")
    ax.set_title("Acceptance by length (95% Wilson intervals)")
    style.legend_below(fig, ax)
    return fig


def _rate_limits(bars) -> tuple[float, float]:
    """y limits of a rate axis spanning the error bars ``bars`` (LineCollections) with a
    margin, clipped to [-0.02, 1.02]: no axis spent on rates no bucket shows."""
    ys = np.concatenate([np.asarray(b.get_segments(), dtype=float)[..., 1].ravel()
                         for b in bars] or [np.array([0.0, 1.0])])  # fmt: skip
    lo, hi = float(ys.min()), float(ys.max())
    pad = max(0.05, 0.1 * (hi - lo))
    return max(-0.02, lo - pad), min(1.02, hi + pad)


@styled
def dbar_estimate(report: Mapping[str, Any]):
    """Per-position ``Dbar_t`` estimate (mean of ``|rho_t - 1|/2``) and the observed eps."""
    fig, ax = figure(height=2.9)
    d = np.asarray(report.get("dbar_estimate", []), dtype=float)
    t = np.arange(1, d.shape[0] + 1)
    ax.plot(t, d, linewidth=0.8, label=r"$\widehat{\bar D}_t$ (mean of $|\rho_t-1|/2$)")
    eps = report.get("observed", {}).get("eps_plugin")
    if isinstance(eps, (int, float)):
        eps_line = ax.axhline(
            float(eps),
            color="k",
            linestyle="--",
            linewidth=1.0,
            label=r"$\epsilon$ plug-in (see report)",
        )
    if d.size and np.any(d > 0):
        ax.set_yscale("log")
        pos = d[d > 0]  # the axis spans the data; eps far above it is named, not drawn
        lo, hi = pos.min() / 1.5, pos.max() * 1.5
        ax.set_ylim(lo, hi)
        if isinstance(eps, (int, float)) and not lo <= float(eps) <= hi:
            eps_line.set_label("_outside")  # named in the panel instead
            ax.annotate(rf"$\epsilon$ plug-in = {float(eps):.3g} (above)" if eps > hi else
                        rf"$\epsilon$ plug-in = {float(eps):.3g} (below)",
                        (0.98, 0.96 if eps > hi else 0.04), xycoords="axes fraction",
                        ha="right", va="top" if eps > hi else "bottom", fontsize=6)  # fmt: skip
    ax.set_xlabel(r"position $t$ (tokens)")
    ax.set_ylabel(r"$\widehat{\bar D}_t$ (mean TV)")
    ax.set_title(r"Per-position $\bar D_t$ estimate")
    style.legend_below(fig, ax)
    return fig


@styled
def score_histogram(
    report: Mapping[str, Any], score: str, label: str, *, criterion: str | None = None
):
    """Histogram of one per-sequence score on log bins, the threshold of ``criterion`` marked
    (zeros/underflow and overflow counted in the title)."""
    fig, ax = figure()
    h = report.get("histograms", {}).get(score)
    if h is None:
        ax.text(0.5, 0.5, _EMPTY_NOTE, transform=ax.transAxes, ha="center")
        return fig
    edges = np.asarray(h["edges"], dtype=float)
    counts = np.asarray(h["counts"], dtype=float)
    inner = counts[1:-1]  # bins (edges[k-1], edges[k]]
    ax.stairs(inner, edges, fill=True, alpha=0.6, color="C0", label="sequences")
    nz = np.flatnonzero(inner)
    lo, hi = (edges[max(nz[0] - 2, 0)], edges[min(nz[-1] + 3, edges.size - 1)]) if nz.size \
        else (edges[0], edges[-1])  # fmt: skip
    used = _threshold(report, criterion) if criterion else None
    if isinstance(used, (int, float)):
        ax.axvline(float(used), color="k", linestyle="--", linewidth=1.0,
                   label=criterion_label(criterion, used))  # fmt: skip
        lo, hi = min(lo, float(used) / 2), max(hi, float(used) * 2)
        ax.legend(loc="upper left", fontsize=5.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, max(float(inner.max()), 1.0) * 1.4)  # headroom: the legend covers no bar
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("sequences")
    outside = []
    if counts[0]:
        outside.append(f"{int(counts[0])} at $\\leq${edges[0]:g}")
    if counts[-1]:
        outside.append(f"{int(counts[-1])} above {edges[-1]:g}")
    name = CRITERION_TEX.get(criterion, label).split(", ")[0] if criterion else label
    ax.set_title(f"{name} score per sequence"
                 + (f" ({', '.join(outside)} not shown)" if outside else ""))  # fmt: skip
    return fig


def draw_report_figures(
    report: Mapping[str, Any], out_dir: str | Path, *, formats: Iterable[str] = ("png",)
) -> list[Path]:
    """Draw every report figure from a loaded ``report.json`` into ``out_dir``; return paths."""
    formats = tuple(formats)
    paths: list[Path] = []
    paths += save(acceptance_vs_threshold(report), out_dir, "acceptance_vs_threshold", formats)
    paths += save(acceptance_by_length(report), out_dir, "acceptance_by_length", formats)
    paths += save(dbar_estimate(report), out_dir, "dbar_estimate", formats)
    paths += save(
        score_histogram(report, "k2_max", r"max$_t\,k_2$ per sequence (nats)",
                        criterion="seq_max_k2"),
        out_dir, "hist_k2_max", formats,
    )  # fmt: skip
    paths += save(
        score_histogram(report, "ser", r"SER score, mean $|\rho-1|$ (dimensionless)",
                        criterion="ser"),
        out_dir, "hist_ser", formats,
    )  # fmt: skip
    return paths
