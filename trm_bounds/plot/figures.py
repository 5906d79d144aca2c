"""The figure registry F1-F10 of trm-bounds, and :func:`render`, which draws one from its file.

Each ``draw_fN(data)`` takes the parsed JSON of one result file and returns a matplotlib
``Figure``; it never computes a bound or runs an experiment (every number it shows is in
the file, fitted slopes included).  The drawers live by subject -- :mod:`.figures_bounds`
(F1, F2, F4, F5, F6), :mod:`.figures_scaling` (F3, F9), :mod:`.figures_exact` (F7),
:mod:`.evaluate` (F8), :mod:`.figures_certify` (F10) -- and are re-exported here.
:data:`FIGURES` maps each figure to its result file, file name and caption (captions that
quote computed numbers are composed from the result file by :mod:`.captions`; never inside
the image); :func:`render` draws one figure into a folder.

======  ==========================================  ============================================
figure  content                                     result file (under ``trm_bounds/data/results``)
======  ==========================================  ============================================
F1      every bound against T, uniform divergence   ``bound_scaling.json`` (``uniform``)
F2      every bound against T, sparse divergence    ``bound_scaling.json`` (``sparse``)
F3      exact error against sharp bounds, T to 10^4  ``tabular_scaling.json``
F4      the paper's table, published and sharp      ``bound_scaling.json`` (``paper_table``)
F5      the Adaptive route crossover                ``bound_scaling.json`` (``crossover``)
F6      length bias of TRM-Max, SER, LN-TRM         ``bound_scaling.json`` (``length_bias``)
F7      transformer mismatch sources, T to 1024     ``transformer_mismatch.json``
F8      log evaluator on the demo dump              ``demo_eval/report.json`` (via plot.evaluate)
F9      worst-case error against T, T up to 10^5    ``worst_case.json``
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
from .figures_exact import draw_f7
from .figures_scaling import draw_f3, draw_f9
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
    "draw_f9",
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
    """One figure: its key, file stem, result file (relative to the results folder), drawer,
    a short description and the caption a paper or the report page prints under it (captions
    live here and in ``paper_repro.md``, never inside the image)."""

    key: str
    name: str
    source: str
    draw: Callable[[dict], Any] | None
    what: str
    caption: str = ""


FIGURES: dict[str, FigureSpec] = {
    s.key: s
    for s in (
        FigureSpec(
            "F1",
            "f1_bounds_uniform",
            "bound_scaling.json",
            draw_f1,
            "every bound against T, uniform divergence",
            (
                "Every published bound (docs/theory.md §4) against the horizon T under uniform "
                "divergence: every context has KL = delta = 1e-4 nats, D_KL^seq = T delta and the worst"
                " case Dbar_t = eps = sqrt(delta/2). Curves that coincide on the whole grid are one "
                "legend entry (at Dbar_t = eps, Adaptive-KL is PM-KL and Adaptive-TV is Coupling). Line"
                " style marks the route: KL solid, TV dashed, both dash-dot. Thin dotted lines: "
                "reference slopes T^2, T^{3/2}, T. Under uniform divergence the Mixed bounds grow like "
                "T^{3/2}, not T (docs/theory.md §4)."
            ),
        ),
        FigureSpec(
            "F2",
            "f2_bounds_sparse",
            "bound_scaling.json",
            draw_f2,
            "every bound against T, sparse divergence",
            (
                "Every published bound against T under sparse divergence: D_KL^seq = 0.01 nats fixed, "
                "spread over 100 positions with KL = delta = 1e-4 (Dbar_t = eps there, 0 elsewhere). "
                "With D_KL^seq fixed the Mixed bounds grow like T, the paper's O(T) claim. Coincident "
                "curves share one legend entry; line style marks the route; dotted: reference slopes."
            ),
        ),
        FigureSpec(
            "F3",
            "f3_exact_error_scaling",
            "tabular_scaling.json",
            draw_f3,
            "exact error against the sharp bounds on four instances, T up to 10^4",
            (
                "Exact error of four fixed finite-state instances (DP engine) with the sharp bounds "
                "(docs/theory.md §5); the full caption, with the numbers of the result file, is "
                "composed by trm_bounds.plot.captions."
            ),
        ),
        FigureSpec(
            "F4",
            "f4_paper_table",
            "bound_scaling.json",
            draw_f4,
            "the paper's table, published beside sharp",
            (
                "The paper's bound table at T = 4096 (docs/theory.md §7): our bounds with the published"
                " constant 4 (blue) and the sharp constant 2 (orange, docs/theory.md §5), the paper's "
                "printed number as a black tick and in the column on the right. Adaptive and "
                "Unified are evaluated at the worst case Dbar_t = eps, below the paper's printed "
                "upper bounds (<=). Classical is the TV form 2T(T-1)eps^2."
            ),
        ),
        FigureSpec(
            "F5",
            "f5_adaptive_crossover",
            "bound_scaling.json",
            draw_f5,
            "the Adaptive route crossover",
            (
                "Per-position weights of the Adaptive bound, 4 sum_t Dbar_t w(T - t) (docs/theory.md "
                "§4): the TV route min(1, (T-t) eps) is smaller below the crossover T - t = delta/(2 "
                "eps^2) (dots), the KL route min(1, sqrt((T-t) delta/2)) above it; the hybrid weight "
                "(thick, translucent) is the smaller of the two."
            ),
        ),
        FigureSpec(
            "F6",
            "f6_length_bias",
            "bound_scaling.json",
            draw_f6,
            "length bias of TRM-Max, SER, LN-TRM",
            (
                "Length bias (docs/theory.md §6). Top: TRM-Max acceptance (1-p)^T for i.i.d. violations"
                " with probability p, with the paper's table (circles; triangle: the paper prints '<')."
                " Bottom: simulated acceptance of TRM-Max, TRM-Avg, SER and LN-TRM (400 sequences per "
                "T, log-ratios N(0, 0.02^2) with spikes of +-0.5 with probability p = 0.001), shaded: "
                "95% Wilson intervals; TRM-Max follows (1-p)^T, SER and LN-TRM do not depend on T."
            ),
        ),
        FigureSpec(
            "F7",
            "f7_transformer_mismatch",
            "transformer_mismatch.json",
            draw_f7,
            "small transformers: exact error (every sequence enumerated) and Monte Carlo, per "
            "mismatch source",
            (
                "Small transformers (2 layers, d = 32), one policy pair per mismatch source, "
                "exact error against the sharp bound and Monte Carlo at a long horizon; the full "
                "caption, with the numbers of the result file, is composed by "
                "trm_bounds.plot.captions."
            ),
        ),
        FigureSpec(
            "F8",
            "f8_demo_eval",
            "demo_eval/report.json",
            None,
            "log evaluator on the demo dump",
            (
                "The log evaluator (trm-bounds evaluate) on the demo dump: acceptance against threshold"
                " (log-ratio criteria in nats and dimensionless scores in separate panels, the "
                "threshold in use dotted), acceptance per length quantile with 95% Wilson intervals, "
                "the per-position Dbar_t estimate with the eps plug-in value (not an estimate of the "
                "true maximum, which no log shows: see the report), and histograms of the max-k2 and "
                "SER scores with the threshold marked."
            ),
        ),
        FigureSpec(
            "F9",
            "f9_worst_case",
            "worst_case.json",
            draw_f9,
            "worst-case exact error against T beside every bound, T up to 10^5",
            (
                "Worst case over rewards, max_R |Error| (exact), against T, beside every sharp bound "
                "and the chi-square bound (docs/theory.md §10). (a) Uniform divergence, per-token KL "
                "delta = 1e-6: the tilted walk (closed form, checked against the DP up to T = 2000) and"
                " the hidden-regime walk grow with slope 1.00; the reflecting walk until it mixes; no "
                "family follows the T^{3/2} of Pinsker-Marginal, and max_R |Error| / B* falls like "
                "T^{-1/2}. The constant-|Z_T| design (exact to T = 16, Monte Carlo beyond) is the "
                "worst case, delta sqrt(T(T-1)/2), 1.46 times the walk. (b) The walk at delta = 1e-4: "
                "slope 1 until T delta is about 0.5, then bending towards T^{1/2}. (c) Sparse "
                "divergence (four positions at KL 0.01): the worst case is constant in T at every "
                "placement while the Mixed bounds grow like T. (d) Ratios: the walk to B* and to the "
                "chi-square bound; the design to delta sqrt(T(T-1)/2), the limit of Theorem 10.3, "
                "which it attains (ratio 1), and to Theorem 10.1 on its exact points."
            ),
        ),
        FigureSpec(
            "F10",
            "f10_certified_bounds",
            "certify_figure.json",
            draw_f10,
            "certified bounds from logs against the exact error",
            (
                "What a log certifies (docs/theory.md §9), on a small transformer pair and a "
                "finite-state family whose exact error is known: against the number N of sampled "
                "sequences and against T, the median certified bound c U (U the 95 % betting upper "
                "confidence bound on sum_t Dbar_t, c = 4 published, 2 sharp, 1 proved here), the "
                "exact |Error| and sum_t Dbar_t, the estimated error with its interval, and the "
                "paper's B*, which is conditional on eps and delta being the true maxima."
            ),
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
