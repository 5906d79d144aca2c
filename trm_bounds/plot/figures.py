"""The figure registry F1-F10 of trm-bounds, and :func:`render`, which draws one from its file.

Each ``draw_fN(data)`` takes the parsed JSON of one result file and returns a matplotlib
``Figure``; it never computes a bound or runs an experiment (every number it shows is in
the file, fitted slopes included).  The drawers live by subject -- :mod:`.figures_bounds`
(F1, F2, F4, F5, F6), :mod:`.figures_exact` (F3, F7), :mod:`.evaluate` (F8),
:mod:`.figures_certify` (F10, with its page caption ``caption_f10``) -- and are re-exported
here.  :data:`FIGURES` maps each figure to its result file and file name; :func:`render`
draws one figure into a folder.

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
F10     certified bounds against the exact error    ``certify_figure.json``
======  ==========================================  ============================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import style
from .figures_bounds import draw_f1, draw_f2, draw_f4, draw_f5, draw_f6
from .figures_certify import caption_f10, draw_f10
from .figures_exact import draw_f3, draw_f7
from .result_file import ResultFileError

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
    "draw_f10",
    "caption_f10",
    "ResultFileError",
]


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
        FigureSpec(
            "F10",
            "f10_certified_bounds",
            "certify_figure.json",
            draw_f10,
            "certified bounds from logs against the exact error",
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
