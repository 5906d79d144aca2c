"""``trm-bounds plot``: redraw the figures from the result files (``--recompute``: rerun the
studies first, :func:`trm_bounds.studies.recompute_files`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from trm_bounds.cli._common import (
    MAX_DPI,
    CliError,
    _check_out,
    _installed,
    _require,
)

# ----------------------------------------------------------------------------- plot


def _plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.full and not args.recompute:
        parser.error("--full only makes sense with --recompute")
    if args.seed is not None and not args.recompute:
        parser.error("--seed only makes sense with --recompute (the figures are redrawn "
                     "from result files, which hold their own seed)")
    if args.dpi is not None and not (math.isfinite(args.dpi) and 0 < args.dpi <= MAX_DPI):
        parser.error(f"--dpi: must be a number in (0, {MAX_DPI:g}], got {args.dpi:g}")
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"png", "pdf", "svg"})
    if unknown or not formats:
        parser.error(f"--formats: unsupported format {unknown[0] if unknown else '(none)'!r}; "
                     "use png, pdf, svg")
    _check_out(parser, "--out", args.out)
    if args.recompute and args.results:
        _check_out(parser, "--results", args.results)
    if args.results is not None and not args.recompute and not args.results.is_dir():
        parser.error(f"--results {args.results}: no such directory")
    _require("plot", {"matplotlib": "plot", **({"torch": "torch"} if args.recompute else {})})
    from trm_bounds.plot.figures import FIGURES
    from trm_bounds.plot.redraw import default_results, draw_all, figure_sources

    unknown = [k for k in args.only or () if k not in FIGURES]
    if unknown:
        parser.error(f"--only: unknown figure {unknown[0]!r} (choose from {', '.join(FIGURES)})")
    created = not args.out.exists()
    try:  # the folder first: an --out that cannot be created is not a missing result file
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot create ({exc.strerror or exc})") from None
    results = args.results or default_results(args.out, recompute=args.recompute)
    try:
        failed = []
        if args.recompute:  # the studies run outside the figure code (layering)
            from trm_bounds.studies import recompute_files

            failed = recompute_files(results, figure_sources(args.only), full=args.full,
                                     seed=args.seed)  # fmt: skip
        n_bad = draw_all(args.out, formats, results=results, keys=args.only, dpi=args.dpi,
                         failed_studies=failed)  # fmt: skip
    except OSError as exc:
        raise CliError(f"{exc.filename or args.out}: {exc.strerror or exc}") from None
    finally:
        if created and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # nothing drawn: leave nothing behind
    return 1 if n_bad else 0


def _plot_epilog() -> str:
    """The figures of the registry, one line each (``plot --help``; needs matplotlib)."""
    if not _installed("matplotlib"):
        return "Figures: F1-F10 (pip install 'trm-bounds[plot]' to list them)."
    from trm_bounds.plot.figures import FIGURES

    return "figures:\n" + "\n".join(f"  {k:4s} {spec.what}" for k, spec in FIGURES.items())


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot", help="redraw every figure (F1-F10) from the result files",
        description="Redraw every figure (F1-F10) from the result files. Result files are "
                    "read from --results, else from the package's trm_bounds/data/results (in "
                    "a source checkout the tracked folder, in a wheel the installed copies). "
                    "--recompute reruns the studies first (small default, a few minutes) into "
                    "--results, else into trm_bounds/data/results in a checkout, else into "
                    "OUT/results.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recompute", action="store_true",
                   help="rerun the studies (small default, a few minutes) first")
    p.add_argument("--full", action="store_true",
                   help="with --recompute: larger runs (and --device cuda on a GPU)")
    p.add_argument("--out", type=Path, default=Path("figures"),
                   help="figure folder (default: ./figures)")
    p.add_argument("--results", type=Path, default=None, help="folder of the result files")
    p.add_argument("--only", action="append", metavar="FN", type=str.upper,
                   help="draw only this figure (repeatable), e.g. F3; checked against the "
                        "figure registry (trm_bounds.plot.figures.FIGURES)")
    p.add_argument("--formats", default="png,pdf", help="comma-separated formats (png,pdf,svg)")
    p.add_argument("--dpi", type=float, default=None,
                   help=f"PNG resolution, at most {MAX_DPI:g} (default 300)")
    p.add_argument("--seed", type=int, default=None, help="with --recompute: the studies' seed")
    p.set_defaults(run=_plot)


