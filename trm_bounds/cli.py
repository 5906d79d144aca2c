"""Every command line of trm-bounds: ``trm-bounds bounds|exact|evaluate|plot`` and ``--version``.

* ``bounds`` -- every bound of docs/theory.md §4, published and sharp side by side;
  ``--paper-table`` prints the paper's table (docs/theory.md §7) beside ours.
* ``exact`` -- the exact tree engine on a ``trm-oracle-instances/v1`` file.
* ``evaluate`` -- the log evaluator on logprob dumps (``--demo``: the shipped demo dump).
* ``plot`` -- redraw the figures F1-F8 from the result files (``--recompute``: rerun the
  studies first).

``python -m trm_bounds``, ``python -m trm_bounds.evaluate`` and ``python -m trm_bounds.plot``
run the same code.  Heavy libraries (torch, matplotlib, pyarrow) are imported only by the
subcommand that needs them, so ``bounds`` and ``exact`` work with the core install.  A user
error ends with one line ``trm-bounds <command>: error: ...`` on stderr and exit status 2
(bad arguments) or 1 (bad input file, failed run); nothing partial is left behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main", "evaluate_main", "plot_main", "build_parser", "CliError"]

PROG = "trm-bounds"


class CliError(Exception):
    """A user error found after parsing: one line for stderr, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: message`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message.splitlines()[0]}\n")


def _positive(flag: str, value: float | None, *, allow_none: bool = True) -> str | None:
    """An error message unless ``value`` is a finite positive number."""
    if value is None and allow_none:
        return None
    if value is None or not (math.isfinite(value) and value > 0):
        return f"{flag}: must be a finite positive number, got {value}"
    return None


def _out_dir_error(flag: str, path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a folder to write into, or None; creates nothing."""
    if path.exists():
        if not path.is_dir():
            return f"{flag} {path}: exists and is not a directory"
        probe = path
    else:
        probe = path.absolute().parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            return f"{flag} {path}: {probe} is a file, not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{flag} {path}: {probe} is not writable"
    return None


# ----------------------------------------------------------------------------- bounds

SYMBOLS = """\
symbols (docs/theory.md §1-§4; KL is forward, KL(pi_roll || pi_theta), in nats):
  T         horizon: the response length (maximum length with an absorbing end token)
  eps       D_TV^{tok,max}: the largest per-context total variation
            TV(c) = 1/2 sum_v |pi_theta(v|c) - pi_roll(v|c)| over reachable contexts
  delta     D_KL^{tok,max}: the largest per-context KL(pi_roll(.|c) || pi_theta(.|c))
  dkl-seq   D_KL^seq = sum_t E_{c_t ~ d_t^roll} KL(c_t): the sequence-level KL
  dtv-seq   D_TV^seq = E_x TV(P^roll(.|x), P^theta(.|x)): the sequence-level TV
  Dbar_t    E_{c_t ~ d_t^roll} TV(c_t); the Adaptive and Linear bounds use the worst
            case Dbar_t = min(1, eps) here
  published the paper's constants (leading 4; classical 2T(T-1)eps^2 and T(T-1)delta)
  sharp     docs/theory.md §5 (leading 2; classical T(T-1)eps^2 and T(T-1)delta/2)
KL-only setting: omit --eps and --dtv-seq to use eps = min(1, sqrt(delta/2)) and
dtv-seq = min(1, sqrt(dkl-seq/2)) (Pinsker), as the paper's first column does.
"""


def _fmt(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.4f}" if abs(x) < 1e3 else f"{x:.1f}"
    return f"{x:.4e}"


def _bounds_table(pub: dict[str, float], sharp: dict[str, float], sharp_first: bool) -> str:
    from trm_bounds.bounds import BOUND_NAMES, BOUNDS

    cols = ("sharp", "published") if sharp_first else ("published", "sharp")
    vals = {"published": pub, "sharp": sharp}
    head = f"{'bound':<22} {'route':<20} {'scaling':<22} {cols[0]:>13} {cols[1]:>13}"
    lines = [head, "-" * len(head)]
    for name in BOUND_NAMES:
        s = BOUNDS[name]
        lines.append(
            f"{s.label:<22} {s.route:<20} {s.scaling:<22} "
            f"{_fmt(vals[cols[0]][name]):>13} {_fmt(vals[cols[1]][name]):>13}"
        )
    return "\n".join(lines)


def _paper_table(*, sharp_first: bool) -> tuple[str, dict, bool]:
    """The paper's table and length-bias table beside ours: (text, JSON record, all ok)."""
    from dataclasses import asdict

    from trm_bounds.paper import (
        LENGTH_BIAS_PAPER,
        LENGTH_BIAS_T,
        length_bias,
        paper_table_rows,
        reproduced,
    )

    rows = paper_table_rows()
    first, second = ("sharp", "pub.") if sharp_first else ("pub.", "sharp")
    head = (f"{'row':<40} {'column':<24} {'paper':>10} {'ours (' + first + ')':>13} "
            f"{'ours (' + second + ')':>13}  status")
    out = ["Paper's table 'error bounds', T = 4096 (docs/theory.md §7)", head, "-" * len(head)]
    for r in rows:
        printed = f"{'<= ' if r.relation == 'upper' else ''}{r.paper:g}"
        status = ("reproduced" if r.ok else "DIFFERS") + (
            f" ({r.relation})" if r.relation != "rounded" else "")
        if r.note:
            status += f"; {r.note}"
        a, b = (r.ours_sharp, r.ours) if sharp_first else (r.ours, r.ours_sharp)
        out.append(f"{r.row:<40} {r.column:<24} {printed:>10} {_fmt(a):>13} {_fmt(b):>13}  "
                   f"{status}")
    out += ["", "Length bias (1-p)^T (docs/theory.md §6, §7)",
            f"{'p':<8}" + "".join(f"{'T=' + str(T):>25}" for T in LENGTH_BIAS_T)]
    bias = []
    for p, printed_row in LENGTH_BIAS_PAPER.items():
        cells = []
        for T, (val, dec, rel) in zip(LENGTH_BIAS_T, printed_row, strict=True):
            ours = length_bias(p, T)
            ok = reproduced(ours, val, dec, rel)
            bias.append({"p": p, "T": T, "paper": val, "decimals": dec, "relation": rel,
                         "ours": ours, "ok": ok})
            paper = f"<{val:g}" if rel == "below" else f"{val:g}"
            cells.append(f"{paper:>8} vs {ours:<9.4g}{'ok' if ok else 'DIFFERS':>3}")
        out.append(f"{p:<8g}" + "".join(f"{c:>25}" for c in cells))
    n_ok = sum(r.ok for r in rows)
    all_ok = n_ok == len(rows) and all(b["ok"] for b in bias)
    out += ["", f"{n_ok}/{len(rows)} table entries reproduced under the paper's rounding."]
    record = {
        "primary": "sharp" if sharp_first else "published",
        "table": [{**asdict(r), "ok": r.ok} for r in rows],
        "length_bias": bias,
        "all_reproduced": all_ok,
    }
    return "\n".join(out), record, all_ok


def _bounds(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.bounds import BOUND_NAMES, BOUNDS, compute_bounds, kl_only
    from trm_bounds.results import to_jsonable

    if args.paper_table:
        given = [f for f in ("T", "eps", "delta", "dkl_seq", "dtv_seq")
                 if getattr(args, f) is not None]  # fmt: skip
        if given:
            parser.error(f"--paper-table takes no --{given[0].replace('_', '-')} (the table "
                         "has its own inputs)")
        text, record, all_ok = _paper_table(sharp_first=args.sharp)
        print(json.dumps(to_jsonable(record), indent=1) if args.json else text)
        return 0 if all_ok else 1
    missing = [f for f in ("T", "delta", "dkl_seq") if getattr(args, f) is None]
    if missing:
        parser.error("needs " + ", ".join("--" + m.replace("_", "-") for m in missing)
                     + " (or --paper-table)")
    for flag in ("eps", "delta", "dkl_seq", "dtv_seq"):
        v = getattr(args, flag)
        if v is not None and not (math.isfinite(v) and v >= 0):
            parser.error(f"--{flag.replace('_', '-')}: must be a finite number >= 0, got {v}")
    try:
        eps_k, dtv_k = kl_only(args.delta, args.dkl_seq)
        eps = eps_k if args.eps is None else args.eps
        dtv = dtv_k if args.dtv_seq is None else args.dtv_seq
        kw = dict(eps=eps, delta=args.delta, dkl_seq=args.dkl_seq, dtv_seq=dtv)
        pub = compute_bounds(args.T, **kw)
        sharp = compute_bounds(args.T, **kw, sharp=True)
    except (ValueError, OverflowError) as exc:
        parser.error(str(exc))
    if args.json:
        rec = {"inputs": {"T": args.T, **kw}, "primary": "sharp" if args.sharp else "published",
               "published": pub, "sharp": sharp}
        print(json.dumps(to_jsonable(rec), indent=1))
        return 0
    print(f"T = {args.T}, eps = {float(eps):g}, delta = {float(args.delta):g}, "
          f"D_KL^seq = {float(args.dkl_seq):g}, D_TV^seq = {float(dtv):g} (Dbar_t = min(1, eps))")
    print(_bounds_table(pub, sharp, args.sharp))
    best = "sharp" if args.sharp else "published"
    vals = sharp if args.sharp else pub
    tight = min((n for n in BOUND_NAMES if n != "unified"), key=lambda n: vals[n])
    print(f"tightest ({best}): {BOUNDS[tight].label} = {_fmt(vals[tight])}")
    return 0


def _add_bounds(sub) -> None:
    b = sub.add_parser("bounds", help="every bound, published and sharp",
                       description="Every bound of docs/theory.md §4, published and sharp.",
                       epilog=SYMBOLS, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--T", type=int, help="horizon T (positive integer)")
    b.add_argument("--eps", type=float, help="eps = D_TV^{tok,max} (default: KL-only)")
    b.add_argument("--delta", type=float, help="delta = D_KL^{tok,max}, nats")
    b.add_argument("--dkl-seq", type=float, help="D_KL^seq, nats")
    b.add_argument("--dtv-seq", type=float, help="D_TV^seq (default: KL-only)")
    b.add_argument("--sharp", action="store_true",
                   help="lead with the sharp constants (docs/theory.md §5)")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--paper-table", action="store_true",
                   help="the paper's table beside ours (docs/theory.md §7); with --json as "
                        "JSON, with --sharp the sharp column first")
    b.set_defaults(run=_bounds)


# ----------------------------------------------------------------------------- exact


def _exact(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.engines.tree import exact_report
    from trm_bounds.instances.format import SCHEMA, load_instances
    from trm_bounds.report import compare_reports, format_report
    from trm_bounds.results import atomic_write_text, to_jsonable

    if args.out is not None and Path(args.out).is_dir():
        parser.error(f"--json {args.out}: is a directory")
    try:
        instances = load_instances(args.instances)
        reports = []
        for i, inst in enumerate(instances):
            expected = inst.meta.get("expected") or {}
            b = args.baseline if args.baseline is not None else expected.get("baseline_b")
            try:
                reports.append(exact_report(inst) if b is None
                               else exact_report(inst, baseline=float(b)))
            except ValueError as exc:
                raise ValueError(f"{args.instances}: instance {i} (id {inst.id!r}): {exc}") from None
    except (ValueError, OSError) as exc:
        raise CliError(str(exc), status=2) from None
    n_bad = 0
    for inst, rep in zip(instances, reports, strict=True):
        print(format_report(rep, name=inst.id))
        if "expected" in inst.meta:
            bad = compare_reports(inst.meta["expected"], rep)
            n_bad += bool(bad)
            status = "MISMATCH: " + "; ".join(bad[:5]) if bad else "matches expected"
            print(f"  expected values: {status}")
        print()
    if args.out is not None:
        doc = {"schema": SCHEMA + "/reports", "source": str(args.instances),
               "reports": [{"id": inst.id, **dict(rep)}
                           for inst, rep in zip(instances, reports, strict=True)]}
        try:
            atomic_write_text(args.out, json.dumps(to_jsonable(doc), indent=1) + "\n")
        except OSError as exc:
            raise CliError(f"--json {args.out}: {exc.strerror or exc}") from None
    if n_bad:
        raise CliError(f"{n_bad} instance(s) do not match their expected values")
    return 0


def _add_exact(sub) -> None:
    e = sub.add_parser(
        "exact", help="exact error and every bound on tabular instances",
        description="Exact surrogate error, divergences and bounds of tree instances "
                    "(trm-oracle-instances/v1). Instances that store expected values are "
                    "compared with them (relative 1e-9); a mismatch exits 1.")
    e.add_argument("instances", help="trm-oracle-instances/v1 JSON file")
    e.add_argument("--json", dest="out", default=None, help="write every report here (JSON)")
    e.add_argument("--baseline", type=float, default=None,
                   help="b for the reported L = E[(R - b) sum_t rho_t] (default: the "
                        "baseline the file's expected values were computed with, else 0)")
    e.set_defaults(run=_exact)


# ----------------------------------------------------------------------------- evaluate


def _dump_schema() -> str:
    """The dump schema (required and aliased fields per framework), from the alias table."""
    from trm_bounds.logs import dump_schema

    return dump_schema()


def _parse_threshold(text: str) -> tuple[str, float]:
    from trm_bounds.masking import DEFAULT_THRESHOLDS

    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expects NAME=VALUE, got {text!r}")
    for p in name.split(","):
        if p not in DEFAULT_THRESHOLDS:
            raise argparse.ArgumentTypeError(
                f"unknown criterion {p!r} (known: {', '.join(DEFAULT_THRESHOLDS)})")
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a number") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{name}: must be finite and >= 0, got {v}")
    return name, v


def _figure_drawer(no_figures: bool):
    """The evaluator's figure callback (matplotlib is imported only when figures are drawn)."""
    if no_figures:
        return None
    from trm_bounds.plot.evaluate import draw_report_figures

    return draw_report_figures


def _evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.evaluate import demo_dump_path, evaluate
    from trm_bounds.logs import FORMATS, LogFormatError
    from trm_bounds.masking import DEFAULT_THRESHOLDS

    if args.fmt not in FORMATS:
        parser.error(f"--format: {args.fmt!r} is not one of {', '.join(FORMATS)}")
    dumps = list(args.dump)
    if args.demo:
        demo = demo_dump_path()
        rel = os.path.relpath(demo)  # machine-independent in reports when run from the checkout
        dumps.append(demo.as_posix() if rel.startswith("..") else rel)
    if not dumps:
        parser.error("give a DUMP or --demo")
    for err in (_positive("--ln-delta", args.ln_delta, allow_none=False),
                _positive("--ln-eps", args.ln_eps)):
        if err:
            parser.error(err)
    for c in args.criteria or ():
        if not all(p in DEFAULT_THRESHOLDS for p in c.split(",")):
            parser.error(f"--criterion: unknown criterion {c!r} "
                         f"(known: {', '.join(DEFAULT_THRESHOLDS)})")
    if args.chunk_size < 1 or args.buckets < 1:
        parser.error("--chunk-size and --buckets must be positive")
    bad_out = _out_dir_error("--out", args.out)
    if bad_out:
        parser.error(bad_out)
    created = not args.out.exists()
    try:
        report = evaluate(
            dumps, args.out, fmt=args.fmt, thresholds=dict(args.threshold),
            criteria=args.criteria, ln_delta=args.ln_delta, ln_eps=args.ln_eps,
            chunk_size=args.chunk_size, trust_pickle=args.trust_pickle,
            n_buckets=args.buckets, draw_figures=_figure_drawer(args.no_figures),
            progress=False if args.quiet else None, float64=args.float64,
        )  # fmt: skip
    except (LogFormatError, ValueError, OSError) as exc:
        if created:  # nothing partial: remove the folder this run created, if still empty
            try:
                args.out.rmdir()
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise CliError(f"{exc.filename or args.out}: {exc.strerror or exc}") from None
        raise CliError(str(exc), status=2) from None
    print(f"{report['n_sequences']} sequences, {report['n_tokens']} tokens -> "
          f"{Path(args.out) / 'report.json'}")
    return 0


def _evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate logged trainer/rollout logprobs",
        description="Evaluate logged trainer/rollout logprobs: TRM criteria, metrics, bounds "
                    "(docs/theory.md §6). Writes report.json, report.md, sequences.csv and "
                    "figures into --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dump", nargs="*", help="files, directories or globs (one dataset)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--demo", action="store_true", help="evaluate the shipped demo dump")
    p.add_argument("--format", default="auto", dest="fmt",
                   help="dump format (default: detected from the file)")
    p.add_argument("--threshold", action="append", type=_parse_threshold, default=[],
                   metavar="NAME=VALUE", help="override a criterion threshold (repeatable)")
    p.add_argument("--criterion", action="append", default=None, dest="criteria",
                   metavar="NAME",
                   help="evaluate only these criteria (repeatable; default: all applicable)")
    p.add_argument("--ln-delta", type=float, default=0.05,
                   help="LN-TRM per-token KL tolerance (nats, > 0)")
    p.add_argument("--ln-eps", type=float, default=None,
                   help="LN-TRM TV tolerance (coupling, > 0)")
    p.add_argument("--chunk-size", type=int, default=4096, help="sequences per chunk")
    p.add_argument("--buckets", type=int, default=4, help="length quantile buckets")
    p.add_argument("--trust-pickle", action="store_true", help="allow arbitrary unpickling")
    p.add_argument("--no-figures", action="store_true", help="write no figures")
    p.add_argument("--float64", action="store_true",
                   help="float64 arithmetic for float32 dumps (default: the dump's precision)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_evaluate)


# ----------------------------------------------------------------------------- plot


def _plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.results import checkout_root, results_dir

    if args.full and not args.recompute:
        parser.error("--full only makes sense with --recompute")
    bad = _positive("--dpi", args.dpi)
    if bad:
        parser.error(bad)
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"png", "pdf", "svg"})
    if unknown or not formats:
        parser.error(f"--formats: unsupported format {unknown[0] if unknown else '(none)'!r}; "
                     "use png, pdf, svg")
    for flag, path in (("--out", args.out),
                       *((("--results", args.results),) if args.recompute and args.results
                         else ())):  # fmt: skip
        err = _out_dir_error(flag, path)
        if err:
            parser.error(err)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CliError("plot needs matplotlib: pip install 'trm-bounds[plot]'") from None
    from trm_bounds.plot import FIGURES, ResultFileError, render

    results = args.results
    if results is None:  # the checkout's results, else a folder beside the figures
        results = results_dir() if checkout_root() is not None or not args.recompute \
            else args.out / "results"
    if args.recompute:
        from trm_bounds.studies import STUDIES, recompute

        by_result = {s.result: name for name, s in STUDIES.items()}
        needed = {FIGURES[k].source for k in (args.only or FIGURES)}
        names = [by_result[src] for src in dict.fromkeys(FIGURES[k].source for k in FIGURES)
                 if src in needed]
        device = "cuda" if args.full and _cuda_available() else None
        failed = recompute(results, names=names, size="full" if args.full else "default",
                           seed=args.seed, device=device)
        if failed:
            print(f"{PROG} plot: studies failed: {', '.join(failed)}", file=sys.stderr)
    keys = args.only or list(FIGURES)
    n_bad = 0
    for key in keys:
        spec = FIGURES[key]
        try:
            paths = render(spec, results, args.out, formats, dpi=args.dpi)
        except FileNotFoundError as exc:
            print(f"skip {key} ({spec.what}): {exc}; rerun with --recompute", file=sys.stderr)
            n_bad += 1
            continue
        except (ResultFileError, ImportError) as exc:
            print(f"FAILED {key} ({spec.what}): {exc}", file=sys.stderr)
            n_bad += 1
            continue
        except OSError as exc:
            raise CliError(f"{exc.filename or args.out}: {exc.strerror or exc}") from None
        print(f"{key} {spec.what}: {', '.join(_rel(p) for p in paths)}")
    print(f"{len(keys) - n_bad} of {len(keys)} figures written to {_rel(args.out)}")
    return 1 if n_bad else 0


def _cuda_available() -> bool:
    """Whether torch sees a GPU (imports torch only when ``--full`` asks)."""
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


def _figure_keys() -> list[str]:
    """F1-F8 (the plot registry's keys, listed here so parsing imports no matplotlib)."""
    return [f"F{i}" for i in range(1, 9)]


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot", help="redraw every figure (F1-F8) from the result files",
        description="Redraw every figure (F1-F8) from the result files. Result files are "
                    "read from --results, else from experiments/results in a source checkout, "
                    "else from the copies shipped with the package. --recompute reruns the "
                    "studies first (small default, a few minutes) into --results, else into "
                    "experiments/results in a checkout, else into OUT/results.",
        epilog="Figures: F1/F2 bounds against T (uniform, sparse divergence), F3 exact error "
               "against the bounds, F4 the paper's table, F5 the Adaptive crossover, F6 length "
               "bias, F7 transformer mismatch sources, F8 the log evaluator on the demo dump.")
    p.add_argument("--recompute", action="store_true",
                   help="rerun the studies (small default, a few minutes) first")
    p.add_argument("--full", action="store_true",
                   help="with --recompute: larger runs (and --device cuda on a GPU)")
    p.add_argument("--out", type=Path, default=Path("figures"),
                   help="figure folder (default: ./figures)")
    p.add_argument("--results", type=Path, default=None, help="folder of the result files")
    p.add_argument("--only", action="append", metavar="FN", type=str.upper,
                   choices=_figure_keys(), help="draw only this figure (repeatable), e.g. F3")
    p.add_argument("--formats", default="png,pdf", help="comma-separated formats (png,pdf,svg)")
    p.add_argument("--dpi", type=float, default=None, help="PNG resolution (default 150)")
    p.add_argument("--seed", type=int, default=None, help="with --recompute: the studies' seed")
    p.set_defaults(run=_plot)


# ----------------------------------------------------------------------------- entry points


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trm-bounds")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(*, with_schema: bool = False) -> argparse.ArgumentParser:
    """The ``trm-bounds`` parser; ``with_schema``: put the dump schema in ``evaluate --help``
    (imports the log readers' alias table)."""
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_bounds(sub)
    _add_exact(sub)
    _evaluate_parser(sub)
    _add_plot(sub)
    if with_schema:
        sub.choices["evaluate"].epilog = _dump_schema()
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``trm-bounds ...``: parse, run the subcommand, return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_schema = bool(argv) and argv[0] == "evaluate" and ("-h" in argv or "--help" in argv)
    parser = build_parser(with_schema=wants_schema)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
    try:
        return args.run(args, sub)
    except SystemExit as exc:  # a usage error found after parsing (parser.error)
        return int(exc.code or 0)
    except CliError as exc:
        print(f"{PROG} {args.command}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``python -m trm_bounds.evaluate ...`` = ``trm-bounds evaluate ...``."""
    return main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


def plot_main(argv: Sequence[str] | None = None) -> int:
    """``python -m trm_bounds.plot ...`` = ``trm-bounds plot ...``."""
    return main(["plot", *(sys.argv[1:] if argv is None else argv)])
