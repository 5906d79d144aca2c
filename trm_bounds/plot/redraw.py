"""Redraw every figure from the result files: the work of ``trm-bounds plot``
(:mod:`trm_bounds.cli` parses its flags and calls these).

:func:`default_results` picks the folder of the result files, :func:`figure_sources` names
the result files the chosen figures read (``--recompute`` reruns their studies with
:func:`trm_bounds.studies.recompute_files`: this module never runs a study) and
:func:`draw_all` draws the figures (:func:`~trm_bounds.plot.figures.render`), one line per
figure, and writes their captions beside them (:func:`~trm_bounds.plot.captions.write_captions`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .figures import FIGURES, ResultFileError, render

__all__ = ["default_results", "figure_sources", "draw_all"]


def default_results(out: Path, *, recompute: bool = False) -> Path:
    """The result folder when none is given: the checkout's results, else (when the studies
    are rerun outside a checkout) ``out/results`` beside the figures."""
    from trm_bounds.results import checkout_root, results_dir

    return results_dir() if checkout_root() is not None or not recompute else out / "results"


def figure_sources(keys: Sequence[str] | None = None) -> list[str]:
    """The result files (relative to the results folder) the figures ``keys`` (default: all)
    are drawn from, in registry order: what ``--recompute`` reruns."""
    return list(dict.fromkeys(FIGURES[k].source for k in (keys or FIGURES)))


def draw_all(
    out: Path, formats: Sequence[str], *, results: Path, keys: Sequence[str] | None = None,
    dpi: float | None = None, failed_studies: Sequence[str] = (),
) -> int:  # fmt: skip
    """Draw the figures ``keys`` (default: all) from ``results`` into ``out`` and write the
    captions of those drawn to ``out/captions.md``; return how many studies failed
    (``failed_studies``: the labels of those ``--recompute`` could not rerun) plus how many
    figures were not drawn.  Prints one line per figure drawn (stdout), per failed study,
    figure skipped for want of its result file or failed figure (stderr), and a summary; an
    ``OSError`` writing is raised."""
    from .captions import figure_captions, write_captions

    if failed_studies:
        print(f"trm-bounds plot: studies failed: {', '.join(failed_studies)}", file=sys.stderr)
    keys = keys or list(FIGURES)
    n_bad = len(failed_studies)  # a failed study fails the command, even if an older file is drawn
    captions: dict[str, str] = {}
    for key in keys:
        spec = FIGURES[key]
        try:
            paths = render(spec, results, out, formats, dpi=dpi)
            captions.update(figure_captions(results, [key]))
        except FileNotFoundError as exc:
            print(f"skip {key} ({spec.what}): {exc}; rerun with --recompute", file=sys.stderr)
            n_bad += 1
            continue
        except (ResultFileError, ImportError) as exc:
            print(f"FAILED {key} ({spec.what}): {exc}", file=sys.stderr)
            n_bad += 1
            continue
        print(f"{key} {spec.what}: {', '.join(_rel(p) for p in paths)}")
    if captions:
        print(f"captions: {_rel(write_captions(out, captions))}")
    drawn = len(keys) - n_bad + len(failed_studies)
    print(f"{drawn} of {len(keys)} figures written to {_rel(out)}")
    return n_bad


def _rel(p: Path) -> str:
    """``p`` relative to the working directory when below it (shorter messages)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)
