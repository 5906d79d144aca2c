"""Figures of trm-bounds, drawn from result files (``python -m trm_bounds.plot``).

Matplotlib is imported only inside this subpackage.  :mod:`.figures` holds the registry of
F1-F10 and :func:`render`; the drawing functions live in :mod:`.figures_bounds` (F1, F2, F4,
F5, F6), :mod:`.figures_scaling` (F3, F9), :mod:`.figures_exact` (F7), :mod:`.evaluate` (F8),
:mod:`.figures_certify` (F10) and :mod:`.figures_runs` (per-step trends); :mod:`.result_file` reads
the fields they need, and :mod:`.style` is the one style they share. :mod:`.captions` composes
the captions (``captions.md``) and :mod:`.redraw` is the work of ``trm-bounds plot``: draw
every figure from its result file (``--recompute`` reruns the studies first through
:func:`trm_bounds.studies.recompute_files`; this package imports no study).
"""

from typing import Any

__all__ = ["FIGURES", "FigureSpec", "ResultFileError", "render"]


def __getattr__(name: str) -> Any:
    """The registry's names, imported on first use (PEP 562): importing the package, as
    ``python -m trm_bounds.plot`` does before the command line checks for matplotlib, needs
    no matplotlib."""
    if name in __all__:
        from . import figures

        return getattr(figures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
