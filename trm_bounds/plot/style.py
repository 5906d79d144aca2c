"""One figure style for every plot of trm-bounds.

Every figure function uses :func:`figure` to make its canvas and :func:`save` to write it,
so fonts, sizes, colours and markers are the same everywhere.  The canvas is a single paper
column (:data:`COLUMN_WIDTH` = 3.5 in) and the fonts are sized for print at that width;
titles are short mathtext, and captions live in the figure registry and
:mod:`trm_bounds.plot.captions` (``captions.md`` beside the figures), never inside the image.  Line style separates the
routes (:data:`ROUTE_LINESTYLES`: KL solid, TV dashed, hybrid dash-dot), so no two series
differ only by a light and a dark shade of one hue; :func:`coincident_groups` merges curves
that coincide into one legend entry, and :func:`series_pixels` counts, at print size, the
pixels each series shows (every legend entry must be visible).  Each bound of
docs/theory.md §4 has one colour, one marker and one label, used in every figure that shows
it; they come from the bound registry (:data:`trm_bounds.bounds.BOUNDS`), never from a copy
here.  Figures are matplotlib ``Figure`` objects drawn without pyplot: no backend is chosen
and no window opens, and importing this module changes no matplotlib setting.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib
import matplotlib.image
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trm_bounds.bounds import BOUNDS

__all__ = [
    "COLUMN_WIDTH",
    "PANEL_HEIGHT",
    "ROUTE_LINESTYLES",
    "REFERENCE_STYLE",
    "BOUND_LABELS",
    "BOUND_TEX",
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
    "bound_linestyle",
    "coincident_groups",
    "plot_group",
    "plot_groups",
    "runs_close",
    "reference_slopes",
    "series_pixels",
    "legend_below",
]

#: Width of every figure, inches: one column of a two-column paper.
COLUMN_WIDTH: float = 3.5
#: Height of one row of panels, inches.
PANEL_HEIGHT: float = 2.4
#: rcParams shared by every figure (sized for print at :data:`COLUMN_WIDTH`, 300 dpi PNG).
RC: dict[str, object] = {
    "font.size": 7.5,
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "legend.fontsize": 6.3,
    "legend.framealpha": 0.9,
    "legend.handlelength": 2.6,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "axes.grid": True,
    "axes.linewidth": 0.6,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.4,
    "lines.linewidth": 1.1,
    "lines.markersize": 3,
    "savefig.dpi": 300,
    "figure.dpi": 100,
    "pdf.fonttype": 42,
}
#: Line style of each route (registry ``family``): KL solid, TV dashed, both dash-dot;
#: ``min`` (B*) keeps the registry's own line style.
ROUTE_LINESTYLES: dict[str, str] = {"KL": "-", "TV": "--", "hybrid": "-."}
#: Thin reference slopes (T^2, T^{3/2}, T) drawn beside the bounds.
REFERENCE_STYLE: dict[str, object] = {"color": "#8a8a8a", "linewidth": 0.5, "linestyle": ":"}

#: Legend label, colour and marker of each bound (views of the registry's plot fields).
BOUND_LABELS: dict[str, str] = {name: spec.label for name, spec in BOUNDS.items()}
#: Mathtext label of each bound (legends).
BOUND_TEX: dict[str, str] = {name: spec.label_tex for name, spec in BOUNDS.items()}
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
    ncols: int = 1,
    nrows: int = 1,
    *,
    width: float = COLUMN_WIDTH,
    height: float | None = None,
    **kw,
) -> tuple[Figure, Axes | Sequence[Axes]]:
    """A new figure and its axes (``Figure.subplots``, constrained layout, no pyplot); call
    inside :func:`styled`.  Default canvas: one column wide, :data:`PANEL_HEIGHT` per row."""
    height = PANEL_HEIGHT * nrows if height is None else height
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.02, w_pad=0.02, hspace=0.04, wspace=0.04)
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

    ``dpi`` overrides the raster resolution (default ``RC["savefig.dpi"]``).  The figure is
    laid out once (:func:`_lay_out`) and every format is drawn from that layout: the PNG is the
    buffer of the layout's own raster draw, so PNG and PDF together cost two draws (``savefig``
    per format costs two draws and two constrained-layout passes each).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = list(formats)
    dpi = float(dpi or RC["savefig.dpi"])
    paths = []
    with matplotlib.rc_context(RC):
        canvas = _lay_out(fig, dpi, raster="png" in formats)
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            if fmt == "png" and canvas is not None:
                matplotlib.image.imsave(path, canvas.buffer_rgba(), format="png",
                                        origin="upper", dpi=dpi, metadata=_metadata(fmt))
            else:
                with _lean_font_subsets():
                    fig.savefig(path, format=fmt, metadata=_metadata(fmt), dpi=dpi)
            paths.append(path)
    return paths


def _lay_out(fig: Figure, dpi: float, *, raster: bool) -> FigureCanvasAgg | None:
    """Run the figure's layout engine once at ``dpi``, then fix the positions (the engine is
    removed, so later draws do not lay the figure out again).  ``raster``: by drawing it on an
    Agg canvas, returned with the pixels of that draw (what ``savefig(format="png")`` writes);
    else without rendering (``None``)."""
    fig.set_dpi(dpi)
    canvas = None
    if raster:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
    elif fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
    fig.set_layout_engine(None)
    return canvas


#: OpenType tables a PDF or PS viewer never reads (glyph substitution and positioning, the
#: legacy kerning table): matplotlib places every glyph itself, so the embedded font subsets
#: leave them out (a font keeps its outlines, metrics, character map and names).
_LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF", "kern")


@contextlib.contextmanager
def _lean_font_subsets() -> Iterator[None]:
    """While writing a vector file, embed font subsets without :data:`_LAYOUT_TABLES`.

    Subsetting DejaVu Sans with its layout tables (fontTools decompiles them to close the
    glyph set over substitutions) took about a fifth of the redraw's CPU time; the glyphs a
    figure uses are already known, so the subset draws the same.  fontTools' default list of
    dropped tables is extended for the duration only; if fontTools lacks it, nothing changes.
    """
    try:
        from fontTools import subset
    except ImportError:  # matplotlib without fontTools: nothing to make lean
        yield
        return
    default = getattr(subset.Options, "_drop_tables_default", None)
    if not isinstance(default, list):
        yield
        return
    subset.Options._drop_tables_default = [*default, *_LAYOUT_TABLES]
    try:
        yield
    finally:
        subset.Options._drop_tables_default = default


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


def bound_linestyle(name: str) -> str:
    """Line style of a bound: its route's (:data:`ROUTE_LINESTYLES`, from the registry's
    ``family``), or the registry's own for ``unified``.

    >>> bound_linestyle("pm_kl"), bound_linestyle("coupling"), bound_linestyle("pm_tv")
    ('-', '--', '-.')
    """
    spec = BOUNDS.get(name)
    if spec is None:
        return "-"
    return ROUTE_LINESTYLES.get(spec.family, spec.linestyle)


#: Which member of a coincident group draws it: KL route first, then hybrid, TV, min.
_GROUP_PREFERENCE = {"KL": 0, "hybrid": 1, "TV": 2, "min": 3}


def coincident_groups(
    curves: dict[str, Sequence[float]], *, rtol: float = 1e-9
) -> list[tuple[str, ...]]:
    """Partition bound curves into groups that coincide at every point (relative ``rtol``).

    Each group is ordered with its drawing member first (KL route, then hybrid, TV, ``min``;
    ties in the order of ``curves``); groups come in the order of their first curve.

    >>> coincident_groups({"classical_tv": [1, 4], "classical_kl": [1, 4], "linear": [1, 2]})
    [('classical_kl', 'classical_tv'), ('linear',)]
    """
    import numpy as np

    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in curves.items()}
    groups: list[list[str]] = []
    for name, y in arrays.items():
        for g in groups:
            ref = arrays[g[0]]
            if ref.shape == y.shape and np.allclose(y, ref, rtol=rtol, atol=0.0, equal_nan=True):
                g.append(name)
                break
        else:
            groups.append([name])
    order = list(arrays)

    def key(n: str) -> tuple[int, int]:
        fam = BOUNDS[n].family if n in BOUNDS else "min"
        return (_GROUP_PREFERENCE.get(fam, 4), order.index(n))

    return [tuple(sorted(g, key=key)) for g in groups]


def plot_group(ax: Axes, x, y, group: Sequence[str], *, band: bool = False, **kw) -> None:
    """Draw one coincident group once, in its first member's colour and route line style,
    labelled ``'A = B = C'`` with the members' mathtext labels (:data:`BOUND_TEX`).

    ``unified`` (B*) is drawn as a wide dashed black band under the other curves, so the
    member it equals stays visible on top of it.  ``band``: the group runs close to a curve
    drawn before it (:func:`runs_close`), so it is drawn as a wide solid band in its colour
    under the other curves, which stay visible on top of it.
    """
    name = group[0]
    label = _wrap_equal([_short_tex(n) for n in group])
    style: dict[str, object] = {
        "color": BOUND_COLORS.get(name, "grey"),
        "linestyle": bound_linestyle(name),
        "label": label,
        "zorder": 3,
    }
    if name == "unified":
        style.update(linewidth=3.2, zorder=2, dashes=(2.0, 1.2))
    elif band:
        style.update(linewidth=BAND_WIDTH, zorder=2, linestyle="-", solid_capstyle="butt")
    style.update(kw)
    ax.plot(x, y, **style)


#: Two curves "run close" where they differ by less than this factor at a grid point ...
CLOSE_FACTOR: float = 1.05
#: ... on at least this fraction of the grid (then the later one is drawn as a band).
CLOSE_FRACTION: float = 0.5
#: Line width of a band drawn under a curve it runs close to (points).
BAND_WIDTH: float = 3.6


def runs_close(y, others: Iterable[Sequence[float]]) -> bool:
    """Whether ``y`` lies within :data:`CLOSE_FACTOR` of one of ``others`` on at least
    :data:`CLOSE_FRACTION` of the grid (positive points only): at print size one line would
    hide the other, so the later one is drawn as a band beneath (:func:`plot_group`).

    >>> runs_close([1, 2, 4, 8], [[1.01, 2.02, 9, 20]]), runs_close([1, 2], [[3, 6]])
    (True, False)
    """
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    for o in others:
        o = np.asarray(o, dtype=np.float64)
        ok = (y > 0) & (o > 0)
        if o.shape == y.shape and ok.any():
            close = ok & (np.abs(np.log(np.where(ok, y, 1) / np.where(ok, o, 1)))
                          < np.log(CLOSE_FACTOR))  # fmt: skip
            if close.sum() >= CLOSE_FRACTION * ok.sum():
                return True
    return False


def plot_groups(ax: Axes, x, curves: dict[str, Sequence[float]],
                groups: Sequence[Sequence[str]], *, bands: Iterable[str] | None = None,
                unified_kw: dict | None = None) -> set[str]:  # fmt: skip
    """Draw coincident ``groups`` of ``curves`` (positive points) in order; a group that
    runs close to one drawn before it (:func:`runs_close`; ``unified`` excepted) is drawn as a
    band, or, if given, exactly the groups whose first member is in ``bands`` (so panels that
    share a legend draw a bound alike).  Returns the first members of the groups drawn as
    bands; ``unified_kw`` restyles the B* group (F9 draws it lighter)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    drawn: list = []
    out = set()
    for group in groups:
        y = np.asarray(curves[group[0]], dtype=np.float64)
        ok = y > 0
        if bands is None:
            band = group[0] != "unified" and runs_close(y, drawn)
        else:
            band = group[0] in set(bands)
        kw = unified_kw if unified_kw and group[0] == "unified" else {}
        plot_group(ax, x[ok], y[ok], group, band=band, **kw)
        drawn.append(y)
        if band:
            out.add(group[0])
    return out


def _wrap_equal(parts: Sequence[str], width: int = 44) -> str:
    """``'A = B = C'``, broken after an ``' ='`` where a line would pass ``width`` characters.

    >>> _wrap_equal(["a" * 30, "b" * 30])
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa =\\n  bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
    """
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) > width:
            lines[-1] += " ="
            lines.append("  " + part)
        else:
            lines[-1] += " = " + part
    return "\n".join(lines)


def _short_tex(name: str) -> str:
    """The registry's mathtext label without its formula (``'Mixed (KL)'``), B* in math."""
    if name == "unified":
        return BOUND_TEX[name]
    return BOUND_LABELS.get(name, name).replace("Pinsker-Marginal", "PM")


def reference_slopes(
    ax: Axes,
    x_range: tuple[float, float],
    y_start: float,
    exponents: Sequence[tuple[float, str]] = ((2.0, "$T^2$"), (1.5, "$T^{3/2}$"), (1.0, "$T$")),
) -> None:
    """Thin reference lines ``y_start (x / x_lo)^p`` over ``x_range`` for each exponent ``p``,
    each labelled at its right end (:data:`REFERENCE_STYLE`; not in the legend)."""
    import numpy as np

    lo, hi = x_range
    xs = np.geomspace(lo, hi, 2)
    for p, label in exponents:
        ys = y_start * (xs / lo) ** p
        ax.plot(xs, ys, zorder=1, **REFERENCE_STYLE)
        ax.annotate(label, (xs[-1], ys[-1]), xytext=(1, 0), textcoords="offset points",
                    fontsize=6, color=REFERENCE_STYLE["color"], va="center", ha="left",
                    annotation_clip=False)  # fmt: skip


def legend_below(fig: Figure, ax: Axes, *, ncols: int = 1) -> None:
    """The legend of ``ax`` below the panel (outside the data, so it covers no curve)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False,
                   columnspacing=1.0, handletextpad=0.5)  # fmt: skip


def series_pixels(
    fig: Figure,
    ax: Axes,
    colors: Iterable[object],
    *,
    dpi: float | None = None,
    tol: int = 6,
) -> dict[object, int]:
    """How many pixels of each colour show inside ``ax`` when ``fig`` is rendered at ``dpi``
    (default ``RC["savefig.dpi"]``): a pixel counts for a colour when every RGB channel is
    within ``tol`` of it.  Used to check that every legend entry is visible at print size
    (a curve hidden under another shows 0 pixels).
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb

    with matplotlib.rc_context(RC):
        canvas = FigureCanvasAgg(fig)
        fig.set_dpi(dpi or RC["savefig.dpi"])
        canvas.draw()
        img = np.asarray(canvas.buffer_rgba())[..., :3].astype(np.int16)  # (H, W, 3)
        bb = ax.get_window_extent()
    h = img.shape[0]
    x0, x1 = int(np.ceil(bb.x0)) + 2, int(np.floor(bb.x1)) - 2
    y0, y1 = h - int(np.floor(bb.y1)) + 2, h - int(np.ceil(bb.y0)) - 2
    inner = img[y0:y1, x0:x1]  # (h, w, 3) pixels strictly inside the axes frame
    out = {}
    for c in colors:
        rgb = np.round(np.asarray(to_rgb(c)) * 255).astype(np.int16)
        out[c] = int(np.sum(np.all(np.abs(inner - rgb) <= tol, axis=-1)))
    return out
