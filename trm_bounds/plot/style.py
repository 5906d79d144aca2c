"""One figure style for every plot of trm-bounds (issue 6).

Every figure function uses :func:`figure` to make its canvas and :func:`save` to write it,
so fonts, sizes, colours and markers are the same everywhere.  Each bound of THEORY.md
section 4 has one colour, one marker and one label, used in every figure that shows it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "BOUND_LABELS",
    "BOUND_COLORS",
    "BOUND_MARKERS",
    "ERROR_STYLE",
    "RC",
    "styled",
    "figure",
    "save",
    "plot_bound",
    "annotate_slopes",
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

#: Legend labels of the bounds (THEORY.md section 4 names).
BOUND_LABELS: dict[str, str] = {
    "classical_tv": "Classical (TV)",
    "classical_kl": "Classical (KL)",
    "coupling": "Coupling",
    "pm_kl": "Pinsker-Marginal (KL)",
    "pm_tv": "Pinsker-Marginal (TV)",
    "mix_kl": "Mixed (KL)",
    "mix_tv": "Mixed (TV)",
    "adaptive_kl": "Adaptive (KL)",
    "adaptive_tv": "Adaptive (TV)",
    "adaptive_hybrid": "Adaptive (hybrid)",
    "linear": "Linear",
    "unified": "Unified B*",
}

# Families share a hue; KL and TV variants differ in lightness (tab20 pairs).  Red is kept
# for the exact errors (ERROR_STYLE).
_TAB20 = plt.get_cmap("tab20").colors
#: One colour per bound, the same in every figure.
BOUND_COLORS: dict[str, tuple[float, float, float]] = {
    "classical_kl": _TAB20[14],
    "classical_tv": _TAB20[15],
    "coupling": _TAB20[10],
    "pm_kl": _TAB20[0],
    "pm_tv": _TAB20[1],
    "mix_kl": _TAB20[4],
    "mix_tv": _TAB20[5],
    "adaptive_kl": _TAB20[18],
    "adaptive_tv": _TAB20[19],
    "adaptive_hybrid": _TAB20[8],
    "linear": _TAB20[16],
    "unified": (0.0, 0.0, 0.0),
}
#: One marker per bound.
BOUND_MARKERS: dict[str, str] = {
    "classical_kl": "s",
    "classical_tv": "D",
    "coupling": "v",
    "pm_kl": "o",
    "pm_tv": "^",
    "mix_kl": "P",
    "mix_tv": "X",
    "adaptive_kl": "<",
    "adaptive_tv": ">",
    "adaptive_hybrid": "*",
    "linear": "h",
    "unified": "",
}
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
        with plt.rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper


def figure(
    ncols: int = 1, nrows: int = 1, *, width: float = 6.4, height: float = 4.4, **kw
) -> tuple[Figure, Axes | Sequence[Axes]]:
    """A new figure (``plt.subplots`` with constrained layout); call inside :func:`styled`."""
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kw)


def save(
    fig: Figure,
    out_dir: str | Path,
    name: str,
    formats: Iterable[str],
    *,
    dpi: float | None = None,
) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<fmt>`` for every format, close it, return the paths.

    ``dpi`` overrides the raster resolution (default ``RC["savefig.dpi"]``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context(RC):
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, metadata=_metadata(fmt), dpi=dpi or RC["savefig.dpi"])
            paths.append(path)
    plt.close(fig)
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
        "markevery": max(1, n // 12),
        "label": label if label is not None else BOUND_LABELS.get(name, name),
    }
    if name == "unified":
        style.update(linewidth=2.4, linestyle="--")
    style.update(kw)
    ax.plot(x, y, **style)


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
