"""Redraw every figure from the result files, rerunning the studies first if asked: the work
of ``trm-bounds plot`` (:mod:`trm_bounds.cli` parses its flags and calls these).

:func:`default_results` picks the folder of the result files, :func:`recompute_for` reruns
the studies the chosen figures read (:data:`trm_bounds.studies.STUDIES`, in registry order)
and :func:`draw_all` draws the figures (:func:`~trm_bounds.plot.figures.render`), one line
per figure.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .figures import FIGURES, ResultFileError, render

__all__ = ["default_results", "recompute_for", "draw_all"]


def default_results(out: Path, *, recompute: bool = False) -> Path:
    """The result folder when none is given: the checkout's results, else (when the studies
    are rerun outside a checkout) ``out/results`` beside the figures."""
    from trm_bounds.results import checkout_root, results_dir

    return results_dir() if checkout_root() is not None or not recompute else out / "results"


def recompute_for(
    results: Path, keys: Sequence[str] | None = None, *, full: bool = False,
    seed: int | None = None,
) -> list[str]:  # fmt: skip
    """Rerun the studies whose result files the figures ``keys`` (default: all) read, into
    ``results``; ``full``: the larger size, on the GPU when torch sees one. Returns the
    labels of the studies that failed (:func:`trm_bounds.studies.recompute`)."""
    from trm_bounds.studies import STUDIES, recompute

    needed = {FIGURES[k].source for k in (keys or FIGURES)}  # run in registry order
    names = [name for name, s in STUDIES.items() if s.result in needed]
    device = "cuda" if full and _cuda_available() else None
    return recompute(results, names=names, size="full" if full else "default", seed=seed,
                     device=device)  # fmt: skip


def draw_all(
    out: Path, formats: Sequence[str], *, results: Path | None = None, keys: Sequence[str] | None = None,
    dpi: float | None = None, recompute: bool = False, full: bool = False, seed: int | None = None,
) -> int:  # fmt: skip
    """Draw the figures ``keys`` (default: all) from ``results`` (default:
    :func:`default_results`) into ``out``, after rerunning their studies if ``recompute``
    (:func:`recompute_for`); return how many studies failed plus how many figures were not
    drawn. Prints one line per figure
    drawn (stdout), per failed study, figure skipped for want of its result file or failed
    figure (stderr), and a summary; an ``OSError`` writing is raised."""
    if results is None:  # the checkout's results, else a folder beside the figures
        results = default_results(out, recompute=recompute)
    failed = recompute_for(results, keys, full=full, seed=seed) if recompute else []
    if failed:
        print(f"trm-bounds plot: studies failed: {', '.join(failed)}", file=sys.stderr)
    keys = keys or list(FIGURES)
    n_bad = len(failed)  # a failed study fails the command, even if an older file is drawn
    for key in keys:
        spec = FIGURES[key]
        try:
            paths = render(spec, results, out, formats, dpi=dpi)
        except FileNotFoundError as exc:
            print(f"skip {key} ({spec.what}): {exc}; rerun with --recompute", file=sys.stderr)
            n_bad += 1
            continue
        except (ResultFileError, ImportError) as exc:
            print(f"FAILED {key} ({spec.what}): {exc}", file=sys.stderr)
            n_bad += 1
            continue
        print(f"{key} {spec.what}: {', '.join(_rel(p) for p in paths)}")
    print(f"{len(keys) - n_bad + len(failed)} of {len(keys)} figures written to {_rel(out)}")
    return n_bad


def _cuda_available() -> bool:
    """Whether torch sees a GPU (imports torch only when ``full`` asks)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _rel(p: Path) -> str:
    """``p`` relative to the working directory when below it (shorter messages)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)
