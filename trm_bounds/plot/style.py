"""One figure style for every plot of trm-bounds.

Every figure function uses :func:`figure` to make its canvas and :func:`save` to write it,
so fonts, sizes, colours and markers are the same everywhere.  Each bound of
docs/theory.md §4 has one colour, one marker and one label, used in every figure that shows
it; they come from the bound registry (:data:`trm_bounds.bounds.BOUNDS`), never from a copy
here.  Figures are matplotlib ``Figure`` objects drawn without pyplot: no backend is chosen
and no window opens, and importing this module changes no matplotlib setting.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from trm_bounds.bounds import BOUNDS

__all__ = [
    "BOUND_LABELS",
    "BOUND_COLORS",
    "BOUND_MARKERS",
    "BOUND_LINESTYLES",
    "ERROR_STYLE",
    "RC",
    "styled",
    "figure",
    "save",
    "plot_bound",
    "annotate_slopes",
    "slope_text",
    "note",
]

#: rcParams shared by every figure (readable at the size of a paper column, 150 dpi PNG).
RC: dict[str, object] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.framealpha": 0.9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "savefig.dpi": 150,
    "figure.dpi": 100,
    "pdf.fonttype": 42,
}

#: Legend label, colour and marker of each bound (views of the registry's plot fields).
BOUND_LABELS: dict[str, str] = {name: spec.label for name, spec in BOUNDS.items()}
BOUND_COLORS: dict[str, object] = {name: spec.color for name, spec in BOUNDS.items()}
BOUND_MARKERS: dict[str, str] = {name: spec.marker for name, spec in BOUNDS.items()}
BOUND_LINESTYLES: dict[str, str] = {name: spec.linestyle for name, spec in BOUNDS.items()}
#: Line style of exact errors (what the bounds are compared with).
ERROR_STYLE: dict[str, dict[str, object]] = {
    "error": {"color": "tab:red", "linestyle": "-", "marker": "o", "label": "exact |Error|"},
    "error_max_over_rewards": {
        "color": "darkred",
        "linestyle": "--",
        "marker": "s",
        "label": "exact max$_R$ |Error|",
    },
}


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Decorator: run a figure-drawing function under :data:`RC` (fonts, grid, sizes)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper


def figure(
    ncols: int = 1, nrows: int = 1, *, width: float = 6.4, height: float = 4.4, **kw
) -> tuple[Figure, Axes | Sequence[Axes]]:
    """A new figure and its axes (``Figure.subplots``, constrained layout, no pyplot); call
    inside :func:`styled`."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


def save(
    fig: Figure,
    out_dir: str | Path,
    name: str,
    formats: Iterable[str],
    *,
    dpi: float | None = None,
) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<fmt>`` for every format, return the paths.

    ``dpi`` overrides the raster resolution (default ``RC["savefig.dpi"]``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(RC):
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, metadata=_metadata(fmt), dpi=dpi or RC["savefig.dpi"])
            paths.append(path)
    return paths


def _metadata(fmt: str) -> dict[str, object] | None:
    """File metadata without creation dates, so redrawn figures are byte-stable where possible."""
    if fmt == "pdf":
        return {"CreationDate": None, "ModDate": None}
    if fmt == "png":
        return {"Software": None}
    return None


def plot_bound(ax: Axes, x, y, name: str, *, label: str | None = None, **kw) -> None:
    """Draw one bound's curve in its colour and marker (markers thinned to about 12)."""
    n = len(x)
    style = {
        "color": BOUND_COLORS.get(name, "grey"),
        "marker": BOUND_MARKERS.get(name, ""),
        "linestyle": BOUND_LINESTYLES.get(name, "-"),
        "markevery": max(1, n // 12),
        "label": label if label is not None else BOUND_LABELS.get(name, name),
    }
    if name == "unified":  # the minimum of the others: drawn heavier
        style.update(linewidth=2.4)
    style.update(kw)
    ax.plot(x, y, **style)


def slope_text(s: object) -> str:
    """``'  slope 1.50'`` for a legend label, or ``''`` for a missing (null) slope."""
    return f"  slope {round(float(s), 2) + 0.0:.2f}" if isinstance(s, (int, float)) else ""


def annotate_slopes(ax: Axes, slopes: dict[str, float], title: str, *, loc: str = "lower right"):
    """A boxed list 'label: slope' of fitted log-log slopes, placed in a corner of ``ax``."""
    lines = [title] + [f"{BOUND_LABELS.get(k, k)}: {v:.2f}" for k, v in slopes.items()]
    corners = {
        "lower right": (0.98, 0.02, "right", "bottom"),
        "upper left": (0.02, 0.98, "left", "top"),
        "lower left": (0.02, 0.02, "left", "bottom"),
        "upper right": (0.98, 0.98, "right", "top"),
    }
    x, y, ha, va = corners[loc]
    ax.text(
        x,
        y,
        "\n".join(lines),
        transform=ax.transAxes,
        ha=ha,
        va=va,
        fontsize=7.5,
        family="monospace",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9, "edgecolor": "0.7"},
    )


def note(fig: Figure, text: str) -> None:
    """A small caption at the bottom of ``fig``, wrapped to the figure's width (constrained
    layout makes room for it)."""
    import textwrap

    width = max(40, int(fig.get_figwidth() * 72 / (7.5 * 0.6)))  # characters per line
    fig.supxlabel(textwrap.fill(text, width), fontsize=7.5, color="0.35")
