"""Figures of trm-bounds, drawn from result files (``python -m trm_bounds.plot``).

Matplotlib is imported only inside this subpackage.  :mod:`.figures` holds the drawing
functions F1-F8 and their registry, :mod:`.style` the one style they share.
"""

from .figures import FIGURES, FigureSpec, ResultFileError, render

__all__ = ["FIGURES", "FigureSpec", "ResultFileError", "render"]
