"""Trend figures of a per-step run, drawn from ``run.json`` only
(:func:`trm_bounds.evaluate.runs.evaluate_run`).

Figures (file stems):

- ``trend_mismatch`` -- the mismatch metrics (``log_ppl_abs_diff``, ``k3_mean``, ``k2_max``,
  ``ser_mean``) against the training step (log y axis);
- ``trend_acceptance`` -- the acceptance rate of every criterion against the step;
- ``trend_bounds`` -- the unified bound, published and sharp, against the step (plug-in
  values at each step's estimates; see each step's ``report.json`` for what they are).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trm_bounds.plot.style import figure, save, styled

__all__ = ["draw_run_figures", "trend"]


@styled
def trend(run: Mapping[str, Any], prefix: str, *, ylabel: str, log: bool = False):
    """Every column of ``run["steps"]`` whose name starts with ``prefix``, against the step."""
    fig, ax = figure()
    rows = run.get("steps", [])
    steps = [r["step"] for r in rows]
    keys = sorted({k for r in rows for k in r if k.startswith(prefix)})
    for i, k in enumerate(keys):
        ys = [r.get(k, float("nan")) for r in rows]
        if log:
            ys = [y if isinstance(y, (int, float)) and y > 0 else float("nan") for y in ys]
        ax.plot(steps, ys, marker="o", ms=3, label=k[len(prefix) :], color=f"C{i % 10}")
    if log and keys:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if keys:
        ax.legend(fontsize="small")
    return fig


def draw_run_figures(
    run: Mapping[str, Any], out_dir: str | Path, *, formats: Iterable[str] = ("png",)
) -> list[Path]:
    """Draw the trend figures of a loaded ``run.json`` into ``out_dir``; return the paths."""
    formats = tuple(formats)
    paths: list[Path] = []
    paths += save(trend(run, "metric:", ylabel="mismatch metric", log=True), out_dir,
                  "trend_mismatch", formats)  # fmt: skip
    paths += save(trend(run, "acceptance:", ylabel="acceptance rate"), out_dir,
                  "trend_acceptance", formats)  # fmt: skip
    unified = {"steps": [{"step": r["step"], **{k: v for k, v in r.items()
                                                if k in ("bound:unified", "bound_sharp:unified")}}
                         for r in run.get("steps", [])]}  # fmt: skip
    paths += save(trend(unified, "bound", ylabel="unified bound (plug-in)", log=True), out_dir,
                  "trend_bounds", formats)  # fmt: skip
    return paths
