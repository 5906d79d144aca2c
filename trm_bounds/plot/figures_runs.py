"""Trend figures of a per-step run, drawn from ``run.json`` only
(:func:`trm_bounds.evaluate.runs.evaluate_run`; docs/theory.md §6, §9).

Figures (file stems), every one against the training step (integer ticks):

- ``trend_certified`` -- the certified bound on ``|Error|`` (constant 1, §9) per step;
- ``trend_mismatch_nats`` -- the metrics measured in nats (``log_ppl_abs_diff``,
  ``k3_mean``, ``k2_max``; log y axis);
- ``trend_mismatch_scores`` -- the dimensionless scores (``ser_mean``);
- ``trend_acceptance`` -- the percent of sequences every criterion keeps;
- ``trend_bounds`` -- the unified plug-in bound, published and sharp (conditional values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trm_bounds.plot.style import figure, save, styled

__all__ = ["draw_run_figures", "trend", "NATS_METRICS", "SCORE_METRICS"]

#: Metrics of ``run.json`` by unit: nats (per token or per sequence) and dimensionless scores.
NATS_METRICS = ("log_ppl_abs_diff", "k3_mean", "k2_max")
SCORE_METRICS = ("ser_mean",)


@styled
def trend(run: Mapping[str, Any], keys: Sequence[str], *, ylabel: str, log: bool = False,
          scale: float = 1.0, labels: Sequence[str] | None = None):
    """The columns ``keys`` of ``run["steps"]`` (times ``scale``) against the step."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = figure()
    rows = run.get("steps", [])
    steps = [r["step"] for r in rows]
    shown = [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in rows)]
    for i, k in enumerate(shown):
        ys = [r.get(k) for r in rows]
        ys = [scale * y if isinstance(y, (int, float)) and (y > 0 or not log) else float("nan")
              for y in ys]  # fmt: skip
        name = labels[keys.index(k)] if labels else k.split(":", 1)[-1]
        ax.plot(steps, ys, marker="o", ms=3, label=name, color=f"C{i % 10}")
    if log and shown:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if shown:
        ax.legend(fontsize="small")
    return fig


def draw_run_figures(
    run: Mapping[str, Any], out_dir: str | Path, *, formats: Iterable[str] = ("png",)
) -> list[Path]:
    """Draw the trend figures of a loaded ``run.json`` into ``out_dir``; return the paths."""
    formats = tuple(formats)
    rows = run.get("steps", [])
    crit = sorted({k for r in rows for k in r if k.startswith("acceptance:")})
    paths: list[Path] = []
    paths += save(trend(run, ["certified:bound"], ylabel="certified bound on |Error|",
                        labels=["certified (constant 1)"]), out_dir, "trend_certified",
                  formats)  # fmt: skip
    paths += save(trend(run, [f"metric:{m}" for m in NATS_METRICS], ylabel="nats", log=True),
                  out_dir, "trend_mismatch_nats", formats)  # fmt: skip
    paths += save(trend(run, [f"metric:{m}" for m in SCORE_METRICS],
                        ylabel="score (dimensionless)"), out_dir, "trend_mismatch_scores",
                  formats)  # fmt: skip
    paths += save(trend(run, crit, ylabel="sequences kept (%)", scale=100.0), out_dir,
                  "trend_acceptance", formats)  # fmt: skip
    paths += save(trend(run, ["bound:unified", "bound_sharp:unified"],
                        ylabel="unified bound (plug-in, conditional)", log=True,
                        labels=["published", "sharp"]), out_dir, "trend_bounds",
                  formats)  # fmt: skip
    return paths
