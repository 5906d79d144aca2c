"""Figures of the log-evaluation report (figure F8), drawn from ``report.json`` only.

Figures (file stems):

- ``acceptance_vs_threshold`` -- acceptance rate against the threshold of each single
  criterion (from the right-closed score histograms, exact at the bin edges), with the
  threshold in use marked;
- ``acceptance_by_length`` -- acceptance rate per length quantile bucket and criterion;
- ``dbar_estimate`` -- the per-position estimate of ``Dbar_t`` (docs/theory.md §6), with the
  ``eps`` plug-in value;
- ``hist_k2_max`` and ``hist_ser`` -- histograms of the per-sequence max-k2 and SER scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.plot.style import figure, save, styled

__all__ = [
    "draw_report_figures",
    "acceptance_vs_threshold",
    "acceptance_by_length",
    "dbar_estimate",
    "score_histogram",
]

_EMPTY_NOTE = "no data"


@styled
def acceptance_vs_threshold(report: Mapping[str, Any]):
    """Acceptance rate against threshold per criterion (log x axis)."""
    fig, ax = figure()
    lo, hi = np.inf, -np.inf
    for i, (name, cur) in enumerate(report.get("acceptance_curves", {}).items()):
        th = np.asarray(cur["thresholds"], dtype=float)
        acc = np.asarray(cur["acceptance"], dtype=float)
        moving = np.flatnonzero((acc > 0) & (acc < 1))  # the edges where the curve moves
        if moving.size:
            lo = min(lo, th[max(moving[0] - 10, 0)])
            hi = max(hi, th[min(moving[-1] + 10, th.size - 1)])
        (line,) = ax.step(th, acc, where="post", label=name, color=f"C{i}")
        used = report["criteria"].get(name, {}).get("threshold")
        if isinstance(used, (int, float)):
            ax.axvline(float(used), color=line.get_color(), linestyle=":", linewidth=1.0)
    ax.set_xscale("log")
    if np.isfinite(lo) and hi > lo:
        ax.set_xlim(lo, hi)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("threshold (nats for k2/k3/KL criteria; dimensionless for SER, LN-TRM); dotted: in use")
    ax.set_ylabel("acceptance rate (fraction of sequences)")
    ax.set_title("Acceptance against threshold")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    return fig


@styled
def acceptance_by_length(report: Mapping[str, Any]):
    """Grouped bars: acceptance rate per length quantile bucket, one bar per criterion."""
    fig, ax = figure()
    buckets = report.get("length_buckets", [])
    crit = list(report.get("criteria", {}))
    width = 0.8 / max(len(crit), 1)
    x = np.arange(len(buckets))
    for i, c in enumerate(crit):
        rates = [b["acceptance_rate"][c] for b in buckets]
        ax.bar(x + (i - (len(crit) - 1) / 2) * width, rates, width, label=c, color=f"C{i}")
    ax.set_xticks(
        x, [f"{b['min_length']}-{b['max_length']}\n(n={b['n_sequences']})" for b in buckets]
    )
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("response length bucket (quantiles)")
    ax.set_ylabel("acceptance rate (fraction of sequences)")
    ax.set_title("Acceptance by length")
    if crit:
        ax.legend(fontsize=7, loc="upper center", ncol=3)
    return fig


@styled
def dbar_estimate(report: Mapping[str, Any]):
    """Per-position ``Dbar_t`` estimate (mean of ``|rho_t - 1|/2``) and the observed eps."""
    fig, ax = figure()
    d = np.asarray(report.get("dbar_estimate", []), dtype=float)
    t = np.arange(1, d.shape[0] + 1)
    ax.plot(t, d, linewidth=0.8, label=r"$\widehat{\bar D}_t$ (mean of $|\rho_t-1|/2$)")
    eps = report.get("observed", {}).get("eps_plugin")
    if isinstance(eps, (int, float)):
        ax.axhline(
            float(eps),
            color="k",
            linestyle="--",
            linewidth=1.0,
            label=r"$\epsilon$ plug-in (see report)",
        )
    if d.size and np.all(d[d > 0] > 0) and np.any(d > 0):
        ax.set_yscale("log")
    ax.set_xlabel("position t (tokens)")
    ax.set_ylabel("estimated Dbar_t = mean TV (dimensionless)")
    ax.set_title(r"Per-position $\bar D_t$ estimate")
    ax.legend(loc="upper right")
    return fig


@styled
def score_histogram(report: Mapping[str, Any], score: str, label: str):
    """Histogram of one per-sequence score on log bins (zeros/underflow shown at the left)."""
    fig, ax = figure()
    h = report.get("histograms", {}).get(score)
    if h is None:
        ax.text(0.5, 0.5, _EMPTY_NOTE, transform=ax.transAxes, ha="center")
        return fig
    edges = np.asarray(h["edges"], dtype=float)
    counts = np.asarray(h["counts"], dtype=float)
    inner = counts[1:-1]  # bins (edges[k-1], edges[k]]
    ax.stairs(inner, edges, fill=True, alpha=0.6, label="sequences")
    nz = np.flatnonzero(inner)
    if nz.size:
        ax.set_xlim(edges[max(nz[0] - 2, 0)], edges[min(nz[-1] + 3, edges.size - 1)])
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("sequences (count)")
    ax.set_title(
        f"{label}: {int(counts[0])} at <= {edges[0]:g}, {int(counts[-1])} above {edges[-1]:g}"
    )
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
        score_histogram(report, "k2_max", "max-k2 per sequence"), out_dir, "hist_k2_max", formats
    )
    paths += save(score_histogram(report, "ser", "SER score"), out_dir, "hist_ser", formats)
    return paths
